"""`rackctl check`: every stack file through the same settings layer and program, for CI.

A stack passes when the program runs to the end under the mock runtime with its config. A stack
file that cannot be read fails alone; the others are still checked. Secrets the stack file does
not hold (encrypted) and hosts without a pinned SSH host key are warnings; `--strict` (what CI
runs before a deploy) makes them errors.
"""

from __future__ import annotations

from pathlib import Path

from components import settings
from components.settings import ConfigError
from rackctl import program, stackfiles


def missing_secrets(stack: str, config_dir: Path, parsed: settings.Settings) -> list[str]:
    present = {k.split(":", 1)[1] for k, v in stackfiles.read_stack_file(config_dir / f"Pulumi.{stack}.yaml").items()
               if k.startswith(f"{settings.NAMESPACE}:") and isinstance(v, dict) and "secure" in v}
    return [s.key for s in settings.SECRETS if s.needed(parsed) and s.key not in present]


def unpinned(parsed: settings.Settings) -> list[str]:
    return [f"{what} {name} ({address})" for what, name, address, key in parsed.ssh_hosts() if not key]


def check(names: list[str], config_dir: Path, strict: bool) -> tuple[list[str], bool]:
    """Report lines and whether every stack passed."""
    lines, ok = [], True
    level = "error" if strict else "warning"
    for stack in names:
        try:
            run = program.run_stack(stack, config_dir=config_dir)
            parsed = stackfiles.settings_for(stack, config_dir)
        except ConfigError as e:
            lines.append(f"{stack}: FAILED\n" + "\n".join(f"  {p}" for p in e.problems))
            ok = False
            continue
        except stackfiles.StackFileError as e:
            lines.append(f"{stack}: FAILED\n  {e}")
            ok = False
            continue
        enabled = [s for s in settings.SERVICES if parsed.enabled(s)]
        lines.append(f"{stack}: ok ({len(parsed.node_names)} nodes, {len(run.resources)} resources, "
                     f"services: {', '.join(enabled) or 'none'})")
        if missing := missing_secrets(stack, config_dir, parsed):
            lines.append(f"  {level}: secrets not set in Pulumi.{stack}.yaml: "
                         f"{', '.join(f'{settings.NAMESPACE}:{k}' for k in missing)}; "
                         f"set each with: pulumi config set --secret KEY -s {stack}")
        if hosts := unpinned(parsed):
            lines.append(f"  {level}: {len(hosts)} hosts without a pinned hostKey, so whatever answers at their "
                         f"address gets the rack's keys: {', '.join(hosts)}; pin them with: rackctl hostkeys {stack}")
        ok = ok and not (strict and (missing or hosts))
    return lines, ok
