"""`rackctl diff [BASE] [HEAD]`: what a change does to every rack, with no credentials.

Renders every stack at two git revisions (the working tree when HEAD is not given) with the
*current* renderer, so that only the program's changes show, and prints a unified diff per
stack of the Kubernetes objects and host scripts. Render never writes a secret, so neither
does the diff.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

RACKCTL = Path(__file__).resolve().parent
# GitHub comments stop at 65536 characters.
MARKDOWN_LIMIT = 60000


class DiffError(Exception):
    pass


def _git(repo: Path, *args: str, binary: bool = False):
    result = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=not binary)
    if result.returncode != 0:
        err = result.stderr if not binary else result.stderr.decode(errors="replace")
        raise DiffError(f"git {' '.join(args)}: {err.strip()}")
    return result.stdout


def default_base(repo: Path) -> str:
    """The merge-base of HEAD and origin/main, or of HEAD and main where there is no remote."""
    for main in ("origin/main", "main"):
        try:
            return _git(repo, "merge-base", main, "HEAD").strip()
        except DiffError:
            continue
    raise DiffError("no main branch to compare with; name a BASE revision")


def export(repo: Path, rev: Optional[str], dest: Path) -> None:
    """The project's files at `rev`, or as they are in the working tree when rev is None."""
    dest.mkdir(parents=True)
    if rev is None:
        for name in _git(repo, "ls-files", "-co", "--exclude-standard", "-z").split("\0"):
            src = repo / name
            if name and src.is_file():
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest / name)
        return
    archive = _git(repo, "archive", "--format=tar", rev, binary=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")


def stacks_in(tree: Path) -> set[str]:
    return {p.name[len("Pulumi."):-len(".yaml")] for p in tree.glob("Pulumi.*.yaml")}


def inputs_digest(tree: Path, stack: str) -> str:
    """A digest of everything a render of `stack` could read in `tree`: every file but the other
    stacks' files and rackctl/ (the current renderer is used on both sides)."""
    h = hashlib.sha256()
    for path in sorted(p for p in tree.rglob("*") if p.is_file()):
        rel = path.relative_to(tree).as_posix()
        if rel.startswith("rackctl/") or (rel.startswith("Pulumi.") and rel not in ("Pulumi.yaml",
                                                                                 f"Pulumi.{stack}.yaml")):
            continue
        h.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def render_tree(tree: Path, out: Path, skip: frozenset[str] = frozenset()) -> dict[str, str]:
    """Render every stack of `tree` but `skip` into out/<stack>; returns stack -> error for the
    ones that failed."""
    shutil.rmtree(tree / "rackctl", ignore_errors=True)
    shutil.copytree(RACKCTL, tree / "rackctl", ignore=shutil.ignore_patterns("__pycache__"))
    errors = {}
    env = dict(os.environ, PYTHONPATH=str(tree), PYTHONDONTWRITEBYTECODE="1")
    for stack in sorted(stacks_in(tree) - skip):
        result = subprocess.run([sys.executable, "-m", "rackctl", "render", stack, "--out", str(out / stack)],
                                cwd=tree, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            errors[stack] = (result.stderr.strip().splitlines() or ["render failed"])[-1].strip()
    return errors


def _files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()} \
        if root.exists() else {}


@dataclass
class StackDiff:
    stack: str
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    text: str = ""
    error: str = ""

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.error)

    def summary(self) -> str:
        if self.error:
            return f"{self.stack}: could not render: {self.error}"
        if self.empty:
            return f"{self.stack}: no change"

        def count(paths: list[str], what: str) -> int:
            return sum(1 for p in paths if p.startswith(what))

        parts = []
        for label, paths in (("added", self.added), ("removed", self.removed), ("changed", self.changed)):
            if paths:
                parts.append(f"{label} {count(paths, 'kubernetes/')} objects, {count(paths, 'hosts/')} host scripts")
        return f"{self.stack}: " + "; ".join(parts)


