"""Every Kubernetes object the program declares: valid against the Kubernetes OpenAPI schema of
the stack's k3s minor version (strict: no unknown fields), placed where it belongs, and built
the safe way (requests and limits, probes, non-root unless it must be root)."""

from __future__ import annotations

import kubernetes_validate
import pytest

from components import kube, settings
from rackctl import render
from tests.conftest import PLANTED, stack_raw

JUMPHOST_ONLY = {"metadata", "alert-to-pubsub", "prometheus", "kube-state-metrics", "podwatcher",
                 "nfs-server", "router-backup", "datastore-backup"}
PRIVILEGED = {"swarming", "nfs-server"}
ROOT_ALLOWED = PRIVILEGED | {"datastore-backup"}


def manifests(run):
    return [(r, {**r.inputs}) for r in run.resources if r.type.startswith("kubernetes:") and r.custom]


def pod_spec(obj: dict) -> dict | None:
    spec = obj.get("spec") or {}
    if obj["kind"] == "CronJob":
        return spec["jobTemplate"]["spec"]["template"]["spec"]
    if obj["kind"] in ("Deployment", "DaemonSet"):
        return spec["template"]["spec"]
    return None


@pytest.mark.parametrize("stack", ["rack1", "rack2"])
def test_every_object_validates_strictly_against_the_k3s_schema(run_stack, stack):
    version = settings.parse(stack, stack_raw(stack), PLANTED).k3s_minor
    run = run_stack(stack)
    objects = manifests(run)
    assert len(objects) >= 40
    for _, obj in objects:
        kubernetes_validate.validate(obj, f"{version}.0", strict=True)


def test_an_invalid_object_is_caught_by_the_same_check():
    bad = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
           "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "x", "imagePullPolicy": "Sometimes",
                                                                           "bogusField": 1}]}}}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, "1.31.0", strict=True)


def test_pods_are_placed_by_role_and_built_safely(run_stack):
    run = run_stack("rack1")
    seen = set()
    for _, obj in manifests(run):
        spec = pod_spec(obj)
        if spec is None:
            continue
        (container,) = spec["containers"]
        name = container["name"]
        seen.add(name)
        terms = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                 .get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms")
        role = terms[0]["matchExpressions"][0] if terms else None
        if name in JUMPHOST_ONLY:
            assert role == {"key": kube.RESTRICTED_ROLE_LABEL, "operator": "In", "values": ["jumphost"]}, name
        elif name == "swarming":
            assert terms[0]["matchExpressions"] == [
                {"key": kube.ROLE_LABEL, "operator": "In", "values": ["rpi"]},
                {"key": kube.STATE_LABEL, "operator": "NotIn", "values": ["drained"]},
                {"key": kube.MAINTENANCE_LABEL, "operator": "DoesNotExist"}]
        else:
            assert name == "node-exporter" and role is None and spec["tolerations"] == [{"operator": "Exists"}]
        resources = container["resources"]
        assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}, name
        security = container["securityContext"]
        if name in ROOT_ALLOWED:
            assert security["runAsUser"] == 0 and security.get("privileged") is (True if name in PRIVILEGED else None)
        else:
            assert security["runAsNonRoot"] is True and security["runAsUser"] != 0, name
        if name in PRIVILEGED:
            assert "securityContext" not in spec, name  # seccomp does not bind a privileged container
        else:
            # Hardening that costs nothing: no escalation, no capabilities, a read-only root with
            # scratch in an emptyDir, and the runtime's default seccomp profile.
            assert security["allowPrivilegeEscalation"] is False and security["capabilities"] == {"drop": ["ALL"]}
            assert security["readOnlyRootFilesystem"] is True, name
            assert {"name": "scratch", "emptyDir": {}} in spec["volumes"], name
            assert {"name": "scratch", "mountPath": "/tmp", "readOnly": False} in container["volumeMounts"], name
            assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        # podwatcher will not start without an in-cluster API client; its account has no rights.
        assert spec["automountServiceAccountToken"] is (name in ("prometheus", "kube-state-metrics", "podwatcher")), name
        for env in container.get("env") or []:
            # A secret reaches a container as a secretKeyRef or a mounted file, never a plain value.
            assert "value" not in env or env["value"].startswith("/var/secrets/") or not any(
                w in env["name"] for w in ("PASSWORD", "KEY", "TOKEN")), env
    assert seen == JUMPHOST_ONLY | {"swarming", "node-exporter"}


