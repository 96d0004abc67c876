"""RpiAgent: one Raspberry Pi joined to the rack's cluster as a k3s agent.

Owns, for one Pi: the memory-cgroup prerequisite (and the reboot it needs), the pinned agent
install with its token file, and the Node's life on the server: wait for it to be Ready on
join; keep it active, cordoned or drained as config says; drain it, uninstall the agent and
delete the Node when the Pi leaves the config or is re-joined. The Node-side steps run on the jumphost, so a dead Pi can still be removed.
Does not own the server, nor what runs on the Pi (that is Kubernetes' business).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_command as command
import yaml

from components import hostscripts, kube, remote

# Appended to cmdline.txt when missing (k3s docs, Raspberry Pi OS).
CGROUP_FLAGS = "cgroup_memory=1 cgroup_enable=memory cgroup_enable=cpuset"


@dataclass(frozen=True, kw_only=True)
class RpiAgentArgs:
    node_name: str
    """k3s node name, also the swarming bot id."""
    address: str
    """IPv4 of the Pi on the rack LAN."""
    connection: command.remote.ConnectionArgs
    """SSH connection to the Pi (through the jumphost)."""
    jumphost_connection: command.remote.ConnectionArgs
    """SSH connection to the jumphost, where the Node is watched and removed."""
    host_key: Optional[str] = None
    """The Pi's pinned host key, also checked when the jumphost reaches it on removal."""
    user: str = "chrome-bot"
    """SSH user on the Pi."""
    k3s_version: str
    """Exact k3s release, the server's."""
    install_script_url: str
    """Where the Pi fetches the k3s install script."""
    install_script_sha256: str = ""
    """SHA-256 the script must match before it runs; empty: not checked (https only)."""
    server_url: str
    """https://<jumphost LAN address>:6443."""
    token: pulumi.Input[str] = field(repr=False)
    """Cluster join token; reaches the Pi on stdin only."""
    ssh_private_key: pulumi.Input[str] = field(repr=False)
    """Key the jumphost uses to reach the Pi on removal; reaches the jumphost on stdin only."""
    rejoin: int = 0
    """Bumping it replaces every step: the old Node is deleted, then the Pi joins afresh."""
    state: str = "active"
    """active, cordoned or drained: applied to the Node from the jumphost."""
    ready_seconds: int = 300
    """How long to wait for the Node to become Ready after the join."""
    drain_seconds: int = 120
    """How long a drain may take on removal before the Node is deleted anyway."""


def agent_config(args: RpiAgentArgs) -> dict:
    """/etc/rancher/k3s/config.yaml for the agent. No secrets: the token is in token-file."""
    return {
        "server": args.server_url,
        "node-name": args.node_name,
        "token-file": hostscripts.K3S_TOKEN_FILE,
        "node-label": [kube.role_label(kube.ROLE_RPI)],
    }


class RpiAgent(pulumi.ComponentResource):
    def __init__(self, name: str, args: RpiAgentArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("skolo:rack:RpiAgent", name, None, opts)
        # Every step is redone, old Node deleted first, when the operator bumps `rejoin`.
        rejoin = [args.rejoin]
        child = pulumi.ResourceOptions(parent=self)

        def after(*deps: pulumi.Resource, replace_first: bool = False) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(
                depends_on=list(deps), delete_before_replace=replace_first or None))

        cgroups = remote.run(
            f"{name}-cgroups", connection=args.connection,
            create=hostscripts.script("rpi-cgroups", CGROUP_FLAGS=CGROUP_FLAGS).command,
            triggers=rejoin, opts=child)

        boot = remote.run(
            f"{name}-boot", connection=args.jumphost_connection,
            create=cgroups.stdout.apply(lambda out: hostscripts.script(
                "wait-for-reboot", root=False, PI_ADDRESS=args.address, PI_PORT=22,
                REBOOT="yes" if "reboot-scheduled" in (out or "").split() else "no",
                DOWN_SECONDS=180, UP_SECONDS=600).command),
            triggers=rejoin, opts=after(cgroups))

        join = remote.run(
            f"{name}-join", connection=args.connection,
            create=hostscripts.script(
                "k3s-install", ROLE="agent", NODE_NAME=args.node_name, K3S_VERSION=args.k3s_version,
                INSTALL_SCRIPT_URL=args.install_script_url,
                INSTALL_SCRIPT_SHA256=args.install_script_sha256, TOKEN_FILE=hostscripts.K3S_TOKEN_FILE,
                CONFIG_YAML=yaml.safe_dump(agent_config(args), sort_keys=False)).command,
            stdin=pulumi.Output.secret(args.token),
            triggers=rejoin, opts=after(boot, replace_first=True))

        # Depends on the join, so on removal it is deleted first: drain and delete the Node
        # from the jumphost, then nothing needs to reach the Pi itself.
        self.node = remote.run(
            f"{name}-node", connection=args.jumphost_connection,
            create=hostscripts.script(
                "node-ready", NODE_NAME=args.node_name, READY_SECONDS=args.ready_seconds).command,
            delete=hostscripts.script(
                "node-decommission", NODE_NAME=args.node_name, PI_ADDRESS=args.address, PI_USER=args.user,
                PI_PORT=22, PI_HOST_KEY=args.host_key or "", DRAIN_SECONDS=args.drain_seconds),
            stdin=pulumi.Output.secret(args.ssh_private_key),
            triggers=rejoin, opts=after(join, replace_first=True))

        # Only this Pi's state step changes when its state does; nothing else in the rack runs.
        remote.run(
            f"{name}-state", connection=args.jumphost_connection,
            create=hostscripts.script("node-state", NODE_NAME=args.node_name, STATE=args.state,
                                      STATE_LABEL=kube.STATE_LABEL, DRAIN_SECONDS=args.drain_seconds).command,
            triggers=rejoin, opts=after(self.node))

        self.node_name = args.node_name
        self.register_outputs({"nodeName": args.node_name, "address": args.address, "state": args.state})
