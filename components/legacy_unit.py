"""LegacyUnit: the cut-over from one of the legacy "push" system's systemd units on the jumphost to
the service that replaces it, and the rollback.

The launch plan: stop and disable the legacy unit before its replacement runs (metadata's before
k3s starts, since traefik needs the legacy server's port 80; the others before their pods).
Deleting this resource, by switching the service off or removing it, enables and starts the
unit again. Owns one command on the jumphost; does not own the service.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_command as command

from components import hostscripts, remote


@dataclass(frozen=True, kw_only=True)
class LegacyUnitArgs:
    connection: command.remote.ConnectionArgs
    """SSH connection to the jumphost."""
    units: tuple[str, ...]
    """The legacy systemd unit (Skia's: metadata-server, router-backup, powercycle-daemon, nfs-kernel-server),
    then any host unit it leaves in the replacement's way (rpcbind for NFS); stopped in this order, started in
    reverse."""
    alias: Optional[pulumi.Alias] = None
    """What the cut-over was called before, so Pulumi moves it rather than deleting it (which is the rollback)."""


class LegacyUnit(pulumi.ComponentResource):
    cutover: command.remote.Command
    """Stops and disables the unit; its deletion starts it again."""

    def __init__(self, name: str, args: LegacyUnitArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("skolo:rack:LegacyUnit", name, None, opts)
        self.cutover = remote.run(
            f"{name}-cutover", connection=args.connection,
            create=hostscripts.script("legacy-unit-stop", UNIT=" ".join(args.units)).command,
            delete=hostscripts.script("legacy-unit-start", UNIT=" ".join(args.units)).command,
            opts=pulumi.ResourceOptions(parent=self, aliases=[args.alias] if args.alias else None))
        self.register_outputs({"units": list(args.units)})
