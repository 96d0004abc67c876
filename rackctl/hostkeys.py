"""`rackctl hostkeys STACK`: pin the SSH host key of every host the rack reaches, in its stack file.

Trust on first use, made explicit, done once and visible in review: the jumphost's key is read
from the operator's machine (ssh-keyscan); every other host's (Pis, router, switches, power
strips) through the jumphost, over an SSH connection checked against that key, by ssh-keyscan
there. Each is written as `hostKey` into Pulumi.<stack>.yaml (comments and layout kept) for a pull
request. A key already pinned is never replaced: a host whose key changed was re-imaged or is an
impostor, and the operator decides which, in the file. Uses the operator's own SSH setup
(agent, ~/.ssh/config, --ssh-option), as `rackctl attach` does.
"""

from __future__ import annotations

import base64
import hashlib
import io
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence

from components import settings
from components.settings.hosts import Jumphost
from rackctl import check, stackfiles

PREFERENCE = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa")
KEYSCAN = ["ssh-keyscan", "-T", "5", "-t", "ed25519,ecdsa,rsa"]


class HostKeysError(Exception):
    pass


def best_keys(keyscan: str) -> dict[str, str]:
    """address -> the strongest 'type base64' key in ssh-keyscan's output."""
    found: dict[str, str] = {}
    for line in keyscan.splitlines():
        parts = line.split()
        if len(parts) < 3 or line.startswith("#") or parts[1] not in PREFERENCE:
            continue
        address = parts[0].split("]:")[0].lstrip("[")
        key = f"{parts[1]} {parts[2]}"
        if address not in found or PREFERENCE.index(parts[1]) < PREFERENCE.index(found[address].split()[0]):
            found[address] = key
    return found


def fingerprint(key: str) -> str:
    """The SHA256 fingerprint ssh shows for a key, to check against the host's console."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(base64.b64decode(key.split()[1])).digest()).decode().rstrip("=")


def _run(argv: list[str], what: str) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise HostKeysError(f"{argv[0]} is not installed (openssh-client)") from None
    if result.returncode != 0 and not result.stdout.strip():
        raise HostKeysError(f"{what} failed: {(result.stderr.strip().splitlines() or ['no output'])[-1]}")
    return result.stdout


def scan(jumphost: Jumphost, pinned_key: str | None, addresses: Sequence[str],
         ssh_options: Sequence[str]) -> tuple[str, dict[str, str]]:
    """The jumphost's key (pinned, or read now), and what the jumphost reads of `addresses`."""
    if pinned_key is None:
        pinned_key = _offered(jumphost)
        if pinned_key is None:
            raise HostKeysError(f"the jumphost {jumphost.address}:{jumphost.port} did not answer ssh-keyscan")
    if not addresses:
        return pinned_key, {}
    with tempfile.TemporaryDirectory(prefix="rackctl-hostkeys-") as tmp:
        known = Path(tmp) / "known_hosts"
        host = jumphost.address if jumphost.port == 22 else f"[{jumphost.address}]:{jumphost.port}"
        known.write_text(f"{host} {pinned_key}\n")
        try:
            out = _run(["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o",
                        f"UserKnownHostsFile={known}", *ssh_options, "-p", str(jumphost.port),
                        f"{jumphost.user}@{jumphost.address}", "--", *KEYSCAN, *addresses],
                       "ssh-keyscan on the jumphost")
        except HostKeysError as e:
            if "Host key verification failed" in str(e):
                raise HostKeysError(_pinned_jumphost_key_differs(jumphost, pinned_key)) from None
            raise
    return pinned_key, best_keys(out)


def _offered(jumphost: Jumphost) -> str | None:
    """The key the jumphost offers now, read from here (ssh-keyscan), or None when it does not answer."""
    keys = best_keys(_run(KEYSCAN + ["-p", str(jumphost.port), jumphost.address], "ssh-keyscan of the jumphost"))
    return keys.get(jumphost.address)


