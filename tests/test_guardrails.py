"""The admission policies, evaluated with a real CEL implementation (cel-python) exactly as the
program declares them: every pod the stack itself declares must pass (the policies must not
lock the stack out of its own cluster) and every bad pod must be refused by the right policy
(a policy that refuses nothing fails here)."""

from __future__ import annotations

import copy

import celpy
import pytest
from celpy import celtypes

from rackctl.render import _canonical

VAP = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy"
BINDING = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicyBinding"
ENV = celpy.Environment()


def policies(run) -> dict[str, dict]:
    return {r.inputs["metadata"]["name"]: r.inputs["spec"] for r in run.of_type(VAP)}


def refusals(spec: dict, pod: dict, namespace: str) -> list[str]:
    """The messages of the validations `pod` fails, as the API server would evaluate them."""
    base = {"object": celpy.json_to_cel(pod), "request": celpy.json_to_cel({"namespace": namespace}),
            "namespaceObject": celpy.json_to_cel({"metadata": {"name": namespace}})}
    variables = celtypes.MapType({})
    for v in spec.get("variables", []):
        value = ENV.program(ENV.compile(v["expression"])).evaluate({**base, "variables": variables})
        variables = celtypes.MapType({**variables, celtypes.StringType(v["name"]): value})
    failed = []
    for check in spec["validations"]:
        result = ENV.program(ENV.compile(check["expression"])).evaluate({**base, "variables": variables})
        assert isinstance(result, celtypes.BoolType), f"{check['expression']} gave {result!r}"
        if not result:
            failed.append(check["message"])
    return failed


def refused_by(run, pod: dict, namespace: str) -> dict[str, list[str]]:
    return {name: msgs for name, spec in policies(run).items() if (msgs := refusals(spec, pod, namespace))}


def stack_pods(run) -> list[tuple[str, str, dict]]:
    """(workload, namespace, pod) for every pod template the stack declares."""
    pods = []
    for r in run.resources:
        kind = r.type.rsplit(":", 1)[-1]
        if kind not in ("Deployment", "DaemonSet", "CronJob"):
            continue
        spec = _canonical(r.inputs["spec"])
        template = spec["jobTemplate"]["spec"]["template"] if kind == "CronJob" else spec["template"]
        ns = r.inputs["metadata"]["namespace"]
        pods.append((r.inputs["metadata"]["name"], ns, {"apiVersion": "v1", "kind": "Pod",
                                                        "metadata": {**template["metadata"], "namespace": ns},
                                                        "spec": template["spec"]}))
    return pods


@pytest.fixture(scope="module")
def rack1():
    from rackctl import program
    from tests.conftest import PLANTED

    return program.run_stack("rack1", secrets=PLANTED)


