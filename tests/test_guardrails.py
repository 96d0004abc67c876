"""The admission policies, evaluated with a real CEL implementation (cel-python) exactly as the
program declares them, on the requests an API server would hand them: Pods, a Pod's ephemeral
containers (the pods/ephemeralcontainers subresource `kubectl debug` uses), and the workloads
that carry pod templates. Every pod and workload the stack declares must pass (the policies must
not lock the stack out of its own cluster); every bad one must be refused by the right policy
with the right message, namespace by namespace (a policy that refuses nothing fails here)."""

from __future__ import annotations

import copy

import celpy
import pytest
from celpy import celtypes

from rackctl.render import _canonical

VAP = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy"
BINDING = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicyBinding"
ENV = celpy.Environment()
WORKLOAD_KINDS = {"Deployment": "apps/v1", "DaemonSet": "apps/v1", "StatefulSet": "apps/v1", "ReplicaSet": "apps/v1",
                  "Job": "batch/v1", "CronJob": "batch/v1"}


def policies(run) -> dict[str, dict]:
    return {r.inputs["metadata"]["name"]: r.inputs["spec"] for r in run.of_type(VAP)}


def refusals(spec: dict, obj: dict, namespace: str) -> list[str]:
    """The messages of the validations `obj` fails, as the API server would evaluate them."""
    request = {"namespace": namespace, "kind": {"kind": obj["kind"]}}
    base = {"object": celpy.json_to_cel(obj), "request": celpy.json_to_cel(request),
            "namespaceObject": celpy.json_to_cel({"metadata": {"name": namespace}})}
    variables = celtypes.MapType({})
    for v in spec.get("variables", []):
        value = ENV.program(ENV.compile(v["expression"])).evaluate({**base, "variables": variables})
        assert not isinstance(value, celpy.CELEvalError), f"{v['name']}: {value}"
        variables = celtypes.MapType({**variables, celtypes.StringType(v["name"]): value})
    failed = []
    for check in spec["validations"]:
        result = ENV.program(ENV.compile(check["expression"])).evaluate({**base, "variables": variables})
        assert isinstance(result, celtypes.BoolType), f"{check['expression']} gave {result!r}"
        if not result:
            failed.append(check["message"])
    return failed


def refused_by(run, obj: dict, namespace: str) -> dict[str, list[str]]:
    return {name: msgs for name, spec in policies(run).items() if (msgs := refusals(spec, obj, namespace))}


def stack_workloads(run) -> list[tuple[str, str, dict]]:
    """(name, namespace, object) for every workload the stack declares, as the API server gets it."""
    out = []
    for r in run.resources:
        kind = r.type.rsplit(":", 1)[-1]
        if kind in WORKLOAD_KINDS and r.custom:
            obj = _canonical({"apiVersion": WORKLOAD_KINDS[kind], "kind": kind, **r.inputs})
            out.append((r.inputs["metadata"]["name"], r.inputs["metadata"]["namespace"], obj))
    return out


def pod_of(obj: dict) -> dict:
    spec = obj["spec"]
    template = spec["jobTemplate"]["spec"]["template"] if obj["kind"] == "CronJob" else spec["template"]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {**template["metadata"]}, "spec": copy.deepcopy(template["spec"])}


@pytest.fixture
def rack(run_stack):
    """rack2: the same services, pods and policies as rack1, on 4 Pis instead of 80, so a run of
    the program costs a seventh (it runs once per mutant under mutation testing). conftest's
    run_stack, not a module-wide run: it caches across tests, but mutmut's coverage pass sees
    every test that reaches the program, so each mutant is tried against all of them."""
    return run_stack("rack2")


