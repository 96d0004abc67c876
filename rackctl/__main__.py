"""rackctl: the operator's tool for Skolo racks. `python -m rackctl --help`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from components.settings import ConfigError
from rackctl import program, render


def _render(args: argparse.Namespace) -> int:
    run = program.run_stack(args.stack, config_dir=Path(args.config_dir) if args.config_dir else None)
    out = Path(args.out) if args.out else Path("build") / args.stack
    written = render.write(run, out)
    print(render.summary(run, out, written))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rackctl", description="Operate Skolo racks: one Pulumi stack per rack (Pulumi.<rack>.yaml).")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "render", help="write what a stack would put on its rack (Kubernetes objects, host scripts)",
        description="Run the Pulumi program for STACK under the SDK's mock runtime (no Pulumi CLI, no "
                    "network, no secrets needed: missing secrets become marked placeholders) and write every "
                    "Kubernetes object and host script it declares under OUT, then print a summary.")
    p.add_argument("stack", help="stack (rack) name, e.g. rack1 for Pulumi.rack1.yaml")
    p.add_argument("--out", help="output directory, replaced on each run (default: build/STACK)")
    p.add_argument("--config-dir", help="directory with Pulumi.yaml and the stack files (default: the project)")
    p.set_defaults(func=_render)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, program.StackFileError) as e:
        print(f"rackctl: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
