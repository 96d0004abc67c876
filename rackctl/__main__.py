"""rackctl: the operator's tool for Skolo racks. `python -m rackctl --help`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from components.settings import ConfigError
from rackctl import program, render, stackfiles

DESCRIPTION = """\
Operate Skolo racks: one Pulumi stack per rack (Pulumi.<rack>.yaml).

  render STACK          what a stack would put on its rack, as files (offline, no secrets)
  check                 validate every stack file, for CI
  diff [BASE] [HEAD]    what a change does to every rack: a diff of two renders (offline)
  attach STACK [-- CMD] a shell whose kubectl talks to one rack, through an SSH tunnel
  push SERVICE IMAGE    pin a new image in the stack files and roll it out, canary first
  observer STACK        a read-only kubeconfig (short-lived token) for one rack
  stacks                the stacks in canary order (smallest rack first)
  hostkeys STACK        pin every host's SSH host key in the stack file (trust on first use, once)
  schema                Pulumi.yaml's config block, generated from the settings models
  status STACK          the live rack held against its code: a map per shelf (text, JSON, HTML)
  drift STACK           the nightly drift check's verdict, kept as one GitHub issue per stack
"""


def _config_dir(args: argparse.Namespace) -> Path:
    return Path(args.config_dir) if args.config_dir else stackfiles.PROJECT_DIR


def _render(args: argparse.Namespace) -> int:
    run = program.run_stack(args.stack, config_dir=_config_dir(args))
    out = Path(args.out) if args.out else Path("build") / args.stack
    written = render.write(run, out)
    print(render.summary(run, out, written))
    return 0


def _check(args: argparse.Namespace) -> int:
    from rackctl import check

    names = args.stacks.split(",") if args.stacks else stackfiles.stacks(_config_dir(args))
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

    return attach.attach(args.stack, args.command, _config_dir(args), args.kubeconfig, args.ssh_option)


def _push(args: argparse.Namespace) -> int:
    from rackctl import push

    config_dir = _config_dir(args)
    if args.all == bool(args.stacks):
        raise push.PushError("name the stacks with --stacks rack1,rack2, or use --all")
    names = stackfiles.stacks(config_dir) if args.all else args.stacks.split(",")
    return push.push(args.service, args.image, names, config_dir, args.dry_run, args.up)


def _observer(args: argparse.Namespace) -> int:
    from rackctl import observer

    admin = args.kubeconfig or os.environ.get("KUBECONFIG")
    if not admin:
        raise observer.ObserverError("no admin kubeconfig: pass --kubeconfig, or run inside rackctl attach")
    print(observer.observer(args.stack, Path(args.out), admin, args.duration, _config_dir(args)))
    return 0


def _schema(args: argparse.Namespace) -> int:
    from rackctl import schema

    project = _config_dir(args) / "Pulumi.yaml"
    wanted = schema.render(project)
    if args.write:
        project.write_text(wanted)
        print(f"wrote the config block of {project}")
    elif args.check:
        if project.read_text() != wanted:
            print(f"rackctl: {project} differs from the settings models; run: rackctl schema --write", file=sys.stderr)
            return 1
        print(f"{project} matches the settings models")
    else:
        print(wanted, end="")
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

    def read(path: str) -> str:
        try:
            return Path(path).read_text(errors="replace")
        except OSError:
            return ""

    env = os.environ
    run_url = (f"{env['GITHUB_SERVER_URL']}/{env['GITHUB_REPOSITORY']}/actions/runs/{env['GITHUB_RUN_ID']}"
               if all(env.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")) else "a local run")
    code, said = drift.report(args.stack, read(args.preview), args.preview_code, read(args.status), args.status_code,
                              datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                              None if args.dry_run else drift.github_from_env(), run_url)
    print(said)
    return code


def _stacks(args: argparse.Namespace) -> int:
    names = stackfiles.canary_order(stackfiles.stacks(_config_dir(args)), _config_dir(args))
    print(json.dumps(names) if args.json else "\n".join(names))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rackctl", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-dir", help="directory with Pulumi.yaml and the stack files (default: this project)")
    sub = p.add_subparsers(dest="command_name", required=True, metavar="COMMAND")

    r = sub.add_parser("render", help="write what a stack would put on its rack",
                       description="Run the Pulumi program for STACK under the SDK's mock runtime (no Pulumi CLI, "
                                   "no network, no secrets needed: missing secrets become marked placeholders) and "
                                   "write every Kubernetes object and host script it declares under OUT, then print "
                                   "a summary.")
    r.add_argument("stack", help="stack (rack) name, e.g. rack1 for Pulumi.rack1.yaml")
    r.add_argument("--out", help="output directory: new, empty, or one an earlier render wrote (whose files it "
                                 "replaces; nothing else is touched) (default: build/STACK)")
    r.set_defaults(func=_render)

    c = sub.add_parser("check", help="validate every stack file (for CI)",
                       description="Run every stack's config through the settings layer and the program. Exits 1 "
                                   "when a stack has a config problem. Secrets missing from a stack file are "
                                   "warnings (errors with --strict).")
    c.add_argument("--stacks", help="comma-separated stacks (default: all)")
    c.add_argument("--strict", action="store_true", help="a secret missing from a stack file is an error")
    c.set_defaults(func=_check)

    d = sub.add_parser("diff", help="diff what two revisions put on every rack",
                       description="Render every stack at BASE (default: the merge-base of HEAD and origin/main, or "
                                   "main where there is no remote) and at HEAD "
                                   "(default: the working tree) with the current renderer and print a unified diff "
                                   "per stack: objects and host scripts added, removed and changed. No credentials, "
                                   "no network, never a secret.")
    d.add_argument("base", nargs="?", help="git revision to compare against")
    d.add_argument("head", nargs="?", help="git revision to compare (default: the working tree)")
    d.add_argument("--format", choices=("text", "markdown"), default="text",
                   help="markdown for a job summary or PR comment")
    d.add_argument("--changed-stacks", action="store_true", help="print only a JSON list of the stacks that change")
    d.add_argument("--exit-code", action="store_true", help="exit 1 when anything changes")
    d.set_defaults(func=_diff)

    a = sub.add_parser("attach", help="a shell whose kubectl talks to one rack",
                       usage="rackctl attach [-h] [--kubeconfig FILE] [--ssh-option OPT] STACK [-- COMMAND [ARG...]]",
                       description="Take STACK's kubeconfig (pulumi stack output --show-secrets kubeconfig, or "
                                   "--kubeconfig FILE), open an SSH port-forward to the jumphost's API server on a "
                                   "free local port, write a private 0600 KUBECONFIG pointing at it and run COMMAND "
                                   "(default: an interactive shell). The tunnel and the file are removed on exit, "
                                   "also on Ctrl-C.")
    a.add_argument("stack")
    a.add_argument("--kubeconfig", help="kubeconfig file instead of the stack output")
    a.add_argument("--ssh-option", action="append", default=[], metavar="OPT",
                   help="extra ssh argument, e.g. --ssh-option=-i --ssh-option=~/.ssh/chrome-bot (repeatable)")
    a.set_defaults(func=_attach)

    u = sub.add_parser("push", help="pin a new image in the stack files and roll it out",
                       description="Set skolo:images.SERVICE to IMAGE in the chosen stack files (comments and "
                                   "layout kept), show the diff, then print (or with --up run) `pulumi up -s STACK` "
                                   "for each, smallest rack first, stopping at the first failure.")
    u.add_argument("service", help="image key: metadata, alertToPubsub, powerCycle, swarming, prometheus, ...")
    u.add_argument("image", help="pinned image reference, e.g. gcr.io/skia-public/metadata:2025-...-clean")
    u.add_argument("--stacks", help="comma-separated stacks")
    u.add_argument("--all", action="store_true", help="every stack")
    u.add_argument("--dry-run", action="store_true", help="show the change, write nothing, run nothing")
    u.add_argument("--up", action="store_true", help="run the pulumi up commands")
    u.set_defaults(func=_push)

    o = sub.add_parser("observer", help="write a read-only kubeconfig for one rack",
                       description="Mint a short-lived token for the rack's observer ServiceAccount (kubectl create "
                                   "token, through an admin kubeconfig: --kubeconfig or $KUBECONFIG, e.g. inside "
                                   "`rackctl attach STACK -- ...`) and write a 0600 kubeconfig around it that points at "
                                   "the stack's API server. It can read the rack, never its Secrets.")
    o.add_argument("stack")
    o.add_argument("--out", required=True, help="where to write the kubeconfig (0600)")
    o.add_argument("--kubeconfig", help="admin kubeconfig (default: $KUBECONFIG)")
    o.add_argument("--duration", default="8h", help="token lifetime, e.g. 8h or 30m (default 8h)")
    o.set_defaults(func=_observer)

    h = sub.add_parser("hostkeys", help="pin every host's SSH host key in the stack file",
                       description="Read the SSH host key of the jumphost (from here) and of every Pi, router, switch "
                                   "and power strip of STACK (through the jumphost, over a connection checked against "
                                   "the jumphost's key), and write each unpinned one as hostKey into "
                                   "Pulumi.STACK.yaml, comments kept, for review in a pull request. A pinned key is "
                                   "never replaced; a changed one is reported. Exits 1 when a host did not answer "
                                   "or a key changed.")
    h.add_argument("stack")
    h.add_argument("--ssh-option", action="append", default=[], metavar="OPT",
                   help="extra ssh argument for the connection to the jumphost (repeatable)")
    h.add_argument("--dry-run", action="store_true", help="show what would be pinned, write nothing")
    h.set_defaults(func=_hostkeys)

    g = sub.add_parser("schema", help="Pulumi.yaml's config block, generated from the settings models",
                       description="Print Pulumi.yaml as the settings models (components/settings) declare it: every "
                                   "key with its type, description and default, and the secrets every stack needs. "
                                   "--write rewrites the file's config block; --check exits 1 when it differs (CI).")
    mode = g.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="rewrite Pulumi.yaml's generated block")
    mode.add_argument("--check", action="store_true", help="exit 1 when Pulumi.yaml differs from the models")
    g.set_defaults(func=_schema)

    t = sub.add_parser("status", help="the live rack held against its code",
                       description="Read the rack's cluster read-only (kubectl get nodes, and the swarming pods) "
                                   "through --kubeconfig or $KUBECONFIG (run it inside `rackctl attach STACK -- ...`, "
                                   "or give it the observer's kubeconfig), and hold it against STACK's config: per "
                                   "shelf, every Pi's Ready, cordon/drain against its configured state, swarming bot, "
                                   "kubelet version against k3sVersion and last heartbeat. Exits 0 when the rack "
                                   "matches its code, 1 on drift, 2 when the cluster cannot be read.")
    t.add_argument("stack")
    t.add_argument("--kubeconfig", help="kubeconfig for the rack (default: $KUBECONFIG); read-only is enough")
    t.add_argument("--format", choices=("text", "json", "html"), default="text",
                   help="text (default; colour on a terminal), json (stable, format 1), html (one self-contained page)")
    t.add_argument("--out", help="write the html page here (default: stdout); only a page rackctl wrote is replaced")
    t.add_argument("--watch", action="store_true", help="refresh every --interval seconds until Ctrl-C")
    t.add_argument("--interval", type=float, default=10.0, help="seconds between refreshes with --watch (default 10)")
    t.set_defaults(func=_status)

    f = sub.add_parser("drift", help="keep the nightly drift check's verdict as one GitHub issue per stack",
                       description="Assess a stack from the output and exit code of `pulumi preview --refresh "
                                   "--expect-no-changes` and of `rackctl status --format json`, then open, update or "
                                   "close the stack's one drift issue through GitHub's API ($GITHUB_REPOSITORY, "
                                   "$GITHUB_TOKEN, $GITHUB_API_URL). Exits 0 clean, 1 drift, 2 could not check.")
    f.add_argument("stack")
    f.add_argument("--preview", required=True, metavar="FILE", help="the preview's output")
    f.add_argument("--preview-code", required=True, type=int, metavar="N", help="the preview's exit code")
    f.add_argument("--status", required=True, metavar="FILE", help="rackctl status --format json's output")
    f.add_argument("--status-code", required=True, type=int, metavar="N", help="rackctl status's exit code")
    f.add_argument("--dry-run", action="store_true", help="say what it would do; do not call GitHub")
    f.set_defaults(func=_drift)

    s = sub.add_parser("stacks", help="the stacks in canary order (smallest rack first)")
    s.add_argument("--json", action="store_true", help="as a JSON list (for CI matrices)")
    s.set_defaults(func=_stacks)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after `--` is attach's COMMAND, untouched (argparse mangles it under subcommands).
    trailing: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, trailing = argv[:cut], argv[cut + 1:]
    p = parser()
    args = p.parse_args(argv)
    if trailing and args.command_name != "attach":
        p.error("only attach takes a command after --")
    args.command = trailing
    from rackctl.attach import AttachError
    from rackctl.diff import DiffError
    from rackctl.hostkeys import HostKeysError
    from rackctl.observer import ObserverError
    from rackctl.push import PushError
    from rackctl.drift import DriftError
    from rackctl.status import StatusError

    try:
        return args.func(args)
    except (ConfigError, stackfiles.StackFileError, AttachError, DiffError, HostKeysError, PushError,
            ObserverError, render.RenderError, StatusError, DriftError) as e:
        print(f"rackctl: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
