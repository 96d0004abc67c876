"""The one check every `--out` passes before anything is written, and how a file is written.

An output path is refused, with what to give instead, when it is empty, in a system tree
(/proc, /sys, /dev), below something that is not a directory, a symbolic link (dangling or not:
a write through it lands outside the named path), or its directory does not exist. A file that
is there already is replaced only when rackctl wrote it (`ours`); a directory only when the
command's own marker says so (render). Files are written beside their place and renamed over
it, so a reader never sees half a file and nothing is written through a link.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Optional

SYSTEM_TREES = (Path("/proc"), Path("/sys"), Path("/dev"))


class OutputError(Exception):
    """An output path rackctl will not write to: one line, exit 2, nothing written."""


def _common(option: str, raw: str) -> Path:
    if not raw or not raw.strip():
        raise OutputError(f"{option}: give a path")
    path = Path(raw)
    absolute = Path(os.path.abspath(path))
    for tree in SYSTEM_TREES:
        if absolute == tree or tree in absolute.parents:
            raise OutputError(f"{option} {raw}: {tree} is the kernel's, not a place for files; give a path in your "
                              f"own directories")
    if path.is_symlink():
        target = os.readlink(path)
        state = "" if path.exists() else ", which does not exist"
        raise OutputError(f"{option} {raw} is a symbolic link (to {target}{state}); give the path itself")
    for parent in absolute.parents:
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                raise OutputError(f"{option} {raw}: {parent} is a file, not a directory")
            break
    return path


def file_path(option: str, raw: str, ours: Callable[[Path], bool], what: str) -> Path:
    """A file to write at `raw`: new, or one `ours` recognises as rackctl's. `what` names the
    writer in the refusal ('rackctl status')."""
    path = _common(option, raw)
    if path.is_dir():
        raise OutputError(f"{option} {raw} is a directory; give a file name such as {raw.rstrip('/')}/out")
    if not path.parent.is_dir():
        raise OutputError(f"{option} {raw}: directory {path.parent} does not exist")
    if path.exists() and not ours(path):
        raise OutputError(f"{option} {raw} exists and was not written by {what}; give a new file name. "
                          f"Nothing was changed")
    return path


def directory_path(option: str, raw: str) -> Path:
    """A directory to write into at `raw` (the command checks what is inside)."""
    path = _common(option, raw)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{option} {raw} is a file; give a directory")
    return path


def write_file(path: Path, text: str, mode: int = 0o644) -> None:
    """Write `text` at `path`: a new file beside it (created with `mode`, never through a link),
    then renamed over it."""
    tmp = path.with_name(f".{path.name}.rackctl-tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def head(path: Path, size: int = 4096) -> Optional[str]:
    """The first `size` bytes of a file as text (for a marker check), or None when unreadable."""
    try:
        with path.open("rb") as f:
            return f.read(size).decode("utf-8", errors="replace")
    except OSError:
        return None
