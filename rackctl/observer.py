"""`rackctl observer STACK --out FILE`: a read-only kubeconfig for one rack.

Mints a short-lived token for the rack's `observer` ServiceAccount (components/access.py) with
`kubectl create token` through an admin kubeconfig, and writes a 0600 kubeconfig around it
that points at the stack's API server URL. Short-lived tokens, not a long-lived Secret:
whoever holds one can read the rack (never its Secrets) until it expires.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import yaml

from rackctl import stackfiles

NAMESPACE = "skolo-access"
ACCOUNT = "observer"


class ObserverError(Exception):
    pass


def kubeconfig(*, rack: str, server: str, ca_data: str, token: str) -> str:
    user = f"{rack}-observer"
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": rack, "cluster": {"server": server, "certificate-authority-data": ca_data}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": user, "context": {"cluster": rack, "user": user}}],
        "current-context": user,
    }, sort_keys=False)


def observer(stack: str, out: Path, admin_kubeconfig: str, duration: str, config_dir: Path) -> str:
    if not re.match(r"^[0-9]+[hm]$", duration):
        raise ObserverError(f"--duration: expected hours or minutes like 8h or 30m, got {duration!r}")
    admin = yaml.safe_load(Path(admin_kubeconfig).read_text())
    try:
        ca_data = admin["clusters"][0]["cluster"]["certificate-authority-data"]
    except (KeyError, IndexError, TypeError):
        raise ObserverError(f"{admin_kubeconfig} has no cluster certificate-authority-data") from None
    try:
        result = subprocess.run(["kubectl", "--kubeconfig", admin_kubeconfig, "create", "token", ACCOUNT,
                                 "-n", NAMESPACE, f"--duration={duration}"], capture_output=True, text=True)
    except FileNotFoundError:
        raise ObserverError("kubectl is not installed") from None
    if result.returncode != 0:
        raise ObserverError(f"kubectl create token failed: {(result.stderr.strip().splitlines() or ['no output'])[-1]}")
    text = kubeconfig(rack=stack, server=stackfiles.settings_for(stack, config_dir).api_server, ca_data=ca_data,
                      token=result.stdout.strip())
    out.unlink(missing_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return f"wrote a read-only kubeconfig for {stack} to {out} (valid {duration}; context {stack}-observer)"
