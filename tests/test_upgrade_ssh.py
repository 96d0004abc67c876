"""A k3s upgrade rolling through a rack, run for real: five sandboxed Pis joined at one version,
then the program's steps for the next one sent over real SSH, the Pis' steps all at once as
`pulumi up` runs independent steps. What happened is read from the stand-ins' timestamped
events (tests/hosts.py: the shared stand-in cluster), never from our scripts' own output.

Needs root (network and mount namespaces), which CI has; skipped with the reason elsewhere."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests import hosts
from tests.conftest import PLANTED
from tests.controlplane import wait_for

pytestmark = pytest.mark.hosts

hosts.require("the SSH upgrade tests")

VERSION, NEWER, OLDER = "v1.31.6+k3s1", "v1.31.7+k3s1", "v1.30.10+k3s1"
NAMES = [f"skia-rpi2-test-shelf1-{i:03d}" for i in range(1, 6)]
MAX_UNAVAILABLE = 2
HALT = "/var/lib/skolo/upgrade/halt"


@pytest.fixture
def rack(tmp_path):
    r = hosts.start_rack(tmp_path, pis=len(NAMES), memory_cgroup=(True,))
    yield r
    r.close()


@pytest.fixture
def declare(run_stack, rack):
    secrets = dict(PLANTED, sshPrivateKey=rack.user_key.read_text())

    def run(version: str):
        config = hosts.stack_config(rack, NAMES, k3sVersion=version, upgrade={"maxUnavailable": MAX_UNAVAILABLE})
        return run_stack("rack2", overrides=config, secrets=secrets)

    return run


def ok(result: hosts.Result) -> hosts.Result:
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def roll(rack, run, names=NAMES, timeout=240) -> dict[str, hosts.Result]:
    """The named Pis' steps, all at once."""
    with ThreadPoolExecutor(len(names)) as pool:
        running = {n: pool.submit(rack.run, run.named(f"{n}-node"), "create", timeout) for n in names}
        return {n: r.result() for n, r in running.items()}


@pytest.fixture
def joined(rack, declare):
    """The rack at VERSION: server, bundle, key, and every Pi joined and Ready."""
    run = declare(VERSION)
    for result in hosts.prepare(rack, run):
        ok(result)
    for result in roll(rack, run).values():
        ok(result)
    assert [rack.node(n, "version") for n in NAMES] == [VERSION] * len(NAMES)
    return run


def on_every_pi(rack, command: str) -> None:
    for pi in rack.pis:
        rack.on(pi, command)


def since(rack, mark: int) -> list[hosts.Event]:
    return rack.events()[mark:]


def most_out_of_service(events: list[hosts.Event]) -> int:
    """The most Pis out of service at one moment: each from its cordon or its agent stopping
    (install-start), whichever came first, until its uncordon."""
    out, peak = set(), 0
    for e in events:
        if e.node == "server":
            continue
        if e.what == "cordon" or e.what.startswith("install-start"):
            out.add(e.node)
        elif e.what == "uncordon":
            out.discard(e.node)
        peak = max(peak, len(out))
    return peak


