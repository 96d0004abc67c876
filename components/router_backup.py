"""RouterBackup: a daily copy of the router's and every switch's config, off the rack.

Owns the backup namespace: the bucket writer's key and the SSH key (Secrets), the device list
and the backup script (a ConfigMap), and a CronJob on the jumphost. A failed or stale backup
alerts through Prometheus (BackupFailed, BackupStale on kube-state-metrics' CronJob metrics).
The design doc asked for switch backups too: every device in `devices` is backed up alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from components import kube

SCRIPT = Path(__file__).parent / "scripts" / "pod" / "router-backup.sh"
ROUTER = {"name": "router", "address": "192.168.1.1", "user": "admin", "path": "/config/config.boot"}


@dataclass(frozen=True, kw_only=True)
class RouterBackupArgs:
    provider: k8s.Provider
    """The rack's Kubernetes provider."""
    image: str
    """An image with sh, scp and gsutil (the Google Cloud CLI)."""
    service_account_key: pulumi.Input[str] = field(repr=False)
    """JSON key allowed to write the bucket."""
    ssh_key: pulumi.Input[str] = field(repr=False)
    """Private key the devices accept."""
    image_pull_key: Optional[pulumi.Input[str]] = field(default=None, repr=False)
    """gcr.io pull key, when the images are private."""
    devices: tuple[dict, ...] = (ROUTER,)
    """{name, address, user, path} of each device; the rack router by default."""
    schedule: str = "0 3 * * *"
    """When the backup runs (cron, the node's time zone: UTC on the jumphost)."""
    bucket: str = "skia-backups"
    """GCS bucket."""
    folder: str = "router_config"
    """Folder in the bucket."""
    max_age_hours: int = 26
    """A backup older than this alerts (Prometheus BackupStale)."""
    namespace: str = "backup"
    """Namespace of everything this component owns."""


def devices_file(devices: tuple[dict, ...]) -> str:
    """One 'name address user path' line per device, as the script reads them."""
    return "".join(f"{d['name']} {d['address']} {d.get('user', 'admin')} {d['path']}\n" for d in devices)


class RouterBackup(pulumi.ComponentResource):
    max_age_hours: int
    """Age after which the backup counts as stale, for the alert rules."""

    def __init__(self, name: str, args: RouterBackupArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("skolo:services:RouterBackup", name, None, opts)
        kit = kube.Kit(self, args.provider, args.namespace, args.image_pull_key)
        key_env, key_mount = kit.google_key("router-backup-sa", args.service_account_key)
        kit.secret("router-backup-ssh", {"id": args.ssh_key})
        kit.config_map("router-backup", {"backup.sh": SCRIPT.read_text(), "devices": devices_file(args.devices)})
        kit.cron_job(kube.Workload(
            name="router-backup", image=args.image, command=("sh", "/etc/router-backup/backup.sh"),
            env={"BUCKET": args.bucket, "FOLDER": args.folder, "HOME": "/tmp", "CLOUDSDK_CONFIG": "/tmp/gcloud",
                 **key_env},
            mounts=(kube.Mount("script", "/etc/router-backup", config_map="router-backup"), key_mount,
                    kube.Mount("ssh-key", "/var/secrets/ssh", secret="router-backup-ssh")),
            cpu="50m", memory="256Mi"), schedule=args.schedule, deadline_seconds=1800)
        self.max_age_hours = args.max_age_hours
        self.footprint = kit.footprint
        self.register_outputs({"devices": [d["name"] for d in args.devices]})
