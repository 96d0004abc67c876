"""Guardrails: the rack's admission policies, Toolforge's lesson without custom controllers.

Toolforge ran its own admission controllers (RegistryEnforcer, HostPathEnforcer, UidEnforcer)
and later moved to a policy engine. Kubernetes has that engine built in: ValidatingAdmissionPolicy,
CEL evaluated by the API server. Three policies, each checking every pod that can come to exist:
Pods, the ephemeral containers `kubectl debug` adds to one (pods/ephemeralcontainers), and the pod
templates of Deployments, DaemonSets, StatefulSets, ReplicaSets, Jobs and CronJobs, so that a bad
workload is refused when it is applied, with the same message, rather than failing later as
ReplicaSet events:

- skolo-image-registries: images only from allowed registries, plus exactly the upstream
  images the stack itself runs, as it pins them (tag and digest);
- skolo-host-paths: hostPath volumes only on the paths the stack's own pods use in that namespace;
- skolo-pod-privileges: privileged containers, host network and host ports, root (runAsUser 0
  counts as root whatever runAsNonRoot says) and added capabilities only in the namespaces whose
  stack pods need them; host PID and IPC nowhere.

What the stack's own pods need is always allowed, namespace by namespace (their footprints are
passed in), so the policies cannot lock the stack out; stack config can only add to it.
kube-system is not bound: k3s's own pods (traefik, svclb, coredns, local-path) live there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Mapping, Optional

import pulumi
import pulumi_kubernetes as k8s

from components import kube

EXEMPT_NAMESPACES = ("kube-system",)
CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")
# Every kind that carries a pod or a pod template, and where the pod spec is in it.
POD_SPEC = ("object.kind == 'Pod' ? object.spec : (object.kind == 'CronJob' ? "
            "object.spec.jobTemplate.spec.template.spec : object.spec.template.spec)")
RULES = ((("",), ("pods", "pods/ephemeralcontainers")),
         (("apps",), ("deployments", "daemonsets", "statefulsets", "replicasets")),
         (("batch",), ("jobs", "cronjobs")))


@dataclass(frozen=True, kw_only=True)
class GuardrailsArgs:
    provider: k8s.Provider
    """The rack's Kubernetes provider."""
    footprint: kube.Footprint
    """What the stack's own pods need, per namespace: always allowed."""
    registries: tuple[str, ...] = ("gcr.io/skia-public/",)
    """Registry prefixes any image may come from."""
    host_paths: tuple[str, ...] = ()
    """hostPath paths allowed exactly, in every namespace."""
    host_path_prefixes: tuple[str, ...] = ()
    """hostPath directories allowed with everything below them, in every namespace."""
    privileged_namespaces: tuple[str, ...] = ()
    """Namespaces allowed privileged containers."""
    host_network_namespaces: tuple[str, ...] = ()
    """Namespaces allowed host-network pods."""
    root_namespaces: tuple[str, ...] = ()
    """Namespaces allowed containers that run as root."""
    namespaces: Mapping[str, Mapping] = field(default_factory=dict)
    """Per namespace: {host_paths, host_path_prefixes, privileged, host_network, root, capabilities}."""


def _literal(value) -> str:
    """A CEL literal (JSON's syntax for strings, lists and maps is CEL's), sorted and deduplicated."""
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{json.dumps(k)}: {_literal(v)}" for k, v in sorted(value.items())) + "}"
    return json.dumps(sorted(set(value)))


def _each_container(check: str) -> list[str]:
    return [f"!has(variables.podSpec.{lst}) || variables.podSpec.{lst}.all(c, {check})" for lst in CONTAINER_LISTS]


def _per_namespace(name: str, by_namespace: Mapping[str, set], everywhere=()) -> list[dict]:
    """Two variables: the map, and this request's namespace's entry plus what holds everywhere."""
    return [{"name": f"{name}ByNamespace", "expression": _literal(by_namespace)},
            {"name": name, "expression": f"(request.namespace in variables.{name}ByNamespace ? "
                                         f"variables.{name}ByNamespace[request.namespace] : []) + {_literal(everywhere)}"}]


def allowed_images(args: GuardrailsArgs) -> tuple[list[str], list[str]]:
    """(registry prefixes any image may come from, the upstream images the stack runs): an upstream
    repository is admitted only exactly as the stack pins it (tag and digest), never another tag
    of it, nor the tag without the digest."""
    prefixes = sorted(set(args.registries))
    pinned = sorted(i for i in args.footprint.images if not any(i.startswith(r) for r in args.registries))
    return prefixes, pinned


