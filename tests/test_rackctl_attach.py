"""`rackctl attach` against a real OpenSSH server: the tunnel reaches a stand-in API server on
the jumphost's 127.0.0.1:6443, KUBECONFIG is a private 0600 file pointing at the tunnel, and
both are gone after the command ends, also on Ctrl-C. Needs root (namespaces), as CI has.

Deterministic under load: each lab has its own temp dir (TMPDIR), waits for its stand-in API
server to say it listens and for each tunnel by a line its command prints only once the tunnel
is up, counts only its own tunnels, and kills whatever it started."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests import hosts
from tests.conftest import ROOT

pytestmark = pytest.mark.hosts

hosts.require("the attach tests")

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


class Lab:
    def __init__(self, rack: hosts.Rack, config: Path):
        self.rack, self.config = rack, config
        self.tmp = rack.tmp / "tmp"  # attach's private dirs go here, not the shared /tmp
        self.tmp.mkdir()
        self.started: list[subprocess.Popen] = []

    def dirs(self) -> list[str]:
        return glob.glob(str(self.tmp / "rackctl-lab-*"))

    def tunnels(self) -> list[str]:
        """This lab's ssh port-forwards: their command lines name its known_hosts file."""
        found = []
        for cmdline in glob.glob("/proc/[0-9]*/cmdline"):
            try:
                text = Path(cmdline).read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if text.startswith("ssh -N") and str(self.rack.known_hosts) in text:
                found.append(text)
        return found


@pytest.fixture
def lab(tmp_path):
    rack = hosts.start_rack(tmp_path, pis=0)
    lab = None
    try:
        hosts.serve_stand_in_api(rack)
        config = tmp_path / "stacks"
        config.mkdir()
        shutil.copy2(ROOT / "Pulumi.yaml", config / "Pulumi.yaml")
        off = {s: {"enabled": False} for s in ("metadata", "prometheus", "alertToPubsub", "routerBackup",
                                               "powerCycle", "nfs", "swarming")}
        (config / "Pulumi.lab.yaml").write_text(yaml.safe_dump({"config": {
            "skolo:jumphost": {"name": "lab-jumphost", "address": rack.jumphost.address, "user": "root"},
            # One Pi on paper (a rack has at least one); attach never reaches the Pis.
            "skolo:rpis": [{"name": "lab-pi-001", "address": "10.231.0.50"}], "skolo:k3sVersion": "v1.31.6+k3s1",
            "skolo:services": off}}))
        (tmp_path / "kubeconfig").write_text(KUBECONFIG)
        lab = Lab(rack, config)
        yield lab
    finally:
        for proc in lab.started if lab else ():
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=20)
        rack.close()


read_line = hosts.read_line


def attach(lab: Lab, *command, popen=False):
    args = ["ip", "netns", "exec", lab.rack.workstation, sys.executable, "-m", "rackctl", "--config-dir",
            str(lab.config), "attach", "lab", "--kubeconfig", str(lab.rack.tmp / "kubeconfig"),
            "--ssh-option=-i", f"--ssh-option={lab.rack.user_key}",
            "--ssh-option=-o", f"--ssh-option=UserKnownHostsFile={lab.rack.known_hosts}",
            "--ssh-option=-o", "--ssh-option=StrictHostKeyChecking=yes", "--", *command]
    env = dict(os.environ, TMPDIR=str(lab.tmp))
    if popen:
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lab.started.append(proc)
        return proc
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_attach_runs_a_command_through_the_tunnel_and_cleans_up(lab):
    result = attach(lab, sys.executable, "-c", PROBE)
    assert result.returncode == 0, result.stderr
    path, mode, context, answer = result.stdout.splitlines()
    assert mode == "0o600 lab"
    assert Path(path).parent.parent == lab.tmp
    rack_name, server = context.split()
    assert rack_name == "lab" and server.startswith("https://127.0.0.1:") and not server.endswith(":6443")
    assert answer == "stand-in API server"
    assert not Path(path).exists() and not Path(path).parent.exists()
    assert lab.tunnels() == []


def test_attach_passes_the_command_exit_code(lab):
    assert attach(lab, "sh", "-c", "exit 7").returncode == 7


def test_two_racks_at_once_then_ctrl_c_cleans_up(lab):
    # The command runs only once its tunnel answers, so "attached" means the tunnel is up.
    first = attach(lab, "sh", "-c", "echo attached; exec sleep 60", popen=True)
    second = attach(lab, "sh", "-c", "echo attached; exec sleep 60", popen=True)
    assert [read_line(p, 60) for p in (first, second)] == ["attached", "attached"]
    files = glob.glob(str(lab.tmp / "rackctl-lab-*" / "kubeconfig"))
    assert len(files) == 2
    ports = {yaml.safe_load(Path(f).read_text())["clusters"][0]["cluster"]["server"] for f in files}
    assert len(ports) == 2
    assert len(lab.tunnels()) == 2
    for proc in (first, second):
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 130
    assert lab.dirs() == []
    assert lab.tunnels() == []


def test_attach_says_clearly_when_the_tunnel_cannot_open(lab):
    lab.rack.stop(lab.rack.jumphost)
    result = attach(lab, "true")
    assert result.returncode == 2
    assert result.stderr.startswith("rackctl: the SSH tunnel to the jumphost closed: ")
    assert lab.dirs() == []