def wait_for_event(rack, node: str, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not any(e.node == node and e.what.startswith(what) for e in rack.events()):
        assert time.monotonic() < deadline, f"{node} never did {what}"
        time.sleep(0.1)


def installing(rack, mark: int) -> list[str]:
    """The Pis whose agents have started installing since `mark`."""
    return [e.node for e in since(rack, mark) if e.node != "server" and e.what.startswith("install-start")]


def test_upgrade_rolls_at_most_max_unavailable_pis_at_a_time(rack, joined, declare):
    # Every install held until two are under way: two at once then happens whatever the timing.
    on_every_pi(rack, "mkdir -p /etc/standin && touch /etc/standin/hold-install")
    run = declare(NEWER)
    ok(rack.run(run.named("rack2-install")))
    mark = len(rack.events())
    with ThreadPoolExecutor(1) as pool:
        rolling = pool.submit(roll, rack, run)
        wait_for(lambda: len(installing(rack, mark)) == MAX_UNAVAILABLE, 120, "two Pis installing at once")
        on_every_pi(rack, "rm -f /etc/standin/hold-install")
        results = rolling.result()
    for name, result in results.items():
        assert f"skolo[{name}]: upgrading k3s from {VERSION} to {NEWER} (slot " in ok(result).stdout
    events = since(rack, mark)
    # Never more than two at once, and two at once did happen: the roll is parallel, but bounded.
    assert most_out_of_service(events) == MAX_UNAVAILABLE
    for name in NAMES:
        mine = [e.what.split("=")[0] if e.what.startswith("annotate") else e.what for e in events if e.node == name]
        # Cordoned, its bot stopped (the maintenance label), drained; then the agent; then back.
        assert mine == ["cordon", "label skolo.skia.org/maintenance=k3s-upgrade", "drain", f"install-start {NEWER}",
                        f"install-done {NEWER}", "annotate skolo.skia.org/applied",
                        "label skolo.skia.org/maintenance-", "uncordon"]
        assert rack.node(name, "version") == NEWER and rack.node(name, "ready") == "True"
        assert rack.node(name, "unschedulable") is None
        assert rack.node(name, "labels", "skolo.skia.org/maintenance") is None


def test_upgrade_starts_no_pi_before_the_server_runs_the_new_version(rack, joined, declare):
    jh = rack.jumphost
    run = declare(NEWER)
    rack.on(jh, "mkdir -p /etc/standin && touch /etc/standin/hold-install")
    mark = len(rack.events())
    with ThreadPoolExecutor(2) as pool:
        # Both at once, as if nothing ordered them: the Pis' own steps wait for the server.
        server = pool.submit(rack.run, run.named("rack2-install"), "create", 240)
        pis = pool.submit(roll, rack, run)
        wait_for_event(rack, "server", f"install-start {NEWER}")
        started = next(e.at for e in since(rack, mark) if e.what == f"install-start {NEWER}")

        def asked_twice() -> bool:  # each Pi's step looked at the server's version twice, and waited
            polls = [c.node for c in rack.calls() if c.at > started and c.what == "get --raw /version"]
            return all(polls.count(name) >= 2 for name in NAMES)
        wait_for(asked_twice, 120, "every Pi's step asking the server's version twice while it installs")
        assert [e.what for e in since(rack, mark)] == [f"install-start {NEWER}"]
        rack.on(jh, "rm /etc/standin/hold-install")
        ok(server.result())
        for result in pis.result().values():
            ok(result)
    events = since(rack, mark)
    server_done = next(e.at for e in events if e.node == "server" and e.what == f"install-done {NEWER}")
    first_pi = min(e.at for e in events if e.node != "server")
    assert server_done < first_pi
    assert most_out_of_service(events) <= MAX_UNAVAILABLE
    assert [rack.node(n, "version") for n in NAMES] == [NEWER] * len(NAMES)


def test_upgrade_a_failing_pi_halts_the_roll_and_the_ones_in_flight_finish(rack, joined, declare):
    run = declare(NEWER)
    ok(rack.run(run.named("rack2-install")))
    in_flight, failing, waiting = rack.pis[0], rack.pis[1], NAMES[2:]
    rack.on(in_flight, "mkdir -p /etc/standin && touch /etc/standin/hold-install")
    rack.on(failing, "mkdir -p /etc/standin && touch /etc/standin/fail-install")
    mark = len(rack.events())
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(rack.run, run.named(f"{NAMES[0]}-node"), "create", 240)
        wait_for_event(rack, NAMES[0], f"install-start {NEWER}")
        failed = rack.run(run.named(f"{NAMES[1]}-node"), timeout=120)
        assert failed.returncode == 1
        assert f"skolo[{NAMES[1]}]: upgrade failed; the roll is halted until {HALT} is removed" in failed.stderr
        assert rack.jumphost.read(HALT).startswith(f"{NAMES[1]} failed upgrading to {NEWER} at ")
        # While the first is still upgrading, no other Pi starts.
        for name, result in roll(rack, run, waiting).items():
            assert result.returncode == 1
            assert (f"skolo[{name}]: the k3s upgrade is halted: {NAMES[1]} failed upgrading to {NEWER}"
                    in result.stderr)
        rack.on(in_flight, "rm /etc/standin/hold-install")
        ok(first.result())
    events = since(rack, mark)
    assert not [e for e in events if e.node in waiting]
    assert [rack.node(n, "version") for n in NAMES] == [NEWER, VERSION, VERSION, VERSION, VERSION]
    assert rack.node(NAMES[0], "unschedulable") is None
    # The one that failed stays out of service for a person to look at.
    assert rack.node(NAMES[1], "unschedulable") is not None
    assert rack.node(NAMES[1], "labels", "skolo.skia.org/maintenance") == "k3s-upgrade"


def test_upgrade_resumes_once_the_halt_is_removed(rack, joined, declare):
    run = declare(NEWER)
    ok(rack.run(run.named("rack2-install")))
    rack.on(rack.pis[1], "mkdir -p /etc/standin && touch /etc/standin/fail-install")
    assert rack.run(run.named(f"{NAMES[1]}-node"), timeout=120).returncode == 1
    assert all(r.returncode == 1 for r in roll(rack, run, NAMES[2:]).values())
    # The operator fixes the Pi, removes the halt, and runs pulumi up again.
    rack.on(rack.pis[1], "rm /etc/standin/fail-install")
    rack.on(rack.jumphost, f"rm {HALT}")
    mark = len(rack.events())
    for result in roll(rack, run).values():
        ok(result)
    assert most_out_of_service(since(rack, mark)) <= MAX_UNAVAILABLE
    assert [rack.node(n, "version") for n in NAMES] == [NEWER] * len(NAMES)
    assert all(rack.node(n, "unschedulable") is None for n in NAMES)
    assert all(rack.node(n, "labels", "skolo.skia.org/maintenance") is None for n in NAMES)


def test_upgrade_second_run_changes_nothing_and_needs_no_pi(rack, joined, declare):
    run = declare(NEWER)
    ok(rack.run(run.named("rack2-install")))
    for result in roll(rack, run).values():
        ok(result)
    installs = [pi.log("installer") for pi in rack.pis]
    mark = len(rack.events())
    for pi in rack.pis:  # every Pi off the network: a step that needed one would fail
        rack.stop(pi)
    for name, result in roll(rack, run).items():
        assert ok(result).stdout.endswith(f"skolo[{name}]: k3s {NEWER} and its config are applied already; "
                                          "the Pi was not contacted; active\n")
    assert since(rack, mark) == []
    assert [pi.log("installer") for pi in rack.pis] == installs


def test_upgrade_never_downgrades_a_pi_nor_takes_it_out_of_service_to_try(rack, joined, declare):
    mark = len(rack.events())
    refused = rack.run(declare(OLDER).named(f"{NAMES[0]}-node"), timeout=120)
    assert refused.returncode == 1
    assert (f"skolo[{NAMES[0]}]: refusing to downgrade k3s from {VERSION} to {OLDER}; set skolo:k3sVersion to "
            f"{VERSION} or newer") in refused.stderr
    assert since(rack, mark) == []
    assert not rack.jumphost.file(HALT).exists()
    assert rack.node(NAMES[0], "version") == VERSION
