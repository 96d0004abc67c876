"""NodeExporter: host metrics from every node of the rack, Pis included.

A DaemonSet in the monitoring namespace that tolerates every taint, reads the host's /proc,
/sys and root read-only, and is scraped by Prometheus's node-exporter job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi

from components import kube


@dataclass(frozen=True, kw_only=True)
class NodeExporterArgs:
    kit: kube.Kit
    """The monitoring namespace's kit."""
    image: str
    """node-exporter image (multi-arch: amd64 jumphost, arm Pis)."""
    port: int = 9100
    """Metrics port on each node (host network)."""


class NodeExporter(pulumi.ComponentResource):
    def __init__(self, name: str, args: NodeExporterArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("skolo:services:NodeExporter", name, None, opts)
        kit = args.kit.for_parent(self)
        kit.daemon_set(kube.Workload(
            name="node-exporter", image=args.image,
            args=("--path.procfs=/host/proc", "--path.sysfs=/host/sys", "--path.rootfs=/host/root",
                  f"--web.listen-address=:{args.port}"),
            ports={"metrics": args.port},
            mounts=(kube.Mount("proc", "/host/proc", host_path="/proc"),
                    kube.Mount("sys", "/host/sys", host_path="/sys"),
                    kube.Mount("root", "/host/root", host_path="/")),
            health=("/", args.port), cpu="20m", memory="32Mi", memory_limit="64Mi",
            role=None, host_network=True, tolerate_everything=True))
        self.register_outputs({})
