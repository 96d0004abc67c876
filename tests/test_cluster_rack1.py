"""rack1 live on a real v1.31 control plane, with Nodes shaped like the rack (the jumphost and 80 Pis,
with exactly the labels k3s's config and the program's scripts give them) and the real scheduler
and controllers: where every pod lands, what the real CEL engine admits and refuses, what each
identity the stack creates may do, and what a Pi's own kubelet can reach."""

from __future__ import annotations

import json
import re

import pytest

from components import kube
from tests.cluster_rack import scheduled
from tests.controlplane import wait_for
from tests.test_guardrails import BAD, INVALID_BEFORE_ADMISSION, _pod

pytestmark = pytest.mark.cluster
STACK_NAMESPACES = ("metadata", "alerting", "monitoring", "backup", "k3s-backup", "power", "nfs", "swarming",
                    "skolo-access")
JUMPHOST_APPS = {"metadata": "metadata", "alerting": "alert-to-pubsub", "monitoring": "prometheus",
                 "power": "podwatcher", "nfs": "nfs-server"}


@pytest.fixture
def rack1(rack1_live):
    return rack1_live


def node_of(pods: list[dict]) -> set[str]:
    return {p["spec"]["nodeName"] for p in pods}


# --- placement --------------------------------------------------------------------------------

def test_one_bot_per_pi_none_on_the_jumphost_and_node_exporter_everywhere(rack1):
    cp, _, live, rack, _ = rack1
    bots = scheduled(cp, "swarming", "swarming", len(rack.rpis))
    assert sorted(node_of(bots)) == sorted(pi.name for pi in rack.rpis)
    exporters = scheduled(cp, "monitoring", "node-exporter", len(rack.rpis) + 1)
    assert node_of(exporters) == {rack.jumphost.name, *(pi.name for pi in rack.rpis)}


def test_every_other_workload_runs_on_the_jumphost(rack1):
    cp, _, live, rack, _ = rack1
    for namespace, app in {**JUMPHOST_APPS, "monitoring": "kube-state-metrics"}.items():
        assert node_of(scheduled(cp, namespace, app, 1)) == {rack.jumphost.name}, app
    assert node_of(scheduled(cp, "monitoring", "prometheus", 1)) == {rack.jumphost.name}
    # CronJobs: a run started by hand (`kubectl create job --from`) is placed like a scheduled one.
    for namespace, cronjob in (("backup", "router-backup"), ("k3s-backup", "datastore-backup")):
        cp.kubectl("create", "job", f"{cronjob}-now", f"--from=cronjob/{cronjob}", "-n", namespace)
        assert node_of(scheduled(cp, namespace, cronjob, 1)) == {rack.jumphost.name}, cronjob
        cp.kubectl("delete", "job", f"{cronjob}-now", "-n", namespace, "--wait=true")


@pytest.mark.parametrize("label", [f"{kube.MAINTENANCE_LABEL}=k3s-upgrade", f"{kube.STATE_LABEL}={kube.STATE_DRAINED}"])
def test_the_maintenance_label_and_the_drained_state_take_a_pis_bot_away(rack1, label):
    """The labels the bundle's pi-node.sh sets; the real DaemonSet controller removes the bot."""
    cp, _, live, rack, _ = rack1
    pi = rack.rpis[5].name
    cp.kubectl("label", "node", pi, label, "--overwrite")
    try:
        live.wait_no_bot(pi)
    finally:
        cp.kubectl("label", "node", pi, f"{label.split('=')[0]}-")
    scheduled(cp, "swarming", "swarming", len(rack.rpis))


# --- admission --------------------------------------------------------------------------------

def test_no_controller_was_refused_a_pod(rack1):
    """Every pod the controllers make from the stack's Deployments, DaemonSets and Jobs is admitted
    by the real policies (a refusal would be a FailedCreate event)."""
    cp, _, live, _, _ = rack1
    for namespace, cronjob in (("backup", "router-backup"), ("k3s-backup", "datastore-backup")):
        cp.kubectl("create", "job", f"{cronjob}-admitted", f"--from=cronjob/{cronjob}", "-n", namespace)
        scheduled(cp, namespace, cronjob, 1)
        cp.kubectl("delete", "job", f"{cronjob}-admitted", "-n", namespace, "--wait=true")
    refused = [f"{e['involvedObject']['namespace']}/{e['involvedObject']['name']}: {e['message']}"
               for e in live.events("FailedCreate")
               if e["involvedObject"].get("namespace") in STACK_NAMESPACES]
    assert refused == []


