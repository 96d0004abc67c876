"""The program's host scripts, run for real: taken from the resources the program declares,
sent over a real OpenSSH connection (through a real ProxyJump for the Pis) to sandboxed hosts,
with stdin fed as pulumi-command feeds it. See tests/hosts.py for the sandbox and its stand-ins.

Needs root (network and mount namespaces), which CI has; skipped with the reason elsewhere."""

from __future__ import annotations

import time

import pytest

from tests import hosts
from tests.conftest import NEEDLES, PLANTED

pytestmark = pytest.mark.hosts

hosts.require("the SSH host tests")

SECRETS = (NEEDLES["k3sToken"],)
VERSION, NEWER, OLDER = "v1.31.6+k3s1", "v1.31.7+k3s1", "v1.30.10+k3s1"
PIS = ["skia-rpi2-test-shelf1-001", "skia-rpi2-test-shelf1-002"]
CMDLINE = "console=serial0,115200 console=tty1 root=PARTUUID=1234-02 rootfstype=ext4 fsck.repair=yes rootwait"


@pytest.fixture
def rack(tmp_path):
    r = hosts.start_rack(tmp_path)
    yield r
    r.close()


@pytest.fixture
def declare(run_stack, rack):
    """declare(**overrides) -> the program's run for a stack aimed at the sandboxed rack. Its SSH
    key is the sandbox's real one: the jumphost uses it to reach a Pi on removal."""
    secrets = dict(PLANTED, sshPrivateKey=rack.user_key.read_text())

    def run(**overrides):
        config = {
            # The sandbox's rack LAN: the jumphost's links to the Pis (10.232.<i>.1 - .2).
            "jumphost": {"name": "skolo-test-jumphost", "address": rack.jumphost.address, "user": "root",
                         "lanAddress": "10.232.0.1", "lanCidr": "10.232.0.0/16", "hostKey": rack.jumphost.host_key_pub},
            "rpis": [{"name": name, "address": pi.address, "hostKey": pi.host_key_pub}
                     for name, pi in zip(PIS, rack.pis)],
            "k3sVersion": VERSION,
            "k3sInstallScriptUrl": f"http://{rack.jumphost.address}:{hosts.HTTP_PORT}/install.sh",
            "k3sInstallScriptSha256": rack.installer_sha256,
            "services": {s: {"enabled": False} for s in ("metadata", "prometheus", "alertToPubsub", "routerBackup",
                                                         "powerCycle", "nfs", "swarming")},
        }
        config.update(overrides)
        return run_stack("rack2", overrides=config, secrets=secrets)

    return run


def key_needle(rack) -> str:
    """A line from the middle of the sandbox's private key: finding it anywhere is a leak."""
    return rack.user_key.read_text().splitlines()[2]


def ok(result) -> hosts.Result:
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.cmdline_hits == [], f"secret seen in a process command line: {result.cmdline_hits}"
    assert not any(s in result.stdout + result.stderr for s in SECRETS)
    return result


def snapshot(host: hosts.Host, *paths: str) -> dict:
    """(inode, mtime, mode) of each file: a rewritten file gets a new inode or mtime."""
    out = {}
    for p in paths:
        st = host.file(p).stat()
        out[p] = (st.st_ino, st.st_mtime_ns, oct(st.st_mode & 0o777))
    return out


SERVER_FILES = ("/etc/rancher/k3s/config.yaml", "/etc/rancher/k3s/skolo-token", "/usr/local/bin/k3s",
                "/etc/systemd/system/k3s.service")


def test_server_install_on_a_fresh_jumphost(rack, declare):
    run = declare()
    jh = rack.jumphost
    out = ok(rack.run(run.named("rack2-install"), watch_for=SECRETS))
    assert f"installing k3s {VERSION} (server; was: not installed)" in out.stdout
    assert jh.read("/etc/rancher/k3s/skolo-token") == PLANTED["k3sToken"]
    assert snapshot(jh, "/etc/rancher/k3s/config.yaml")["/etc/rancher/k3s/config.yaml"][2] == "0o600"
    assert snapshot(jh, "/etc/rancher/k3s/skolo-token")["/etc/rancher/k3s/skolo-token"][2] == "0o600"
    assert "token-file: /etc/rancher/k3s/skolo-token" in jh.read("/etc/rancher/k3s/config.yaml")
    installer = jh.log("installer")
    assert installer == ["call: server", f"INSTALL_K3S_VERSION={VERSION}"]
    assert not any(s in jh.read(f"{hosts.STATE}/installer-env.log") for s in SECRETS)
    assert "restart k3s" in jh.log("systemctl")


