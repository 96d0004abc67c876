"""RouterBackup: a daily copy of the router's and every switch's config, off the rack.

Owns the backup namespace: the bucket writer's key, the SSH key the router accepts and the
EdgeSwitch password (Secrets), the device list, their pinned host keys and the backup script (a
ConfigMap), and a CronJob on the jumphost. Each device is read the way it speaks
(scripts/pod/router-backup.sh): an EdgeRouter's /config/config.boot over key-based scp, an
EdgeSwitch's running-config through its CLI. A failed or stale backup alerts through Prometheus
(BackupFailed, BackupStale on kube-state-metrics' CronJob metrics).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from components import kube

SCRIPT = Path(__file__).parent / "scripts" / "pod" / "router-backup.sh"
EDGEROUTER_CONFIG = "/config/config.boot"
CONFIG_DIR = "/etc/router-backup"
# Never reached over HTTPS: the cluster's own networks and the rack live here.
PRIVATE = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")


@dataclass(frozen=True, kw_only=True)
class RouterBackupArgs:
    provider: k8s.Provider
    """The rack's Kubernetes provider."""
    image: str
    """An image with sh, ssh, scp and gsutil (the Google Cloud CLI)."""
    service_account_key: pulumi.Input[str] = field(repr=False)
    """JSON key allowed to write the bucket."""
    ssh_key: pulumi.Input[str] = field(repr=False)
    """Private key the EdgeRouters accept."""
    devices: tuple[dict, ...]
    """{name, address, kind (edgerouter or edgeswitch), user, path (edgerouter), host_key} of each device."""
    switch_password: Optional[pulumi.Input[str]] = field(default=None, repr=False)
    """The EdgeSwitches' CLI password; needed when a device is an EdgeSwitch."""
    image_pull_key: Optional[pulumi.Input[str]] = field(default=None, repr=False)
    """gcr.io pull key, when the images are private."""
    schedule: str = "0 3 * * *"
    """When the backup runs (cron, the node's time zone: UTC on the jumphost)."""
    bucket: str = "skia-backups"
    """GCS bucket."""
    folder: str = "router_config"
    """Folder in the bucket."""
    max_age_hours: int = 26
    """A backup older than this alerts (Prometheus BackupStale)."""
    lan_cidr: str
    """The rack LAN: HTTPS (Google's APIs) goes to public addresses only, never here."""
    namespace: str = "backup"
    """Namespace of everything this component owns."""


def devices_file(devices: tuple[dict, ...]) -> str:
    """One 'name address user kind path' line per device, as the script reads them."""
    return "".join(f"{d['name']} {d['address']} {d['user']} {d['kind']} "
                   f"{d.get('path') or (EDGEROUTER_CONFIG if d['kind'] == 'edgerouter' else '-')}\n" for d in devices)


def private_and(lan: str) -> tuple[str, ...]:
    """The private ranges, and the rack LAN unless one of them holds it already."""
    net = ipaddress.IPv4Network(lan)
    return PRIVATE + (() if any(net.subnet_of(ipaddress.IPv4Network(p)) for p in PRIVATE) else (lan,))


def known_hosts(devices: tuple[dict, ...]) -> str:
    """The pinned host keys; a device without one cannot be reached (StrictHostKeyChecking)."""
    return "".join(f"{d['address']} {d['host_key']}\n" for d in devices if d.get("host_key"))


class RouterBackup(pulumi.ComponentResource):
    max_age_hours: int
    """Age after which the backup counts as stale, for the alert rules."""

    def __init__(self, name: str, args: RouterBackupArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("skolo:services:RouterBackup", name, None, opts)
        kit = kube.Kit.of(self, args, opts)
        key_env, key_mount = kit.google_key("router-backup-sa", args.service_account_key)
        kit.secret("router-backup-ssh", {"id": args.ssh_key})
        mounts = [kube.Mount("script", CONFIG_DIR, config_map="router-backup"), key_mount,
                  kube.Mount("ssh-key", "/var/secrets/ssh", secret="router-backup-ssh")]
        env = {"BUCKET": args.bucket, "FOLDER": args.folder, "DEVICES": f"{CONFIG_DIR}/devices",
               "KNOWN_HOSTS": f"{CONFIG_DIR}/known_hosts", "SSH_KEY": "/var/secrets/ssh/id", "HOME": "/tmp",
               "CLOUDSDK_CONFIG": "/tmp/gcloud", **key_env}
        if args.switch_password is not None and any(d["kind"] == "edgeswitch" for d in args.devices):
            kit.secret("router-backup-switch", {"password": args.switch_password})
            mounts.append(kube.Mount("switch-password", "/var/secrets/switch", secret="router-backup-switch"))
            env["SWITCH_PASSWORD_FILE"] = "/var/secrets/switch/password"
        kit.config_map("router-backup", {"backup.sh": SCRIPT.read_text(), "devices": devices_file(args.devices),
                                         "known_hosts": known_hosts(args.devices)})
        w = kube.Workload(name="router-backup", image=args.image, command=("sh", f"{CONFIG_DIR}/backup.sh"), env=env,
                          mounts=tuple(mounts), cpu="50m", memory="256Mi")
        kit.cron_job(w, schedule=args.schedule, deadline_seconds=1800)
        # It reaches its devices' sshd, the cluster's DNS, and HTTPS off the rack (Google's APIs).
        kit.limit_egress(w, [([kube.Peer(cidr=f"{d['address']}/32") for d in args.devices], [(22, "TCP")]),
                             ([kube.Peer("kube-system", "kube-dns")], [(53, "UDP"), (53, "TCP")]),
                             ([kube.Peer(cidr="0.0.0.0/0", except_=private_and(args.lan_cidr))], [(443, "TCP")])])
        self.max_age_hours = args.max_age_hours
        self.footprint = kit.footprint
        self.register_outputs({"devices": [d["name"] for d in args.devices]})
