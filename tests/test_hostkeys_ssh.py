"""`rackctl hostkeys` against real OpenSSH servers: the jumphost's key read from the workstation,
the Pis' and a router's through the jumphost, all written into the stack file with its comments
kept; a second run changes nothing; a changed key is reported and never replaced; a host that
does not answer is named. Needs root (namespaces), as CI has."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import yaml

from tests import hosts
from tests.conftest import ROOT

pytestmark = pytest.mark.hosts

hosts.require("the hostkeys tests")

STACK = """\
# lab: a rack in the sandbox
config:
  skolo:jumphost:
    name: lab-jumphost
    address: {jumphost}
    user: root
    lanAddress: 10.232.0.1   # the jumphost's side of the Pis' links
    lanCidr: 10.232.0.0/16
  skolo:rpis:
    - {{name: skia-rpi2-lab-shelf1-001, address: {pi0}}}
    - name: skia-rpi2-lab-shelf1-002
      address: {pi1}
  skolo:k3sVersion: v1.31.6+k3s1
  skolo:services:
    routerBackup:
      devices:
        - {{name: router, address: {router}, kind: edgerouter, user: root}}
    metadata: {{enabled: false}}
    alertToPubsub: {{enabled: false}}
    powerCycle: {{enabled: false}}
    swarming: {{enabled: false}}
"""


@pytest.fixture
def lab(tmp_path):
    rack = hosts.start_rack(tmp_path, pis=3)
    try:
        stacks = tmp_path / "stacks"
        stacks.mkdir()
        shutil.copy2(ROOT / "Pulumi.yaml", stacks / "Pulumi.yaml")
        (stacks / "Pulumi.lab.yaml").write_text(STACK.format(
            jumphost=rack.jumphost.address, pi0=rack.pis[0].address, pi1=rack.pis[1].address,
            router=rack.pis[2].address))
        yield rack, stacks / "Pulumi.lab.yaml"
    finally:
        rack.close()


def hostkeys(rack, stack_file):
    return subprocess.run(["ip", "netns", "exec", rack.workstation, sys.executable, "-m", "rackctl", "--config-dir",
                           str(stack_file.parent), "hostkeys", "lab", "--ssh-option=-i",
                           f"--ssh-option={rack.user_key}"], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_every_host_is_pinned_once_through_the_jumphost(lab):
    rack, stack_file = lab
    result = hostkeys(rack, stack_file)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "pin jumphost lab-jumphost (10.231.0.2): ssh-ed25519 SHA256:" in result.stdout
    text = stack_file.read_text()
    assert text.startswith("# lab: a rack in the sandbox\n") and "# the jumphost's side of the Pis' links" in text
    config = yaml.safe_load(text)["config"]
    assert config["skolo:jumphost"]["hostKey"] == rack.jumphost.host_key_pub
    assert [pi["hostKey"] for pi in config["skolo:rpis"]] == [rack.pis[0].host_key_pub, rack.pis[1].host_key_pub]
    assert config["skolo:services"]["routerBackup"]["devices"][0]["hostKey"] == rack.pis[2].host_key_pub
    again = hostkeys(rack, stack_file)
    assert again.returncode == 0 and "every host that answered is pinned already" in again.stdout
    assert stack_file.read_text() == text


def test_a_changed_key_is_reported_and_never_replaced(lab):
    rack, stack_file = lab
    assert hostkeys(rack, stack_file).returncode == 0
    impostor = rack.pis[0].host_key_pub
    text = stack_file.read_text().replace(rack.pis[1].host_key_pub, impostor)
    stack_file.write_text(text)
    result = hostkeys(rack, stack_file)
    assert result.returncode == 1
    assert "KEY CHANGED, not replaced: Pi skia-rpi2-lab-shelf1-002 (10.232.1.2) offers SHA256:" in result.stdout
    assert stack_file.read_text() == text


def test_a_host_that_does_not_answer_is_named_and_the_rest_are_pinned(lab):
    rack, stack_file = lab
    rack.stop(rack.pis[2])
    result = hostkeys(rack, stack_file)
    assert result.returncode == 1
    assert "not reached (run again when they answer): edgerouter (routerBackup) router (10.232.2.2)" in result.stdout
    config = yaml.safe_load(stack_file.read_text())["config"]
    assert config["skolo:jumphost"]["hostKey"] == rack.jumphost.host_key_pub
    assert "hostKey" not in config["skolo:services"]["routerBackup"]["devices"][0]


def test_a_pinned_jumphost_key_that_differs_is_named_as_the_one_that_differs(lab):
    """The new-rack mistake: a jumphost hostKey copied from another rack's stack file. ssh only says
    "Host key verification failed"; rackctl says which key is wrong and what the host offers."""
    rack, stack_file = lab
    copied = rack.pis[0].host_key_pub  # some other host's key
    text = stack_file.read_text().replace("    user: root\n", f"    user: root\n    hostKey: {copied}\n")
    stack_file.write_text(text)
    result = hostkeys(rack, stack_file)
    from rackctl.hostkeys import fingerprint

    assert (result.returncode, result.stderr) == (2, (
        f"rackctl: the jumphost {rack.jumphost.address} does not have the key pinned as skolo:jumphost.hostKey "
        f"({fingerprint(copied)}); it offers {fingerprint(rack.jumphost.host_key_pub)}. A key copied from another "
        f"rack's stack file, or a reinstalled jumphost: check the key on its console, then delete hostKey and run "
        f"rackctl hostkeys again. Nothing was read or written\n"))
    assert stack_file.read_text() == text


RSA_PROBE = """
set -e
ip link set lo up
ssh-keygen -q -t rsa -b 2048 -N '' -f "$D/host"
ssh-keygen -q -t ed25519 -N '' -f "$D/user"
cp "$D/user.pub" "$D/authorized"
printf 'Port 22\\nListenAddress 127.0.0.1\\nHostKey %s/host\\nAuthorizedKeysFile %s/authorized\\nPidFile %s/pid\\nUsePAM no\\nStrictModes no\\n' "$D" "$D" "$D" > "$D/config"
mkdir -p /run/sshd
/usr/sbin/sshd -f "$D/config"
for algorithm in ssh-rsa rsa-sha2-512; do
  ssh -i "$D/user" -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \\
    -o HostKeyAlgorithms="$algorithm" root@127.0.0.1 "echo $algorithm accepted" 2>&1 || true
done
kill "$(cat "$D/pid")"
"""


def test_openssh_refuses_a_client_that_offers_only_ssh_rsa_which_is_why_an_rsa_pin_is_refused(tmp_path):
    """The other side of the settings' refusal of an ssh-rsa hostKey: pulumi-command offers a host
    only the pinned key's type (connection.go: HostKeyAlgorithms = [key.Type()]), and for RSA that is
    ssh-rsa. A real sshd with an RSA host key, alone in its own network namespace, refuses that
    client, and accepts the same key offered as rsa-sha2-512 (the positive control)."""
    result = subprocess.run(["unshare", "--net", "sh", "-c", RSA_PROBE], env={**os.environ, "D": str(tmp_path)},
                            capture_output=True, text=True, timeout=60)
    lines = [line for line in result.stdout.splitlines() if not line.startswith("Warning: Permanently added")]
    assert lines[0].startswith("Unable to negotiate with 127.0.0.1 port 22: no matching host key type found. "
                               "Their offer: rsa-sha2-512,rsa-sha2-256"), result.stdout + result.stderr
    assert lines[1] == "rsa-sha2-512 accepted"
