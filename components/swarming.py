"""Swarming: one swarming bot per Raspberry Pi, as the RPi design describes.

Owns the swarming namespace: the bot service-account key and the adb key pair (Secrets), the
OAuth config that points swarming at the rack's metadata server (a ConfigMap), and the
rpi-swarming-client DaemonSet: only on Pis (never the jumphost), root and privileged for adb
over USB, SWARMING_BOT_ID from the node name, /var/swarming as /b. The image has a CMD and no
ENTRYPOINT, so the pod names its program; which program and which --config depend on the
image's era (components/skia.py). Image updates roll a few Pis at a time, and a pod being
replaced gets long enough to finish its test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Optional, Union

import pulumi
import pulumi_kubernetes as k8s

from components import kube, skia
from components.labels import SWARMING_NAMESPACE

HOOKS_PORT = 11000
METRICS_PORT = 20000
OAUTH_DIR = "/etc/swarming_config"


@dataclass(frozen=True, kw_only=True)
class SwarmingArgs:
    provider: k8s.Provider
    """The rack's Kubernetes provider."""
    image: str
    """gcr.io/skia-public/rpi-swarming-client image."""
    token_url: str
    """The rack metadata server's token endpoint, reachable from this namespace (--metadata_url)."""
    service_account_key: pulumi.Input[str] = field(repr=False)
    """JSON key of the bots' service account."""
    adb_key: pulumi.Input[str] = field(repr=False)
    """adb private key (adbkey)."""
    adb_public_key: pulumi.Input[str] = field(repr=False)
    """adb public key (adbkey.pub), which adb reads beside the private key."""
    image_pull_key: Optional[pulumi.Input[str]] = field(default=None, repr=False)
    """gcr.io pull key, when the images are private."""
    era: str = skia.NEWEST_ERA
    """Which rpi-swarming-client images: the program the pod runs and the form of --config."""
    python_exe: Optional[str] = None
    """--python_exe; None: the interpreter the image ships (skia.swarming_python), python2.7 before
    2021-07-12 and python3 after."""
    extra_args: tuple[str, ...] = ()
    """Further flags of the era's program (checked against its contract by the settings)."""
    max_unavailable: Union[int, str] = 1
    """How many Pis (or what percentage) may be without a bot during an image roll."""
    termination_grace_seconds: int = 3600
    """How long a bot being replaced may take to finish its running test."""
    namespace: str = SWARMING_NAMESPACE
    """Namespace of everything this component owns."""


def bot_args(args: SwarmingArgs) -> tuple[str, ...]:
    """--start_swarming launches the bot; without --metadata_url a fresh Pi dies at bootstrap, since
    the default http://metadata:8000 does not resolve outside Skia's `default` namespace."""
    return ("--start_swarming", f"--config={skia.SWARMING_ERAS[args.era].config}", f"--metadata_url={args.token_url}",
            f"--python_exe={args.python_exe or skia.swarming_python(args.image)}", f"--port=:{HOOKS_PORT}", f"--prom_port=:{METRICS_PORT}",
            *args.extra_args)


def oauth_config(token_url: str) -> str:
    """oauth2_access_token_config.json: swarming fetches its tokens from the rack's metadata server."""
    return json.dumps({"url": token_url, "headers": {"Metadata-Flavor": "Google"}}, indent=2) + "\n"


class Swarming(pulumi.ComponentResource):
    def __init__(self, name: str, args: SwarmingArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("skolo:services:Swarming", name, None, opts)
        kit = kube.Kit.of(self, args, opts)
        key_env, key_mount = kit.google_key("swarming-sa", args.service_account_key)
        kit.secret("swarming-adb", {"adbkey": args.adb_key, "adbkey.pub": args.adb_public_key})
        kit.config_map("swarming-oauth", {"oauth2_access_token_config.json": oauth_config(args.token_url)})
        kit.daemon_set(kube.Workload(
            name="swarming", image=args.image, command=skia.SWARMING_ERAS[args.era].program.command,
            args=bot_args(args),
            ports={"hooks": HOOKS_PORT, "metrics": METRICS_PORT},
            env={"IMAGE_NAME": args.image, **key_env},
            field_env={"SWARMING_BOT_ID": "spec.nodeName"},
            mounts=(kube.Mount("work", "/b", host_path="/var/swarming", host_path_type="DirectoryOrCreate",
                               read_only=False),
                    kube.Mount("usb", "/dev/bus", host_path="/dev/bus", read_only=False),
                    kube.Mount("serial", "/dev/ttyAMA0", host_path="/dev/ttyAMA0", read_only=False),
                    kube.Mount("adb-key", "/root/.android", secret="swarming-adb"),
                    key_mount,
                    kube.Mount("oauth", OAUTH_DIR, config_map="swarming-oauth")),
            metrics_port=METRICS_PORT, cpu="100m", memory="256Mi", memory_limit="768Mi",
            role=kube.ROLE_RPI, avoid_drained=True, run_as_user=None, privileged=True,
            termination_grace_seconds=args.termination_grace_seconds),
            max_unavailable=args.max_unavailable)
        self.footprint = kit.footprint
        self.register_outputs({})
