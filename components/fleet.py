"""Fleet: what the jumphost needs to look after the rack's Pis, installed once for all of them.

Owns, on the jumphost: the bundle of scripts it runs for each Pi (components/scripts/bundle/, the
Pi-side scripts they send, and the rack's settings as rack.env), content-addressed under
/var/lib/skolo/bundle/<hash>; and the key it reaches the Pis with (/etc/skolo/pi-ssh-key, root's,
from stdin). Each Pi's own step (rpi_agent.py) is then a short call into the bundle. Does not own
the Pis, nor the k3s server.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_command as command

from components import hostscripts, kube, remote
from components.swarming import SwarmingArgs

# Appended to cmdline.txt when missing (k3s docs, Raspberry Pi OS).
CGROUP_FLAGS = "cgroup_memory=1 cgroup_enable=memory cgroup_enable=cpuset"
# Bundles kept on the jumphost: a Pi whose last update failed still names its own.
KEEP_BUNDLES = 20


@dataclass(frozen=True, kw_only=True)
class FleetArgs:
    connection: command.remote.ConnectionArgs
    """SSH connection to the jumphost."""
    ssh_private_key: pulumi.Input[str] = field(repr=False)
    """Key the Pis' user accepts; reaches the jumphost on stdin only."""
    user: str = "chrome-bot"
    """The Pis' SSH user."""
    server_url: str
    """https://<jumphost LAN address>:6443, where the agents join."""
    install_script_url: str
    """Where the Pis fetch the k3s install script."""
    install_script_sha256: str = ""
    """SHA-256 the script must match; empty: not checked (https only)."""
    max_unavailable: int = 4
    """How many Pis a k3s upgrade takes out of service at once."""
    swarming_grace_seconds: int = 3600
    """How long a Pi's swarming bot may take to finish its test before an upgrade."""
    state_drain_seconds: int = 120
    """How long a drain for a Pi's `drained` state, or its removal, may take."""
    ready_seconds: int = 300
    """How long a joined Pi may take to become Ready."""


def settings(args: FleetArgs) -> dict[str, str | int]:
    """rack.env: what every Pi's step shares."""
    return {"PI_USER": args.user, "SERVER_URL": args.server_url, "NODE_LABEL": kube.role_label(kube.ROLE_RPI),
            "TOKEN_FILE": hostscripts.K3S_TOKEN_FILE, "INSTALL_SCRIPT_URL": args.install_script_url,
            "INSTALL_SCRIPT_SHA256": args.install_script_sha256, "CGROUP_FLAGS": CGROUP_FLAGS,
            "MAX_UNAVAILABLE": args.max_unavailable, "DRAIN_SECONDS": args.swarming_grace_seconds + 60,
            "STATE_DRAIN_SECONDS": args.state_drain_seconds, "READY_SECONDS": args.ready_seconds,
            "DOWN_SECONDS": 180, "UP_SECONDS": 600, "STATE_LABEL": kube.STATE_LABEL,
            "MAINTENANCE_LABEL": kube.MAINTENANCE_LABEL, "SWARMING_NAMESPACE": SwarmingArgs.namespace}


class Fleet(pulumi.ComponentResource):
    bundle: hostscripts.Bundle
    """The scripts every Pi's step calls."""

    def __init__(self, name: str, args: FleetArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("skolo:rack:Fleet", name, None, opts)
        self.bundle = hostscripts.bundle(settings(args))
        archive = self.bundle.archive()
        child = pulumi.ResourceOptions(parent=self, depends_on=opts.depends_on if opts else None)
        self.install = remote.run(
            f"{name}-bundle", connection=args.connection,
            create=hostscripts.script("bundle-install", HASH=self.bundle.hash, KEEP=KEEP_BUNDLES,
                                      ARCHIVE_SHA256=hashlib.sha256(archive).hexdigest()).command,
            stdin=base64.b64encode(archive).decode(), opts=child)
        self.key = remote.run(
            f"{name}-pi-key", connection=args.connection, create=hostscripts.script("pi-key").command,
            stdin=pulumi.Output.secret(args.ssh_private_key), opts=child)
        self.register_outputs({"bundle": self.bundle.hash})
