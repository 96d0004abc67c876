"""The program's host scripts, run for real: taken from the resources the program declares,
sent over a real OpenSSH connection (through a real ProxyJump for the Pis) to sandboxed hosts,
with stdin fed as pulumi-command feeds it. See tests/hosts.py for the sandbox and its stand-ins.

Needs root (network and mount namespaces), which CI has; skipped with the reason elsewhere."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from components import hostscripts
from components.fleet import CGROUP_FLAGS
from tests import hosts
from tests.conftest import NEEDLES, PLANTED

pytestmark = pytest.mark.hosts

hosts.require("the SSH host tests")

SECRETS = (NEEDLES["k3sToken"],)
VERSION, NEWER, OLDER = "v1.31.6+k3s1", "v1.31.7+k3s1", "v1.30.10+k3s1"
PIS = ["skia-rpi2-test-shelf1-001", "skia-rpi2-test-shelf1-002"]
CMDLINE = hosts.CMDLINE


@pytest.fixture
def rack(tmp_path):
    r = hosts.start_rack(tmp_path, trace=True)  # its tests look for secrets in every process's arguments
    yield r
    r.close()


@pytest.fixture
def declare(run_stack, rack):
    """declare(**overrides) -> the program's run for a stack aimed at the sandboxed rack. Its SSH
    key is the sandbox's real one: the jumphost uses it to reach a Pi on removal."""
    secrets = dict(PLANTED, sshPrivateKey=rack.user_key.read_text())

    def run(**overrides):
        return run_stack("rack2", overrides=hosts.stack_config(rack, PIS, **{"k3sVersion": VERSION, **overrides}),
                         secrets=secrets)

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


def test_the_leak_detector_sees_a_secret_in_the_arguments_of_a_process_that_lives_a_microsecond(rack):
    """Positive control for every `cmdline_hits == []` here: a Pi, reached through the jumphost,
    reads a planted needle from stdin and passes it as an argument to /bin/true (a process that
    lives microseconds, which sampling /proc missed); the traces see it. Sent on stdin and only
    read, it is seen nowhere: the negative control."""
    needle = "planted-flash-needle-4d1f"
    pi = rack.pis[0]
    args = rack.ssh_args(pi.address, 22, "root", {"host": rack.jumphost.address, "port": 22, "user": "root"})
    leaked = rack.exec(args + ['read -r x; /bin/true "$x"'], f"{needle}\n", 60, (needle,))
    assert (leaked.returncode, leaked.cmdline_hits) == (0, [needle]), leaked.stderr
    kept = rack.exec(args + ['read -r x; test -n "$x"'], f"{needle}\n", 60, (needle,))
    assert (kept.returncode, kept.cmdline_hits) == (0, []), kept.stderr


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


@pytest.mark.parametrize("service, name, units", [
    ("metadata", "metadata", ["metadata-server"]), ("routerBackup", "router-backup", ["router-backup"]),
    ("powerCycle", "power-cycle", ["powercycle-daemon"]),
    ("nfs", "nfs", ["nfs-kernel-server", "rpcbind.socket", "rpcbind.service"])])
def test_a_legacy_unit_is_stopped_at_cutover_and_started_on_rollback(rack, declare, service, name, units):
    jh = rack.jumphost
    for unit in units:
        file = unit if "." in unit else f"{unit}.service"
        rack.on(jh, f"printf '[Service]\\nExecStart=/usr/bin/true\\n' > /etc/systemd/system/{file}"
                    f" && systemctl enable --now {unit}")
    services = {s: {"enabled": s == service} for s in hosts.SERVICES}
    services["powerCycle"]["mpower"] = []  # rack2's strips name rack2's Pis
    cutover = declare(services=services).named(f"{name}-legacy-unit-cutover")
    out = ok(rack.run(cutover)).stdout
    assert all(f"stopped and disabled legacy {unit}" in out for unit in units)
    # In order: the legacy unit, then what it leaves in the way (rpcbind after nfs-kernel-server).
    assert [c for c in jh.log("systemctl") if c.startswith("disable")] == [f"disable --now {u}" for u in units]
    assert not any(jh.file(f"{hosts.STATE}/units/{u.removesuffix('.service')}.active").exists() for u in units)
    assert "already stopped and disabled" in ok(rack.run(cutover)).stdout
    # Switching the service off deletes the cut-over: the rollback, in reverse order.
    out = ok(rack.run(cutover, "delete")).stdout
    assert all(f"enabled and started legacy {unit}" in out for unit in units)
    enables = [c for c in jh.log("systemctl") if c.startswith("enable --now")]
    assert enables[-len(units):] == [f"enable --now {u}" for u in reversed(units)]
    assert all(jh.file(f"{hosts.STATE}/units/{u.removesuffix('.service')}.active").exists() for u in units)


