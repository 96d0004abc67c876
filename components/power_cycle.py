"""PowerCycle: podwatcher, Skia's k3s-era power cycler, which turns a wedged Pi or phone off and on.

Skia's power-cycle-daemon only forwarded requests to power.skia.org (gone since 2021-09), never
read a device config, and was never built as an image. What power-cycled Pis in Skia's k3s
racks was podwatcher: it watches the machine server (Firestore) for bots that asked for a cycle
and cycles each one as the device config says: softly first (`ssh <bot> sudo /sbin/reboot -f`),
then through an EdgeSwitch PoE port (password SSH into its CLI) or an mPower relay (key SSH).

Owns the power namespace: powercycle.json5, ssh's config and known_hosts, all generated from
stack config (a ConfigMap; every host podwatcher reaches is pinned); the EdgeSwitch password
(POWERCYCLE_PASSWORD), the SSH key and the service-account key (Secrets); a ServiceAccount with
no rights (podwatcher will not start without an in-cluster API client, and deletes pods only
in `default`, where this rack runs none); and a Deployment on the jumphost.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from components import kube, skia

METRICS_PORT = 20000
CONFIG_DIR = "/etc/powercycle"
SSH_DIR = "/etc/powercycle-ssh"
SKIA_UID = 2000  # user skia in Skia's basealpine images


@dataclass(frozen=True, kw_only=True)
class PowerCycleArgs:
    provider: k8s.Provider
    """The rack's Kubernetes provider."""
    image: str
    """gcr.io/skia-public/podwatcher image."""
    ssh_key: pulumi.Input[str] = field(repr=False)
    """Key the mPower strips, and for soft cycles the Pis' user, accept."""
    service_account_key: pulumi.Input[str] = field(repr=False)
    """JSON key for the machine server's Firestore (datastore.user) and logging."""
    password: Optional[pulumi.Input[str]] = field(default=None, repr=False)
    """EdgeSwitch CLI password (POWERCYCLE_PASSWORD); needed when there are EdgeSwitches."""
    pis: tuple[tuple[str, str, Optional[str]], ...] = ()
    """(bot name, address, pinned host key) of each Pi, for soft cycles."""
    user: str = "chrome-bot"
    """The Pis' SSH user, for soft cycles."""
    image_pull_key: Optional[pulumi.Input[str]] = field(default=None, repr=False)
    """gcr.io pull key, when the images are private."""
    mpower: tuple[dict, ...] = ()
    """{name, address, user, ports: {bot: relay 1..8}, host_key} per mPower strip."""
    edgeswitch: tuple[dict, ...] = ()
    """{name, address, user, ports: {bot: switch port}, host_key} per PoE switch."""
    extra_args: tuple[str, ...] = ()
    """Further flags of podwatcher (checked against its contract by the settings)."""
    namespace: str = "power"
    """Namespace of everything this component owns."""


def powercycle_config(args: PowerCycleArgs) -> str:
    """powercycle.json5 (JSON is JSON5). Never holds the password: podwatcher reads the env."""
    def devices(entries: tuple[dict, ...]) -> dict:
        return {d["name"]: {"address": d["address"], "user": d.get("user") or "ubnt",
                            "ports": dict(sorted(d["ports"].items()))} for d in entries}

    return json.dumps({"mpower": devices(args.mpower), "edgeswitch": devices(args.edgeswitch)}, indent=2) + "\n"


def ssh_config(args: PowerCycleArgs) -> str:
    """ssh's system config: soft cycles reach a bot by name, every host is checked against the
    pinned keys. (podwatcher passes StrictHostKeyChecking=no for EdgeSwitches; with a pinned key
    that does not match, ssh then refuses password authentication, so the password stays put.)"""
    pis = "".join(f"Host {name}\n    HostName {address}\n    User {args.user}\n" for name, address, _ in args.pis)
    return (f"# ssh for podwatcher (components/power_cycle.py)\n{pis}Host *\n    IdentityFile {SSH_DIR}/id\n"
            f"    IdentitiesOnly yes\n    GlobalKnownHostsFile {CONFIG_DIR}/known_hosts\n"
            "    UserKnownHostsFile /dev/null\n    StrictHostKeyChecking yes\n    ConnectTimeout 10\n")


def known_hosts(args: PowerCycleArgs) -> str:
    hosts = [(d["address"], d.get("host_key")) for d in args.mpower + args.edgeswitch]
    hosts += [(address, key) for _, address, key in args.pis]
    return "".join(f"{address} {key}\n" for address, key in hosts if key)


def podwatcher_args(args: PowerCycleArgs) -> tuple[str, ...]:
    return (f"--config={skia.PODWATCHER_INSTANCE_CONFIG}", f"--powercycle_config={CONFIG_DIR}/powercycle.json5",
            f"--prom_port=:{METRICS_PORT}", *args.extra_args)


class PowerCycle(pulumi.ComponentResource):
    def __init__(self, name: str, args: PowerCycleArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("skolo:services:PowerCycle", name, None, opts)
        kit = kube.Kit.of(self, args, opts)
        key_env, key_mount = kit.google_key("podwatcher-sa", args.service_account_key)
        kit.secret("power-cycle-ssh", {"id": args.ssh_key})
        secret_env = {}
        if args.password is not None and args.edgeswitch:
            kit.secret("power-cycle", {"password": args.password})
            secret_env["POWERCYCLE_PASSWORD"] = ("power-cycle", "password")
        kit.config_map("power-cycle", {"powercycle.json5": powercycle_config(args), "ssh_config": ssh_config(args),
                                       "known_hosts": known_hosts(args)})
        kit.service_account("podwatcher")
        kit.deployment(kube.Workload(
            name="podwatcher", image=args.image, args=podwatcher_args(args),
            ports={"metrics": METRICS_PORT}, env=key_env, secret_env=secret_env,
            mounts=(kube.Mount("config", CONFIG_DIR, config_map="power-cycle"),
                    kube.Mount("ssh-config", "/etc/ssh/ssh_config", config_map="power-cycle", sub_path="ssh_config"),
                    kube.Mount("ssh-key", SSH_DIR, secret="power-cycle-ssh"), key_mount),
            metrics_port=METRICS_PORT, cpu="20m", memory="64Mi", run_as_user=SKIA_UID,
            service_account="podwatcher"))
        self.footprint = kit.footprint
        self.register_outputs({"bots": sorted(b for d in args.mpower + args.edgeswitch for b in d["ports"])})
