"""NfsServer: the rack's NFS export (the Pis' root image), served from the jumphost.

Owns the nfs namespace and one privileged, host-network pod pinned to the jumphost that exports
a host path read-only to the rack subnet, exactly as the Pis mount it and as nfs-kernel-server
exported it: every Pi boots with `root=/dev/nfs nfsroot=<jumphost>:/opt/prod/root,nfsvers=3`
(Skia's skolo/raspberry-pi/format_new_card.yml), and the legacy /etc/exports line was
`/opt/prod/root <net>/24(ro,sync,no_root_squash,no_subtree_check,fsid=1)`
(start_serving_image.yml). So the export sits at the same path inside the pod as on the host,
NFSv3 only, with the legacy options: no_root_squash lets a Pi's root read its own root-only
files (host keys, sudoers).

The jumphost's kernel serves NFS: the pod configures it and runs rpcbind, rpc.mountd and
rpc.statd on the host network (erichough/nfs-server's entrypoint starts its own rpcbind on port
111 and the container ends when that fails). So the cut-over stops the legacy nfs-kernel-server
and then the jumphost's rpcbind (HOST_UNITS_IN_THE_WAY), and the rollback starts them again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from components import kube

# The jumphost's units that hold port 111, which the image's own rpcbind needs. Debian's
# nfs-common pulls rpcbind in, and it outlives `systemctl stop nfs-kernel-server`.
HOST_UNITS_IN_THE_WAY = ("rpcbind.socket", "rpcbind.service")
# The legacy prod export's fsid (staging's was 2): a fixed id, so a Pi's file handles survive a
# restart of the server.
FSID = 1
# NFSv3 daemons on the host network: rpcbind, nfsd, rpc.statd, rpc.mountd (the image's defaults).
PORTS = {"rpcbind": 111, "nfs": 2049, "statd": 32765, "mountd": 32767}


@dataclass(frozen=True, kw_only=True)
class NfsServerArgs:
    provider: k8s.Provider
    """The rack's Kubernetes provider."""
    image: str
    """An NFS server image configured by NFS_EXPORT_<n> (erichough/nfs-server)."""
    image_pull_key: Optional[pulumi.Input[str]] = field(default=None, repr=False)
    """gcr.io pull key, when the images are private."""
    export_path: str
    """Directory on the jumphost to export (the Pis' root image), at the path the Pis' nfsroot= names."""
    subnet: str
    """Who may mount it, read-only (the rack LAN, by default)."""
    namespace: str = "nfs"
    """Namespace of everything this component owns."""


def export_line(args: NfsServerArgs) -> str:
    """The /etc/exports line: the legacy one, read-only, to the rack subnet only."""
    return f"{args.export_path} {args.subnet}(ro,sync,no_root_squash,no_subtree_check,fsid={FSID})"


class NfsServer(pulumi.ComponentResource):
    def __init__(self, name: str, args: NfsServerArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("skolo:services:NfsServer", name, None, opts)
        kit = kube.Kit.of(self, args, opts)
        kit.deployment(kube.Workload(
            name="nfs-server", image=args.image,
            # NFS_VERSION=3: the Pis mount with nfsvers=3; no v4 to answer (entrypoint.sh: --nfs-version 3
            # --no-nfs-version 4 to rpc.nfsd and rpc.mountd).
            env={"NFS_EXPORT_0": export_line(args), "NFS_VERSION": "3"},
            ports=PORTS,
            mounts=(kube.Mount("export", args.export_path, host_path=args.export_path, host_path_type="Directory",
                               propagation="HostToContainer"),
                    kube.Mount("modules", "/lib/modules", host_path="/lib/modules")),
            cpu="50m", memory="128Mi", run_as_user=None, privileged=True, host_network=True))
        self.footprint = kit.footprint
        self.register_outputs({"export": export_line(args)})
