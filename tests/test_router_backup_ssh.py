"""router-backup's script run for real, over real SSH, from the jumphost's network namespace (as
its CronJob runs on the jumphost) against two sandboxed devices: an EdgeRouter whose config file
is copied with the key, and an EdgeSwitch whose sshd takes a password and whose login shell is a
stand-in CLI that shows its running-config only after `enable`. The script, the device list, the
pinned host keys, the key and the password are the ones the program declares; only their paths
are local. GCS is a stand-in (tests/test_datastore_backup.py). Needs root, as CI has."""

from __future__ import annotations

import datetime
import gzip
import hashlib
import os
import sys
from pathlib import Path

import pytest

from tests import hosts
from tests.conftest import PLANTED
from tests.test_datastore_backup import STAND_IN_GCLOUD, STAND_IN_GSUTIL
from tests.test_services import container, objects

pytestmark = pytest.mark.hosts

hosts.require("the router-backup SSH tests")

PASSWORD = "planted-switch-password-5f5f"
ROUTER_PATH = "/etc/edgeos/config.boot"
ROUTER_CONFIG = "firewall {\n    all-ping enable\n}\nsystem {\n    host-name rack-router\n}\n"
SWITCH_CONFIG = ("!Current Configuration:\n!\n!System Description \"EdgeSwitch 24-Port Lite, 1.7.3\"\n"
                 "hostname \"rack-switch\"\ninterface 0/1\ndescription 'skia-rpi2-rack2-shelf1-001'\nexit\n")
STATE = "/var/lib/rancher/standin"


@pytest.fixture
def lab(tmp_path):
    rack = hosts.start_rack(tmp_path, pis=2, trace=True)  # the password is looked for in every process's arguments
    try:
        router, switch = rack.pis
        rack.on(router, f"mkdir -p /etc/edgeos && cat > {ROUTER_PATH}", stdin=ROUTER_CONFIG)
        rack.on(switch, f"mkdir -p /etc/edgeswitch {STATE} && chmod 1777 {STATE} "
                        "&& cat > /etc/edgeswitch/running-config", stdin=SWITCH_CONFIG)
        rack.on(switch, "useradd -M -s /usr/local/bin/edgeswitch-cli ubnt && chpasswd", stdin=f"ubnt:{PASSWORD}\n")
        rack.accept_passwords(switch)
        yield rack
    finally:
        rack.close()


