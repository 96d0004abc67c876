"""`rackctl observer STACK --out FILE`: a read-only kubeconfig for one rack.

Mints a short-lived token for the rack's `observer` ServiceAccount (components/access.py) with
`kubectl create token` through an admin kubeconfig, and writes a 0600 kubeconfig around it
that points at the stack's API server URL. Short-lived tokens, not a long-lived Secret:
whoever holds one can read the rack (never its Secrets) until it expires.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import yaml

from rackctl import kubeconfigs, outputs, stackfiles

NAMESPACE = "skolo-access"
ACCOUNT = "observer"


class ObserverError(Exception):
    pass


MARKER = "# written by rackctl observer"


def kubeconfig(*, rack: str, server: str, ca_data: str, token: str) -> str:
    user = f"{rack}-observer"
    return f"{MARKER}: a read-only kubeconfig for {rack}; the next one replaces it\n" + yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": rack, "cluster": {"server": server, "certificate-authority-data": ca_data}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": user, "context": {"cluster": rack, "user": user}}],
        "current-context": user,
    }, sort_keys=False)


def observer(stack: str, out: str, admin_kubeconfig: Optional[str], duration: str, config_dir: Path) -> str:
    """Every input is checked before the token is minted: the duration, the stack, --out (a new
    file, or a kubeconfig this command wrote), and the admin kubeconfig (this rack's)."""
    if not re.match(r"^[0-9]+[hm]$", duration):
        raise ObserverError(f"--duration: expected hours or minutes like 8h or 30m, got {duration!r}")
    server = stackfiles.settings_for(stack, config_dir).api_server
    path = outputs.file_path("--out", out, lambda p: (outputs.head(p, 256) or "").startswith(MARKER),
                             "rackctl observer")
    admin = kubeconfigs.for_rack(stack, admin_kubeconfig, missing="pass --kubeconfig, or run inside `rackctl attach "
                                 f"{stack} -- ...`", refusing=f"mint {stack}'s observer token on another rack")
    try:
        ca_data = yaml.safe_load(Path(admin).read_text())["clusters"][0]["cluster"]["certificate-authority-data"]
    except (KeyError, IndexError, TypeError, yaml.YAMLError, UnicodeDecodeError):
        raise ObserverError(f"{admin} has no cluster certificate-authority-data") from None
    token = kubeconfigs.kubectl(admin, "create", "token", ACCOUNT, "-n", NAMESPACE, f"--duration={duration}").strip()
    outputs.write_file(path, kubeconfig(rack=stack, server=server, ca_data=ca_data, token=token), mode=0o600)
    return f"wrote a read-only kubeconfig for {stack} to {out} (valid {duration}; context {stack}-observer)"
