"""The one check every command makes before it uses a kubeconfig against a rack: there is one,
it is a file, and it is for that rack (its current context's cluster is named after the stack,
as `rackctl attach` and the stack's kubeconfig output name it). And kubectl, run with it, its
failures said in one line that never quotes the kubeconfig (it holds client keys).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Optional

# How kubectl says the API server did not answer (refused, timed out, no route, no name).
_UNREACHABLE = ("Unable to connect to the server", "was refused", "connection refused", "i/o timeout",
                "no such host", "context deadline exceeded", "dial tcp", "no route to host")


class KubeconfigError(Exception):
    """A kubeconfig that cannot be used for this rack, or kubectl failing with it: one line, exit 2."""


def kubectl(kubeconfig: str, *args: str, timeout: float = 60) -> str:
    """kubectl's stdout, or a KubeconfigError saying in one line why it failed."""
    try:
        result = subprocess.run(["kubectl", "--kubeconfig", kubeconfig, *args], capture_output=True, text=True,
                                timeout=timeout)
    except FileNotFoundError:
        raise KubeconfigError("kubectl is not installed") from None
    except subprocess.TimeoutExpired:
        raise KubeconfigError(f"kubectl did not answer within {timeout:g}s") from None
    if result.returncode != 0:
        line = (result.stderr.strip().splitlines() or ["no output"])[-1]
        if "Forbidden" in line or "Unauthorized" in line:
            raise KubeconfigError(f"the kubeconfig may not read the rack: {line}")
        if any(s in line for s in _UNREACHABLE):
            raise KubeconfigError(f"cannot reach the API server: {line}")
        raise KubeconfigError(f"kubectl {' '.join(args[:2])} failed: {line}")
    return result.stdout


def for_rack(stack: str, kubeconfig: Optional[str], missing: str, refusing: str) -> str:
    """`kubeconfig`, once it is a file whose current cluster is `stack`. `missing` says where to
    get one; `refusing` what would go wrong with another rack's."""
    if not kubeconfig:
        raise KubeconfigError(f"no kubeconfig: {missing}")
    path = Path(kubeconfig)
    if path.is_dir():
        raise KubeconfigError(f"kubeconfig {kubeconfig} is a directory, not a kubeconfig file")
    if not path.is_file():
        raise KubeconfigError(f"kubeconfig {kubeconfig}: no such file")
    cluster = kubectl(kubeconfig, "config", "view", "--minify", "-o",
                      "jsonpath={.contexts[0].context.cluster}").strip()
    if cluster != stack:
        raise KubeconfigError(f"the kubeconfig is for cluster {cluster!r}, not {stack!r}; refusing to {refusing}")
    return kubeconfig