def compare(base_out: Path, head_out: Path, errors: dict[str, str]) -> list[StackDiff]:
    stacks = sorted({p.name for p in base_out.iterdir()} | {p.name for p in head_out.iterdir()} | set(errors))
    diffs = []
    for stack in stacks:
        d = StackDiff(stack, error=errors.get(stack, ""))
        if d.error:
            diffs.append(d)  # nothing to compare: the change breaks this stack
            continue
        old, new = _files(base_out / stack), _files(head_out / stack)
        # One diff per way of changing: a change that touches every Pi's step alike shows once.
        alike: dict[tuple, list[str]] = {}
        patches = {}
        for name in sorted(set(old) | set(new)):
            if old.get(name) == new.get(name):
                continue
            (d.added if name not in old else d.removed if name not in new else d.changed).append(name)
            patch = [c if c.endswith("\n") else c + "\n" for c in difflib.unified_diff(
                old.get(name, "").splitlines(keepends=True), new.get(name, "").splitlines(keepends=True),
                fromfile=f"a/{stack}/{name}" if name in old else "/dev/null",
                tofile=f"b/{stack}/{name}" if name in new else "/dev/null")]
            patches[name] = patch
            same = (name in old, name in new, tuple(c for c in patch[2:] if c[:1] in "+-@"))
            alike.setdefault(same, []).append(name)
        chunks = []
        for names in alike.values():
            chunks.extend(patches[names[0]])
            if len(names) > 1:
                chunks.append(f"# ...and the same change in {_names(stack, names[1:])}\n")
        d.text = "".join(chunks)
        diffs.append(d)
    return diffs


def _names(stack: str, names: list[str]) -> str:
    """Files as a short phrase: their common folder when there are many."""
    if len(names) <= 3:
        return ", ".join(f"{stack}/{n}" for n in names)
    return f"{len(names)} more files under {stack}/{os.path.commonpath(names)}/"


def in_git(repo: Path) -> None:
    """Refuse a project that is not in a git work tree: diff compares two of its commits."""
    try:
        inside = _git(repo, "rev-parse", "--is-inside-work-tree").strip() == "true"
    except DiffError:
        inside = False
    if not inside:
        raise DiffError(f"{repo} is not in a git repository; rackctl diff compares two commits of the project "
                        f"(run it in a clone, or use rackctl render STACK for one tree)")


def run(repo: Path, base: Optional[str], head: Optional[str]) -> list[StackDiff]:
    in_git(repo)
    base = base or default_base(repo)
    with tempfile.TemporaryDirectory(prefix="rackctl-diff-") as tmp:
        work = Path(tmp)
        export(repo, base, work / "base")
        export(repo, head, work / "head")
        # A stack whose inputs are the same on both sides renders the same: no change, unrendered
        # (a change to one rack's file does not re-render every other rack). One broken alike on
        # both sides is then "no change" too: the change did not break it (rackctl check says it is).
        same = frozenset(s for s in stacks_in(work / "base") & stacks_in(work / "head")
                         if inputs_digest(work / "base", s) == inputs_digest(work / "head", s))
        # A stack the base cannot render (say, a revision older than its config) shows as added
        # in full; one the change breaks is an error.
        render_tree(work / "base", work / "base-out", skip=same)
        head_errors = render_tree(work / "head", work / "head-out", skip=same)
        for side in ("base-out", "head-out"):
            for stack in same:
                (work / side / stack).mkdir(parents=True, exist_ok=True)
        return compare(work / "base-out", work / "head-out", head_errors)


def as_text(diffs: list[StackDiff]) -> str:
    out = []
    for d in diffs:
        out.append(f"=== {d.summary()}\n")
        out.append(d.text)
    return "".join(out)


def as_markdown(diffs: list[StackDiff], title: str) -> str:
    out = [f"## {title}\n\n"]
    for d in diffs:
        out.append(f"- **{d.stack}**: {d.summary().split(': ', 1)[1]}\n")
    for d in diffs:
        if d.text:
            out.append(f"\n<details><summary>{d.stack}</summary>\n\n```diff\n{d.text}```\n\n</details>\n")
    text = "".join(out)
    if len(text) > MARKDOWN_LIMIT:
        text = text[:MARKDOWN_LIMIT] + "\n```\n\n(truncated: run `rackctl diff` locally for the rest)\n"
    return text
