"""Access: a read-only way into the rack, next to the admin kubeconfig.

Toolforge's "infrastructure read-only account": an `observer` ClusterRole that can get, list
and watch what an operator looks at on a bad night (pods and their logs, nodes, workloads,
events, policies) and never Secrets, bound to an `observer` ServiceAccount and to the group
`skolo:observers` (for client certificates). `rackctl observer STACK` mints a short-lived
token for the ServiceAccount and writes a kubeconfig around it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from components import kube

READ = ["get", "list", "watch"]
OBSERVER_RULES = [
    k8s.rbac.v1.PolicyRuleArgs(api_groups=[""], verbs=READ, resources=[
        "pods", "pods/log", "services", "endpoints", "nodes", "namespaces", "events", "configmaps",
        "persistentvolumeclaims", "persistentvolumes", "serviceaccounts", "resourcequotas", "limitranges"]),
    k8s.rbac.v1.PolicyRuleArgs(api_groups=["apps", "batch", "networking.k8s.io", "policy", "discovery.k8s.io",
                                           "storage.k8s.io", "events.k8s.io", "admissionregistration.k8s.io",
                                           "rbac.authorization.k8s.io", "metrics.k8s.io"],
                               resources=["*"], verbs=READ),
]


@dataclass(frozen=True, kw_only=True)
class AccessArgs:
    provider: k8s.Provider
    """The rack's Kubernetes provider."""
    namespace: str = "skolo-access"
    """Where the observer ServiceAccount lives (`rackctl observer` mints its tokens)."""
    group: str = "skolo:observers"
    """Group bound to the observer role, for client certificates."""


class Access(pulumi.ComponentResource):
    def __init__(self, name: str, args: AccessArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("skolo:policy:Access", name, None, opts)
        kit = kube.Kit(self, args.provider, args.namespace)
        account = kit.cluster_reader("observer", OBSERVER_RULES)
        k8s.rbac.v1.ClusterRoleBinding(
            f"{args.namespace}-clusterrolebinding-observer-group",
            metadata=kit.meta("skolo:observers", namespaced=False),
            role_ref=k8s.rbac.v1.RoleRefArgs(api_group="rbac.authorization.k8s.io", kind="ClusterRole",
                                             name=f"skolo:{args.namespace}:observer"),
            subjects=[k8s.rbac.v1.SubjectArgs(kind="Group", name=args.group, api_group="rbac.authorization.k8s.io")],
            opts=kit.opts([account]))
        self.register_outputs({"serviceAccount": f"{args.namespace}/observer"})