def allowances(args: GuardrailsArgs) -> dict[str, dict]:
    """Namespace -> what it may do: its stack pods' needs plus the config's additions."""
    out: dict[str, dict] = {}

    def entry(ns: str) -> dict:
        return out.setdefault(ns, {"host_paths": set(), "host_path_prefixes": set(), "privileged": False,
                                   "host_network": False, "root": False, "capabilities": set()})

    for ns, needs in args.footprint.namespaces.items():  # first: each namespace's entry starts from its pods
        entry(ns).update(host_paths=set(needs.host_paths), privileged=needs.privileged,
                         host_network=needs.host_network, root=needs.root)
    for flag, namespaces in (("privileged", args.privileged_namespaces), ("host_network", args.host_network_namespaces),
                             ("root", args.root_namespaces)):
        for ns in namespaces:
            entry(ns)[flag] = True
    for ns, more in args.namespaces.items():
        e = entry(ns)
        for key in ("host_paths", "host_path_prefixes", "capabilities"):
            e[key] |= set(more.get(key) or ())
        for flag in ("privileged", "host_network", "root"):
            e[flag] |= bool(more.get(flag))
    return out


_SC, _PSC = "c.securityContext", "variables.podSpec.securityContext"
_UID_SET = f"((has({_SC}) && has({_SC}.runAsUser)) || (has({_PSC}) && has({_PSC}.runAsUser)))"
_UID_ZERO = (f"((has({_SC}) && has({_SC}.runAsUser)) ? {_SC}.runAsUser == 0 : "
             f"(has({_PSC}) && has({_PSC}.runAsUser) && {_PSC}.runAsUser == 0))")
_NON_ROOT = (f"((has({_SC}) && has({_SC}.runAsNonRoot)) ? {_SC}.runAsNonRoot : "
             f"(has({_PSC}) && has({_PSC}.runAsNonRoot) && {_PSC}.runAsNonRoot))")
# Root: uid 0 (whatever runAsNonRoot says), or no uid at all without runAsNonRoot (the image's user).
IS_ROOT = f"({_UID_ZERO} || (!{_UID_SET} && !{_NON_ROOT}))"
NOT_PRIVILEGED = f"!has({_SC}) || !has({_SC}.privileged) || {_SC}.privileged == false"
ADDS_ONLY_ALLOWED = (f"!has({_SC}) || !has({_SC}.capabilities) || !has({_SC}.capabilities.add) || "
                     f"{_SC}.capabilities.add.all(k, k in variables.capabilities)")
NO_HOST_PORT = "!has(c.ports) || c.ports.all(p, !has(p.hostPort) || p.hostPort == 0)"
HOST_PATHS_OK = ("!has(variables.podSpec.volumes) || variables.podSpec.volumes.all(v, !has(v.hostPath) || "
                 "(!v.hostPath.path.matches('(^|/)[.][.](/|$)') && (v.hostPath.path in variables.exact || "
                 "variables.prefixes.exists(p, v.hostPath.path.startsWith(p + '/')))))")


