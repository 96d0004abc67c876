"""The test harness's own mechanisms, each shown to work, and to be needed:
- tests/ci.py: one reading of CI; a tier that cannot run fails under CI and skips elsewhere;
- tests/processes.py: a process a test starts ends when the test process is killed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

# A test process that starts a long-running child the way the control plane does (its own
# session, so a kill of the test's process group misses it), prints the child's PID, and waits.
PARENT = """
import subprocess, sys, time
sys.path.insert(0, sys.argv[1])
from tests.processes import spawn
argv = ["sleep", "600"]
child = spawn(argv, start_new_session=True) if sys.argv[2] == "spawn" else subprocess.Popen(argv, start_new_session=True)
print(child.pid, flush=True)
time.sleep(600)
"""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def orphan_after_kill(how: str) -> tuple[int, bool]:
    """Kill (SIGKILL) a parent that started `sleep` with `how`; the child's PID and whether it is
    still running 10 s later (or as soon as it is gone)."""
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(ROOT), how], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    # setpriv sets the signal, then execs sleep: once the child is sleep, the signal is set.
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child}/comm").read_text().strip() != "sleep" and time.monotonic() < deadline:
        time.sleep(0.01)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    return child, alive(child)


def test_a_process_the_tests_start_ends_when_the_test_process_is_killed():
    child, running = orphan_after_kill("spawn")
    assert not running, f"sleep {child} outlived its killed parent"


def test_without_spawn_it_would_be_orphaned():
    """The negative control: the same child started plainly outlives its killed parent, which is
    what left a control plane running for an hour after a killed run."""
    child, running = orphan_after_kill("popen")
    try:
        assert running
    finally:
        os.kill(child, 9)


def test_a_killed_runs_network_namespaces_are_swept_by_the_next_and_a_live_runs_are_not():
    """A network namespace is not a process: a run killed before Rack.close leaves its named
    namespaces in /run/netns. The next rack a run starts deletes those whose run is gone."""
    import uuid

    from tests import hosts

    if os.geteuid() != 0:
        from tests.ci import cannot_run

        cannot_run("network namespaces need root")
    dead = subprocess.Popen(["true"])
    dead.wait()  # a PID that was a test run's and is gone
    tag = uuid.uuid4().hex[:6]
    killed, live = f"skzz-{tag}", f"skzy-{tag}"
    hosts.OWNERS.mkdir(exist_ok=True)
    for ns, pid in ((killed, dead.pid), (live, os.getpid())):
        (hosts.OWNERS / ns).write_text(f"{pid}\n")
        subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        swept = hosts.sweep_orphaned_namespaces()
        present = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
        assert killed in swept and live not in swept
        assert killed not in present and live in present
        assert not (hosts.OWNERS / killed).exists() and (hosts.OWNERS / live).exists()
    finally:
        hosts._del_netns(live)
        hosts._del_netns(killed)


def test_no_long_running_process_is_started_but_through_spawn():
    for module in ("controlplane.py", "hosts.py"):  # the harness's servers; tests' short commands are waited for
        assert "subprocess.Popen(" not in (ROOT / "tests" / module).read_text(), module


@pytest.mark.parametrize("value, expected", [("true", True), ("TRUE", True), ("1", True), (" true ", True),
                                             ("", False), ("false", False), ("0", False), ("yes", False)])
def test_ci_is_read_one_way(value, expected, monkeypatch):
    from tests.ci import in_ci

    monkeypatch.setenv("CI", value)
    assert in_ci() is expected


@pytest.mark.parametrize("ci, outcome", [("true", "failed"), ("", "skipped")])
def test_a_tier_that_cannot_run_fails_under_ci_and_skips_elsewhere(ci, outcome, tmp_path):
    test = tmp_path / "test_tier.py"
    test.write_text("from tests.ci import cannot_run\n\n"
                    "def test_tier():\n    cannot_run('needs the moon (apt-get install moon)')\n")
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:xdist", "-p", "no:cacheprovider", "-rfs",
                             "-c", os.devnull, "--rootdir", str(tmp_path), str(test)],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path,
                            env={**os.environ, "CI": ci, "PYTHONPATH": str(ROOT)})
    assert f"1 {outcome}" in result.stdout, result.stdout
    assert "needs the moon (apt-get install moon)" in result.stdout


def test_a_process_spawned_from_a_thread_that_ends_lives_on():
    """The parent-death signal follows the thread that forked: spawn forks from one thread that
    lives as long as the test process, so a helper thread (a host's reboot) may end."""
    from tests.processes import spawn

    started = []
    helper = threading.Thread(target=lambda: started.append(spawn(["sleep", "600"])))
    helper.start()
    helper.join()
    child = started[0]
    try:
        deadline = time.monotonic() + 10
        while Path(f"/proc/{child.pid}/comm").read_text().strip() != "sleep" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert child.poll() is None and alive(child.pid)
    finally:
        child.kill()
        child.wait()


def test_the_stand_in_runner_fails_a_job_on_a_failing_step_as_github_does(tmp_path):
    """tests/standins/github_runner.py: outputs flow to later steps and the job; a failing step
    fails the job; later steps are skipped unless `if: always()`; the default shell has no pipefail."""
    from tests.standins.github_runner import Runner

    workflows = tmp_path / "ws" / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "w.yml").write_text(yaml.safe_dump({"jobs": {"j": {
        "env": {"WHO": "${{ matrix.stack }}"},
        "outputs": {"said": "${{ steps.say.outputs.word }}"},
        "steps": [{"id": "say", "run": 'echo "word=hello-$WHO" >> "$GITHUB_OUTPUT"'},
                  {"name": "pipe", "run": "false | true"},
                  {"name": "fail", "run": 'echo "got ${{ steps.say.outputs.word }}"; exit 3'},
                  {"name": "after", "run": "echo never"},
                  {"name": "cleanup", "if": "always()", "run": "echo cleaned"}]}}}))
    job = Runner(tmp_path / "ws", tmp_path / "temp", {}, tmp_path).run_job(
        "w.yml", "j", matrix={"stack": "rack9"})
    assert not job.ok and job.outputs == {"said": "hello-rack9"}
    assert [(s.name, s.outcome) for s in job.steps[1:]] == [
        ("pipe", "success"), ("fail", "failure"), ("after", "skipped"), ("cleanup", "success")]
    assert job.step("fail").output == "got hello-rack9\n" and job.step("cleanup").output == "cleaned\n"


