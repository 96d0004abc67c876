"""`rackctl new STACK`: a new rack's stack file from what differs per rack.

Written from the jumphost, the LAN and the shelves only: no other rack's routers, power strips,
switches or host keys. What a rack shares with the others (the k3s release, Skia's pinned
images) comes from the canary stack, the smallest rack, and says so in a comment. Power cycling
starts switched off: its strips are this rack's own devices, added by hand. The config is checked
by the settings layer before the file is written, and nothing is replaced: a file `pulumi stack
init` wrote (its encryptionsalt or secretsprovider lines) gets the config block added; a file
that already has config is refused.
"""

from __future__ import annotations

import io
import ipaddress
from pathlib import Path
from typing import Any, Optional

from components import settings
from components.settings import ConfigError
from rackctl import check, outputs, stackfiles


class NewError(Exception):
    """A new stack file that cannot be written: one line, exit 2, nothing written."""


def parse_shelf(text: str) -> dict[str, Any]:
    """NAME:COUNT:FIRST_ADDRESS (e.g. skia-rpi2-rack3-shelf1:40:192.168.1.100) as a shelf entry."""
    parts = text.split(":")
    if len(parts) != 3 or not parts[1].isdigit():
        raise NewError(f"--shelf {text!r}: expected NAME:COUNT:FIRST_ADDRESS, e.g. skia-rpi2-rack3-shelf1:40:"
                       f"192.168.1.100")
    return {"shelf": parts[0], "count": int(parts[1]), "firstAddress": parts[2]}


def _shared(new_stack: str, config_dir: Path) -> tuple[Optional[str], dict[str, str], Optional[str]]:
    """(k3sVersion, Skia's images, the stack they came from): what every rack shares, from the
    canary (the smallest rack that passes its checks)."""
    readable = []
    for stack in stackfiles.stacks(config_dir):
        if stack == new_stack:
            continue
        try:
            readable.append(stackfiles.settings_for(stack, config_dir))
        except (ConfigError, stackfiles.StackFileError):
            continue  # a broken stack is not a model for a new one
    if not readable:
        return None, {}, None
    canary = min(readable, key=lambda parsed: (len(parsed.rpis), parsed.rack))
    images = {key: canary.images.get(key) for key in ("metadata", "alertToPubsub", "powerCycle", "swarming")}
    return canary.k3s_version, {k: v for k, v in images.items() if v}, canary.rack


def config_for(stack: str, jumphost: dict[str, Any], shelves: list[dict[str, Any]], k3s_version: str,
               images: dict[str, str]) -> dict[str, Any]:
    """The config block, keys as the stack file spells them."""
    config: dict[str, Any] = {
        f"{settings.NAMESPACE}:jumphost": jumphost,
        f"{settings.NAMESPACE}:rpis": shelves,
        f"{settings.NAMESPACE}:k3sVersion": k3s_version,
    }
    if images:
        config[f"{settings.NAMESPACE}:images"] = images
    config[f"{settings.NAMESPACE}:services"] = {"powerCycle": {"enabled": False}}
    return config


def new(stack: str, config_dir: Path, name: str, address: str, lan_cidr: Optional[str], shelves: list[str],
        k3s_version: Optional[str]) -> str:
    if not shelves:
        raise NewError("give the rack's Pis with --shelf NAME:COUNT:FIRST_ADDRESS (repeatable)")
    # A new file, or a plain one (not a link) that `pulumi stack init` wrote, to add config to.
    path = outputs.file_path("STACK", str(stackfiles.stack_path(config_dir, stack)), lambda p: True, "rackctl new")
    head = stackfiles.read_text(path) if path.exists() else ""
    if head and stackfiles.read_stack_file(path):
        raise NewError(f"{path.name} already has config; edit it instead (nothing was changed)")
    shared_version, images, source = _shared(stack, config_dir)
    version = k3s_version or shared_version
    if not version:
        raise NewError("no stack to take the k3s release from; give --k3s-version, e.g. v1.31.6+k3s1")
    jumphost: dict[str, Any] = {"name": name, "address": address}
    if lan_cidr:
        jumphost["lanCidr"] = lan_cidr
    config = config_for(stack, jumphost, [parse_shelf(s) for s in shelves], version, images)
    shared = f"; the k3s release and Skia's images are {source}'s, the canary's" if source else ""
    lines = [f"# {stack}: written by `rackctl new`. The jumphost, LAN and shelves are this rack's{shared}.",
             "# No host key is pinned yet: `rackctl hostkeys` pins each one, for review.",
             "# Power cycling is off until this rack's mPower strips or EdgeSwitches are listed under",
             "# skolo:services.powerCycle (README: Config)."]
    y = stackfiles.stack_yaml()
    out = io.StringIO()
    y.dump({"config": config}, out)
    text = head.rstrip("\n") + ("\n" if head.strip() else "") + "\n".join(lines) + "\n" + out.getvalue()
    check.before_writing(stack, config_dir, text, f"rackctl new {stack}")
    outputs.write_file(path, text)
    pis = sum(s["count"] for s in config[f"{settings.NAMESPACE}:rpis"])
    lan = ipaddress.IPv4Network(lan_cidr) if lan_cidr else None
    return "\n".join([
        f"wrote {path.name}: jumphost {name} ({address}), {pis} Pis on {len(shelves)} shelves"
        + (f", LAN {lan}" if lan else "") + f", k3s {version}.",
        "Next:",
        f"  1. pin every host's SSH key (reaches the jumphost and, through it, the Pis): rackctl hostkeys {stack}",
        f"  2. set the secrets (README: Config): pulumi config set --secret skolo:k3sToken -s {stack} < k3s-node-token",
        f"     pulumi config set --secret skolo:sshPrivateKey -s {stack} < ~/.ssh/chrome-bot   ... and each service's",
        f"  3. rackctl check --strict --stacks {stack}",
        f"  4. rackctl render {stack}, then pulumi preview -s {stack} --diff",
    ])
