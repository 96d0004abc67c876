"""rackctl: the operator's tool for Skolo racks. `rackctl --help`. The arguments are declared in
arguments.py; here each command's handler calls the module that does the work."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from components.settings import ConfigError
from rackctl import arguments, outputs, program, render, stackfiles

def _config_dir(args: argparse.Namespace) -> Path:
    if args.config_dir is None:
        return stackfiles.PROJECT_DIR
    path = Path(args.config_dir)
    if not path.is_dir():
        raise stackfiles.StackFileError(f"--config-dir {args.config_dir}: no such directory")
    if not (path / "Pulumi.yaml").is_file():
        raise stackfiles.StackFileError(f"--config-dir {args.config_dir} has no Pulumi.yaml; give the project's "
                                        f"directory")
    return path


def _render(args: argparse.Namespace) -> int:
    run = program.run_stack(args.stack, config_dir=_config_dir(args))
    out = outputs.directory_path("--out", args.out) if args.out is not None else Path("build") / args.stack
    written = render.write(run, out)
    print(render.summary(run, out, written))
    return 0


def _new(args: argparse.Namespace) -> int:
    from rackctl import new

    print(new.new(args.stack, _config_dir(args), args.jumphost_name, args.jumphost_address, args.lan_cidr, args.shelf,
                  args.k3s_version))
    return 0


def _check(args: argparse.Namespace) -> int:
    from rackctl import check

    names = args.stacks if args.stacks else stackfiles.stacks(_config_dir(args))
    lines, ok = check.check(names, _config_dir(args), args.strict)
    print("\n".join(lines))
    return 0 if ok else 1


def _diff(args: argparse.Namespace) -> int:
    from rackctl import diff

    repo = _config_dir(args)
    diffs = diff.run(repo, args.base, args.head)
    if args.changed_stacks:
        print(json.dumps([d.stack for d in diffs if not d.empty]))
    elif args.format == "markdown":
        print(diff.as_markdown(diffs, "What this change does to the racks (rackctl diff)"))
    else:
        print(diff.as_text(diffs), end="")
    if any(d.error for d in diffs):
        return 2
    return 1 if args.exit_code and any(not d.empty for d in diffs) else 0


def _attach(args: argparse.Namespace) -> int:
    from rackctl import attach

    return attach.attach(args.stack, args.command, _config_dir(args), args.kubeconfig, args.ssh_option,
                         kubeconfig=not args.no_kubeconfig, stack_key=args.key_from_stack)


def _push(args: argparse.Namespace) -> int:
    from rackctl import push

    config_dir = _config_dir(args)
    if args.all == bool(args.stacks):
        raise push.PushError("name the stacks with --stacks rack1,rack2, or use --all")
    names = stackfiles.stacks(config_dir) if args.all else args.stacks
    return push.push(args.service, args.image, names, config_dir, args.dry_run, args.up)


def _observer(args: argparse.Namespace) -> int:
    from rackctl import observer

    print(observer.observer(args.stack, args.out, args.kubeconfig or os.environ.get("KUBECONFIG"), args.duration,
                            _config_dir(args)))
    return 0


def _schema(args: argparse.Namespace) -> int:
    from rackctl import options_doc, schema

    root = _config_dir(args)
    generated = {root / "Pulumi.yaml": schema.render(root / "Pulumi.yaml"),
                 root / options_doc.DOC: options_doc.services_markdown()}
    if args.write:
        for path, text in generated.items():
            path.parent.mkdir(exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(root)}")
    elif args.check:
        stale = [path for path, text in generated.items() if not path.is_file() or path.read_text() != text]
        for path in stale:
            print(f"rackctl: {path.relative_to(root)} differs from the settings models; run: rackctl schema --write",
                  file=sys.stderr)
        if stale:
            return 1
        print("Pulumi.yaml and docs/services.md match the settings models")
    else:
        print(generated[root / "Pulumi.yaml"], end="")
    return 0


def _hostkeys(args: argparse.Namespace) -> int:
    from rackctl import hostkeys

    return hostkeys.hostkeys(args.stack, _config_dir(args), args.ssh_option, args.dry_run)


def _status(args: argparse.Namespace) -> int:
    from rackctl import status_cli

    return status_cli.run(args.stack, _config_dir(args), args.kubeconfig or os.environ.get("KUBECONFIG"),
                          args.format, args.out, args.watch, args.interval)


def _drift(args: argparse.Namespace) -> int:
    from datetime import datetime, timezone

    from rackctl import drift

    missing: list[str] = []

    def read(option: str, path: str) -> str:
        try:
            return Path(path).read_text(errors="replace")
        except OSError as e:
            missing.append(f"{option} {path} ({e.strerror.lower() if e.strerror else 'unreadable'})")
            return ""

    env = os.environ
    run_url = (f"{env['GITHUB_SERVER_URL']}/{env['GITHUB_REPOSITORY']}/actions/runs/{env['GITHUB_RUN_ID']}"
               if all(env.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")) else "a local run")
    preview, status = read("--preview", args.preview), read("--status", args.status)
    code, said = drift.report(args.stack, preview, args.preview_code, status, args.status_code,
                              datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                              None if args.dry_run else drift.github_from_env(), run_url, missing)
    print(said)
    return code


def _stacks(args: argparse.Namespace) -> int:
    names = stackfiles.canary_order(stackfiles.stacks(_config_dir(args)), _config_dir(args))
    print(json.dumps(names) if args.json else "\n".join(names))
    return 0


HANDLERS = {"new": _new, "render": _render, "check": _check, "diff": _diff, "attach": _attach, "push": _push,
            "observer": _observer, "hostkeys": _hostkeys, "schema": _schema, "status": _status, "drift": _drift,
            "stacks": _stacks}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after `--` is attach's COMMAND, untouched (argparse mangles it under subcommands).
    trailing: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, trailing = argv[:cut], argv[cut + 1:]
    p = arguments.parser()
    args = p.parse_args(argv)
    if trailing and args.command_name != "attach":
        p.error("only attach takes a command after --")
    args.command = trailing
    from rackctl.attach import AttachError
    from rackctl.check import CheckError
    from rackctl.diff import DiffError
    from rackctl.hostkeys import HostKeysError
    from rackctl.observer import ObserverError
    from rackctl.push import PushError
    from rackctl.drift import DriftError
    from rackctl.kubeconfigs import KubeconfigError
    from rackctl.new import NewError
    from rackctl.outputs import OutputError

    try:
        return HANDLERS[args.command_name](args)
    except (ConfigError, stackfiles.StackFileError, AttachError, DiffError, HostKeysError, PushError,
            ObserverError, render.RenderError, KubeconfigError, OutputError, DriftError,
            NewError, CheckError) as e:
        print(f"rackctl: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (`rackctl check | head`): nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:  # Ctrl-C outside the commands that handle it themselves (attach, status --watch)
        print("rackctl: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