def test_sshd_max_startups_is_checked_by_the_real_sshd_and_applied_once(rack, declare):
    jh = rack.jumphost
    step = declare().named("rack2-sshd")
    assert "sshd now allows 256:30:1024 startups" in ok(rack.run(step)).stdout
    assert jh.read("/etc/ssh/sshd_config.d/50-skolo.conf") == "MaxStartups 256:30:1024\n"
    assert jh.log("systemctl") == ["reload ssh"]
    assert "already allows" in ok(rack.run(step)).stdout
    assert jh.log("systemctl") == ["reload ssh"]


# --- the Pis: each one's step runs on the jumphost, from the bundle ---------------------------

def up(rack, run) -> None:
    for result in hosts.prepare(rack, run, watch_for=SECRETS + (key_needle(rack),)):
        ok(result)


def changes(jh: hosts.Host, since: int) -> list[str]:
    """The kubectl calls after the first `since` that change something (not `get`)."""
    return [c for c in jh.log("kubectl")[since:] if not c.startswith("get ")]


def test_the_bundle_and_the_pis_key_reach_the_jumphost_once(rack, declare):
    run = declare()
    jh = rack.jumphost
    bundle = run.named("rack2-fleet-bundle")
    digest = hostscripts.unwrap(bundle.inputs["create"]).text.split("HASH=", 1)[1].split("\n", 1)[0]
    damaged = dict(bundle.inputs, stdin=bundle.inputs["stdin"][:-8] + "AAAAAAA=")
    refused = rack.run(SimpleNamespace(inputs=damaged))
    assert refused.returncode == 1
    assert f"skolo: bundle {digest} arrived damaged (checksum mismatch); nothing installed" in refused.stderr
    assert not jh.file(f"/var/lib/skolo/bundle/{digest}").exists()

    assert ok(rack.run(bundle)).stdout == f"skolo: installed bundle {digest}\n"
    assert ok(rack.run(bundle)).stdout == f"skolo: bundle {digest} is installed already\n"
    assert (jh.file("/var/lib/skolo/bundle/current").readlink().name == digest)
    installed = jh.file(f"/var/lib/skolo/bundle/{digest}")
    assert sorted(p.name for p in installed.iterdir()) == [
        "k3s-install.sh", "lib.sh", "pi-node.sh", "pi-remove.sh", "rack.env", "rpi-cgroups.sh", "run"]
    assert oct(installed.joinpath("run").stat().st_mode & 0o777) == "0o755"

    key = run.named("rack2-fleet-pi-key")
    first = ok(rack.run(key, watch_for=(key_needle(rack),)))
    assert first.stdout == "skolo: installed the key the jumphost reaches the Pis with\n"
    assert jh.read("/etc/skolo/pi-ssh-key") == rack.user_key.read_text()
    assert snapshot(jh, "/etc/skolo/pi-ssh-key")["/etc/skolo/pi-ssh-key"][2] == "0o600"
    before = snapshot(jh, "/etc/skolo/pi-ssh-key")
    assert ok(rack.run(key)).stdout == "skolo: the Pis' key is in place already\n"
    assert snapshot(jh, "/etc/skolo/pi-ssh-key") == before


def test_a_pi_joins_from_the_jumphost_with_the_token_only_on_stdin(rack, declare):
    run = declare()
    pi = rack.pis[1]  # its memory cgroup is on: no reboot
    up(rack, run)
    step = run.named(f"{PIS[1]}-node")
    out = ok(rack.run(step, watch_for=SECRETS + (key_needle(rack),)))
    assert f"skolo[{PIS[1]}]: installing k3s {VERSION} (agent; was: not installed)" in out.stdout
    assert out.stdout.endswith(f"skolo[{PIS[1]}]: k3s {VERSION} joined, Ready, active\n")
    assert pi.read("/etc/rancher/k3s/skolo-token") == PLANTED["k3sToken"]
    config = pi.read("/etc/rancher/k3s/config.yaml")
    assert "server: https://10.232.0.1:6443" in config and f"node-name: {PIS[1]}" in config
    assert "- skolo.skia.org/role=rpi" in config
    assert pi.log("installer") == ["call: agent", f"INSTALL_K3S_VERSION={VERSION}"]
    assert not any(s in pi.read(f"{hosts.STATE}/installer-env.log") for s in SECRETS)
    assert f"skolo: added {CGROUP_FLAGS} to /boot/firmware/cmdline.txt\nskolo: memory cgroup enabled\n" in out.stdout
    assert pi.log("shutdown") == []
    assert rack.node(PIS[1], "ready") == "True" and rack.node(PIS[1], "version") == VERSION
    assert rack.node(PIS[1], "labels", "skolo.skia.org/state") == "active"
    # The same inputs again: the Node says it all, and the Pi is left alone.
    rack.stop(pi)
    again = ok(rack.run(step))
    assert again.stdout.endswith(f"skolo[{PIS[1]}]: k3s {VERSION} and its config are applied already; the Pi was not "
                            "contacted; active\n")