def test_an_installer_that_does_not_match_its_pinned_checksum_never_runs(rack, declare):
    run = declare()  # pins the installer as served now
    rack.installer.write_text(rack.installer.read_text().replace("set -eu", "set -eu\necho tampered"))
    refused = rack.run(run.named("rack2-install"))
    assert refused.returncode == 1
    assert ("skolo[skolo-test-jumphost]: the install script from "
            f"http://{rack.jumphost.address}:{hosts.HTTP_PORT}/install.sh does not match "
            "skolo:k3sInstallScriptSha256; not running it") in refused.stderr
    assert rack.jumphost.log("installer") == []


def test_second_run_with_the_same_inputs_changes_nothing(rack, declare):
    run = declare()
    jh = rack.jumphost
    ok(rack.run(run.named("rack2-install")))
    before, calls = snapshot(jh, *SERVER_FILES), jh.log("systemctl")
    out = ok(rack.run(declare().named("rack2-install"), watch_for=SECRETS))
    assert "already installed and configured; nothing to do" in out.stdout
    assert snapshot(jh, *SERVER_FILES) == before
    assert jh.log("installer") == ["call: server", f"INSTALL_K3S_VERSION={VERSION}"]
    new_calls = jh.log("systemctl")[len(calls):]
    assert [c for c in new_calls if not c.startswith("is-active")] == []


def test_a_new_version_upgrades_and_an_older_one_is_refused(rack, declare):
    jh = rack.jumphost
    ok(rack.run(declare().named("rack2-install")))
    out = ok(rack.run(declare(k3sVersion=NEWER).named("rack2-install")))
    assert f"installing k3s {NEWER} (server; was: {VERSION})" in out.stdout
    assert jh.log("installer")[-1] == f"INSTALL_K3S_VERSION={NEWER}"
    refused = rack.run(declare(k3sVersion=OLDER).named("rack2-install"))
    assert refused.returncode != 0
    assert (f"skolo[skolo-test-jumphost]: refusing to downgrade k3s from {NEWER} to {OLDER}; "
            f"set skolo:k3sVersion to {NEWER} or newer") in refused.stderr
    assert len([line for line in jh.log("installer") if line.startswith("call:")]) == 2


def test_a_config_change_restarts_k3s_without_reinstalling(rack, declare):
    jh = rack.jumphost
    ok(rack.run(declare().named("rack2-install")))
    out = ok(rack.run(declare(clusterCidr="10.48.0.0/14").named("rack2-install")))
    assert "config changed, restarting k3s" in out.stdout
    assert "cluster-cidr: 10.48.0.0/14" in jh.read("/etc/rancher/k3s/config.yaml")
    assert jh.log("systemctl")[-1] == "restart k3s"
    assert len([line for line in jh.log("installer") if line.startswith("call:")]) == 1


def test_kubeconfig_is_read_back(rack, declare):
    run = declare()
    ok(rack.run(run.named("rack2-install")))
    out = ok(rack.run(run.named("rack2-kubeconfig")))
    assert "client-key-data: c3RhbmQtaW4ta2V5" in out.stdout


@pytest.mark.parametrize("service, name, unit", [
    ("metadata", "metadata", "metadata-server"), ("routerBackup", "router-backup", "router-backup"),
    ("powerCycle", "power-cycle", "powercycle-daemon"), ("nfs", "nfs", "nfs-kernel-server")])