def test_three_policies_on_pods_ephemeral_containers_and_workloads_bound_everywhere_but_kube_system(rack):
    assert sorted(policies(rack)) == ["skolo-host-paths", "skolo-image-registries", "skolo-pod-privileges"]
    for r in rack.of_type(VAP):
        spec = r.inputs["spec"]
        assert spec["failurePolicy"] == "Fail"
        assert spec["matchConstraints"]["resourceRules"] == [
            {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
             "resources": ["pods", "pods/ephemeralcontainers"]},
            {"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
             "resources": ["deployments", "daemonsets", "statefulsets", "replicasets"]},
            {"apiGroups": ["batch"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
             "resources": ["jobs", "cronjobs"]}]
    for b in rack.of_type(BINDING):
        assert b.inputs["spec"]["validationActions"] == ["Deny"]
        assert b.inputs["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"] == [
            {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"]}]


def test_every_workload_and_pod_the_stack_declares_is_admitted(rack):
    workloads = stack_workloads(rack)
    assert {name for name, _, _ in workloads} == {
        "metadata", "alert-to-pubsub", "prometheus", "kube-state-metrics", "node-exporter", "podwatcher",
        "nfs-server", "router-backup", "datastore-backup", "swarming"}
    for name, ns, obj in workloads:
        assert refused_by(rack, obj, ns) == {}, name
        assert refused_by(rack, pod_of(obj), ns) == {}, name


def _workload(run, name: str) -> dict:
    return copy.deepcopy(next(o for n, _, o in stack_workloads(run) if n == name))


def _pod(run, name: str = "metadata") -> dict:
    """A stack pod, to break one way at a time (metadata's: non-root, no host paths)."""
    return pod_of(_workload(run, name))


def _c(pod: dict) -> dict:
    return pod["spec"]["containers"][0]


def _debug(**context) -> dict:
    """An ephemeral container as `kubectl debug` adds it (default: as the image's user)."""
    return {"name": "debugger", "image": context.pop("image", "gcr.io/skia-public/debug:1"), **context}


def _init(pod: dict, **changes) -> list[dict]:
    """An init container like the pod's container (an init container may not have probes)."""
    base = {k: v for k, v in _c(pod).items() if k not in ("livenessProbe", "readinessProbe")}
    return [{**base, "name": "init", **changes}]


def _with_ephemeral(pod: dict, container: dict) -> dict:
    pod["spec"]["ephemeralContainers"] = [container]
    return pod


SECURE = {"runAsNonRoot": True, "runAsUser": 1000, "allowPrivilegeEscalation": False}
# (namespace, what breaks a good pod, the one policy that must refuse it)
BAD = {
    "an image from Docker Hub": ("metadata", lambda p: _c(p).update(image="docker.io/evil/miner:1"),
                                 "skolo-image-registries"),
    "a look-alike registry": ("metadata", lambda p: _c(p).update(image="gcr.io/skia-public-evil/x:1"),
                              "skolo-image-registries"),
    "another repository of an allowed upstream org": (
        "metadata", lambda p: _c(p).update(image="prom/alertmanager:v0.27.0"), "skolo-image-registries"),
    "another tag of an upstream repository the stack runs": (
        "metadata", lambda p: _c(p).update(image="prom/prometheus:v2.55.0"), "skolo-image-registries"),
    "an upstream image's tag without the digest the stack pins": (
        "metadata", lambda p: _c(p).update(image="prom/node-exporter:v1.8.2"), "skolo-image-registries"),
    "a bad init container image": ("metadata", lambda p: p["spec"].update(initContainers=_init(p, image="busybox:1.36")),
                                   "skolo-image-registries"),
    "an ephemeral container from Docker Hub": (
        "metadata", lambda p: _with_ephemeral(p, _debug(image="docker.io/library/busybox:1", securityContext=SECURE)),
        "skolo-image-registries"),
    "a privileged ephemeral container": (
        "metadata", lambda p: _with_ephemeral(p, _debug(securityContext={
            **SECURE, "privileged": True, "allowPrivilegeEscalation": True})),
        "skolo-pod-privileges"),
    "an ephemeral container running as root": (
        "metadata", lambda p: _with_ephemeral(p, _debug(securityContext={"runAsUser": 0})), "skolo-pod-privileges"),
    "an ephemeral container as the image's user in a pod that sets none": (
        "power", lambda p: (p["spec"]["securityContext"].pop("runAsUser"), _c(p)["securityContext"].pop("runAsUser"),
                            _with_ephemeral(p, _debug())), "skolo-pod-privileges"),
    "a hostPath on /etc": ("metadata", lambda p: p["spec"]["volumes"].append(
        {"name": "etc", "hostPath": {"path": "/etc"}}), "skolo-host-paths"),
    "/ in metadata (only node-exporter's namespace may)": ("metadata", lambda p: p["spec"]["volumes"].append(
        {"name": "root", "hostPath": {"path": "/"}}), "skolo-host-paths"),
    "/proc in metadata": ("metadata", lambda p: p["spec"]["volumes"].append(
        {"name": "proc", "hostPath": {"path": "/proc"}}), "skolo-host-paths"),
    "/sys in alerting": ("alerting", lambda p: p["spec"]["volumes"].append(
        {"name": "sys", "hostPath": {"path": "/sys"}}), "skolo-host-paths"),
    "the k3s server directory outside k3s-backup": ("monitoring", lambda p: p["spec"]["volumes"].append(
        {"name": "db", "hostPath": {"path": "/var/lib/rancher/k3s/server"}}), "skolo-host-paths"),
    "a hostPath beside an allowed one": ("swarming", lambda p: p["spec"]["volumes"].append(
        {"name": "x", "hostPath": {"path": "/var/swarming-evil"}}), "skolo-host-paths"),
    "a hostPath that climbs out of an allowed one": ("swarming", lambda p: p["spec"]["volumes"].append(
        {"name": "x", "hostPath": {"path": "/var/swarming/../../etc"}}), "skolo-host-paths"),
    "a privileged container outside swarming and nfs": (
        "monitoring", lambda p: _c(p)["securityContext"].update(privileged=True, allowPrivilegeEscalation=True),
        "skolo-pod-privileges"),
    "a privileged init container": ("alerting", lambda p: p["spec"].update(initContainers=_init(
        p, securityContext={"privileged": True, "runAsUser": 1000})), "skolo-pod-privileges"),
    "host network outside nfs and monitoring": (
        "metadata", lambda p: p["spec"].update(hostNetwork=True), "skolo-pod-privileges"),
    "a host port outside nfs and monitoring": (
        "metadata", lambda p: _c(p).update(ports=[{"containerPort": 8000, "hostPort": 22}]), "skolo-pod-privileges"),
    "a host port on an init container": ("alerting", lambda p: p["spec"].update(initContainers=_init(
        p, ports=[{"containerPort": 80, "hostPort": 80}])), "skolo-pod-privileges"),
    "running as uid 0": ("metadata", lambda p: (_c(p)["securityContext"].update(runAsUser=0),
                                                _c(p)["securityContext"].pop("runAsNonRoot")), "skolo-pod-privileges"),
    "runAsNonRoot with runAsUser 0": ("metadata", lambda p: _c(p)["securityContext"].update(runAsUser=0),
                                      "skolo-pod-privileges"),
    "a pod-level runAsUser 0 under runAsNonRoot": (
        "metadata", lambda p: (_c(p)["securityContext"].pop("runAsUser"), p["spec"]["securityContext"].update(runAsUser=0)),
        "skolo-pod-privileges"),
    "no security context at all (the image's user, often root)": (
        "power", lambda p: (_c(p).pop("securityContext"), p["spec"].pop("securityContext")), "skolo-pod-privileges"),
    "root in metadata though swarming may": ("metadata", lambda p: _c(p).update(securityContext={"runAsUser": 0}),
                                             "skolo-pod-privileges"),
    "SYS_ADMIN added": ("metadata", lambda p: _c(p)["securityContext"].update(capabilities={"add": ["SYS_ADMIN"]}),
                        "skolo-pod-privileges"),
    "NET_RAW added even where root is allowed": (
        "swarming", lambda p: _c(p)["securityContext"].update(capabilities={"add": ["NET_RAW"]}), "skolo-pod-privileges"),
    "host PID even where root is allowed": ("swarming", lambda p: p["spec"].update(hostPID=True),
                                            "skolo-pod-privileges"),
    "host IPC even where host network is allowed": ("nfs", lambda p: p["spec"].update(hostIPC=True),
                                                    "skolo-pod-privileges"),
}


# Cases the API server's own validation refuses before any admission policy sees them (the real
# server, tests/test_cluster_rack1.py): its message.
INVALID_BEFORE_ADMISSION = {"a hostPath that climbs out of an allowed one": "must not contain '..'"}


@pytest.mark.parametrize("what", sorted(BAD))
def test_a_bad_pod_is_refused_by_the_right_policy(rack, what):
    namespace, breaks, policy = BAD[what]
    pod = _pod(rack)
    pod["metadata"]["namespace"] = namespace
    breaks(pod)
    assert list(refused_by(rack, pod, namespace)) == [policy]


@pytest.mark.parametrize("kind", sorted(WORKLOAD_KINDS))
def test_a_workload_with_a_bad_template_is_refused_when_applied_with_the_pods_message(rack, kind):
    deployment = _workload(rack, "metadata")
    template = deployment["spec"]["template"]
    template["spec"]["containers"][0]["image"] = "docker.io/evil/miner:1"
    spec = {"jobTemplate": {"spec": {"template": template}}, "schedule": "* * * * *"} if kind == "CronJob" else {
        "selector": deployment["spec"]["selector"], "template": template}
    obj = {"apiVersion": WORKLOAD_KINDS[kind], "kind": kind, "metadata": {"name": "x", "namespace": "metadata"},
           "spec": spec}
    pod = pod_of(obj)
    assert refused_by(rack, obj, "metadata") == refused_by(rack, pod, "metadata") != {}


def test_what_a_namespace_may_do_is_what_its_own_stack_pods_do(rack):
    swarming = _pod(rack, "swarming")  # privileged, root, /var/swarming, /dev/bus
    assert refused_by(rack, swarming, "swarming") == {}
    assert set(refused_by(rack, swarming, "metadata")) == {"skolo-host-paths", "skolo-pod-privileges"}
    exporter = _pod(rack, "node-exporter")  # host network, / /proc /sys
    assert refused_by(rack, exporter, "monitoring") == {}
    for port in _c(exporter)["ports"]:  # as the API server defaults a host-network pod's ports
        port["hostPort"] = port["containerPort"]
    assert refused_by(rack, exporter, "monitoring") == {}
    assert set(refused_by(rack, exporter, "alerting")) == {"skolo-host-paths", "skolo-pod-privileges"}


def test_refusals_say_what_is_allowed_and_which_key_widens_it(rack):
    pod = _pod(rack)
    _c(pod)["image"] = "docker.io/evil/miner:1"
    (message,) = refused_by(rack, pod, "metadata")["skolo-image-registries"]
    assert message.startswith("images must come from one of: gcr.io/skia-public/ (skolo:guardrails.allowedRegistries), "
                              "or be exactly one of the upstream images the stack pins: erichough/nfs-server:2.2.1@sha256:")
    assert "prom/prometheus:v2.55.1@sha256:2659f4c2" in message
    _c(pod)["image"] = "gcr.io/skia-public/metadata:x"
    _c(pod)["securityContext"]["capabilities"] = {"add": ["SYS_ADMIN"]}
    assert refused_by(rack, pod, "metadata")["skolo-pod-privileges"] == [
        "capabilities may be added only as the stack's own pods in the namespace add them "
        "(skolo:guardrails.namespaces.<namespace>.capabilities)"]


def test_config_widens_the_policies_for_one_namespace_only(run_stack):
    run = run_stack("rack2", overrides={"guardrails": {
        "allowedRegistries": ["gcr.io/skia-public/", "docker.io/library/"],
        "namespaces": {"debug": {"hostPaths": ["/etc/hosts"], "root": True, "hostNetwork": True,
                                 "capabilities": ["NET_ADMIN"]}}}})
    pod = _pod(run)
    _c(pod)["image"] = "docker.io/library/busybox:1.36"
    pod["spec"]["volumes"].append({"name": "hosts", "hostPath": {"path": "/etc/hosts"}})
    pod["spec"]["hostNetwork"] = True
    _c(pod)["securityContext"].update(runAsUser=0, capabilities={"add": ["NET_ADMIN"]})
    _c(pod)["securityContext"].pop("runAsNonRoot")
    assert refused_by(run, pod, "debug") == {}
    assert set(refused_by(run, pod, "metadata")) == {"skolo-host-paths", "skolo-pod-privileges"}


def test_the_simple_global_forms_still_hold(run_stack):
    run = run_stack("rack2", overrides={"guardrails": {"hostPaths": ["/etc/hosts"], "rootNamespaces": ["debug"]}})
    pod = _pod(run)
    pod["spec"]["volumes"].append({"name": "hosts", "hostPath": {"path": "/etc/hosts"}})
    assert refused_by(run, pod, "alerting") == {}  # hostPaths hold in every namespace
    _c(pod)["securityContext"] = {"runAsUser": 0}
    assert list(refused_by(run, pod, "alerting")) == ["skolo-pod-privileges"]
    assert refused_by(run, pod, "debug") == {}


def test_guardrails_can_be_switched_off(run_stack):
    assert run_stack("rack2", overrides={"guardrails": {"enabled": False}}).of_type(VAP) == []


KEY = "skolo:guardrails.namespaces.<namespace>"
# One bad case per message, and the message exactly as an operator reads it in kubectl's error.
MESSAGES = {
    "a hostPath on /etc": "hostPath volumes may only use the paths the stack's own pods in this namespace use "
                          f"(skolo:guardrails.hostPaths, hostPathPrefixes, {KEY}.hostPaths); never '..'",
    "a privileged container outside swarming and nfs": f"privileged containers only in nfs, swarming ({KEY}.privileged)",
    "host network outside nfs and monitoring": f"host network only in monitoring, nfs ({KEY}.hostNetwork)",
    "a host port outside nfs and monitoring": f"host ports only in monitoring, nfs, as host network ({KEY}.hostNetwork)",
    "running as uid 0": "containers must not run as root (a non-zero runAsUser, or runAsNonRoot without runAsUser 0) "
                        f"outside k3s-backup, nfs, swarming ({KEY}.root)",
    "SYS_ADMIN added": f"capabilities may be added only as the stack's own pods in the namespace add them "
                       f"({KEY}.capabilities)",
    "host PID even where root is allowed": "host PID and IPC namespaces are not allowed",
    "host IPC even where host network is allowed": "host PID and IPC namespaces are not allowed",
}


@pytest.mark.parametrize("what", sorted(MESSAGES))
def test_each_refusal_reads_exactly_so(rack, what):
    namespace, breaks, policy = BAD[what]
    pod = _pod(rack)
    breaks(pod)
    assert refused_by(rack, pod, namespace) == {policy: [MESSAGES[what]]}


def test_the_policies_are_the_guardrails_components_children_on_the_racks_provider(rack):
    (component,) = rack.of_type("skolo:policy:Guardrails")
    assert (component.name, component.custom) == ("guardrails", False)
    assert rack.component_outputs[component.urn] == {
        "policies": ["skolo-host-paths", "skolo-image-registries", "skolo-pod-privileges"]}
    provider = rack.named("rack2-k8s")
    for name in ("skolo-host-paths", "skolo-image-registries", "skolo-pod-privileges"):
        policy, binding = rack.named(f"vap-{name}"), rack.named(f"vapb-{name}")
        assert (policy.type, binding.type) == (VAP, BINDING)
        for r in (policy, binding):
            assert r.parent == component.urn
            assert r.provider.startswith(provider.urn + "::")
            assert r.inputs["metadata"] == {"name": name, "labels": {"app.kubernetes.io/part-of": "skolo"}}
        assert binding.inputs["spec"]["policyName"] == name
        assert binding.dependencies == (policy.urn,)  # a binding to a policy not yet there denies nothing


def _args(**options):
    from components import kube
    from components.guardrails import GuardrailsArgs

    return GuardrailsArgs(provider=None, footprint=options.pop("footprint", kube.Footprint()), **options)  # type: ignore[arg-type]


def test_with_nothing_allowed_the_messages_say_no_namespace():
    from components.guardrails import policies

    messages = {v["message"] for v in policies(_args())["skolo-pod-privileges"]["validations"]}
    assert {f"privileged containers only in no namespace ({KEY}.privileged)",
            f"host network only in no namespace ({KEY}.hostNetwork)",
            f"host ports only in no namespace, as host network ({KEY}.hostNetwork)",
            "containers must not run as root (a non-zero runAsUser, or runAsNonRoot without runAsUser 0) "
            f"outside no namespace ({KEY}.root)"} < messages


def test_a_namespace_the_config_names_for_one_thing_gets_only_that():
    from components.guardrails import allowances

    allowed = allowances(_args(namespaces={"debug": {"capabilities": ["NET_ADMIN"]}}))
    assert allowed == {"debug": {"host_paths": set(), "host_path_prefixes": set(), "privileged": False,
                                 "host_network": False, "root": False, "capabilities": {"NET_ADMIN"}}}


def test_the_global_namespace_lists_each_grant_their_own_flag():
    from components.guardrails import allowances

    allowed = allowances(_args(privileged_namespaces=("a",), host_network_namespaces=("b",), root_namespaces=("c",)))
    assert {ns: sorted(k for k, v in a.items() if v is True) for ns, a in allowed.items()} == {
        "a": ["privileged"], "b": ["host_network"], "c": ["root"]}


def test_config_adds_to_what_the_stack_pods_need_and_never_changes_their_record():
    from components import kube
    from components.guardrails import allowances

    needs = kube.NamespaceNeeds({"/var/swarming"}, True, False, True)
    footprint = kube.Footprint(namespaces={"swarming": needs})
    allowed = allowances(_args(footprint=footprint, namespaces={"swarming": {
        "host_paths": ["/dev/bus"], "privileged": False, "root": False, "host_network": True}}))
    assert allowed["swarming"] == {"host_paths": {"/var/swarming", "/dev/bus"}, "host_path_prefixes": set(),
                                   "privileged": True, "host_network": True, "root": True, "capabilities": set()}
    assert footprint.namespaces["swarming"].host_paths == {"/var/swarming"}


def test_a_host_path_prefix_holds_below_it_in_its_namespace_only(run_stack):
    run = run_stack("rack2", overrides={"guardrails": {
        "hostPathPrefixes": ["/srv/everywhere"], "namespaces": {"debug": {"hostPathPrefixes": ["/srv/debug"]}}}})
    for path, namespaces_allowed in (("/srv/debug/x", {"debug"}), ("/srv/everywhere/y/z", {"debug", "alerting"}),
                                     ("/srv/debug", set()), ("/srv/debugger/x", set())):
        pod = _pod(run)
        pod["spec"]["volumes"].append({"name": "v", "hostPath": {"path": path}})
        for ns in ("debug", "alerting"):
            assert (refused_by(run, pod, ns) == {}) == (ns in namespaces_allowed), (path, ns)


def test_the_image_refusal_lists_every_registry_and_every_pinned_image(run_stack):
    run = run_stack("rack2", overrides={"guardrails": {"allowedRegistries": ["gcr.io/skia-public/",
                                                                             "docker.io/library/"]}})
    pod = _pod(run)
    _c(pod)["image"] = "quay.io/x/y:1"
    pinned = ["erichough/nfs-server:2.2.1@sha256:1efd4ece380c5ba27479417585224ef857006daa46ab84560a28c1224bc71e9e",
              "gcr.io/google.com/cloudsdktool/google-cloud-cli:499.0.0-slim",
              "prom/node-exporter:v1.8.2@sha256:4032c6d5bfd752342c3e631c2f1de93ba6b86c41db6b167b9a35372c139e7706",
              "prom/prometheus:v2.55.1@sha256:2659f4c2ebb718e7695cb9b25ffa7d6be64db013daba13e05c875451cf51b0d3",
              "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.13.0@sha256:"
              "639a1e2da549210adddc0391ff91e270e83f7873014aec53258462812f741e6f"]
    assert refused_by(run, pod, "metadata") == {"skolo-image-registries": [
        "images must come from one of: docker.io/library/, gcr.io/skia-public/ (skolo:guardrails.allowedRegistries), "
        f"or be exactly one of the upstream images the stack pins: {', '.join(pinned)}"]}
