"""NodeRoles: the labels on the rack's Nodes that only an administrator may set.

The jumphost's workloads (metadata, prometheus, the backups, podwatcher, NFS) and so their
Secrets go only to a Node labelled `node-restriction.kubernetes.io/skolo-role=jumphost`. A kubelet
cannot set a label under that prefix on its own Node (the NodeRestriction admission plugin), so a
Pi whose kubelet credentials a privileged test has taken cannot draw those pods, or the Secrets
the Node authorizer would then let it read, to itself. k3s's `node-label` goes through the
kubelet and cannot set it either: this component sets it with the rack's admin kubeconfig, as a
server-side apply patch that owns just that label (and takes it off again if the component goes).

Does not own the Node (k3s registers it; k3s-install.sh waits for that before the kubeconfig is
read) nor its other labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from components import kube


@dataclass(frozen=True, kw_only=True)
class NodeRolesArgs:
    provider: k8s.Provider
    """The rack's Kubernetes provider (the admin kubeconfig)."""
    jumphost: str
    """Node name of the jumphost."""


class NodeRoles(pulumi.ComponentResource):
    def __init__(self, name: str, args: NodeRolesArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("skolo:rack:NodeRoles", name, None, opts)
        k8s.core.v1.NodePatch(
            f"{name}-{args.jumphost}",
            metadata=k8s.meta.v1.ObjectMetaPatchArgs(
                name=args.jumphost, labels={kube.RESTRICTED_ROLE_LABEL: kube.ROLE_JUMPHOST}),
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider))
        self.register_outputs({"jumphost": args.jumphost})