def test_attach_checks_the_jumphost_against_the_key_the_stack_pins(lab):
    stack = lab.config / "Pulumi.lab.yaml"
    doc = yaml.safe_load(stack.read_text())
    doc["config"]["skolo:jumphost"]["hostKey"] = lab.rack.jumphost.host_key_pub
    stack.write_text(yaml.safe_dump(doc))
    # No known_hosts from the user at all: the pinned key alone lets the tunnel up.
    args = ["ip", "netns", "exec", lab.rack.workstation, sys.executable, "-m", "rackctl", "--config-dir",
            str(lab.config), "attach", "lab", "--kubeconfig", str(lab.rack.tmp / "kubeconfig"),
            "--ssh-option=-i", f"--ssh-option={lab.rack.user_key}", "--", "sh", "-c", "exit 3"]
    env = dict(os.environ, TMPDIR=str(lab.tmp))
    assert subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60).returncode == 3
    # A pinned key the jumphost does not have: refused, even though the user's known_hosts trusts it.
    other = lab.rack.tmp / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    doc["config"]["skolo:jumphost"]["hostKey"] = " ".join(Path(f"{other}.pub").read_text().split()[:2])
    stack.write_text(yaml.safe_dump(doc))
    refused = attach(lab, "true")
    assert refused.returncode == 2
    assert refused.stderr.startswith("rackctl: the SSH tunnel to the jumphost closed: ")
    assert "Host key verification failed" in refused.stderr
    assert lab.dirs() == []


TUNNEL_PROBE = """
import os, socket
print(os.environ.get("KUBECONFIG", "no KUBECONFIG"))
with socket.create_connection(("127.0.0.1", 6442), timeout=5) as s:  # where the stack's apiServer points
    print(s.recv(100).decode().strip())
"""

# STAND-IN for the Pulumi CLI, which cannot be built here (README: the engine): it answers only
# `pulumi config get skolo:sshPrivateKey --stack lab` with the key in $STANDIN_KEY, and records
# its arguments (never the key) in $STANDIN_LOG.
STAND_IN_PULUMI = """#!/bin/sh
echo "$*" >> "$STANDIN_LOG"
[ "$*" = "config get skolo:sshPrivateKey --stack lab" ] || { echo "stand-in pulumi: not $*" >&2; exit 1; }
cat "$STANDIN_KEY"
"""


def tunnelled(lab: Lab) -> None:
    """The lab stack reached through a tunnel: its apiServer is https://127.0.0.1:6442 (rack2's form)."""
    stack = lab.config / "Pulumi.lab.yaml"
    doc = yaml.safe_load(stack.read_text())
    doc["config"]["skolo:apiServer"] = "https://127.0.0.1:6442"
    stack.write_text(yaml.safe_dump(doc))


def test_a_stack_behind_a_tunnel_is_reached_at_its_api_server_address_by_pulumi_too(lab):
    """What `pulumi up`/`preview` need for a stack whose apiServer is a tunnel: the program's own
    Kubernetes provider dials apiServer, so the tunnel listens exactly there (no kubeconfig
    needed: a first `up` has none). A second attach to it is refused, saying why."""
    tunnelled(lab)
    args = ["ip", "netns", "exec", lab.rack.workstation, sys.executable, "-m", "rackctl", "--config-dir",
            str(lab.config), "attach", "lab", "--no-kubeconfig",
            "--ssh-option=-i", f"--ssh-option={lab.rack.user_key}",
            "--ssh-option=-o", f"--ssh-option=UserKnownHostsFile={lab.rack.known_hosts}", "--"]
    env = dict(os.environ, TMPDIR=str(lab.tmp))
    result = subprocess.run([*args, sys.executable, "-c", TUNNEL_PROBE], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=60)
    assert (result.returncode, result.stdout) == (0, "no KUBECONFIG\nstand-in API server\n"), result.stderr
    held = subprocess.Popen([*args, "sh", "-c", "echo attached; exec sleep 60"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lab.started.append(held)
    assert read_line(held, 60) == "attached"
    again = subprocess.run([*args, "true"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert (again.returncode, again.stderr) == (2, "rackctl: 127.0.0.1:6442 (skolo:apiServer of lab, where its "
                                                   "tunnel listens) is in use: another rackctl attach lab is open, "
                                                   "or something else listens there\n")
    held.send_signal(signal.SIGINT)
    assert held.wait(timeout=20) == 130
    assert lab.dirs() == [] and lab.tunnels() == []


def test_key_from_stack_reaches_the_jumphost_with_the_stacks_own_key(lab, tmp_path):
    """--key-from-stack: the stack's skolo:sshPrivateKey, read with `pulumi config get` (a stand-in
    here), is the only key the tunnel offers; it sits in a private 0600 file while attached and is
    gone after. No key is passed by the caller."""
    tunnelled(lab)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pulumi").write_text(STAND_IN_PULUMI)
    (bin_dir / "pulumi").chmod(0o755)
    log = tmp_path / "pulumi.log"
    key_probe = ("import glob, os; f = glob.glob(os.path.join(os.environ['TMPDIR'], 'rackctl-lab-*', 'jumphost-key')); "
                 "print(oct(os.stat(f[0]).st_mode & 0o777))")
    args = ["ip", "netns", "exec", lab.rack.workstation, sys.executable, "-m", "rackctl", "--config-dir",
            str(lab.config), "attach", "lab", "--no-kubeconfig", "--key-from-stack",
            "--ssh-option=-o", f"--ssh-option=UserKnownHostsFile={lab.rack.known_hosts}",
            "--", sys.executable, "-c", key_probe]
    env = dict(os.environ, TMPDIR=str(lab.tmp), PATH=f"{bin_dir}:{os.environ['PATH']}", STANDIN_LOG=str(log),
               STANDIN_KEY=str(lab.rack.user_key), HOME=str(tmp_path))  # no ~/.ssh keys to fall back on
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (0, "0o600\n"), result.stderr
    assert log.read_text() == "config get skolo:sshPrivateKey --stack lab\n"
    assert lab.dirs() == [] and lab.tunnels() == []
    secret = lab.rack.user_key.read_text().splitlines()[2]
    assert secret not in result.stdout + result.stderr
