"""Shared Kubernetes boilerplate: the rack's provider and the labels that place workloads.

Everything that builds Kubernetes objects goes through here, so that every object uses the
rack's own provider (never the ambient KUBECONFIG) and placement labels are spelt once.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

# Set on each node by k3s when it first registers (config.yaml node-label). A custom prefix:
# the kubelet may not set node-role.kubernetes.io/* labels on itself.
ROLE_LABEL = "skolo.skia.org/role"
ROLE_JUMPHOST = "jumphost"
ROLE_RPI = "rpi"


def role_label(role: str) -> str:
    """`key=value` form for k3s's node-label flag."""
    return f"{ROLE_LABEL}={role}"


def provider(name: str, *, kubeconfig: pulumi.Input[str], cluster: str,
             opts: pulumi.ResourceOptions) -> k8s.Provider:
    """The rack's Kubernetes provider.

    The kubeconfig is wrapped as secret (the provider schema does not mark it so). The cluster
    name is the stable `cluster_identifier`: a kubeconfig that is unknown during a first preview
    or that changes later (a new certificate) updates the provider instead of replacing every
    object in the rack.
    """
    return k8s.Provider(
        name,
        kubeconfig=pulumi.Output.secret(kubeconfig),
        cluster_identifier=cluster,
        delete_unreachable=False,
        opts=opts,
    )
