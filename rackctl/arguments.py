"""rackctl's command line: every command, its arguments and its help. What each command does is
in its own module; `rackctl/__main__.py` dispatches."""

from __future__ import annotations

import argparse

from rackctl import stackfiles

DESCRIPTION = """\
Operate Skolo racks: one Pulumi stack per rack (Pulumi.<rack>.yaml).

  new STACK             a new rack's stack file from its jumphost, LAN and shelves
  render STACK          what a stack would put on its rack, as files (offline, no secrets)
  check                 validate every stack file, for CI
  diff [BASE] [HEAD]    what a change does to every rack: a diff of two renders (offline)
  attach STACK [-- CMD] a shell whose kubectl talks to one rack, through an SSH tunnel
  push SERVICE IMAGE    pin a new image in the stack files and roll it out, canary first
  observer STACK        a read-only kubeconfig (short-lived token) for one rack
  stacks                the stacks in canary order (smallest rack first)
  hostkeys STACK        pin every host's SSH host key in the stack file (trust on first use, once)
  schema                Pulumi.yaml's config block and docs/services.md, generated from the settings models
  status STACK          the live rack held against its code: a map per shelf (text, JSON, HTML)
  drift STACK           the nightly drift check's verdict, kept as one GitHub issue per stack
"""


def _stack(text: str) -> str:
    """A STACK argument, checked as a name (stackfiles.stack_name) before any command runs."""
    try:
        return stackfiles.stack_name(text)
    except stackfiles.StackFileError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _stacks(text: str) -> list[str]:
    """--stacks rack1,rack2: each a stack name."""
    return [_stack(name) for name in text.split(",")]


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
    r.add_argument("stack", type=_stack, help="stack (rack) name, e.g. rack1 for Pulumi.rack1.yaml")
    r.add_argument("--out", help="output directory: new, empty, or one an earlier render wrote (whose files it "
                                 "replaces; nothing else is touched) (default: build/STACK)")

    n = sub.add_parser("new", help="write a new rack's stack file from what differs per rack",
                       description="Write Pulumi.STACK.yaml from the jumphost, the LAN and the shelves: no other "
                                   "rack's devices or host keys. The k3s release and Skia's images come from the "
                                   "canary stack (the smallest rack) unless given. Power cycling starts off until the "
                                   "rack's own strips are listed. Checked before it is written; a file `pulumi stack "
                                   "init` wrote gets the config added, one with config is refused. Then it prints the "
                                   "next steps (hostkeys, secrets, check --strict).")
    n.add_argument("stack", type=_stack, help="the new stack (rack) name, e.g. rack3")
    n.add_argument("--jumphost-name", required=True, metavar="NAME", help="the jumphost's node name")
    n.add_argument("--jumphost-address", required=True, metavar="ADDRESS", help="its IPv4 address on the rack LAN")
    n.add_argument("--lan-cidr", metavar="NET", help="the rack LAN (default: the /24 of the jumphost's address)")
    n.add_argument("--shelf", action="append", default=[], metavar="NAME:COUNT:FIRST_ADDRESS",
                   help="a shelf of Pis named NAME-001.. at consecutive addresses (repeatable)")
    n.add_argument("--k3s-version", metavar="VERSION", help="exact k3s release (default: the canary stack's)")

    c = sub.add_parser("check", help="validate every stack file (for CI)",
                       description="Run every stack's config through the settings layer and the program. Exits 1 "
                                   "when a stack has a config problem. Secrets missing from a stack file are "
                                   "warnings (errors with --strict).")
    c.add_argument("--stacks", type=_stacks, help="comma-separated stacks (default: all)")
    c.add_argument("--strict", action="store_true", help="a secret missing from a stack file is an error")

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

    a = sub.add_parser("attach", help="a shell whose kubectl and pulumi reach one rack",
                       usage="rackctl attach [-h] [--kubeconfig FILE | --no-kubeconfig] [--key-from-stack] "
                             "[--ssh-option OPT] STACK [-- COMMAND [ARG...]]",
                       description="Open an SSH port-forward to the jumphost's API server: where the stack's "
                                   "skolo:apiServer is a loopback address (a rack reached through a tunnel), exactly "
                                   "there, so `pulumi up`/`preview` reach the rack through it; otherwise on a free "
                                   "local port. Write a private 0600 KUBECONFIG from STACK's kubeconfig (pulumi stack "
                                   "output --show-secrets kubeconfig, or --kubeconfig FILE) pointing at it and run "
                                   "COMMAND (default: an interactive shell). The tunnel and the files are removed on "
                                   "exit, also on Ctrl-C. Every CI job that runs pulumi or rackctl against a rack runs "
                                   "it inside this.")
    a.add_argument("stack", type=_stack)
    kube = a.add_mutually_exclusive_group()
    kube.add_argument("--kubeconfig", help="kubeconfig file instead of the stack output")
    kube.add_argument("--no-kubeconfig", action="store_true",
                      help="no KUBECONFIG, only the tunnel (a first `pulumi up`, which has no kubeconfig output yet)")
    a.add_argument("--key-from-stack", action="store_true",
                   help="SSH to the jumphost with the stack's own key (pulumi config get skolo:sshPrivateKey), "
                        "kept in a private 0600 file while attached")
    a.add_argument("--ssh-option", action="append", default=[], metavar="OPT",
                   help="extra ssh argument, e.g. --ssh-option=-i --ssh-option=~/.ssh/chrome-bot (repeatable)")

    u = sub.add_parser("push", help="pin a new image in the stack files and roll it out",
                       description="Set skolo:images.SERVICE to IMAGE in the chosen stack files (comments and "
                                   "layout kept), show the diff, then print (or with --up run) `pulumi up -s STACK` "
                                   "for each, smallest rack first, stopping at the first failure.")
    u.add_argument("service", help="image key: metadata, alertToPubsub, powerCycle, swarming, prometheus, ...")
    u.add_argument("image", help="pinned image reference, e.g. gcr.io/skia-public/metadata:2025-...-clean")
    u.add_argument("--stacks", type=_stacks, help="comma-separated stacks")
    u.add_argument("--all", action="store_true", help="every stack")
    u.add_argument("--dry-run", action="store_true", help="show the change, write nothing, run nothing")
    u.add_argument("--up", action="store_true", help="run the pulumi up commands")

    o = sub.add_parser("observer", help="write a read-only kubeconfig for one rack",
                       description="Mint a short-lived token for the rack's observer ServiceAccount (kubectl create "
                                   "token, through an admin kubeconfig: --kubeconfig or $KUBECONFIG, e.g. inside "
                                   "`rackctl attach STACK -- ...`) and write a 0600 kubeconfig around it that points at "
                                   "the stack's API server. It can read the rack, never its Secrets.")
    o.add_argument("stack", type=_stack)
    o.add_argument("--out", required=True, help="where to write the kubeconfig (0600)")
    o.add_argument("--kubeconfig", help="admin kubeconfig (default: $KUBECONFIG)")
    o.add_argument("--duration", default="8h", help="token lifetime, e.g. 8h or 30m (default 8h)")

    h = sub.add_parser("hostkeys", help="pin every host's SSH host key in the stack file",
                       description="Read the SSH host key of the jumphost (from here) and of every Pi, router, switch "
                                   "and power strip of STACK (through the jumphost, over a connection checked against "
                                   "the jumphost's key), and write each unpinned one as hostKey into "
                                   "Pulumi.STACK.yaml, comments kept, for review in a pull request. A pinned key is "
                                   "never replaced; a changed one is reported. Exits 1 when a host did not answer "
                                   "or a key changed.")
    h.add_argument("stack", type=_stack)
    h.add_argument("--ssh-option", action="append", default=[], metavar="OPT",
                   help="extra ssh argument for the connection to the jumphost (repeatable)")
    h.add_argument("--dry-run", action="store_true", help="show what would be pinned, write nothing")

    g = sub.add_parser("schema", help="Pulumi.yaml's config block, generated from the settings models",
                       description="Print Pulumi.yaml as the settings models (components/settings) declare it: every "
                                   "key with its type, description and default, and the secrets every stack needs. "
                                   "--write rewrites the file's config block and docs/services.md (every service "
                                   "option: type, default, meaning); --check exits 1 when either differs (CI).")
    mode = g.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="rewrite Pulumi.yaml's generated block and docs/services.md")
    mode.add_argument("--check", action="store_true", help="exit 1 when either differs from the models")

    t = sub.add_parser("status", help="the live rack held against its code",
                       description="Read the rack's cluster read-only (kubectl get nodes, and the swarming pods) "
                                   "through --kubeconfig or $KUBECONFIG (run it inside `rackctl attach STACK -- ...`, "
                                   "or give it the observer's kubeconfig), and hold it against STACK's config: per "
                                   "shelf, every Pi's Ready, cordon/drain against its configured state, swarming bot, "
                                   "kubelet version against k3sVersion and last heartbeat. Exits 0 when the rack "
                                   "matches its code, 1 on drift, 2 when the cluster cannot be read.")
    t.add_argument("stack", type=_stack)
    t.add_argument("--kubeconfig", help="kubeconfig for the rack (default: $KUBECONFIG); read-only is enough")
    t.add_argument("--format", choices=("text", "json", "html"), default="text",
                   help="text (default; colour on a terminal), json (stable, format 1), html (one self-contained page)")
    t.add_argument("--out", help="write the html page here (default: stdout); only a page rackctl wrote is replaced")
    t.add_argument("--watch", action="store_true", help="refresh every --interval seconds until Ctrl-C")
    t.add_argument("--interval", type=float, default=10.0, help="seconds between refreshes with --watch (default 10)")

    f = sub.add_parser("drift", help="keep the nightly drift check's verdict as one GitHub issue per stack",
                       description="Assess a stack from the output and exit code of `pulumi preview --refresh "
                                   "--expect-no-changes` and of `rackctl status --format json`, then open, update or "
                                   "close the stack's one drift issue through GitHub's API ($GITHUB_REPOSITORY, "
                                   "$GITHUB_TOKEN, $GITHUB_API_URL). Exits 0 clean, 1 drift, 2 could not check.")
    f.add_argument("stack", type=_stack)
    f.add_argument("--preview", required=True, metavar="FILE", help="the preview's output")
    f.add_argument("--preview-code", required=True, type=int, metavar="N", help="the preview's exit code")
    f.add_argument("--status", required=True, metavar="FILE", help="rackctl status --format json's output")
    f.add_argument("--status-code", required=True, type=int, metavar="N", help="rackctl status's exit code")
    f.add_argument("--dry-run", action="store_true", help="say what it would do; do not call GitHub")

    s = sub.add_parser("stacks", help="the stacks in canary order (smallest rack first)")
    s.add_argument("--json", action="store_true", help="as a JSON list (for CI matrices)")
    return p
