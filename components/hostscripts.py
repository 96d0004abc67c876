"""Host scripts: the shell that pulumi-command runs on the jumphost, and the bundle of scripts the
jumphost runs for the Pis.

The scripts themselves are files under components/scripts/, short, `set -eu` and idempotent.
`script()` is the one small pure function that makes a runnable script from a file: a shebang,
the parameters as quoted shell assignments, then the file. Parameters are never secrets:
secrets reach hosts only on stdin, so a script's text is safe to show in a preview diff, in
an error and in `rackctl render`.

The Pis' scripts are not sent with every Pi's command: they travel once, as a `Bundle` the
jumphost keeps under /var/lib/skolo/bundle/<hash>, and each Pi's command is a short call into it
(`Bundle.call`) that names the bundle's hash, so a change to any of them reaches every Pi.

`HostScript.command` is what pulumi-command sends: `sudo -n sh -c '<script>' <name>` (or plain
`sh -c` for scripts that need no root). `sudo -n` fails at once instead of prompting when the
SSH user lacks passwordless sudo. `unwrap()` turns a command back into its script for render
and the tests.
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import io
import re
import shlex
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Union

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
        lines.append(f"{key}={shlex.quote(_param(key, value))}")
    return HostScript(name=name, text="\n".join(lines) + "\n" + body, root=root)


def unwrap(command: str) -> HostScript:
    """The HostScript inside a command made by `HostScript.command`."""
    words = shlex.split(command)
    for prefix, root in ((_ROOT_PREFIX, True), (_USER_PREFIX, False)):
        n = len(prefix)
        if words[:n] == prefix and len(words) == n + 2 and words[n + 1].startswith("skolo-"):
            return HostScript(name=words[n + 1][len("skolo-"):], text=words[n], root=root)
    raise ValueError(f"not a skolo host script command: {command[:60]!r}")


# --- the bundle: the scripts the jumphost runs for the Pis, shipped once ---------------------

BUNDLE_SOURCES = SCRIPTS_DIR / "bundle"
BUNDLES = "/var/lib/skolo/bundle"
# Scripts that run on the Pis, sent there by the bundle's own scripts.
PI_SCRIPTS = ("k3s-install", "rpi-cgroups")


@dataclass(frozen=True)
class Bundle:
    """The bundle's files by name: its scripts and the rack's settings (rack.env)."""

    files: tuple[tuple[str, str], ...]

    @functools.cached_property
    def hash(self) -> str:
        """The bundle's content: every change to a script or a setting changes it (computed once:
        every Pi's call names it)."""
        digest = hashlib.sha256()
        for name, text in self.files:
            digest.update(f"{name}\0{len(text)}\0{text}".encode())
        return digest.hexdigest()[:16]

    def archive(self) -> bytes:
        """A tar.gz that is byte-for-byte the same for the same content."""
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, text in self.files:
                data = text.encode()
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(data), 0o755 if name == "run" else 0o644, 0
                tar.addfile(info, io.BytesIO(data))
        return gzip.compress(raw.getvalue(), mtime=0)

    def call(self, script: str, params: Mapping[str, Union[str, int]], current: bool = False) -> str:
        """`sudo -n <bundle>/run SCRIPT KEY=VALUE...`: this bundle's, or whichever is current on the
        jumphost (for a delete, which runs long after the bundle it was declared with)."""
        where = f"{BUNDLES}/{'current' if current else self.hash}/run"
        return shlex.join(["sudo", "-n", where, script, *(f"{k}={_param(k, v)}" for k, v in params.items())])


def _param(key: str, value: Union[str, int]) -> str:
    if not _PARAM.match(key):
        raise ValueError(f"script parameter {key!r} must be an upper-case shell name")
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise TypeError(f"script parameter {key} must be a string or an int, got {type(value).__name__}")
    return str(value)


def bundle(settings: Mapping[str, Union[str, int]]) -> Bundle:
    """The bundle: its own scripts, the Pi scripts they send, and `settings` as rack.env."""
    files = {p.name: p.read_text() for p in sorted(BUNDLE_SOURCES.iterdir()) if p.is_file()}
    files.update({f"{name}.sh": (SCRIPTS_DIR / f"{name}.sh").read_text() for name in PI_SCRIPTS})
    files["rack.env"] = "# The rack's settings for the bundle's scripts (components/fleet.py).\n" + "".join(
        f"{k}={shlex.quote(_param(k, v))}\n" for k, v in settings.items())
    return Bundle(tuple(sorted(files.items())))


def unbundle(archive_base64: str) -> dict[str, str]:
    """The files of a bundle archive as a jumphost receives it (render shows them)."""
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(base64.b64decode(archive_base64)))) as tar:
        return {m.name: _read(tar, m) for m in tar.getmembers()}


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo) -> str:
    data = tar.extractfile(member)
    if data is None:
        raise ValueError(f"bundle member {member.name!r} is not a regular file")
    return data.read().decode()


def unwrap_call(command: str) -> tuple[str, str, dict[str, str]]:
    """(bundle directory, script, parameters) of a command made by `Bundle.call`."""
    words = shlex.split(command)
    if words[:2] != ["sudo", "-n"] or not words[2].startswith(BUNDLES + "/") or not words[2].endswith("/run"):
        raise ValueError(f"not a skolo bundle call: {command[:60]!r}")
    return words[2][:-len("/run")], words[3], dict(w.split("=", 1) for w in words[4:])
