"""`rackctl check`: every stack file through the same settings layer and program, for CI; and the
same check of a stack file's new text before a command (push, hostkeys, new) writes it.

A stack passes when the program runs to the end under the mock runtime with its config. A stack
file that cannot be read fails alone; the others are still checked. Secrets the stack file does
not hold (encrypted) and hosts without a pinned SSH host key are warnings; `--strict` (what CI
runs before a deploy) makes them errors. Every failure states its reason, and the last line
names each failed stack with its first reason, so a summary never stands alone.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Optional

from components import settings
from components.settings import ConfigError
from rackctl import program, stackfiles


class CheckError(Exception):
    """A stack file's new text would fail `rackctl check`; nothing was written."""


def missing_secrets(stack: str, config_dir: Path, parsed: settings.Settings) -> list[str]:
    ours = f"{settings.NAMESPACE}:"
    present = {k.removeprefix(ours) for k, v in stackfiles.read_stack_file(stackfiles.stack_path(config_dir, stack)).items()
               if k.startswith(ours) and isinstance(v, dict) and "secure" in v}
    return [s.key for s in settings.SECRETS if s.needed(parsed) and s.key not in present]


def unpinned(parsed: settings.Settings) -> list[str]:
    return [f"{what} {name} ({address})" for what, name, address, key in parsed.ssh_hosts() if not key]


def problems(stack: str, config_dir: Path) -> tuple[list[str], Optional[settings.Settings], str]:
    """Why `stack` fails (empty when it passes); when it passes, its settings and its ok line."""
    try:
        run = program.run_stack(stack, config_dir=config_dir)
        parsed = stackfiles.settings_for(stack, config_dir)
    except ConfigError as e:
        return list(e.problems), None, ""
    except stackfiles.StackFileError as e:
        return [str(e)], None, ""
    enabled = [s for s in settings.SERVICES if parsed.enabled(s)]
    return [], parsed, (f"{stack}: ok ({len(parsed.node_names)} nodes, {len(run.resources)} resources, "
                        f"services: {', '.join(enabled) or 'none'})")


def check(names: list[str], config_dir: Path, strict: bool) -> tuple[list[str], bool]:
    """Report lines and whether every stack passed."""
    lines: list[str] = []
    failed: dict[str, str] = {}
    level = "error" if strict else "warning"
    for stack in names:
        found, parsed, ok_line = problems(stack, config_dir)
        if found or parsed is None:
            if len(found) == 1:
                lines.append(f"{stack}: FAILED: {found[0]}")
            else:
                lines.append(f"{stack}: FAILED, {len(found)} problems:")
                lines.extend(f"  {p}" for p in found)
            failed[stack] = found[0]
            continue
        lines.append(ok_line)
        said = []
        if missing := missing_secrets(stack, config_dir, parsed):
            said.append(f"secrets not set in {stackfiles.stack_path(config_dir, stack).name}: "
                        f"{', '.join(f'{settings.NAMESPACE}:{k}' for k in missing)}; "
                        f"set each with: pulumi config set --secret KEY -s {stack}")
        if hosts := unpinned(parsed):
            said.append(f"{len(hosts)} hosts without a pinned hostKey, so whatever answers at their address gets "
                        f"the rack's keys: {', '.join(hosts)}; pin them with: rackctl hostkeys {stack}")
        lines.extend(f"  {level}: {s}" for s in said)
        if strict and said:
            failed[stack] = f"{said[0].split(':', 1)[0]} (--strict)"  # the detail is in its lines above
    if failed:
        lines.append(f"check: {len(failed)} of {len(names)} stacks failed: "
                     + "; ".join(f"{stack}: {reason}" for stack, reason in failed.items()))
    return lines, not failed


def before_writing(stack: str, config_dir: Path, text: str, what: str) -> None:
    """Refuse, in one line naming each key and value, `text` as stack's new file when `rackctl
    check` would fail it. Checked in a private copy of the project's config (Pulumi.yaml and that
    one file), so nothing in `config_dir` is touched. `what` says what would have been written."""
    with tempfile.TemporaryDirectory(prefix="rackctl-check-") as tmp:
        shutil.copyfile(config_dir / "Pulumi.yaml", Path(tmp) / "Pulumi.yaml")
        path = stackfiles.stack_path(Path(tmp), stack)
        path.write_text(text)
        found, _, _ = problems(stack, Path(tmp))
    if found:
        raise CheckError(f"{what} would make {path.name} fail rackctl check, so nothing was written: "
                         + "; ".join(found))
