"""Guardrails: the rack's admission policies, Toolforge's lesson without custom controllers.

Toolforge ran its own admission controllers (RegistryEnforcer, HostPathEnforcer, UidEnforcer)
and later moved to a policy engine. Kubernetes now has that engine built in:
ValidatingAdmissionPolicy (admissionregistration.k8s.io/v1, GA in the k3s we pin), CEL
evaluated by the API server. This component declares three policies on Pods and their
bindings:

- skolo-image-registries: images only from allowed registries, plus exactly the upstream
  repositories the stack itself runs;
- skolo-host-paths: hostPath volumes only from an allowlist of paths and path prefixes;
- skolo-pod-privileges: privileged containers, host network and root only in the namespaces
  allowed each; host PID and IPC nowhere.

What the stack's own pods need is always allowed (their footprints are passed in), so the
policies cannot lock the stack out of its own cluster; stack config can only add to it.
kube-system is not bound: k3s's own pods (traefik, svclb, coredns, local-path) live there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from components import kube

EXEMPT_NAMESPACES = ("kube-system",)
ALL_CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")


@dataclass(frozen=True, kw_only=True)
class GuardrailsArgs:
    provider: k8s.Provider
    """The rack's Kubernetes provider."""
    footprint: kube.Footprint
    """What the stack's own pods need: always allowed."""
    registries: tuple[str, ...] = ("gcr.io/skia-public/",)
    """Registry prefixes any image may come from."""
    host_paths: tuple[str, ...] = ()
    """Extra hostPath paths allowed exactly."""
    host_path_prefixes: tuple[str, ...] = ()
    """Extra hostPath directories allowed with everything below them."""
    privileged_namespaces: tuple[str, ...] = ()
    """Extra namespaces allowed privileged containers."""
    host_network_namespaces: tuple[str, ...] = ()
    """Extra namespaces allowed host-network pods."""
    root_namespaces: tuple[str, ...] = ()
    """Extra namespaces allowed containers that run as root."""


def _literal(items) -> str:
    """A CEL list literal of strings (JSON string syntax is CEL string syntax)."""
    return "[" + ", ".join(json.dumps(i) for i in sorted(set(items))) + "]"


def _each_container(check: str) -> list[str]:
    """One expression per container list, each `check` on every container `c`."""
    return [f"!has(object.spec.{lst}) || object.spec.{lst}.all(c, {check})" for lst in ALL_CONTAINER_LISTS]


def allowed_images(args: GuardrailsArgs) -> list[str]:
    """Registry prefixes, plus each upstream repository the stack runs (any tag or digest of it)."""
    prefixes = set(args.registries)
    for image in args.footprint.images:
        if not any(image.startswith(r) for r in args.registries):
            repo = image.split("@")[0]
            if ":" in repo.split("/")[-1]:
                repo = repo.rsplit(":", 1)[0]
            prefixes.update({f"{repo}:", f"{repo}@"})
    return sorted(prefixes)


def policies(args: GuardrailsArgs) -> dict[str, dict]:
    """Policy name -> {variables, validations}: the CEL as declared, so tests can run it."""
    images = allowed_images(args)
    exact = sorted(args.footprint.host_paths | set(args.host_paths))
    prefixes = sorted(set(args.host_path_prefixes))
    privileged = sorted(args.footprint.privileged | set(args.privileged_namespaces))
    host_network = sorted(args.footprint.host_network | set(args.host_network_namespaces))
    root = sorted(args.footprint.root | set(args.root_namespaces))
    non_root = (
        "(has(c.securityContext) && has(c.securityContext.runAsNonRoot) && c.securityContext.runAsNonRoot == true)"
        " || (has(c.securityContext) && has(c.securityContext.runAsUser) && c.securityContext.runAsUser > 0)"
        " || (!(has(c.securityContext) && has(c.securityContext.runAsUser)) && has(object.spec.securityContext) && ("
        "(has(object.spec.securityContext.runAsNonRoot) && object.spec.securityContext.runAsNonRoot == true)"
        " || (has(object.spec.securityContext.runAsUser) && object.spec.securityContext.runAsUser > 0)))")
    not_privileged = "!has(c.securityContext) || !has(c.securityContext.privileged) || c.securityContext.privileged == false"
    return {
        "skolo-image-registries": {
            "variables": [{"name": "allowed", "expression": _literal(images)}],
            "validations": [{"expression": e, "message": f"images must come from one of: {', '.join(images)} "
                                                         f"(skolo:guardrails.allowedRegistries)"}
                            for e in _each_container("variables.allowed.exists(p, c.image.startsWith(p))")],
        },
        "skolo-host-paths": {
            "variables": [{"name": "exact", "expression": _literal(exact)},
                          {"name": "prefixes", "expression": _literal(prefixes)}],
            "validations": [{
                "expression": "!has(object.spec.volumes) || object.spec.volumes.all(v, !has(v.hostPath) || "
                              "v.hostPath.path in variables.exact || "
                              "variables.prefixes.exists(p, v.hostPath.path.startsWith(p + '/')))",
                "message": f"hostPath volumes may only use {', '.join(exact)}"
                           + (f" or below {', '.join(prefixes)}" if prefixes else "")
                           + " (skolo:guardrails.hostPaths, hostPathPrefixes)"}],
        },
        "skolo-pod-privileges": {
            "variables": [{"name": "privileged", "expression": _literal(privileged)},
                          {"name": "hostNetwork", "expression": _literal(host_network)},
                          {"name": "root", "expression": _literal(root)}],
            "validations": [
                *[{"expression": f"request.namespace in variables.privileged || ({e})",
                   "message": f"privileged containers only in {', '.join(privileged) or 'no namespace'} "
                              f"(skolo:guardrails.privilegedNamespaces)"}
                  for e in _each_container(not_privileged)],
                {"expression": "request.namespace in variables.hostNetwork || !has(object.spec.hostNetwork) || "
                               "object.spec.hostNetwork == false",
                 "message": f"host network only in {', '.join(host_network) or 'no namespace'} "
                            f"(skolo:guardrails.hostNetworkNamespaces)"},
                *[{"expression": f"request.namespace in variables.root || ({e})",
                   "message": f"containers must not run as root (set runAsNonRoot or a non-zero runAsUser) "
                              f"outside {', '.join(root) or 'no namespace'} (skolo:guardrails.rootNamespaces)"}
                  for e in _each_container(non_root)],
                {"expression": "(!has(object.spec.hostPID) || object.spec.hostPID == false) && "
                               "(!has(object.spec.hostIPC) || object.spec.hostIPC == false)",
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
                        api_groups=[""], api_versions=["v1"], operations=["CREATE", "UPDATE"], resources=["pods"])]),
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
