"""Shared Kubernetes boilerplate, the one place where the rack's objects are built: the rack's
provider and placement labels (here), what a pod needs and how it is made safe (workload.py),
and the Kit that builds a component's objects with its provider, parent and namespace (kit.py).

A service file says only what is special about its pod, as a `Workload`; everything safe by
default (requests and limits, probes, non-root, no capabilities, a read-only root, seccomp, no
service-account token, ingress closed but for what is allowed) lives here.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from components.labels import (
    APP_LABEL, GOOGLE_KEY_DIR, NOBODY, PART_OF_LABEL, PULL_SECRET, RESTRICTED_ROLE_LABEL, ROLE_JUMPHOST, ROLE_LABEL, ROLE_RPI,
    STATE_DRAINED, STATE_LABEL, MAINTENANCE_LABEL, role_label)
from components.kube.kit import Kit
from components.kube.workload import PROMETHEUS, Footprint, Mount, NamespaceNeeds, Peer, Workload

__all__ = ["PROMETHEUS", "APP_LABEL", "Footprint", "GOOGLE_KEY_DIR", "Kit", "MAINTENANCE_LABEL", "Mount", "NOBODY",
           "NamespaceNeeds", "PART_OF_LABEL", "PULL_SECRET", "Peer", "RESTRICTED_ROLE_LABEL", "ROLE_JUMPHOST", "ROLE_LABEL", "ROLE_RPI",
           "STATE_DRAINED", "STATE_LABEL", "Workload", "provider", "role_label"]


def provider(name: str, *, kubeconfig: pulumi.Input[str], cluster: str,
             opts: pulumi.ResourceOptions) -> k8s.Provider:
    """The rack's Kubernetes provider.

    The kubeconfig is wrapped as secret (the provider schema does not mark it so). The cluster
    name is the stable `cluster_identifier`: a kubeconfig that is unknown during a first preview
    or that changes later (a new certificate) updates the provider instead of replacing every
    object in the rack.

    Patch force: the code is the rack's truth, so a field someone changed by hand (`kubectl scale`,
    `kubectl set image` during an incident) is taken back by the next `pulumi up`. Without it the
    provider's server-side apply stops on that field's conflict (pulumi-kubernetes
    provider/pkg/await/await.go patchForce) and the update fails. The nightly drift check shows
    such a change before any `up` takes it back.
    """
    return k8s.Provider(
        name,
        kubeconfig=pulumi.Output.secret(kubeconfig),
        cluster_identifier=cluster,
        delete_unreachable=False,
        enable_patch_force=True,
        opts=opts,
    )