def test_a_legacy_unit_is_stopped_at_cutover_and_started_on_rollback(rack, declare, service, name, unit):
    jh = rack.jumphost
    rack.on(jh, f"printf '[Service]\\nExecStart=/usr/bin/true\\n' > /etc/systemd/system/{unit}.service"
                f" && systemctl enable --now {unit}")
    services = {s: {"enabled": s == service} for s in ("metadata", "prometheus", "alertToPubsub", "routerBackup",
                                                        "powerCycle", "nfs", "swarming")}
    services["powerCycle"]["mpower"] = []  # rack2's strips name rack2's Pis
    cutover = declare(services=services).named(f"{name}-legacy-unit-cutover")
    assert f"stopped and disabled legacy {unit}" in ok(rack.run(cutover)).stdout
    assert jh.log("systemctl")[-1] == f"disable --now {unit}"
    assert not jh.file(f"{hosts.STATE}/units/{unit}.active").exists()
    assert "already stopped and disabled" in ok(rack.run(cutover)).stdout
    # Switching the service off deletes the cut-over: the rollback.
    assert f"enabled and started legacy {unit}" in ok(rack.run(cutover, "delete")).stdout
    assert jh.log("systemctl")[-1] == f"enable --now {unit}"
    assert jh.file(f"{hosts.STATE}/units/{unit}.active").exists()


def test_sshd_max_startups_is_checked_by_the_real_sshd_and_applied_once(rack, declare):
    jh = rack.jumphost
    step = declare().named("rack2-sshd")
    assert "sshd now allows 256:30:1024 startups" in ok(rack.run(step)).stdout
    assert jh.read("/etc/ssh/sshd_config.d/50-skolo.conf") == "MaxStartups 256:30:1024\n"
    assert jh.log("systemctl") == ["reload ssh"]
    assert "already allows" in ok(rack.run(step)).stdout
    assert jh.log("systemctl") == ["reload ssh"]


def test_pi_cgroups_are_added_once_and_a_reboot_scheduled_only_when_needed(rack, declare):
    run = declare()
    needs_reboot, enabled = rack.pis
    for pi in rack.pis:
        rack.on(pi, f"mkdir -p /boot/firmware && echo '{CMDLINE}' > /boot/firmware/cmdline.txt")
    first = ok(rack.run(run.named(f"{PIS[0]}-cgroups")))
    assert first.stdout.splitlines()[-1] == "reboot-scheduled"
    assert needs_reboot.log("shutdown") == ["-r +1 skolo: rebooting to enable the memory cgroup for k3s"]
    ok(rack.run(run.named(f"{PIS[0]}-cgroups")))
    flags = needs_reboot.read("/boot/firmware/cmdline.txt")
    assert flags == CMDLINE + " cgroup_memory=1 cgroup_enable=memory cgroup_enable=cpuset\n"
    second = ok(rack.run(run.named(f"{PIS[1]}-cgroups")))
    assert second.stdout.splitlines()[-1] == "skolo: memory cgroup enabled"
    assert enabled.log("shutdown") == []


def test_reboot_wait_is_a_no_op_when_no_reboot_was_scheduled(rack, declare):
    boot = declare().named(f"{PIS[1]}-boot")
    boot.inputs["create"] = boot.inputs["create"].replace("REBOOT=yes", "REBOOT=no")
    assert ok(rack.run(boot)).stdout.strip() == f"skolo: {rack.pis[1].address} did not need a reboot"


def test_reboot_wait_sees_the_pi_go_down_and_come_back(rack, declare):
    import threading

    pi = rack.pis[0]
    boot = declare().named(f"{PIS[0]}-boot")
    assert "REBOOT=yes" in boot.inputs["create"]

    def reboot():
        time.sleep(2)
        rack.stop(pi)
        time.sleep(7)
        rack.restart(pi)

    rebooting = threading.Thread(target=reboot)
    rebooting.start()
    out = ok(rack.run(boot, timeout=90))
    rebooting.join()
    assert out.stdout.strip() == f"skolo: {pi.address} is back after its reboot"
    assert out.seconds >= 9


def test_pi_joins_through_the_jumphost_with_the_token_only_on_stdin(rack, declare):
    run = declare()
    pi = rack.pis[0]
    ok(rack.run(run.named("rack2-install")))
    out = ok(rack.run(run.named(f"{PIS[0]}-join"), watch_for=SECRETS))
    assert f"installing k3s {VERSION} (agent; was: not installed)" in out.stdout
    assert pi.read("/etc/rancher/k3s/skolo-token") == PLANTED["k3sToken"]
    config = pi.read("/etc/rancher/k3s/config.yaml")
    assert "server: https://10.232.0.1:6443" in config and f"node-name: {PIS[0]}" in config
    assert pi.log("installer") == ["call: agent", f"INSTALL_K3S_VERSION={VERSION}"]
    assert "restart k3s-agent" in pi.log("systemctl")
    again = ok(rack.run(declare().named(f"{PIS[0]}-join")))
    assert "nothing to do" in again.stdout