def test_a_pi_without_the_memory_cgroup_is_rebooted_and_waited_for(rack, declare):
    import threading

    run = declare()
    pi = rack.pis[0]
    up(rack, run)

    def reboot():  # what the scheduled `shutdown -r` does: gone for a while, back with the flags
        deadline = time.monotonic() + 60
        while not pi.log("shutdown") and time.monotonic() < deadline:
            time.sleep(0.2)
        rack.stop(pi)
        time.sleep(6)
        pi.memory_cgroup = True
        rack.restart(pi)

    rebooting = threading.Thread(target=reboot)
    rebooting.start()
    out = ok(rack.run(run.named(f"{PIS[0]}-node"), timeout=120))
    rebooting.join()
    assert pi.log("shutdown") == ["-r +1 skolo: rebooting to enable the memory cgroup for k3s"]
    assert pi.read("/boot/firmware/cmdline.txt") == f"{CMDLINE} {CGROUP_FLAGS}\n"
    lines = out.stdout.splitlines()
    assert lines.index("reboot-scheduled") < lines.index(f"skolo[{PIS[0]}]: back after its reboot") < \
        lines.index(f"skolo[{PIS[0]}]: installing k3s {VERSION} (agent; was: not installed)")
    assert out.seconds >= 6


def test_removing_a_pi_drains_uninstalls_and_deletes_its_node(rack, declare):
    run = declare()
    jh, pi = rack.jumphost, rack.pis[1]
    up(rack, run)
    step = run.named(f"{PIS[1]}-node")
    ok(rack.run(step))
    since = len(jh.log("kubectl"))
    out = ok(rack.run(step, "delete", watch_for=SECRETS + (key_needle(rack),)))
    assert key_needle(rack) not in out.stdout + out.stderr
    assert f"skolo[{PIS[1]}]: k3s agent uninstalled from {pi.address}" in out.stdout
    assert changes(jh, since) == [
        f"cordon {PIS[1]}",
        f"drain {PIS[1]} --ignore-daemonsets --delete-emptydir-data --force --timeout=120s",
        f"delete node {PIS[1]} --ignore-not-found"]
    assert pi.log("uninstall") == ["uninstall k3s-agent"]
    assert not pi.file("/usr/local/bin/k3s").exists()
    assert rack.node(PIS[1], "ready") is None


def test_an_unreachable_pi_fails_alone_fast_and_is_still_removed(rack, declare):
    run = declare()
    never_joined, joined = rack.pis
    up(rack, run)
    ok(rack.run(run.named(f"{PIS[1]}-node")))
    rack.stop(never_joined)
    failed = rack.run(run.named(f"{PIS[0]}-node"), timeout=60)
    assert failed.returncode == 1 and failed.seconds < 30
    assert (f"skolo[{PIS[0]}]: does not answer SSH at {never_joined.address}; its state is applied, k3s on it is not; "
            "run pulumi up again when it answers") in failed.stderr
    assert not rack.jumphost.file("/var/lib/skolo/upgrade/halt").exists()
    gone = ok(rack.run(run.named(f"{PIS[0]}-node"), "delete"))  # a Pi that never joined leaves too
    assert f"skolo[{PIS[0]}]: could not reach {never_joined.address} to uninstall k3s" in gone.stderr
    rack.stop(joined)
    removed = ok(rack.run(run.named(f"{PIS[1]}-node"), "delete"))
    assert removed.seconds < 60
    assert (f"skolo[{PIS[1]}]: could not reach {joined.address} to uninstall k3s; re-image the Pi before it "
            "comes back") in removed.stderr
    assert rack.node(PIS[1], "ready") is None


@pytest.mark.parametrize("state, calls", [
    ("cordoned", ["cordon {n}"]),
    ("drained", ["cordon {n}", "drain {n} --ignore-daemonsets --delete-emptydir-data --force --timeout=120s"]),
    ("active", ["uncordon {n}"]),
])
def test_node_state_is_applied_on_the_jumphost_without_the_pi(rack, declare, state, calls):
    jh, pi = rack.jumphost, rack.pis[1]
    run = declare()
    up(rack, run)
    ok(rack.run(run.named(f"{PIS[1]}-node")))
    since = len(jh.log("kubectl"))
    rack.stop(pi)  # a state change needs nothing from the Pi
    pis = [{"name": name, "address": p.address, "hostKey": p.host_key_pub, **({"state": state} if name == PIS[1] else {})}
           for name, p in zip(PIS, rack.pis, strict=True)]
    out = ok(rack.run(declare(rpis=pis).named(f"{PIS[1]}-node")))
    assert out.stdout.strip().endswith(f"the Pi was not contacted; {state}")
    assert changes(jh, since) == [f"label node {PIS[1]} skolo.skia.org/state={state} --overwrite"] + [
        c.format(n=PIS[1]) for c in calls]
    assert (rack.node(PIS[1], "unschedulable") is not None) == (state != "active")
