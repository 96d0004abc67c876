"""`rackctl push SERVICE IMAGE`: roll a new image of one service out to the racks, as pushk did.

Rewrites `skolo:images.<SERVICE>` in each chosen stack file (an image pinned by digest is only
ever replaced by one pinned by digest; every rewritten file must pass `rackctl check`, or none is
written), keeping its comments and layout
(ruamel.yaml round-trip), shows the diff, and prints, or with --up runs, `pulumi up -s STACK`
for each stack in canary order (the smallest rack first), stopping at the first failure.
"""

from __future__ import annotations

import difflib
import io
import subprocess
from pathlib import Path
from typing import Sequence

from pydantic import ValidationError

from components import settings
from components.settings.base import lines
from components.settings.services import Images
from rackctl import check, stackfiles


class PushError(Exception):
    pass


def validate(service: str, image: str) -> None:
    if service not in settings.IMAGE_SERVICES:
        raise PushError(f"unknown image key {service!r}; keys: {', '.join(settings.IMAGE_SERVICES)}")
    try:
        Images.model_validate({service: image})
    except ValidationError as e:
        raise PushError(lines(e, prefix=("images",))[0]) from None


def rewrite(text: str, service: str, image: str) -> str:
    """The stack file's text with images.<service> set to `image`, nothing else touched."""
    y = stackfiles.stack_yaml()
    doc = y.load(text)
    config = doc.setdefault("config", {})
    key = f"{settings.NAMESPACE}:images"
    if key not in config or config[key] is None:
        config[key] = {}
    config[key][service] = image
    out = io.StringIO()
    y.dump(doc, out)
    return out.getvalue()


def push(service: str, image: str, stacks: Sequence[str], config_dir: Path, dry_run: bool, up: bool,
         out=print) -> int:
    validate(service, image)
    known = stackfiles.stacks(config_dir)
    unknown = [s for s in stacks if s not in known]
    if unknown:
        raise PushError(f"no stack file for {', '.join(unknown)}; stacks here: {', '.join(known)}")
    ordered = stackfiles.canary_order(list(stacks), config_dir)
    if "@sha256:" not in image:
        pinned = [s for s in ordered if "@sha256:" in (stackfiles.settings_for(s, config_dir).images.get(service) or "")]
        if pinned:
            raise PushError(f"images.{service} is pinned by digest in {', '.join(pinned)}; give the new image in "
                            f"the same form, <repository>:<tag>@sha256:<digest> (`docker buildx imagetools inspect "
                            f"<repository>:<tag>` prints the digest); nothing was changed")
    rewritten: dict[str, tuple[Path, str, str]] = {}
    for stack in ordered:
        path = stackfiles.stack_path(config_dir, stack)
        before = stackfiles.read_text(path)
        after = rewrite(before, service, image)
        if after == before:
            out(f"{stack}: images.{service} is already {image}")
            continue
        check.before_writing(stack, config_dir, after, f"images.{service}: {image}")
        rewritten[stack] = (path, before, after)
    # Every stack is checked before any is written: a push is refused whole.
    changed = list(rewritten)
    for path, before, after in rewritten.values():
        out("".join(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                         fromfile=f"a/{path.name}", tofile=f"b/{path.name}")).rstrip("\n"))
        if not dry_run:
            path.write_text(after)
    if not changed:
        return 0
    commands = [["pulumi", "up", "-s", stack, "--continue-on-error", "--parallel", "32"] for stack in changed]
    if dry_run or not up:
        verb = "would run" if dry_run else "now run, canary first"
        out(f"\n{verb}:\n" + "\n".join("  " + " ".join(c) for c in commands))
        return 0
    for command in commands:
        out(f"\n$ {' '.join(command)}")
        if subprocess.run(command, cwd=config_dir).returncode != 0:
            out(f"rackctl: {' '.join(command)} failed; the racks after it were not updated")
            return 1
    return 0