def test_node_ready_waits_for_the_registered_node(rack, declare):
    ok(rack.run(declare().named("rack2-install")))
    rack.on(rack.jumphost, f"mkdir -p {hosts.STATE}/nodes && echo True > {hosts.STATE}/nodes/{PIS[0]}")
    assert ok(rack.run(declare().named(f"{PIS[0]}-node"))).stdout.strip() == f"skolo: {PIS[0]} is Ready"


def test_removing_a_pi_drains_uninstalls_and_deletes_its_node(rack, declare):
    run = declare()
    jh, pi = rack.jumphost, rack.pis[0]
    ok(rack.run(run.named("rack2-install")))
    ok(rack.run(run.named(f"{PIS[0]}-join")))
    rack.on(jh, f"mkdir -p {hosts.STATE}/nodes && echo True > {hosts.STATE}/nodes/{PIS[0]}")
    out = ok(rack.run(run.named(f"{PIS[0]}-node"), "delete", watch_for=SECRETS + (key_needle(rack),)))
    assert key_needle(rack) not in out.stdout + out.stderr
    assert f"skolo[{PIS[0]}]: k3s agent uninstalled from {pi.address}" in out.stdout
    assert jh.log("kubectl")[1:] == [
        f"cordon {PIS[0]}",
        f"drain {PIS[0]} --ignore-daemonsets --delete-emptydir-data --force --timeout=120s",
        f"delete node {PIS[0]} --ignore-not-found"]
    assert pi.log("uninstall") == ["uninstall k3s-agent"]
    assert not pi.file("/usr/local/bin/k3s").exists()
    assert not jh.file(f"{hosts.STATE}/nodes/{PIS[0]}").exists()


def test_an_unreachable_pi_fails_alone_fast_and_is_still_removed(rack, declare):
    run = declare()
    dead, alive = rack.pis
    ok(rack.run(run.named("rack2-install")))
    rack.on(rack.jumphost, f"mkdir -p {hosts.STATE}/nodes && echo True > {hosts.STATE}/nodes/{PIS[0]}")
    rack.stop(dead)
    failed = rack.run(run.named(f"{PIS[0]}-join"), timeout=60)
    # 255: the SSH connection itself failed (the jump host could not reach the Pi), fast.
    assert failed.returncode == 255 and failed.seconds < 30 and failed.stderr
    ok(rack.run(run.named(f"{PIS[1]}-join")))
    removed = ok(rack.run(run.named(f"{PIS[0]}-node"), "delete"))
    assert removed.seconds < 60
    assert (f"skolo[{PIS[0]}]: could not reach {dead.address} to uninstall k3s; re-image the Pi before it "
            "comes back") in removed.stderr
    assert not rack.jumphost.file(f"{hosts.STATE}/nodes/{PIS[0]}").exists()


@pytest.mark.parametrize("state, calls", [
    ("cordoned", ["cordon {n}"]),
    ("drained", ["cordon {n}", "drain {n} --ignore-daemonsets --delete-emptydir-data --force --timeout=120s"]),
    ("active", ["uncordon {n}"]),
])
def test_node_state_is_applied_on_the_jumphost(rack, declare, state, calls):
    jh = rack.jumphost
    ok(rack.run(declare().named("rack2-install")))
    rack.on(jh, f"mkdir -p {hosts.STATE}/nodes && echo True > {hosts.STATE}/nodes/{PIS[1]}")
    pis = [{"name": name, "address": pi.address, "hostKey": pi.host_key_pub, **({"state": state} if name == PIS[1] else {})}
           for name, pi in zip(PIS, rack.pis)]
    out = ok(rack.run(declare(rpis=pis).named(f"{PIS[1]}-state")))
    assert out.stdout.strip().endswith(f"skolo[{PIS[1]}]: {state}")
    assert jh.log("kubectl") == [f"label node {PIS[1]} skolo.skia.org/state={state} --overwrite"] + [
        c.format(n=PIS[1]) for c in calls]
