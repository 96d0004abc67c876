"""`rackctl status` against rack1 live on a real API server, in every state the project's own steps
leave a Pi in: mid-upgrade (amber, not drift), drained as configured, NotReady as the real node
controller marks it, an unknown Node, a missing Pi, a skewed version. Exit codes as documented:
0 when the rack matches its code, 1 on drift, 2 when the cluster cannot be read."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from components import kube
from tests.conftest import ROOT
from tests.cluster_rack import pi_node
from tests.controlplane import wait_for

pytestmark = pytest.mark.cluster
NEWER = "v1.31.9+k3s1"


def status(cp, tmp_path: Path, config_dir: Path = ROOT) -> tuple[int, dict]:
    kubeconfig = cp.write_kubeconfig(tmp_path / "rack1.kubeconfig", cluster="rack1", user={
        "client-certificate": str(cp.admin.cert), "client-key": str(cp.admin.key)})
    env = {"PATH": f"{cp.bin}:/usr/bin:/bin", "HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "rackctl", "--config-dir", str(config_dir), "status", "rack1",
                             "--kubeconfig", str(kubeconfig), "--format", "json"],
                            cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout)


def pis(doc: dict) -> dict[str, dict]:
    return {pi["name"]: pi for shelf in doc["shelves"] for pi in shelf["pis"]}


def stack_dir(tmp_path: Path, edit) -> Path:
    """A config dir holding Pulumi.yaml and rack1's stack file as `edit` changes its text."""
    out = tmp_path / "config"
    out.mkdir(exist_ok=True)
    shutil.copy(ROOT / "Pulumi.yaml", out / "Pulumi.yaml")
    (out / "Pulumi.rack1.yaml").write_text(edit((ROOT / "Pulumi.rack1.yaml").read_text()))
    return out


def test_a_clean_rack_is_green_and_exits_0(rack1_live, tmp_path):
    cp, _, _, rack, _ = rack1_live
    wait_for(lambda: status(cp, tmp_path)[0] == 0, 60, "every bot Running")
    code, doc = status(cp, tmp_path)
    assert doc["counts"] == {"pis": len(rack.rpis), "ok": len(rack.rpis), "out": 0, "problem": 0, "unknown": 0}
    assert doc["jumphost"]["problems"] == []


def test_mid_upgrade_is_amber_not_drift(rack1_live, tmp_path):
    """The config pins a newer k3s; the server runs it, one Pi is done, one is in its slot
    (cordoned, maintenance label, bot gone), the rest are still on the old release."""
    cp, kubelet, live, rack, _ = rack1_live
    done, busy = rack.rpis[0].name, rack.rpis[1].name
    config = stack_dir(tmp_path, lambda text: text.replace(rack.k3s_version, NEWER))
    kubelet.set_version(rack.jumphost.name, NEWER)
    kubelet.set_version(done, NEWER)
    cp.kubectl("cordon", busy)
    cp.kubectl("label", "node", busy, f"{kube.MAINTENANCE_LABEL}=k3s-upgrade")
    try:
        live.wait_no_bot(busy)
        code, doc = status(cp, tmp_path, config)
        assert code == 0 and doc["drift"] is False, doc["summary"]
        by = pis(doc)
        assert (by[busy]["cell"], by[busy]["severity"]) == ("upgrading", "out")
        assert (by[done]["cell"], by[done]["severity"]) == ("ready", "ok")
        queued = [n for n, pi in by.items() if pi["cell"] == "queued"]
        assert len(queued) == len(rack.rpis) - 2 and all(by[n]["severity"] == "out" for n in queued)
        # The roll over (no Pi in a slot), a Pi left on the old release is drift again.
        cp.kubectl("label", "node", busy, f"{kube.MAINTENANCE_LABEL}-")
        code, doc = status(cp, tmp_path, config)
        assert code == 1 and pis(doc)[busy]["cell"] == "skewed"
    finally:
        cp.kubectl("label", "node", busy, f"{kube.MAINTENANCE_LABEL}-", check=False)
        cp.kubectl("uncordon", busy)
        for name in (rack.jumphost.name, done):
            kubelet.set_version(name, rack.k3s_version)


