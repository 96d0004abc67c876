"""Host scripts: the shell that pulumi-command runs on the jumphost and the Pis.

The scripts themselves are files under components/scripts/, short, `set -eu` and idempotent.
`script()` is the one small pure function that makes a runnable script from a file: a shebang,
the parameters as quoted shell assignments, then the file. Parameters are never secrets:
secrets reach hosts only on stdin, so a script's text is safe to show in a preview diff, in
an error and in `rackctl render`.

`HostScript.command` is what pulumi-command sends: `sudo -n sh -c '<script>' <name>` (or plain
`sh -c` for scripts that need no root). `sudo -n` fails at once instead of prompting when the
SSH user lacks passwordless sudo. `unwrap()` turns a command back into its script for render
and the tests.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Union

SCRIPTS_DIR = Path(__file__).parent / "scripts"

# Where the join token lives on every node; config.yaml points k3s at it with token-file.
K3S_TOKEN_FILE = "/etc/rancher/k3s/skolo-token"

_PARAM = re.compile(r"^[A-Z][A-Z0-9_]*$")
_ROOT_PREFIX = ["sudo", "-n", "sh", "-c"]
_USER_PREFIX = ["sh", "-c"]


@dataclass(frozen=True)
class HostScript:
    name: str
    """File stem under components/scripts/, also $0 of the running script."""
    text: str
    """The complete script: shebang, parameters, body."""
    root: bool = True
    """Run through `sudo -n`."""

    @property
    def command(self) -> str:
        prefix = _ROOT_PREFIX if self.root else _USER_PREFIX
        return shlex.join(prefix + [self.text, f"skolo-{self.name}"])


def script(name: str, *, root: bool = True, **params: Union[str, int]) -> HostScript:
    """The script file `name`.sh with `params` assigned before its first line."""
    body = (SCRIPTS_DIR / f"{name}.sh").read_text()
    lines = ["#!/bin/sh", f"# skolo host script {name} (components/scripts/{name}.sh)"]
    for key, value in params.items():
        if not _PARAM.match(key):
            raise ValueError(f"script parameter {key!r} must be an upper-case shell name")
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            raise TypeError(f"script parameter {key} must be a string or an int, got {type(value).__name__}")
        lines.append(f"{key}={shlex.quote(str(value))}")
    return HostScript(name=name, text="\n".join(lines) + "\n" + body, root=root)


def unwrap(command: str) -> HostScript:
    """The HostScript inside a command made by `HostScript.command`."""
    words = shlex.split(command)
    for prefix, root in ((_ROOT_PREFIX, True), (_USER_PREFIX, False)):
        n = len(prefix)
        if words[:n] == prefix and len(words) == n + 2 and words[n + 1].startswith("skolo-"):
            return HostScript(name=words[n + 1][len("skolo-"):], text=words[n], root=root)
    raise ValueError(f"not a skolo host script command: {command[:60]!r}")
