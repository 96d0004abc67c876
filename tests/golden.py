"""Golden files: what reaches a rack, as text, so that every change to it shows in review.

A golden file records change; it does not judge correctness (regenerated in the commit that
changes the code, it agrees with whatever the code does). So each one is also judged by tests
that read its content for meaning, named in tests/golden/README.md, and a golden that no such
test judges is refused (tests/test_harness.py). UPDATE_GOLDEN=1 rewrites them after an intended
change, never under CI, where it would make every comparison pass.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.ci import in_ci

GOLDEN = Path(__file__).parent / "golden"


def compare(folder: str, files: dict[str, str]) -> None:
    """`files` (name -> text) equal tests/golden/<folder>, no more and no fewer."""
    where = GOLDEN / folder
    if os.environ.get("UPDATE_GOLDEN"):
        if in_ci():
            pytest.fail("UPDATE_GOLDEN is refused under CI: it would make the golden files agree with any code",
                        pytrace=False)
        where.mkdir(parents=True, exist_ok=True)
        for old in where.iterdir():
            old.unlink()
        for name, text in files.items():
            (where / name).write_text(text)
    on_disk = {p.name: p.read_text() for p in where.iterdir()}
    assert sorted(on_disk) == sorted(files), "set UPDATE_GOLDEN=1 after an intended change (and say why in review)"
    for name, text in files.items():
        assert text == on_disk[name], f"{name} differs from tests/golden/{folder}/{name}"
