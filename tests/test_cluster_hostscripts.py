"""The bundle's pi-node and pi-remove, exactly as the program declares each Pi's call, with the real
kubectl against the real control plane: cordon, labels, drain, uncordon, Node deletion and the
wait for Ready at a version.

What is not real, at the edge and named as such: `k3s kubectl` on the jumphost is the real
kubectl with the admin kubeconfig; `ssh` to a Pi is tests/standins/pi-ssh, which plays the Pi
and, when an agent install changes its version, reports its Node Ready at it with the Pi's own
node credentials; the stand-in kubelet (tests/controlplane.py) runs and finishes pods. Each run
is in its own mount namespace with tmpfs on /run and /var/lib, where the scripts keep their
upgrade slots and halt file, so nothing on this machine is touched (needs root, as the SSH
sandbox does).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from components import hostscripts, kube
from rackctl.program import Run
from tests.ci import cannot_run
from tests.cluster_rack import pi_node, scheduled
from tests.conftest import ROOT

pytestmark = [pytest.mark.cluster]
if os.geteuid() != 0 or shutil.which("unshare") is None:
    cannot_run("the bundle runs in its own mount namespace: needs root and util-linux's unshare", module=True)
NEWER = "v1.31.9+k3s1"


def bundle_of(run: Run) -> dict[str, str]:
    install = next(r for r in run.of_type("command:remote:Command")
                   if "skolo-bundle-install" in (r.inputs.get("create") or ""))
    return hostscripts.unbundle(install.inputs["stdin"])


def _step(run: Run, pi: str, phase: str) -> tuple[str, dict[str, str]]:
    """(script, parameters) of the Pi's `phase` (create or delete), as the program declares it."""
    for r in run.of_type("command:remote:Command"):
        try:
            _, script, params = hostscripts.unwrap_call(r.inputs.get(phase) or "")
        except ValueError:
            continue
        if params.get("NODE_NAME") == pi:
            return script, params
    raise KeyError(f"no {phase} step for {pi}")


def call_of(run: Run, pi: str) -> tuple[str, dict[str, str]]:
    return _step(run, pi, "create")


def delete_of(run: Run, pi: str) -> tuple[str, dict[str, str]]:
    return _step(run, pi, "delete")


class Jumphost:
    """The bundle laid out as the jumphost keeps it, and a way to run one of its scripts."""

    def __init__(self, cp, run: Run, tmp: Path):
        self.cp = cp
        self.dir = tmp / "bundle"
        self.dir.mkdir()
        for name, text in bundle_of(run).items():
            (self.dir / name).write_text(text)
        (self.dir / "run").chmod(0o755)
        bin_dir = tmp / "bin"
        bin_dir.mkdir()
        k3s = bin_dir / "k3s"  # STAND-IN: the jumphost's `k3s kubectl` is kubectl with the admin kubeconfig
        k3s.write_text(f'#!/bin/sh\n[ "$1" = kubectl ] || exit 1\nshift\nexec {cp.bin}/kubectl '
                       f'--kubeconfig={cp.admin.kubeconfig} "$@"\n')
        k3s.chmod(0o755)
        shutil.copy(ROOT / "tests" / "standins" / "pi-ssh", bin_dir / "ssh")
        self.pis = tmp / "pis"
        self.pis.mkdir()
        self.env = {"PATH": f"{bin_dir}:/usr/bin:/bin:/usr/sbin:/sbin", "STANDIN_PI_DIR": str(self.pis),
                    "STANDIN_KUBECTL": str(cp.bin / "kubectl"), "HOME": str(tmp)}

    def pi(self, name: str, version: str, kubelet) -> Path:
        """The stand-in Pi `name`, with k3s `version` installed and its node credentials."""
        (self.pis / name).mkdir(exist_ok=True)
        (self.pis / name / "version").write_text(version + "\n")
        shutil.copy(kubelet.node_identity(name).kubeconfig, self.pis / f"{name}.kubeconfig")
        return self.pis / name

    def run(self, script: str, params: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess:
        # /etc is an overlay (the jumphost's join token file is written into its upper layer).
        upper, work = self.dir.parent / "etc-upper", self.dir.parent / "etc-work"
        upper.mkdir(exist_ok=True)
        work.mkdir(exist_ok=True)
        inner = (f"mount -t tmpfs skolo-run /run && mount -t tmpfs skolo-var-lib /var/lib && "
                 f"mount -t overlay skolo-etc -o lowerdir=/etc,upperdir={upper},workdir={work} /etc && "
                 f"mkdir -p /etc/rancher/k3s && printf 'K10jumphost-token::server:x\\n' > {hostscripts.K3S_TOKEN_FILE} "
                 f'&& exec "$@"')
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", inner, "sh",
                str(self.dir / "run"), script, *(f"{k}={v}" for k, v in params.items())]
        return subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def jumphost(rack1_live, tmp_path):
    cp, kubelet, live, rack, run = rack1_live
    return Jumphost(cp, run, tmp_path)


