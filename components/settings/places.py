"""Where things go: the rack LAN (defaults drawn from it, and what must stay within it) and the
jumphost's disk (what may be exported over NFS or written by a backup)."""

from __future__ import annotations

import ipaddress

from components.settings.fields import NAMESPACE
from components.settings.services import Device, Services

# Never exported or backed up into: the system itself. Exactly these, and everything below SENSITIVE.
SYSTEM = ("/", "/bin", "/sbin", "/lib", "/lib64", "/usr", "/var", "/var/lib", "/opt", "/home", "/srv", "/tmp", "/mnt")
SENSITIVE = ("/etc", "/root", "/boot", "/dev", "/proc", "/sys", "/run", "/var/lib/rancher", "/var/lib/kubelet",
             "/usr/local/bin")


def _inside(path: str, tree: str) -> bool:
    """`tree` is a clean absolute path other than / (AbsPath strips a trailing /; / is SYSTEM)."""
    return path == tree or path.startswith(tree + "/")


def _system(path: str) -> bool:
    return path in SYSTEM or any(_inside(path, tree) for tree in SENSITIVE)


def path_problems(services: Services) -> list[tuple[tuple, str]]:
    """The NFS export is the Pis' root image, exported read-only to the rack; the datastore backups
    hold the cluster token. Neither may be a system directory, nor the backups inside the export."""
    export = services.nfs.export_path
    destination = services.datastore_backup.destination
    problems = []
    if _system(export):
        problems.append((("nfs", "exportPath"), f"{export} is a system directory; export the Pis' root image "
                                                 f"directory (like /opt/prod/root), never the jumphost's own files"))
    if _system(destination):  # (a gs:// URL is never one)
        problems.append((("datastoreBackup", "destination"), f"{destination} is a system directory; use a directory "
                                                             f"of its own like /var/backups/skolo-k3s"))
    elif not _system(export) and _inside(destination, export):
        problems.append((("datastoreBackup", "destination"), f"{destination} is inside the NFS export {export}, "
                                                             f"which the whole rack can read; the backups hold the "
                                                             f"cluster token"))
    return problems


def with_lan_defaults(services: Services, lan: ipaddress.IPv4Network) -> tuple[list, Services]:
    """The services with the defaults that come from the rack's own LAN (the NFS export's subnet,
    the router at the LAN's first address), and what in them strays outside it."""
    problems = []
    subnet = services.nfs.subnet or str(lan)
    if not ipaddress.IPv4Network(subnet).subnet_of(lan):
        problems.append((("nfs", "subnet"), f"{subnet} reaches beyond the rack LAN {lan} ({NAMESPACE}:jumphost.lanCidr);"
                                             f" the Pis' root image would be exported outside the rack"))
    cycle = services.power_cycle
    for where, devices in ((("routerBackup", "devices"), services.router_backup.devices or ()),
                           (("powerCycle", "mpower"), cycle.mpower or ()),
                           (("powerCycle", "edgeswitch"), cycle.edgeswitch or ())):
        for i, device in enumerate(devices):
            if ipaddress.IPv4Address(device.address) not in lan:
                problems.append(((*where, i, "address"), f"{device.address} is outside the rack LAN {lan} "
                                                         f"({NAMESPACE}:jumphost.lanCidr); the rack reaches only its "
                                                         f"own devices, with their keys and passwords"))
    router = Device.model_validate({"name": "router", "address": str(lan.network_address + 1), "kind": "edgerouter",
                                    "user": "admin"})
    return problems, services.model_copy(update={
        "nfs": services.nfs.model_copy(update={"subnet": subnet}),
        "router_backup": services.router_backup.model_copy(update={
            "devices": services.router_backup.devices or (router,)})})
