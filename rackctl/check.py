"""`rackctl check`: every stack file through the same settings layer and program, for CI.

A stack passes when the program runs to the end under the mock runtime with its config.
Secrets the stack file does not hold (encrypted) are reported as warnings: `pulumi up` would
stop on them, but a repository of example stacks has none by design. `--strict` makes them
errors.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from components import settings
from components.settings import ConfigError
from rackctl import program


def missing_secrets(stack: str, config_dir: Path, parsed: settings.Settings) -> list[str]:
    doc = yaml.safe_load((config_dir / f"Pulumi.{stack}.yaml").read_text()) or {}
    present = {k.split(":", 1)[1] for k, v in (doc.get("config") or {}).items()
               if k.startswith(f"{settings.NAMESPACE}:") and isinstance(v, dict) and "secure" in v}
    return [s.key for s in settings.SECRETS if s.needed(parsed) and s.key not in present]


def check(names: list[str], config_dir: Path, strict: bool) -> tuple[list[str], bool]:
    """Report lines and whether every stack passed."""
    lines, ok = [], True
    for stack in names:
        try:
            run = program.run_stack(stack, config_dir=config_dir)
            parsed = program.settings_for(stack, config_dir)
        except ConfigError as e:
            lines.append(f"{stack}: FAILED\n" + "\n".join(f"  {p}" for p in e.problems))
            ok = False
            continue
        enabled = [s for s in settings.SERVICES if parsed.enabled(s)]
        lines.append(f"{stack}: ok ({len(parsed.node_names)} nodes, {len(run.resources)} resources, "
                     f"services: {', '.join(enabled) or 'none'})")
        missing = missing_secrets(stack, config_dir, parsed)
        if missing:
            level = "error" if strict else "warning"
            lines.append(f"  {level}: secrets not set in Pulumi.{stack}.yaml: "
                         f"{', '.join(f'{settings.NAMESPACE}:{k}' for k in missing)}; "
                         f"set each with: pulumi config set --secret KEY -s {stack}")
            ok = ok and not strict
    return lines, ok
