"""Shared fixtures. Each program run sets mocks and config afresh (function scope), so tests
never see each other's registrations."""

from __future__ import annotations

import copy
import json
import os
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rackctl import program  # noqa: E402

# Known values planted as the stack's secrets, so tests can look for them everywhere.
def _json_key(needle: str) -> str:
    return '{"type": "service_account", "client_email": "bot@skia.iam", "private_key": "%s"}' % needle


def _pem(needle: str) -> str:
    return f"-----BEGIN OPENSSH PRIVATE KEY-----\n{needle}\n-----END OPENSSH PRIVATE KEY-----\n"


# Each value carries a distinctive needle (NEEDLES) so that a leak of any of them is found.
NEEDLES = {
    "k3sToken": "planted-k3s-token-7f3a9c",
    "sshPrivateKey": "planted-ssh-key-body-51e0",
    "metadataServiceAccountKey": "planted-metadata-sa-0c41",
    "alertToPubsubServiceAccountKey": "planted-a2p-sa-93d2",
    "routerBackupServiceAccountKey": "planted-backup-sa-11aa",
    "routerBackupSshKey": "planted-backup-ssh-77be",
    "powerCyclePassword": "planted-powercycle-pw-4e4e",
    "powerCycleSshKey": "planted-powercycle-ssh-3c3c",
    "powerCycleServiceAccountKey": "planted-podwatcher-sa-7a7a",
    "swarmingServiceAccountKey": "planted-swarming-sa-2b9d",
    "adbKey": "planted-adb-key-6f10",
    "adbPublicKey": "planted-adb-pub-9e9e",
    "datastoreBackupServiceAccountKey": "planted-k3s-backup-sa-8c8c",
    "imagePullKey": "planted-pull-sa-5d5d",
}
PLANTED = {
    "k3sToken": f"K10{NEEDLES['k3sToken']}::server:planted",
    "sshPrivateKey": _pem(NEEDLES["sshPrivateKey"]),
    "metadataServiceAccountKey": _json_key(NEEDLES["metadataServiceAccountKey"]),
    "alertToPubsubServiceAccountKey": _json_key(NEEDLES["alertToPubsubServiceAccountKey"]),
    "routerBackupServiceAccountKey": _json_key(NEEDLES["routerBackupServiceAccountKey"]),
    "routerBackupSshKey": _pem(NEEDLES["routerBackupSshKey"]),
    "powerCyclePassword": NEEDLES["powerCyclePassword"],
    "powerCycleSshKey": _pem(NEEDLES["powerCycleSshKey"]),
    "powerCycleServiceAccountKey": _json_key(NEEDLES["powerCycleServiceAccountKey"]),
    "swarmingServiceAccountKey": _json_key(NEEDLES["swarmingServiceAccountKey"]),
    "adbKey": _pem(NEEDLES["adbKey"]),
    "adbPublicKey": f"QAAAAK{NEEDLES['adbPublicKey']}= root@skia-rpi",
    "datastoreBackupServiceAccountKey": _json_key(NEEDLES["datastoreBackupServiceAccountKey"]),
    "imagePullKey": _json_key(NEEDLES["imagePullKey"]),
}


@pytest.fixture(scope="session")
def run_stack():
    """run_stack(stack, overrides=None, secrets=PLANTED) -> program.Run. The program runs once per
    (stack, overrides, secrets) in a test process (rack1 takes seconds); each test gets its own
    deep copy, so no test sees another's changes."""

    def run(stack: str, overrides=None, secrets=None) -> program.Run:
        key = (stack, json.dumps(overrides, sort_keys=True, default=str),
               "planted" if secrets is None else json.dumps(secrets, sort_keys=True, default=str))
        if key not in _RUNS or os.environ.get("MUTANT_UNDER_TEST") == "stats":
            # mutmut's coverage pass ("stats") records which tests call each function: with the
            # cache, only the first test to run a stack would count, and a mutant would be tried
            # against that one test alone.
            _RUNS[key] = program.run_stack(stack, secrets=PLANTED if secrets is None else secrets, overrides=overrides)
        return copy.deepcopy(_RUNS[key])

    return run


_RUNS: dict[tuple[str, str, str], program.Run] = {}


def stack_raw(stack: str) -> dict:
    """A stack's plain config as the settings layer sees it: defaults applied, no prefix."""
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    raw = {k.split(":", 1)[1]: d["default"] for k, d in project["config"].items() if "default" in d}
    doc = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
    raw.update({k.split(":", 1)[1]: v for k, v in doc["config"].items()})
    return copy.deepcopy(raw)


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory):
    """(ControlPlane, StandInKubelet, LiveRack): one real control plane for the session
    (tests/controlplane.py). Skipped with the reason where the binaries are missing; in CI
    (CI=true) they must be there."""
    from tests.cluster_rack import LiveRack
    from tests.controlplane import ControlPlane, StandInKubelet, missing_reason

    from tests.ci import cannot_run

    reason = missing_reason()
    if reason:
        cannot_run(f"the control-plane tests: {reason}")
    cp = ControlPlane(tmp_path_factory.mktemp("control-plane")).start()
    kubelet = StandInKubelet(cp)
    try:
        yield cp, kubelet, LiveRack(cp, kubelet)
    finally:
        kubelet.stop()
        cp.stop()