def network_policies(run) -> dict[tuple[str, str], dict]:
    return {(r.inputs["metadata"]["namespace"], r.inputs["metadata"]["name"]): r.inputs["spec"]
            for r in run.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")}


def _from(namespace: str, app: str) -> dict:
    key = "k8s-app" if app == "kube-dns" else kube.APP_LABEL
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
            "podSelector": {"matchLabels": {key: app}}}


def test_every_namespace_the_stack_owns_denies_ingress_by_default(run_stack):
    run = run_stack("rack1")
    owned = {r.inputs["metadata"]["name"] for r in run.of_type("kubernetes:core/v1:Namespace")}
    assert owned == {"metadata", "monitoring", "alerting", "backup", "k3s-backup", "power", "nfs", "swarming",
                     "skolo-access"}
    policies = network_policies(run)
    for ns in owned:
        assert policies[(ns, "default-deny-ingress")] == {"podSelector": {}, "policyTypes": ["Ingress"]}, ns


def test_what_each_network_policy_lets_in(run_stack):
    policies = network_policies(run_stack("rack1"))
    opened = {key: (spec["podSelector"]["matchLabels"][kube.APP_LABEL],
                    [(rule.get("from"), [p["port"] for p in rule["ports"]]) for rule in spec.get("ingress", [])])
              for key, spec in policies.items() if key[1] != "default-deny-ingress" and "Ingress" in spec["policyTypes"]}
    prometheus = [_from("monitoring", "prometheus")]
    assert opened == {
        ("metadata", "metadata-ingress"): ("metadata", [(
            [_from("swarming", "swarming"), _from("kube-system", "traefik"), {"ipBlock": {"cidr": "192.168.1.0/24"}}],
            [8000])]),
        ("metadata", "metadata-metrics"): ("metadata", [(prometheus, [20000])]),
        ("alerting", "alert-to-pubsub-ingress"): ("alert-to-pubsub", [(prometheus, [8000])]),
        ("alerting", "alert-to-pubsub-metrics"): ("alert-to-pubsub", [(prometheus, [20000])]),
        ("monitoring", "kube-state-metrics-ingress"): ("kube-state-metrics", [(prometheus, [8080])]),
        ("power", "podwatcher-metrics"): ("podwatcher", [(prometheus, [20000])]),
        ("swarming", "swarming-metrics"): ("swarming", [(prometheus, [20000])]),
    }


def test_router_backup_reaches_only_its_devices_dns_and_public_https(run_stack):
    spec = network_policies(run_stack("rack1"))[("backup", "router-backup-egress")]
    assert spec["policyTypes"] == ["Egress"]
    assert spec["egress"] == [
        {"to": [{"ipBlock": {"cidr": f"192.168.1.{i}/32"}} for i in (1, 2, 3)],
         "ports": [{"port": 22, "protocol": "TCP"}]},
        {"to": [_from("kube-system", "kube-dns")],
         "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]},
        {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]}}],
         "ports": [{"port": 443, "protocol": "TCP"}]}]


def test_services_with_health_endpoints_have_probes(run_stack):
    run = run_stack("rack2")
    probed = {}
    for _, obj in manifests(run):
        spec = pod_spec(obj)
        if spec:
            c = spec["containers"][0]
            probed[c["name"]] = (c.get("readinessProbe", {}).get("httpGet"), c.get("livenessProbe", {}).get("httpGet"))
    assert probed["metadata"] == ({"path": "/healthz", "port": 8000},) * 2
    assert probed["alert-to-pubsub"] == ({"path": "/healthz", "port": 8000},) * 2
    # Ready once the TSDB is loaded, alive while it serves (test_services.py says why).
    assert probed["prometheus"] == ({"path": "/-/ready", "port": 9090}, {"path": "/-/healthy", "port": 9090})
    assert probed["swarming"] == (None, None)