def _pinned_jumphost_key_differs(jumphost: Jumphost, pinned_key: str) -> str:
    """Say that the pinned key is the one that differs, with what the jumphost offers now."""
    try:
        now = _offered(jumphost)
    except HostKeysError:
        now = None
    return (f"the jumphost {jumphost.address} does not have the key pinned as {settings.NAMESPACE}:jumphost.hostKey "
            f"({fingerprint(pinned_key)})" + (f"; it offers {fingerprint(now)}" if now else "")
            + ". A key copied from another rack's stack file, or a reinstalled jumphost: check the key on its "
              "console, then delete hostKey and run rackctl hostkeys again. Nothing was read or written")


def pin(text: str, keys: dict[tuple[str, str], str], parsed: settings.Settings) -> str:
    """The stack file's text with hostKey set for each (what, name) in `keys`, nothing else touched."""
    y = stackfiles.stack_yaml()
    doc = y.load(text)
    config = doc["config"]
    ns = settings.NAMESPACE
    for (what, name), key in keys.items():
        if what == "jumphost":
            config[f"{ns}:jumphost"]["hostKey"] = key
        elif what == "Pi":
            for entry in config[f"{ns}:rpis"]:
                if "shelf" in entry and name in [f"{entry['shelf']}-{i:03d}" for i in range(
                        entry.get("start", 1), entry.get("start", 1) + entry["count"])]:
                    entry.setdefault("overrides", {}).setdefault(name, {})["hostKey"] = key
                elif entry.get("name") == name:
                    entry["hostKey"] = key
        else:
            service, kind = ("routerBackup", "devices") if "routerBackup" in what else ("powerCycle", what.split()[0])
            block = config.setdefault(f"{ns}:services", {}).setdefault(service, {})
            if kind not in block:  # the default router, which the stack file does not list yet
                block[kind] = [{"name": d.name, "address": d.address, "kind": d.kind, "user": d.user}
                               for d in parsed.services.router_backup.devices or ()]
            next(d for d in block[kind] if d["name"] == name)["hostKey"] = key
    out = io.StringIO()
    y.dump(doc, out)
    return out.getvalue()


def hostkeys(stack: str, config_dir: Path, ssh_options: Sequence[str], dry_run: bool, out=print) -> int:
    parsed = stackfiles.settings_for(stack, config_dir)
    hosts = parsed.ssh_hosts()
    jumphost_key, scanned = scan(parsed.jumphost, parsed.jumphost.host_key,
                                 sorted({address for what, _, address, _ in hosts if what != "jumphost"}), ssh_options)
    scanned[parsed.jumphost.address] = jumphost_key
    new, changed, silent, rsa_only = {}, [], [], []
    for what, name, address, pinned in hosts:
        seen = scanned.get(address)
        if seen is None:
            silent.append(f"{what} {name} ({address})")
        elif seen.startswith("ssh-rsa "):
            rsa_only.append(f"{what} {name} ({address})")
        elif pinned is None:
            new[(what, name)] = seen
            out(f"pin {what} {name} ({address}): {seen.split()[0]} {fingerprint(seen)}")
        elif pinned != seen:
            changed.append(f"{what} {name} ({address}) offers {fingerprint(seen)}, pinned {fingerprint(pinned)}")
    path = stackfiles.stack_path(config_dir, stack)
    if new:
        after = pin(stackfiles.read_text(path), new, parsed)
        check.before_writing(stack, config_dir, after, f"pinning {len(new)} host keys")
        if not dry_run:
            path.write_text(after)
        out(f"{'would pin' if dry_run else 'pinned'} {len(new)} host keys in {path.name}; review them in the pull "
            f"request (check fingerprints on a console where you can)")
    else:
        out("every host that answered is pinned already")
    for line in changed:
        out(f"KEY CHANGED, not replaced: {line}; if the host was re-imaged, delete its hostKey and run again")
    if silent:
        out(f"not reached (run again when they answer): {', '.join(silent)}")
    if rsa_only:
        out(f"not pinned, they offer only an ssh-rsa host key, which pulumi-command cannot use with OpenSSH 8.8 and "
            f"later (it would offer SHA-1 ssh-rsa): {', '.join(rsa_only)}; give each an ed25519 key (ssh-keygen -A "
            f"on the host), then run again")
    return 1 if changed or silent or rsa_only else 0