@pytest.fixture(autouse=True)
def stand_in_kubelet_errors_fail_the_test(request):
    """A request of the stand-in kubelet that the API server refused while a control-plane test
    ran fails that test, saying which (tests/controlplane.py StandInKubelet.errors)."""
    if "control_plane" not in request.fixturenames:
        yield
        return
    kubelet = request.getfixturevalue("control_plane")[1]
    start = len(kubelet.errors)
    yield
    if errors := kubelet.errors[start:]:
        pytest.fail("the stand-in kubelet's requests failed during this test:\n  " + "\n  ".join(errors[:20]),
                    pytrace=False)


@pytest.fixture
def rack1_declared(run_stack):
    """rack1's settings and what its program declares (a plain record; the run is cached by
    run_stack, which mutmut's coverage pass bypasses so that every test using it counts)."""
    from components import settings

    return settings.parse("rack1", stack_raw("rack1"), PLANTED), run_stack("rack1")


@pytest.fixture
def rack1_live(control_plane, rack1_declared):
    """(cp, kubelet, live, settings, run): rack1 on the control plane, its 81 Nodes registered and
    every bot placed. Applied once; a test that changes it puts it back."""
    from tests.cluster_rack import objects, rack_nodes, scheduled

    cp, kubelet, live = control_plane
    rack, run = rack1_declared
    if live.stack != "rack1":
        live.bring_up("rack1", rack_nodes(rack), objects(run))
    scheduled(cp, "swarming", "swarming", len(rack.rpis))
    return cp, kubelet, live, rack, run


CLUSTER_MODULES = "tests/test_cluster_"
ONE_WORKER_MODULES = {"tests/test_workflow_runs.py": "workflow-runs"}


# mutmut's coverage pass ("stats") credits a function to the test during which it ran. The config
# types are built when components is imported (by this file, before any test): left alone, mutmut
# credits them to whichever test runs first, and a mutant of one (count(), url(), one_of() ...) is
# tried against that test alone and "survives". Every test here imports them, so every test is
# credited with what ran while this file's imports ran (and only that: what a test module runs at
# collection stays with the first test, or every mutant would meet every test).
_RAN_AT_IMPORT: set[str] = set()
if os.environ.get("MUTANT_UNDER_TEST") == "stats":
    from mutmut.state import state as _mutmut_state

    _RAN_AT_IMPORT.update(_mutmut_state()._stats)


def pytest_runtest_setup(item):
    if _RAN_AT_IMPORT:
        _mutmut_state()._stats.update(_RAN_AT_IMPORT)


def _fastest_first_under_a_mutant(items) -> None:
    """Under a mutant, mutmut runs the tests that reach it until one fails, in no particular order:
    the quickest first (by its coverage pass's timings) finds a kill sooner. Order only; every test
    still runs for a mutant that survives."""
    if os.environ.get("MUTANT_UNDER_TEST", "") in ("", "stats", "fail"):
        return
    stats = Path("mutmut-stats.json")
    if stats.is_file():
        seconds = json.loads(stats.read_text()).get("duration_by_test", {})
        items.sort(key=lambda item: seconds.get(item.nodeid, 0.0))


def pytest_collection_modifyitems(config, items):
    """The control plane's tests live in tests/test_cluster_*.py: the scheduler below keeps them on one worker."""
    _fastest_first_under_a_mutant(items)
    for item in items:
        if item.get_closest_marker("cluster") and not item.nodeid.startswith(CLUSTER_MODULES):
            raise pytest.UsageError(f"{item.nodeid} is marked cluster but not in {CLUSTER_MODULES}*.py")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Under pytest-xdist (pyproject's `-n 3`): every test of the real control plane on one
    worker, in file order, so the session starts that control plane once and its live rack is
    never changed by two tests at once; a module with a costly module-scoped fixture
    (ONE_WORKER_MODULES) on one worker too; every other test balanced on its own. (xdist's loadgroup
    would do this, but it does not work with pytest 9: the group suffix never reaches the nodeid.)"""
    from xdist.scheduler import LoadScopeScheduling

    class ControlPlaneOnOneWorker(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            if nodeid.startswith(CLUSTER_MODULES):
                return "control-plane"
            # One module-scoped sandbox and workspace (with its installed .venv) for all its tests.
            return ONE_WORKER_MODULES.get(nodeid.split("::")[0], nodeid)

    return ControlPlaneOnOneWorker(config, log)