def policies(args: GuardrailsArgs) -> dict[str, dict]:
    """Policy name -> {variables, validations}: the CEL as declared, so tests can run it."""
    prefixes, pinned = allowed_images(args)
    allowed = allowances(args)
    namespaces = {flag: sorted(ns for ns, a in allowed.items() if a[flag]) for flag in ("privileged", "host_network",
                                                                                         "root")}
    pod = [{"name": "podSpec", "expression": POD_SPEC}]
    key = "skolo:guardrails.namespaces.<namespace>"
    return {
        "skolo-image-registries": {
            "variables": pod + [{"name": "allowed", "expression": _literal(prefixes)},
                                {"name": "pinned", "expression": _literal(pinned)}],
            "validations": [{"expression": e, "message": f"images must come from one of: {', '.join(prefixes)} "
                                                         f"(skolo:guardrails.allowedRegistries), or be exactly one of "
                                                         f"the upstream images the stack pins: {', '.join(pinned)}"}
                            for e in _each_container(
                                "c.image in variables.pinned || variables.allowed.exists(p, c.image.startsWith(p))")],
        },
        "skolo-host-paths": {
            "variables": pod
            + _per_namespace("exact", {ns: a["host_paths"] for ns, a in allowed.items() if a["host_paths"]},
                             args.host_paths)
            + _per_namespace("prefixes", {ns: a["host_path_prefixes"] for ns, a in allowed.items()
                                          if a["host_path_prefixes"]}, args.host_path_prefixes),
            "validations": [{
                "expression": HOST_PATHS_OK,
                "message": "hostPath volumes may only use the paths the stack's own pods in this namespace use "
                           f"(skolo:guardrails.hostPaths, hostPathPrefixes, {key}.hostPaths); never '..'"}],
        },
        "skolo-pod-privileges": {
            "variables": pod + [{"name": "privileged", "expression": _literal(namespaces["privileged"])},
                                {"name": "hostNetwork", "expression": _literal(namespaces["host_network"])},
                                {"name": "root", "expression": _literal(namespaces["root"])}]
            + _per_namespace("capabilities", {ns: a["capabilities"] for ns, a in allowed.items() if a["capabilities"]}),
            "validations": [
                *[{"expression": f"request.namespace in variables.privileged || ({e})",
                   "message": f"privileged containers only in {', '.join(namespaces['privileged']) or 'no namespace'} "
                              f"({key}.privileged)"} for e in _each_container(NOT_PRIVILEGED)],
                {"expression": "request.namespace in variables.hostNetwork || !has(variables.podSpec.hostNetwork) || "
                               "variables.podSpec.hostNetwork == false",
                 "message": f"host network only in {', '.join(namespaces['host_network']) or 'no namespace'} "
                            f"({key}.hostNetwork)"},
                # A host port forwards the node's own traffic (a Pi's port 22, say) into the pod.
                *[{"expression": f"request.namespace in variables.hostNetwork || ({e})",
                   "message": f"host ports only in {', '.join(namespaces['host_network']) or 'no namespace'}, "
                              f"as host network ({key}.hostNetwork)"} for e in _each_container(NO_HOST_PORT)],
                *[{"expression": e, "message": f"containers must not run as root (a non-zero runAsUser, or "
                                               f"runAsNonRoot without runAsUser 0) outside "
                                               f"{', '.join(namespaces['root']) or 'no namespace'} ({key}.root)"}
                  for e in _each_container(f"request.namespace in variables.root || !{IS_ROOT}")],
                *[{"expression": e, "message": f"capabilities may be added only as the stack's own pods in the "
                                               f"namespace add them ({key}.capabilities)"}
                  for e in _each_container(ADDS_ONLY_ALLOWED)],
                {"expression": "(!has(variables.podSpec.hostPID) || variables.podSpec.hostPID == false) && "
                               "(!has(variables.podSpec.hostIPC) || variables.podSpec.hostIPC == false)",
                 "message": "host PID and IPC namespaces are not allowed"},
            ],
        },
    }


class Guardrails(pulumi.ComponentResource):
    def __init__(self, name: str, args: GuardrailsArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("skolo:policy:Guardrails", name, None, opts)
        child = pulumi.ResourceOptions(parent=self, provider=args.provider)
        a = k8s.admissionregistration.v1
        declared = policies(args)
        for policy_name, spec in declared.items():
            policy = a.ValidatingAdmissionPolicy(
                f"vap-{policy_name}",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=policy_name, labels={kube.PART_OF_LABEL: "skolo"}),
                spec=a.ValidatingAdmissionPolicySpecArgs(
                    failure_policy="Fail",
                    match_constraints=a.MatchResourcesArgs(resource_rules=[a.NamedRuleWithOperationsArgs(
                        api_groups=list(groups), api_versions=["v1"], operations=["CREATE", "UPDATE"],
                        resources=list(resources)) for groups, resources in RULES]),
                    variables=[a.VariableArgs(**v) for v in spec["variables"]],
                    validations=[a.ValidationArgs(**v) for v in spec["validations"]]),
                opts=child)
            a.ValidatingAdmissionPolicyBinding(
                f"vapb-{policy_name}",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=policy_name, labels={kube.PART_OF_LABEL: "skolo"}),
                spec=a.ValidatingAdmissionPolicyBindingSpecArgs(
                    policy_name=policy_name, validation_actions=["Deny"],
                    match_resources=a.MatchResourcesArgs(namespace_selector=k8s.meta.v1.LabelSelectorArgs(
                        match_expressions=[k8s.meta.v1.LabelSelectorRequirementArgs(
                            key="kubernetes.io/metadata.name", operator="NotIn", values=list(EXEMPT_NAMESPACES))]))),
                opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[policy])))
        self.register_outputs({"policies": sorted(declared)})
