"""NfsServer: the rack's NFS export (the Pis' root image), served from the jumphost.

Owns the nfs namespace and one privileged, host-network pod pinned to the jumphost that
exports a host path read-only to the rack subnet, as nfs-kernel-server did (/opt/prod/root to
the rack LAN). The jumphost's kernel serves NFS: the pod only configures it, so the legacy
nfs-kernel-server is stopped first (LegacyUnit).
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
    export_path: str
    """Directory on the jumphost to export (the Pis' root image)."""
    subnet: str
    """Who may mount it, read-only (the rack LAN, by default)."""
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
