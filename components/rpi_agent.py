"""RpiAgent: one Raspberry Pi joined to the rack's cluster as a k3s agent, as one small step.

Owns, for one Pi, a single command that runs on the jumphost (a call into the Fleet's bundle):
its create brings the Pi to its declared version, config and state (memory cgroup and its
reboot, the pinned agent install, Ready, cordoned or drained as config says; an upgrade rolls
through at most the rack's maxUnavailable Pis at a time); its delete drains the Node, uninstalls
the agent if the Pi answers and deletes the Node, so a dead Pi is still removable; bumping
`rejoin` replaces it, deleting first. Its inputs are only what is this Pi's: name, address, host
key, version, state, rejoin and the bundle's hash. Does not own the server, nor the bundle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_command as command

from components import hostscripts, remote


@dataclass(frozen=True, kw_only=True)
class RpiAgentArgs:
    node_name: str
    """k3s node name, also the swarming bot id."""
    address: str
    """IPv4 of the Pi on the rack LAN."""
    host_key: Optional[str] = None
    """The Pi's pinned host key, checked whenever the jumphost reaches it."""
    k3s_version: str
    """Exact k3s release, the server's."""
    state: str = "active"
    """active, cordoned or drained."""
    rejoin: int = 0
    """Bumping it replaces the step: the old Node is deleted, then the Pi joins afresh."""
    jumphost: command.remote.ConnectionArgs
    """SSH connection to the jumphost, which does every step for the Pi."""
    bundle: hostscripts.Bundle
    """The scripts the jumphost runs (Fleet)."""


class RpiAgent(pulumi.ComponentResource):
    node: command.remote.Command

    def __init__(self, name: str, args: RpiAgentArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("skolo:rack:RpiAgent", name, None, opts)
        pi = {"NODE_NAME": args.node_name, "ADDRESS": args.address, "HOST_KEY": args.host_key or ""}
        self.node = remote.run(
            f"{name}-node", connection=args.jumphost,
            create=args.bundle.call("pi-node", {**pi, "K3S_VERSION": args.k3s_version, "STATE": args.state,
                                                "REJOIN": args.rejoin}),
            delete=args.bundle.call("pi-remove", pi, current=True),
            triggers=[args.rejoin],
            opts=pulumi.ResourceOptions(parent=self, depends_on=opts.depends_on if opts else None,
                                        delete_before_replace=True))
        self.node_name = args.node_name
        self.register_outputs({"nodeName": args.node_name, "address": args.address, "state": args.state})
