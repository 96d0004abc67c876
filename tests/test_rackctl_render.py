"""`python -m rackctl render`: the README's main command, run as an operator runs it."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def rackctl(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "rackctl", *args], cwd=cwd, capture_output=True, text=True)


def test_render_rack1_writes_scripts_and_prints_a_summary(tmp_path):
    result = rackctl("render", "rack1", "--out", str(tmp_path / "rack1"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"stack rack1: 264 resources, 255 files in {tmp_path / 'rack1'}"
    assert "RpiAgent                  80  1 Command" in lines
    assert "Fleet                      1  2 Command" in lines
    assert ("hosts: 1 reached over SSH (192.168.1.8); 80 Pis reached from the jumphost by its bundle "
            "(hosts/*/pis/, hosts/*/bundle/)") in lines
    jump = tmp_path / "rack1" / "hosts" / "192.168.1.8"
    assert (jump / "rack1-install.sh").read_text().startswith("#!/bin/sh\n# skolo host script k3s-install")
    assert (jump / "metadata-legacy-unit-cutover.delete.sh").exists()
    # Every script a Pi's step runs: the call, and the bundle it calls into (what runs on the Pi too).
    assert sorted(p.name for p in (jump / "bundle").iterdir()) == [
        "k3s-install.sh", "lib.sh", "pi-node.sh", "pi-remove.sh", "rack.env", "rpi-cgroups.sh", "run"]
    call = (jump / "pis" / "skia-rpi2-rack1-shelf1-001-node.sh").read_text()
    assert "export NODE_NAME=skia-rpi2-rack1-shelf1-001\nexport ADDRESS=192.168.1.100\n" in call
    assert call.endswith('. "$BUNDLE/pi-node.sh"\n')
    assert len(list((jump / "pis").iterdir())) == 160
    assert not any("rackctl-render-placeholder" in p.read_text() for p in (jump / "bundle").iterdir())


def test_render_reports_config_errors_in_one_message_without_traceback(tmp_path):
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    (tmp_path / "Pulumi.bad.yaml").write_text("config:\n  skolo:jumphost: {name: jh, address: 192.168.1.8}\n"
                                              "  skolo:rpis: [{name: pi-1, address: 192.168.1.300}]\n"
                                              "  skolo:k3sVersion: stable\n"
                                              "  skolo:services: {metadata: {enabled: false}, alertToPubsub: {enabled: false},"
                                              " powerCycle: {enabled: false}, swarming: {enabled: false}}\n")
    result = rackctl("--config-dir", str(tmp_path), "render", "bad", "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr == (
        "rackctl: stack 'bad' has 2 config problems; nothing was changed on any host:\n"
        "  skolo:rpis[0].address: expected an IPv4 address, got '192.168.1.300'\n"
        "  skolo:k3sVersion: expected an exact k3s release like v1.31.6+k3s1, got 'stable'; channels and "
        "'latest' are refused so every node runs the same, reviewed k3s\n")
    assert not (tmp_path / "out").exists()


def test_render_unknown_stack():
    result = rackctl("render", "rack99")
    assert result.returncode == 2
    assert result.stderr == "rackctl: no stack file Pulumi.rack99.yaml; stacks here: rack1, rack2\n"
