"""`rackctl attach` against a real OpenSSH server: the tunnel reaches a stand-in API server on
the jumphost's 127.0.0.1:6443, KUBECONFIG is a private 0600 file pointing at the tunnel, and
both are gone after the command ends, also on Ctrl-C. Needs root (namespaces), as CI has."""

from __future__ import annotations

import glob
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests import hosts
from tests.conftest import ROOT

pytestmark = pytest.mark.hosts

hosts.require("the attach tests")

STAND_IN_API = """
import socket
server = socket.create_server(("127.0.0.1", 6443))
while True:
    conn, _ = server.accept()
    conn.sendall(b"stand-in API server\\n")
    conn.close()
"""

PROBE = """
import os, socket, yaml
path = os.environ["KUBECONFIG"]
print(path)
print(oct(os.stat(path).st_mode & 0o777), os.environ["SKOLO_RACK"])
config = yaml.safe_load(open(path))
print(config["current-context"], config["clusters"][0]["cluster"]["server"])
host, port = config["clusters"][0]["cluster"]["server"].split("//")[1].split(":")
with socket.create_connection((host, int(port)), timeout=5) as s:
    print(s.recv(100).decode().strip())
"""

KUBECONFIG = """\
apiVersion: v1
clusters:
- cluster: {certificate-authority-data: c3RhbmQtaW4=, server: 'https://192.168.1.8:6443'}
  name: lab
contexts:
- context: {cluster: lab, user: lab}
  name: lab
current-context: lab
kind: Config
users:
- name: lab
  user: {client-key-data: c3RhbmQtaW4ta2V5}
"""


@pytest.fixture
def lab(tmp_path):
    rack = hosts.start_rack(tmp_path, pis=0)
    api = subprocess.Popen(["ip", "netns", "exec", rack.jumphost.netns, sys.executable, "-c", STAND_IN_API])
    rack.processes.append(api)
    config = tmp_path / "stacks"
    config.mkdir()
    shutil.copy2(ROOT / "Pulumi.yaml", config / "Pulumi.yaml")
    off = {s: {"enabled": False} for s in ("metadata", "prometheus", "alertToPubsub", "routerBackup", "powerCycle",
                                           "nfs", "swarming")}
    (config / "Pulumi.lab.yaml").write_text(yaml.safe_dump({"config": {
        "skolo:jumphost": {"name": "lab-jumphost", "address": rack.jumphost.address, "user": "root"},
        "skolo:rpis": [], "skolo:k3sVersion": "v1.31.6+k3s1", "skolo:services": off}}))
    (tmp_path / "kubeconfig").write_text(KUBECONFIG)
    time.sleep(0.5)  # the stand-in API server binds
    yield rack, config
    rack.close()


def attach(rack, config, *command, popen=False):
    args = ["ip", "netns", "exec", rack.workstation, sys.executable, "-m", "rackctl", "--config-dir", str(config),
            "attach", "lab", "--kubeconfig", str(rack.tmp / "kubeconfig"),
            "--ssh-option=-i", f"--ssh-option={rack.user_key}",
            "--ssh-option=-o", f"--ssh-option=UserKnownHostsFile={rack.known_hosts}",
            "--ssh-option=-o", "--ssh-option=StrictHostKeyChecking=yes", "--", *command]
    if popen:
        return subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=60)


def tunnels() -> list[str]:
    found = []
    for cmdline in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            text = Path(cmdline).read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text.startswith("ssh -N") and ":127.0.0.1:6443" in text:
            found.append(text)
    return found


def test_attach_runs_a_command_through_the_tunnel_and_cleans_up(lab):
    rack, config = lab
    result = attach(rack, config, sys.executable, "-c", PROBE)
    assert result.returncode == 0, result.stderr
    path, mode, context, answer = result.stdout.splitlines()
    assert mode == "0o600 lab"
    rack_name, server = context.split()
    assert rack_name == "lab" and server.startswith("https://127.0.0.1:") and not server.endswith(":6443")
    assert answer == "stand-in API server"
    assert not Path(path).exists() and not Path(path).parent.exists()
    assert tunnels() == []


def test_attach_passes_the_command_exit_code(lab):
    rack, config = lab
    assert attach(rack, config, "sh", "-c", "exit 7").returncode == 7


def test_two_racks_at_once_then_ctrl_c_cleans_up(lab):
    rack, config = lab
    first = attach(rack, config, "sleep", "60", popen=True)
    second = attach(rack, config, "sleep", "60", popen=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(glob.glob("/tmp/rackctl-lab-*/kubeconfig")) < 2:
        time.sleep(0.1)
    files = glob.glob("/tmp/rackctl-lab-*/kubeconfig")
    assert len(files) == 2
    ports = {yaml.safe_load(Path(f).read_text())["clusters"][0]["cluster"]["server"] for f in files}
    assert len(ports) == 2
    assert len(tunnels()) == 2
    for proc in (first, second):
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 130
    assert glob.glob("/tmp/rackctl-lab-*") == []
    assert tunnels() == []


def test_attach_says_clearly_when_the_tunnel_cannot_open(lab):
    rack, config = lab
    rack.stop(rack.jumphost)
    result = attach(rack, config, "true")
    assert result.returncode == 2
    assert result.stderr.startswith("rackctl: the SSH tunnel to the jumphost closed: ")
    assert glob.glob("/tmp/rackctl-lab-*") == []