def node(cp, name: str) -> dict:
    return cp.json("get", "node", name)


def test_a_joined_pis_state_is_applied_with_the_real_kubectl(rack1_live, jumphost):
    cp, kubelet, live, rack, run = rack1_live
    name = rack.rpis[3].name
    jumphost.pi(name, rack.k3s_version, kubelet)
    script, params = call_of(run, name)
    assert script == "pi-node"

    first = jumphost.run(script, params)
    assert first.returncode == 0, first.stderr
    assert f"k3s {rack.k3s_version} joined, Ready, active" in first.stdout
    labels = node(cp, name)["metadata"]
    assert labels["labels"][kube.STATE_LABEL] == "active" and "skolo.skia.org/applied" in labels["annotations"]
    assert (jumphost.pis / name / "token").read_text()  # the join token went on stdin

    # The second run finds it Ready and applied: the Pi is not contacted, only its state applied.
    calls = (jumphost.pis / name / "calls.log").read_text()
    drained = {**params, "STATE": "drained"}
    second = jumphost.run(script, drained)
    assert second.returncode == 0, second.stderr
    assert "the Pi was not contacted; drained" in second.stdout
    assert (jumphost.pis / name / "calls.log").read_text() == calls
    assert node(cp, name)["spec"].get("unschedulable") is True
    live.wait_no_bot(name)

    back = jumphost.run(script, params)
    assert back.returncode == 0, back.stderr
    assert not node(cp, name)["spec"].get("unschedulable")
    scheduled(cp, "swarming", "swarming", len(rack.rpis))


def test_an_upgrade_cordons_stops_the_bot_upgrades_and_brings_the_pi_back(rack1_live, jumphost):
    cp, kubelet, live, rack, run = rack1_live
    name = rack.rpis[4].name
    jumphost.pi(name, rack.k3s_version, kubelet)
    script, params = call_of(run, name)
    try:
        upgrade = jumphost.run(script, {**params, "K3S_VERSION": NEWER})
        assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
        assert f"upgrading k3s from {rack.k3s_version} to {NEWER} (slot 1 of" in upgrade.stdout
        assert f"install {NEWER}" in (jumphost.pis / name / "calls.log").read_text()
        after = node(cp, name)
        assert after["status"]["nodeInfo"]["kubeletVersion"] == NEWER
        assert kube.MAINTENANCE_LABEL not in after["metadata"]["labels"]
        assert not after["spec"].get("unschedulable")
        scheduled(cp, "swarming", "swarming", len(rack.rpis))
    finally:
        kubelet.set_version(name, rack.k3s_version)


def test_a_downgrade_is_refused_before_any_cordon(rack1_live, jumphost):
    cp, kubelet, live, rack, run = rack1_live
    name = rack.rpis[8].name
    jumphost.pi(name, NEWER, kubelet)
    script, params = call_of(run, name)
    result = jumphost.run(script, params)
    assert result.returncode != 0
    assert f"refusing to downgrade k3s from {NEWER} to {rack.k3s_version}" in result.stderr
    assert not node(cp, name)["spec"].get("unschedulable")


@pytest.mark.parametrize("answers", [True, False], ids=["pi-answers", "pi-dead"])
def test_removing_a_pi_drains_it_and_deletes_its_node_even_when_it_is_dead(rack1_live, jumphost, answers):
    cp, kubelet, live, rack, run = rack1_live
    gone = rack.rpis[12]
    pi = jumphost.pi(gone.name, rack.k3s_version, kubelet)
    if not answers:
        (pi / "dead").write_text("")
    script, params = delete_of(run, gone.name)
    assert script == "pi-remove"
    try:
        result = jumphost.run(script, params)
        assert result.returncode == 0, result.stderr
        assert "Node deleted" in result.stdout
        assert cp.kubectl("get", "node", gone.name, check=False).returncode != 0
        if answers:
            assert "uninstall" in (pi / "calls.log").read_text()
        else:
            assert "could not reach" in result.stderr
    finally:
        kubelet.register(pi_node(gone.name, gone.address, rack.k3s_version))
    scheduled(cp, "swarming", "swarming", len(rack.rpis))
