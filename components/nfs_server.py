"""NfsServer: the rack's NFS export (the Pis' root image), served from the jumphost.

Owns the nfs namespace and one privileged, host-network pod pinned to the jumphost that
exports a host path read-only to the rack subnet, as nfs-kernel-server did
(/opt/prod/root to 192.168.1.0/24). The jumphost's kernel serves NFS: the pod only
configures it, so the legacy nfs-kernel-server must be stopped first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from components import kube

EXPORT_DIR = "/export"


@dataclass(frozen=True, kw_only=True)
class NfsServerArgs:
    provider: k8s.Provider
    """The rack's Kubernetes provider."""
    image: str
    """An NFS server image configured by NFS_EXPORT_<n> (erichough/nfs-server)."""
    image_pull_key: Optional[pulumi.Input[str]] = field(default=None, repr=False)
    """gcr.io pull key, when the images are private."""
    export_path: str = "/opt/prod/root"
    """Directory on the jumphost to export."""
    subnet: str = "192.168.1.0/24"
    """Who may mount it, read-only."""
    namespace: str = "nfs"
    """Namespace of everything this component owns."""


def export_line(args: NfsServerArgs) -> str:
    """The /etc/exports line: read-only, to the rack subnet only."""
    return f"{EXPORT_DIR} {args.subnet}(ro,no_subtree_check,fsid=0)"


class NfsServer(pulumi.ComponentResource):
    def __init__(self, name: str, args: NfsServerArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("skolo:services:NfsServer", name, None, opts)
        kit = kube.Kit.of(self, args, opts)
        kit.deployment(kube.Workload(
            name="nfs-server", image=args.image, env={"NFS_EXPORT_0": export_line(args)},
            ports={"nfs": 2049},
            mounts=(kube.Mount("export", EXPORT_DIR, host_path=args.export_path, host_path_type="Directory"),
                    kube.Mount("modules", "/lib/modules", host_path="/lib/modules")),
            cpu="50m", memory="128Mi", run_as_user=None, privileged=True, host_network=True))
        self.footprint = kit.footprint
        self.register_outputs({"export": export_line(args)})
