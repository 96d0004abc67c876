"""`rackctl new STACK`: a new rack's stack file from what differs per rack, with no other rack's
devices or keys, checked before it is written, then usable offline up to render."""

from __future__ import annotations

import shutil

import yaml

from tests.conftest import ROOT
from tests.test_inputs import rackctl

ARGS = ["new", "rack3", "--jumphost-name", "skolo-rack3-jumphost", "--jumphost-address", "192.168.3.8",
        "--shelf", "skia-rpi2-rack3-shelf1:40:192.168.3.100", "--shelf", "skia-rpi2-rack3-shelf2:10:192.168.3.150"]


def project(tmp_path):
    for name in ("Pulumi.yaml", "Pulumi.rack1.yaml", "Pulumi.rack2.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def test_a_new_rack_has_its_own_hosts_and_no_other_racks_devices_or_keys(tmp_path):
    config_dir = project(tmp_path)
    # What `pulumi stack init rack3` writes: kept as it is.
    (config_dir / "Pulumi.rack3.yaml").write_text("encryptionsalt: v1:c2FsdA==:v1:aXY=:Y2lwaGVy\n")
    result = rackctl("--config-dir", str(config_dir), *ARGS)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:3] == [
        "wrote Pulumi.rack3.yaml: jumphost skolo-rack3-jumphost (192.168.3.8), 50 Pis on 2 shelves, k3s v1.31.6+k3s1.",
        "Next:",
        "  1. pin every host's SSH key (reaches the jumphost and, through it, the Pis): rackctl hostkeys rack3"]
    text = (config_dir / "Pulumi.rack3.yaml").read_text()
    assert text.startswith("encryptionsalt: v1:c2FsdA==:v1:aXY=:Y2lwaGVy\n")
    assert "hostKey" not in text and "rack2-mpower" not in text and "192.168.1." not in text
    config = yaml.safe_load(text)["config"]
    assert config["skolo:jumphost"] == {"name": "skolo-rack3-jumphost", "address": "192.168.3.8"}
    assert config["skolo:services"] == {"powerCycle": {"enabled": False}}
    rack2 = yaml.safe_load((config_dir / "Pulumi.rack2.yaml").read_text())["config"]
    assert config["skolo:images"] == rack2["skolo:images"]  # the canary's, and said so
    assert "rack2's, the canary's" in text
    # It passes check and renders offline (secrets as placeholders); what is left is pinning and secrets.
    check = rackctl("--config-dir", str(config_dir), "check", "--stacks", "rack3")
    assert check.returncode == 0 and check.stdout.startswith("rack3: ok (51 nodes")
    assert "pin them with: rackctl hostkeys rack3" in check.stdout
    strict = rackctl("--config-dir", str(config_dir), "check", "--strict", "--stacks", "rack3")
    assert strict.returncode == 1
    render = rackctl("--config-dir", str(config_dir), "render", "rack3", "--out", str(tmp_path / "out"))
    assert render.returncode == 0 and render.stdout.startswith("stack rack3: ")
    devices = (tmp_path / "out" / "kubernetes" / "backup" / "ConfigMap-router-backup.yaml").read_text()
    assert "192.168.3.1" in devices and "192.168.1.1" not in devices  # its own router, from its own LAN


def test_new_refuses_to_replace_config_and_checks_before_writing(tmp_path):
    config_dir = project(tmp_path)
    before = (config_dir / "Pulumi.rack2.yaml").read_text()
    result = rackctl("--config-dir", str(config_dir), *["new", "rack2", *ARGS[2:]])
    assert (result.returncode, result.stderr) == (
        2, "rackctl: Pulumi.rack2.yaml already has config; edit it instead (nothing was changed)\n")
    assert (config_dir / "Pulumi.rack2.yaml").read_text() == before
    bad = rackctl("--config-dir", str(config_dir), *ARGS[:-2], "--shelf", "skia-rpi2-rack3-shelf2:10:10.9.9.9")
    assert bad.returncode == 2 and bad.stderr.startswith(
        "rackctl: rackctl new rack3 would make Pulumi.rack3.yaml fail rackctl check, so nothing was written: "
        "skolo:rpis[1].")
    assert bad.stderr.count("\n") == 1
    assert not (config_dir / "Pulumi.rack3.yaml").exists()
    shelf = rackctl("--config-dir", str(config_dir), *ARGS[:-1], "shelf2-10")
    assert (shelf.returncode, shelf.stderr) == (
        2, "rackctl: --shelf 'shelf2-10': expected NAME:COUNT:FIRST_ADDRESS, e.g. skia-rpi2-rack3-shelf1:40:"
           "192.168.1.100\n")
