"""DatastoreBackup: the k3s datastore and its token, copied off the jumphost on a schedule.

Toolforge's admin pages record that "the etcd cluster is not currently backed up". A rack's
k3s keeps its whole state in SQLite under /var/lib/rancher/k3s/server/db; with the server
token beside it, that is what a replacement jumphost needs to take over the rack (README,
"Swapping a jumphost"). Owns the k3s-backup namespace: a CronJob on the jumphost that reads
the server directory and the node password read-only (as root: the files are root's) and writes to GCS or to a
directory on the jumphost, keeping the newest `keep`. A stale or failed run alerts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from components import kube

SCRIPT = Path(__file__).parent / "scripts" / "pod" / "datastore-backup.sh"
SERVER_DIR = "/var/lib/rancher/k3s/server"
NODE_DIR = "/etc/rancher/node"


@dataclass(frozen=True, kw_only=True)
class DatastoreBackupArgs:
    provider: k8s.Provider
    """The rack's Kubernetes provider."""
    image: str
    """An image with sh, python3 (sqlite3) and gsutil."""
    rack: str
    """Name in every backup file."""
    destination: str
    """gs://BUCKET/FOLDER, or a directory on the jumphost (not exported over NFS: it holds the token)."""
    service_account_key: Optional[pulumi.Input[str]] = field(default=None, repr=False)
    """JSON key for a gs:// destination."""
    image_pull_key: Optional[pulumi.Input[str]] = field(default=None, repr=False)
    """gcr.io pull key, when the images are private."""
    schedule: str = "17 */6 * * *"
    """Every six hours."""
    keep: int = 28
    """How many backups to keep (a week at the default schedule)."""
    namespace: str = "k3s-backup"
    """Namespace of everything this component owns."""


class DatastoreBackup(pulumi.ComponentResource):
    def __init__(self, name: str, args: DatastoreBackupArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("skolo:services:DatastoreBackup", name, None, opts)
        kit = kube.Kit.of(self, args, opts)
        kit.config_map("datastore-backup", {"backup.sh": SCRIPT.read_text()})
        env = {"RACK": args.rack, "DESTINATION": args.destination, "KEEP": str(args.keep), "SERVER_DIR": "/server",
               "NODE_DIR": "/node",
               "HOME": "/tmp", "CLOUDSDK_CONFIG": "/tmp/gcloud"}
        mounts = [kube.Mount("script", "/etc/datastore-backup", config_map="datastore-backup"),
                  kube.Mount("server", "/server", host_path=SERVER_DIR, host_path_type="Directory"),
                  kube.Mount("node", "/node", host_path=NODE_DIR, host_path_type="Directory")]
        if args.destination.startswith("gs://"):
            if args.service_account_key is None:  # the settings require it; a component used alone may not
                raise ValueError(f"datastore backup to {args.destination} needs service_account_key")
            key_env, key_mount = kit.google_key("datastore-backup-sa", args.service_account_key)
            env.update(key_env)
            mounts.append(key_mount)
        else:
            mounts.append(kube.Mount("destination", args.destination, host_path=args.destination,
                                     host_path_type="DirectoryOrCreate", read_only=False))
        kit.cron_job(kube.Workload(
            name="datastore-backup", image=args.image, command=("sh", "/etc/datastore-backup/backup.sh"),
            env=env, mounts=tuple(mounts), cpu="50m", memory="256Mi", run_as_user=None),
            schedule=args.schedule, deadline_seconds=1800)
        self.footprint = kit.footprint
        self.register_outputs({"destination": args.destination})
