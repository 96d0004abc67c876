"""KUBECTL_EXTERNAL_DIFF for `kubectl diff`: what applying would change, less what controllers own.

kubectl diff reads each live object, dry-runs the apply, and hands this program two directories
(LIVE, MERGED) of one file per object. Controllers write `status` (and so bump
`resourceVersion`) at any moment, also between kubectl's read and its dry run, so comparing them
would make "nothing changes" depend on timing. Everything else, `generation` included (it moves
only when the spec does), is compared. Exit 0: no change; 1: changes (printed, unified diff).
"""

from __future__ import annotations

import difflib
import sys
from pathlib import Path

import yaml

OWNED_BY_CONTROLLERS = ("status",)
META_OWNED_BY_SERVER = ("resourceVersion",)


def comparable(path: Path) -> list[str]:
    if not path.exists():
        return []
    obj = yaml.safe_load(path.read_text()) or {}
    for key in OWNED_BY_CONTROLLERS:
        obj.pop(key, None)
    for key in META_OWNED_BY_SERVER:
        (obj.get("metadata") or {}).pop(key, None)
    return yaml.safe_dump(obj, sort_keys=True).splitlines(keepends=True)


def main(live: Path, merged: Path) -> int:
    changed = 0
    for name in sorted({p.name for p in live.iterdir()} | {p.name for p in merged.iterdir()}):
        lines = list(difflib.unified_diff(comparable(live / name), comparable(merged / name),
                                          f"live/{name}", f"merged/{name}"))
        if lines:
            changed += 1
            sys.stdout.writelines(lines)
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