def backup(run_stack, rack, tmp_path, password=PASSWORD, switch_key=None) -> tuple[hosts.Result, Path]:
    """Declare the backup of the two devices, then run its script as the CronJob would."""
    router, switch = rack.pis
    devices = [{"name": "rack-router", "address": router.address, "kind": "edgerouter", "user": "root",
                "path": ROUTER_PATH, "hostKey": router.host_key_pub},
               {"name": "rack-switch", "address": switch.address, "kind": "edgeswitch", "user": "ubnt",
                "hostKey": switch_key or switch.host_key_pub}]
    # The sandbox's rack LAN holds the devices (a device outside the rack LAN is refused).
    lan = {"jumphost": {"name": "skolo-rack2-jumphost", "address": rack.jumphost.address, "lanAddress": "10.232.0.1",
                        "lanCidr": "10.232.0.0/16"},
           "rpis": [{"name": f"skia-rpi2-rack2-shelf1-00{i}", "address": f"10.232.9.{i}"} for i in range(1, 5)]}
    run = run_stack("rack2", overrides={**lan, "services": {"routerBackup": {"devices": devices},
                                                            "powerCycle": {"enabled": False}}},
                    secrets=dict(PLANTED, routerBackupSshKey=rack.user_key.read_text(), powerCyclePassword=password))
    pod = tmp_path / "pod"
    pod.mkdir()
    data = objects(run, "ConfigMap")["router-backup"]["data"]
    for name in ("backup.sh", "devices", "known_hosts"):
        (pod / name).write_text(data[name])
    secrets = objects(run, "Secret")
    (pod / "id").write_text(secrets["router-backup-ssh"]["stringData"]["id"])
    (pod / "password").write_text(secrets["router-backup-switch"]["stringData"]["password"])
    for path in pod.iterdir():
        path.chmod(0o600)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("gcloud", STAND_IN_GCLOUD), ("gsutil", STAND_IN_GSUTIL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    local = {"/etc/router-backup/devices": pod / "devices", "/etc/router-backup/known_hosts": pod / "known_hosts",
             "/var/secrets/ssh/id": pod / "id", "/var/secrets/switch/password": pod / "password"}
    env = {e["name"]: str(local.get(e["value"], e["value"])) for e in container(objects(run, "CronJob")["router-backup"])["env"]
           if "value" in e}
    env.update(GOOGLE_APPLICATION_CREDENTIALS="/dev/null", HOME=str(tmp_path), CLOUDSDK_CONFIG=str(tmp_path),
               STANDIN_GCS=str(tmp_path / "gcs"), STANDIN_LOG=str(tmp_path / "standin.log"),
               PATH=f"{bin_dir}:{Path(sys.executable).parent}:{os.environ['PATH']}")
    args = ["ip", "netns", "exec", rack.jumphost.netns, "env", *(f"{k}={v}" for k, v in env.items()),
            "sh", str(pod / "backup.sh")]
    return rack.exec(args, "", 120, (PASSWORD,)), tmp_path / "gcs" / "skia-backups" / "router_config"


def stored(folder: Path) -> dict[str, str]:
    return {p.name: gzip.decompress(p.read_bytes()).decode() for p in folder.glob("*.gz")} if folder.exists() else {}


def test_router_and_switch_backups_land_named_as_skia_named_them(run_stack, lab, tmp_path):
    days = {datetime.datetime.now(datetime.timezone.utc).date().isoformat()}
    result, folder = backup(run_stack, lab, tmp_path)
    days.add(datetime.datetime.now(datetime.timezone.utc).date().isoformat())  # the run may cross midnight
    assert result.returncode == 0, result.stderr
    objects_ = stored(folder)
    expected = {"rack-router": ROUTER_CONFIG, "rack-switch": SWITCH_CONFIG}
    assert len(objects_) == 2
    for name, text in objects_.items():
        device = next(d for d in expected if f"-{d}-" in name)
        sha1 = hashlib.sha1(expected[device].encode()).hexdigest()
        assert any(name == f"{day}-{device}-{sha1}.gz" for day in days), name
        assert text == expected[device]
    # The switch was asked as its CLI wants, and its password never reached a command line or the logs.
    assert lab.pis[1].log("edgeswitch") == ["enable", "terminal length 0", "show running-config", "exit", "exit"]
    assert result.cmdline_hits == [] and PASSWORD not in result.stdout + result.stderr


def test_a_switch_that_refuses_the_password_fails_alone_and_the_job_reports_it(run_stack, lab, tmp_path):
    result, folder = backup(run_stack, lab, tmp_path, password="not-the-password")
    assert result.returncode == 1
    assert "could not read the config of rack-switch (edgeswitch at 10.232.1.2)" in result.stderr
    assert result.stderr.rstrip().endswith("backup failed for: rack-switch")
    assert [n.split("-", 3)[3].rsplit("-", 1)[0] for n in stored(folder)] == ["rack-router"]
    assert lab.pis[1].log("edgeswitch") == []  # never logged in


def test_a_switch_whose_host_key_does_not_match_the_pin_never_sees_the_password(run_stack, lab, tmp_path):
    impostor = lab.pis[0].host_key_pub  # a real key, but not the switch's
    result, folder = backup(run_stack, lab, tmp_path, switch_key=impostor)
    assert result.returncode == 1 and "could not read the config of rack-switch" in result.stderr
    assert "Host key verification failed" in result.stderr or "REMOTE HOST IDENTIFICATION HAS CHANGED" in result.stderr
    assert lab.pis[1].log("edgeswitch") == []
    assert len(stored(folder)) == 1