def test_secrets_only_in_secrets(run_stack):
    """Every secret value the services get is in a Secret's stringData, never a ConfigMap or env."""
    run = run_stack("rack1")
    secrets = [r for r in run.of_type("kubernetes:core/v1:Secret")]
    assert {r.inputs["metadata"]["name"] for r in secrets} == {
        "metadata-sa", "alert-to-pubsub-sa", "router-backup-sa", "router-backup-ssh", "router-backup-switch",
        "power-cycle", "power-cycle-ssh", "podwatcher-sa", "swarming-sa", "swarming-adb", "image-pull",
        "datastore-backup-sa"}
    assert all("stringData" in r.secret_inputs for r in secrets)


def test_render_writes_every_object(run_stack, tmp_path):
    run = run_stack("rack2")
    files = render.kubernetes_objects(run)
    assert len(files) == len(manifests(run))
    secret = files["kubernetes/swarming/Secret-swarming-adb.yaml"]
    assert secret["stringData"] == {"adbkey": render.PLACEHOLDER, "adbkey.pub": render.PLACEHOLDER}
    assert "kubernetes/_cluster/ClusterRole-skolo_monitoring_prometheus.yaml" in files


# No identity of the stack may have an exec path or take a whole API group's core.
FORBIDDEN_GRANTS = {"nodes/proxy", "pods/exec", "pods/attach", "pods/portforward", "services/proxy", "secrets"}


@pytest.mark.parametrize("stack", ["rack1", "rack2"])
def test_no_role_the_stack_creates_grants_an_exec_path_or_a_core_wildcard(run_stack, stack):
    run = run_stack(stack)
    roles = [r for r in run.resources if r.custom and r.type.rsplit(":", 1)[-1] in ("ClusterRole", "Role")]
    assert {r.inputs["metadata"]["name"] for r in roles} >= {
        "skolo:monitoring:prometheus", "skolo:monitoring:kube-state-metrics", "skolo:skolo-access:observer"}
    for role in roles:
        for rule in role.inputs.get("rules") or ():
            name = role.inputs["metadata"]["name"]
            resources = set(rule.get("resources") or ())
            assert not resources & FORBIDDEN_GRANTS, (name, rule)
            assert not ("" in (rule.get("apiGroups") or ()) and resources & {"*", "*/*"}), (name, rule)
            assert "*" not in (rule.get("verbs") or ()) and "*" not in (rule.get("apiGroups") or ()), (name, rule)


@pytest.mark.parametrize("stack", ["rack1", "rack2"])
def test_up_does_not_wait_for_a_rollout_across_the_pis_but_does_for_the_jumphost(run_stack, stack):
    """The Kubernetes provider fails an update after 10 minutes waiting for a rollout
    (pulumi-kubernetes provider/pkg/await/daemonset.go, _defaultDaemonSetTimeout): a DaemonSet
    rolling a rack's bots a few at a time takes hours, so every DaemonSet carries the provider's
    own pulumi.com/skipAwait. A Deployment (one pod on the jumphost) is waited for: one that never
    becomes ready fails `up`, named, instead of passing unseen."""
    objects = render.kubernetes_objects(run_stack(stack)).values()
    kinds = {}
    for obj in objects:
        skip = (obj["metadata"].get("annotations") or {}).get("pulumi.com/skipAwait")
        kinds.setdefault(obj["kind"], set()).add(skip)
    assert kinds["DaemonSet"] == {"true"}
    assert kinds["Deployment"] == {None}


def test_a_field_changed_by_hand_is_taken_back_by_the_next_up(run_stack):
    """The provider forces server-side apply conflicts (enablePatchForce, read by the provider as
    kubernetes:config:enablePatchForce in provider/pkg/provider/provider.go), so a `kubectl scale`
    or `kubectl set image` made during an incident does not make the next `up` fail; the code wins.
    The real API server's side of it: tests/test_cluster_apply.py applies with --force-conflicts."""
    provider = run_stack("rack2").of_type("pulumi:providers:kubernetes")[0]
    assert provider.inputs["enablePatchForce"] == "true"
    assert provider.inputs["clusterIdentifier"] == "rack2"  # so this change updates the provider, replacing nothing