@pytest.mark.parametrize("what", sorted(w for w in BAD if "ephemeral" not in w))
def test_the_real_policies_refuse_each_bad_pod_with_the_right_policy(rack1, what):
    cp, _, _, _, run = rack1
    namespace, breaks, policy = BAD[what]
    pod = _pod(run)
    pod.update(apiVersion="v1", kind="Pod")
    pod["metadata"] = {"name": "probe", "namespace": namespace}
    breaks(pod)
    result = cp.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False)
    assert result.returncode != 0
    if what in INVALID_BEFORE_ADMISSION:
        assert INVALID_BEFORE_ADMISSION[what] in result.stderr
        return
    assert re.findall(r"ValidatingAdmissionPolicy '([^']+)'", result.stderr) == [policy], result.stderr


@pytest.mark.parametrize("what", sorted(w for w in BAD if "ephemeral" in w))
def test_the_real_policies_refuse_each_bad_debug_container(rack1, what):
    """`kubectl debug` adds an ephemeral container through pods/ephemeralcontainers."""
    cp, _, live, _, run = rack1
    namespace, breaks, policy = BAD[what]
    target = live.pods(namespace, {"metadata": "metadata", "power": "podwatcher"}[namespace])[0]
    probe = _pod(run)
    probe["spec"] = target["spec"]
    probe["metadata"] = target["metadata"]
    breaks(probe)
    patch = {"spec": {"ephemeralContainers": probe["spec"]["ephemeralContainers"]}}
    result = cp.request("PATCH", f"/api/v1/namespaces/{namespace}/pods/{target['metadata']['name']}"
                                 "/ephemeralcontainers", patch, content_type="application/strategic-merge-patch+json",
                        params={"dryRun": "All"})
    if namespace == "power":
        # The case is a pod that sets no user; a live one cannot exist here (creating it is
        # refused), and this live pod sets its user at pod level, which the debug container takes:
        # admitted, rightly.
        assert result.status_code == 200, result.text
    else:
        assert result.status_code in (403, 422) and f"ValidatingAdmissionPolicy '{policy}'" in result.text, result.text


# --- identities -------------------------------------------------------------------------------

# What each identity the stack creates may do, beyond what every authenticated user may (discovery,
# and asking about its own rights): the README's "Who may do what" table.
READ = ("get", "list", "watch")
IDENTITIES = {
    "system:serviceaccount:skolo-access:observer": {
        "pods": READ, "pods/log": READ, "services": READ, "endpoints": READ, "nodes": READ, "namespaces": READ,
        "events": READ, "configmaps": READ, "persistentvolumeclaims": READ, "persistentvolumes": READ,
        "serviceaccounts": READ, "resourcequotas": READ, "limitranges": READ,
        **{f"*.{g}": READ for g in ("apps", "batch", "networking.k8s.io", "policy", "discovery.k8s.io",
                                    "storage.k8s.io", "events.k8s.io", "admissionregistration.k8s.io",
                                    "rbac.authorization.k8s.io", "metrics.k8s.io")}},
    "system:serviceaccount:monitoring:prometheus": {
        "nodes": READ, "nodes/metrics": READ, "services": READ, "endpoints": READ, "pods": READ,
        "endpointslices.discovery.k8s.io": READ, "ingresses.networking.k8s.io": READ, "/metrics": ("get",)},
    "system:serviceaccount:monitoring:kube-state-metrics": {
        "cronjobs.batch": ("list", "watch"), "daemonsets.apps": ("list", "watch"),
        "deployments.apps": ("list", "watch"), "jobs.batch": ("list", "watch"), "nodes": ("list", "watch"),
        "pods": ("list", "watch")},
    "system:serviceaccount:power:podwatcher": {},
}
EVERYONE = {"selfsubjectreviews.authentication.k8s.io", "selfsubjectaccessreviews.authorization.k8s.io",
            "selfsubjectrulesreviews.authorization.k8s.io", "/api", "/api/*", "/apis", "/apis/*", "/healthz",
            "/livez", "/readyz", "/version", "/version/", "/openapi", "/openapi/*", "/.well-known",
            "/.well-known/*", "/.well-known/openid-configuration", "/.well-known/openid-configuration/",
            "/openid/v1/jwks", "/openid/v1/jwks/"}