def test_drained_as_configured_is_amber_and_drained_by_hand_is_drift(rack1_live, tmp_path):
    cp, _, live, rack, _ = rack1_live
    pi = rack.rpis[6].name
    anchor = f"        {pi}:\n"
    config = stack_dir(tmp_path, lambda text: text.replace(anchor, anchor + "          state: drained\n", 1))
    cp.kubectl("cordon", pi)
    cp.kubectl("label", "node", pi, f"{kube.STATE_LABEL}={kube.STATE_DRAINED}")
    try:
        live.wait_no_bot(pi)
        code, doc = status(cp, tmp_path, config)
        assert code == 0 and (pis(doc)[pi]["cell"], pis(doc)[pi]["severity"]) == ("drained", "out")
        code, doc = status(cp, tmp_path)  # the stack file says active
        # and its bot is gone with it: the DaemonSet controller took it off the drained Node.
        assert code == 1 and pis(doc)[pi]["problems"] == ["is drained, config says active", "no swarming bot"]
    finally:
        cp.kubectl("label", "node", pi, f"{kube.STATE_LABEL}-")
        cp.kubectl("uncordon", pi)


def test_notready_unknown_missing_and_skewed_are_drift(rack1_live, tmp_path):
    cp, kubelet, live, rack, _ = rack1_live
    dead, gone, old = rack.rpis[10].name, rack.rpis[20], rack.rpis[30].name
    stranger = pi_node("skia-rpi2-rack1-shelf9-001", "192.168.1.250", rack.k3s_version)
    kubelet.kill(dead)
    kubelet.register(stranger)
    live.retire(gone.name)
    kubelet.set_version(old, "v1.31.5+k3s1")
    try:
        def marked():  # by the real node controller, once the Lease is older than its grace period
            node = cp.json("get", "node", dead)
            ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
            return ready["status"] == "Unknown"
        wait_for(marked, 60, f"the node controller marking {dead} NotReady", every=1)
        code, doc = status(cp, tmp_path)
        by = pis(doc)
        assert code == 1 and doc["drift"] is True
        assert (by[dead]["cell"], by[dead]["problems"]) == ("notready", ["NotReady"])
        assert (by[gone.name]["cell"], by[gone.name]["problems"]) == ("missing", ["not in the cluster"])
        assert by[old]["cell"] == "skewed" and by[old]["problems"] == [
            f"runs v1.31.5+k3s1, config pins {rack.k3s_version}"]
        assert [u["name"] for u in doc["unknown"]] == [stranger.name]
    finally:
        kubelet.register(pi_node(gone.name, gone.address, rack.k3s_version))
        kubelet.revive(dead)  # nothing posted by the test: the stand-in recovers the Node as a kubelet would
        kubelet.set_version(old, rack.k3s_version)
        live.retire(stranger.name)
    wait_for(lambda: next(c for c in cp.json("get", "node", dead)["status"]["conditions"]
                          if c["type"] == "Ready")["status"] == "True", 30, f"{dead} Ready again after its stall")
    wait_for(lambda: status(cp, tmp_path)[0] == 0, 90, "the rack back to green")


def test_a_kubeconfig_without_rights_exits_2(rack1_live, tmp_path):
    cp = rack1_live[0]
    nobody = cp.identity("nobody")
    kubeconfig = cp.write_kubeconfig(tmp_path / "nobody.kubeconfig", cluster="rack1", user={
        "client-certificate": str(nobody.cert), "client-key": str(nobody.key)})
    result = subprocess.run([sys.executable, "-m", "rackctl", "status", "rack1", "--kubeconfig", str(kubeconfig)],
                            cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={"PATH": f"{cp.bin}:/usr/bin:/bin", "HOME": str(tmp_path)})
    assert result.returncode == 2
    assert result.stderr.strip().startswith("rackctl: the kubeconfig may not read the rack:") and \
        "forbidden" in result.stderr, result.stderr
