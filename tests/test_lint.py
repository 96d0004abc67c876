"""The code as a linter and a type checker read it (the settings are in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def test_ruff_finds_nothing():
    """ruff with pyproject.toml's rules (E, F, W and B, long lines aside) over the whole tree."""
    ruff = Path(sys.executable).parent / "ruff"
    result = subprocess.run([str(ruff), "check", str(ROOT)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_pyright_finds_nothing():
    """pyright, basic mode, over components/ and rackctl/: every settings field has a type a checker
    can read. The PyPI wrapper fetches the pinned pyright from the npm registry on first use."""
    pyright = Path(sys.executable).parent / "pyright"
    result = subprocess.run([str(pyright)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_shellcheck_finds_nothing_in_the_ci_scripts_and_stand_ins():
    """CI's own scripts and the tests' shell stand-ins (the host scripts are checked as declared,
    tests/test_hostscripts.py)."""
    shellcheck = Path(sys.executable).parent / "shellcheck"
    scripts = [ROOT / ".ci" / "run", ROOT / ".ci" / "wait-for-deploys",
               *(p for p in (ROOT / "tests" / "standins").iterdir() if p.read_text().startswith("#!/bin/sh"))]
    result = subprocess.run([str(shellcheck), *map(str, scripts)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