def test_three_policies_bound_everywhere_but_kube_system(rack1):
    assert sorted(policies(rack1)) == ["skolo-host-paths", "skolo-image-registries", "skolo-pod-privileges"]
    for r in rack1.of_type(VAP):
        spec = r.inputs["spec"]
        assert spec["failurePolicy"] == "Fail"
        assert spec["matchConstraints"]["resourceRules"] == [
            {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["pods"]}]
    for b in rack1.of_type(BINDING):
        assert b.inputs["spec"]["validationActions"] == ["Deny"]
        assert b.inputs["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"] == [
            {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"]}]


def test_every_pod_the_stack_declares_passes_every_policy(rack1):
    pods = stack_pods(rack1)
    assert {name for name, _, _ in pods} == {
        "metadata", "alert-to-pubsub", "prometheus", "kube-state-metrics", "node-exporter", "podwatcher",
        "nfs-server", "router-backup", "datastore-backup", "swarming"}
    for name, ns, pod in pods:
        assert refused_by(rack1, pod, ns) == {}, name


def _base(run) -> dict:
    """The metadata pod: a well-behaved pod to break one way at a time."""
    return copy.deepcopy(next(p for name, _, p in stack_pods(run) if name == "metadata"))


def _container(pod: dict) -> dict:
    return pod["spec"]["containers"][0]


BAD = {
    "an image from Docker Hub": ("metadata", lambda p: _container(p).update(image="docker.io/evil/miner:1"),
                                 "skolo-image-registries"),
    "a look-alike registry": ("metadata", lambda p: _container(p).update(image="gcr.io/skia-public-evil/x:1"),
                              "skolo-image-registries"),
    "another repository of an allowed upstream org": (
        "metadata", lambda p: _container(p).update(image="prom/alertmanager:v0.27.0"), "skolo-image-registries"),
    "a bad init container image": ("metadata", lambda p: p["spec"].update(initContainers=[
        {**_container(p), "name": "init", "image": "busybox:1.36"}]), "skolo-image-registries"),
    "a hostPath on /etc": ("metadata", lambda p: p["spec"]["volumes"].append(
        {"name": "etc", "hostPath": {"path": "/etc"}}), "skolo-host-paths"),
    "a hostPath beside an allowed one": ("swarming", lambda p: p["spec"]["volumes"].append(
        {"name": "x", "hostPath": {"path": "/var/swarming-evil"}}), "skolo-host-paths"),
    "a hostPath below an exactly-allowed path": ("monitoring", lambda p: p["spec"]["volumes"].append(
        {"name": "x", "hostPath": {"path": "/var/swarming/../../etc"}}), "skolo-host-paths"),
    "a privileged container outside swarming and nfs": (
        "monitoring", lambda p: _container(p)["securityContext"].update(privileged=True), "skolo-pod-privileges"),
    "a privileged init container": ("alerting", lambda p: p["spec"].update(initContainers=[
        {**_container(p), "name": "init", "securityContext": {"privileged": True, "runAsUser": 1000}}]),
                                    "skolo-pod-privileges"),
    "host network outside nfs and monitoring": (
        "metadata", lambda p: p["spec"].update(hostNetwork=True), "skolo-pod-privileges"),
    "running as uid 0": ("metadata", lambda p: (_container(p)["securityContext"].update(runAsUser=0),
                                                _container(p)["securityContext"].pop("runAsNonRoot")),
                         "skolo-pod-privileges"),
    "no security context at all (the image's user, often root)": (
        "power", lambda p: (_container(p).pop("securityContext"), p["spec"].pop("securityContext")),
        "skolo-pod-privileges"),
    "host PID even where root is allowed": ("swarming", lambda p: p["spec"].update(hostPID=True),
                                            "skolo-pod-privileges"),
}


@pytest.mark.parametrize("what", sorted(BAD))
def test_a_bad_pod_is_refused_by_the_right_policy(rack1, what):
    namespace, breaks, policy = BAD[what]
    pod = _base(rack1)
    pod["metadata"]["namespace"] = namespace
    breaks(pod)
    refused = refused_by(rack1, pod, namespace)
    assert list(refused) == [policy], refused


def test_refusals_say_what_is_allowed_and_which_key_widens_it(rack1):
    pod = _base(rack1)
    _container(pod)["image"] = "docker.io/evil/miner:1"
    (message,) = refused_by(rack1, pod, "metadata")["skolo-image-registries"]
    assert message.startswith("images must come from one of: erichough/nfs-server:, erichough/nfs-server@, "
                              "gcr.io/google.com/cloudsdktool/google-cloud-cli:")
    assert message.endswith("(skolo:guardrails.allowedRegistries)")


def test_config_widens_the_policies(run_stack):
    run = run_stack("rack2", overrides={"guardrails": {
        "allowedRegistries": ["gcr.io/skia-public/", "docker.io/library/"], "hostPaths": ["/etc/hosts"],
        "rootNamespaces": ["debug"], "hostNetworkNamespaces": ["debug"]}})
    pod = _base(run)
    _container(pod)["image"] = "docker.io/library/busybox:1.36"
    pod["spec"]["volumes"].append({"name": "hosts", "hostPath": {"path": "/etc/hosts"}})
    pod["spec"]["hostNetwork"] = True
    _container(pod)["securityContext"].update(runAsUser=0)
    _container(pod)["securityContext"].pop("runAsNonRoot")
    assert refused_by(run, pod, "debug") == {}
    assert list(refused_by(run, pod, "metadata")) == ["skolo-pod-privileges"]


def test_guardrails_can_be_switched_off(run_stack):
    assert run_stack("rack2", overrides={"guardrails": {"enabled": False}}).of_type(VAP) == []