# No exec path and no Secrets, for anyone: these, or a wildcard over the core group.
NEVER = ("secrets", "pods/exec", "pods/attach", "pods/portforward", "nodes/proxy", "services/proxy", "*", "*/*")


def can_i(cp, user: str) -> dict[str, tuple[str, ...]]:
    """`kubectl auth can-i --list` as `user`: resource or URL -> verbs."""
    out = cp.kubectl("auth", "can-i", "--list", f"--as={user}").stdout.splitlines()[1:]
    rights: dict[str, tuple[str, ...]] = {}
    for line in out:
        m = re.match(r"^(\S*)\s+\[([^\]]*)\]\s+\[([^\]]*)\]\s+\[([^\]]*)\]", line)
        if not m:
            continue
        resource, urls, _names, verbs = m.groups()
        for what in ([resource] if resource else []) + urls.split():
            rights[what] = tuple(sorted(set(rights.get(what, ())) | set(verbs.split())))
    return rights


@pytest.mark.parametrize("user", sorted(IDENTITIES))
def test_each_identity_may_do_exactly_what_the_readme_says(rack1, user):
    cp = rack1[0]
    rights = {k: v for k, v in can_i(cp, user).items() if k not in EVERYONE}
    assert rights == {k: tuple(sorted(v)) for k, v in IDENTITIES[user].items()}
    assert not [k for k in rights if k in NEVER]


def test_a_pis_kubelet_cannot_draw_the_jumphosts_pods_or_read_their_secrets(rack1):
    """A privileged test on a Pi holds that Pi's kubelet credentials. Whatever it does to its own
    Node, no jumphost pod comes to it, and the Node authorizer keeps their Secrets from it."""
    cp, kubelet, live, rack, _ = rack1
    pi = rack.rpis[0].name
    node = kubelet.node_identity(pi)
    secret = cp.kubectl("get", "secret", "metadata-sa", "-n", "metadata", who=node, check=False)
    assert secret.returncode != 0 and "Forbidden" in secret.stderr

    claims = cp.kubectl("label", "node", pi, f"{kube.ROLE_LABEL}={kube.ROLE_JUMPHOST}", "--overwrite", who=node,
                        check=False)
    assert claims.returncode == 0, "NodeRestriction lets a kubelet set this label: the pods must not follow it"
    admin_only = cp.kubectl("label", "node", pi, f"{kube.RESTRICTED_ROLE_LABEL}={kube.ROLE_JUMPHOST}", "--overwrite",
                            who=node, check=False)
    assert admin_only.returncode != 0 and "node-restriction.kubernetes.io" in admin_only.stderr
    taken = cp.kubectl("label", "node", rack.jumphost.name, f"{kube.RESTRICTED_ROLE_LABEL}-", who=node, check=False)
    assert taken.returncode != 0  # nor may it touch the jumphost's Node

    # With the jumphost full (cordoned), the metadata pod made anew has nowhere to go but the Pi.
    cp.kubectl("cordon", rack.jumphost.name)
    try:
        cp.kubectl("delete", "pods", "-n", "metadata", "-l", f"{kube.APP_LABEL}=metadata", "--wait=true")

        def unschedulable():
            pods = live.pods("metadata", "metadata")
            return pods and all(not p["spec"].get("nodeName") and any(
                c.get("reason") == "Unschedulable" for c in p["status"].get("conditions") or ()) for p in pods)
        wait_for(unschedulable, 60, "the new metadata pod found unschedulable")
        assert not cp.kubectl("get", "secret", "metadata-sa", "-n", "metadata", who=node, check=False).returncode == 0
    finally:
        cp.kubectl("uncordon", rack.jumphost.name)
        cp.kubectl("label", "node", pi, f"{kube.ROLE_LABEL}={kube.ROLE_RPI}", "--overwrite")
    assert node_of(scheduled(cp, "metadata", "metadata", 1)) == {rack.jumphost.name}