def test_every_golden_file_is_judged_by_a_test_that_exists():
    """tests/golden/README.md names, for each golden file, the tests that judge its content; each
    golden file is listed, and each test named there exists."""
    import re

    golden = ROOT / "tests" / "golden"
    table = (golden / "README.md").read_text()
    listed = set(re.findall(r"^\| (rack[\w-]+/[\w.-]+) \|", table, re.M))
    assert listed == {f"{p.parent.name}/{p.name}" for p in golden.glob("*/*")}
    for module, test in re.findall(r"`(test_\w+\.py)::(test_\w+)`", table):
        assert re.search(rf"^def {test}\(", (ROOT / "tests" / module).read_text(), re.M), f"{module}::{test}"


def test_update_golden_is_refused_under_ci(tmp_path):
    test = tmp_path / "test_g.py"
    (tmp_path / "g" / "x").mkdir(parents=True)
    (tmp_path / "g" / "x" / "kept").write_text("golden\n")
    test.write_text("from pathlib import Path\nfrom tests import golden\n\n"
                    "def test_g():\n    golden.GOLDEN = Path(__file__).parent / 'g'\n    golden.compare('x', {})\n")
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:xdist", "-p", "no:cacheprovider", "-c",
                             os.devnull, "--rootdir", str(tmp_path), str(test)], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path,
                            env={**os.environ, "CI": "true", "UPDATE_GOLDEN": "1", "PYTHONPATH": str(ROOT)})
    assert "UPDATE_GOLDEN is refused under CI" in result.stdout and "1 failed" in result.stdout
    assert (tmp_path / "g" / "x" / "kept").read_text() == "golden\n"  # nothing was rewritten
