"""PowerCycle: power-cycle-daemon, which turns a wedged Pi or phone off and on again.

Owns the power namespace: the device config (mPower strips' relays and EdgeSwitch PoE ports,
mapped to bot names) generated from stack config into a ConfigMap, the device password as a
Secret given only as POWERCYCLE_PASSWORD, a Deployment on the jumphost and its Service.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from components import kube

PORT = 9210
METRICS_PORT = 20004
CONFIG_PATH = "/etc/powercycle.json5"


@dataclass(frozen=True, kw_only=True)
class PowerCycleArgs:
    provider: k8s.Provider
    """The rack's Kubernetes provider."""
    image: str
    """gcr.io/skia-public/power-cycle-daemon image."""
    password: pulumi.Input[str] = field(repr=False)
    """Device password, POWERCYCLE_PASSWORD."""
    metadata_host: str
    """host:port of the rack's metadata server (GCE_METADATA_HOST) for credentials."""
    image_pull_key: Optional[pulumi.Input[str]] = field(default=None, repr=False)
    """gcr.io pull key, when the images are private."""
    mpower: tuple[dict, ...] = ()
    """{name, address, user, ports: {bot: relay 1..8}} per mPower strip."""
    edgeswitch: tuple[dict, ...] = ()
    """{name, address, user, ports: {bot: switch port}} per PoE switch."""
    namespace: str = "power"
    """Namespace of everything this component owns."""


def powercycle_config(args: PowerCycleArgs) -> str:
    """powercycle.json5 (JSON is JSON5). Never holds the password: that comes from the env."""
    def devices(entries: tuple[dict, ...]) -> dict:
        return {d["name"]: {"address": d["address"], "user": d.get("user", "ubnt"),
                            "ports": dict(sorted(d["ports"].items()))} for d in entries}

    return json.dumps({"mpower": devices(args.mpower), "edgeswitch": devices(args.edgeswitch)}, indent=2) + "\n"


class PowerCycle(pulumi.ComponentResource):
    def __init__(self, name: str, args: PowerCycleArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("skolo:services:PowerCycle", name, None, opts)
        kit = kube.Kit(self, args.provider, args.namespace, args.image_pull_key)
        kit.secret("power-cycle", {"password": args.password})
        kit.config_map("power-cycle", {"powercycle.json5": powercycle_config(args)})
        w = kube.Workload(
            name="power-cycle-daemon", image=args.image,
            args=(f"--config={CONFIG_PATH}", f"--port=:{PORT}", f"--prom_port=:{METRICS_PORT}"),
            ports={"http": PORT, "metrics": METRICS_PORT},
            env={"GCE_METADATA_HOST": args.metadata_host},
            secret_env={"POWERCYCLE_PASSWORD": ("power-cycle", "password")},
            mounts=(kube.Mount("config", CONFIG_PATH, config_map="power-cycle", sub_path="powercycle.json5"),),
            metrics_port=METRICS_PORT, cpu="20m", memory="64Mi")
        kit.deployment(w)
        kit.service(w, {"http": (PORT, PORT)})
        self.footprint = kit.footprint
        self.register_outputs({"bots": sorted(b for d in args.mpower + args.edgeswitch for b in d["ports"])})
