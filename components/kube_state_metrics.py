"""KubeStateMetrics: the state of the rack's objects as metrics (restarts, node readiness,
DaemonSet availability, CronJob runs), which the rack's alert rules are written against.

A Deployment on the jumphost with its own read-only identity (list/watch only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from components import kube

# What it reports on, by API group: exactly these, list and watch only.
GROUPS = {"": ("nodes", "pods"), "apps": ("daemonsets", "deployments"), "batch": ("cronjobs", "jobs")}
RESOURCES = tuple(sorted(r for resources in GROUPS.values() for r in resources))


@dataclass(frozen=True, kw_only=True)
class KubeStateMetricsArgs:
    kit: kube.Kit
    """The monitoring namespace's kit."""
    image: str
    """kube-state-metrics image."""
    port: int = 8080
    """Metrics port."""


class KubeStateMetrics(pulumi.ComponentResource):
    def __init__(self, name: str, args: KubeStateMetricsArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("skolo:services:KubeStateMetrics", name, None, opts)
        kit = args.kit.for_parent(self)
        kit.cluster_reader("kube-state-metrics", [
            k8s.rbac.v1.PolicyRuleArgs(api_groups=[group], resources=list(resources), verbs=["list", "watch"])
            for group, resources in GROUPS.items()])
        w = kube.Workload(
            name="kube-state-metrics", image=args.image,
            args=(f"--port={args.port}", "--telemetry-port=8081", f"--resources={','.join(RESOURCES)}"),
            ports={"metrics": args.port, "telemetry": 8081},
            health=("/healthz", args.port), cpu="20m", memory="64Mi", memory_limit="128Mi",
            service_account="kube-state-metrics")
        kit.deployment(w)
        kit.allow_ingress(w, [args.port], [kube.PROMETHEUS])
        self.register_outputs({})
