"""`rackctl status`: rack1 as tests/cluster_docs.py describes it (one Pi drained as configured, one
NotReady, one skewed, one cordoned by hand, two missing, one bot crash-looping, one unknown node),
held against its config; then the command itself, run as an operator runs it, with a stand-in
kubectl that answers from the recorded documents."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import kubernetes_validate
import pytest

from components import settings
from rackctl import status, status_views
from tests import cluster_docs as docs
from tests.conftest import PLANTED, ROOT, stack_raw

STANDIN = Path(__file__).parent / "standins" / "kubectl-recorded"


def rack1(drained: bool = True) -> settings.Settings:
    raw = stack_raw("rack1")
    if drained:
        raw["rpis"][0]["overrides"][docs.DRAINED]["state"] = "drained"
    return settings.parse("rack1", raw, PLANTED)


@pytest.fixture
def described():
    rack = rack1()
    nodes, pods = docs.described_rack1(rack, rack.images.swarming)
    return rack, nodes, pods


def by_name(st: status.Status) -> dict[str, status.Pi]:
    return {pi.name: pi for pi in st.pis + st.unknown}


def test_the_recorded_documents_are_what_a_1_31_api_server_returns(described):
    _, nodes, pods = described
    for item in nodes["items"] + pods["items"]:
        kubernetes_validate.validate(item, "1.31.0", strict=True)


def test_each_cell_says_what_is_wrong_with_that_pi(described):
    rack, nodes, pods = described
    pis = by_name(status.compute(rack, nodes, pods, docs.NOW))
    expected = {
        docs.DRAINED: ("drained", "out", []),
        docs.NOT_READY: ("notready", "problem", ["NotReady"]),
        docs.SKEWED: ("skewed", "problem", [f"runs {docs.OLD_VERSION}, config pins v1.31.6+k3s1"]),
        docs.CORDONED: ("cordoned", "problem", ["is cordoned, config says active"]),
        docs.MISSING[0]: ("missing", "problem", ["not in the cluster"]),
        docs.MISSING[1]: ("missing", "problem", ["not in the cluster"]),
        docs.CRASHING: ("crashloop", "problem", ["bot crash-looping (14 restarts)"]),
        docs.UNKNOWN: ("unknown", "unknown", ["not in the stack's config"]),
    }
    for name, (cell, severity, problems) in expected.items():
        assert (pis[name].cell, pis[name].severity, pis[name].problems) == (cell, severity, problems), name
    healthy = [pi for name, pi in pis.items() if name not in expected]
    assert len(healthy) == 73
    assert all((pi.cell, pi.severity, pi.problems) == ("ready", "ok", []) for pi in healthy)
    assert all(pi.bot.phase == "Running" and pi.bot.restarts == 0 for pi in healthy)
    assert pis[docs.NOT_READY].heartbeat == 12 * 60
    assert pis[docs.CRASHING].bot.crash_looping and pis[docs.CRASHING].bot.phase == "Running"
    assert pis[docs.DRAINED].bot is None  # the DaemonSet does not run on a drained Pi


def test_the_summary_line_and_the_jumphost(described):
    st = status.compute(*described, docs.NOW)
    assert st.summary() == (
        "73/80 Ready, 1 drained as configured, 2 missing: skia-rpi2-rack1-shelf2-017, skia-rpi2-rack1-shelf2-018, "
        "1 NotReady: skia-rpi2-rack1-shelf1-012, 1 not as configured: skia-rpi2-rack1-shelf2-003, "
        "1 skewed: skia-rpi2-rack1-shelf1-020, 1 bot failing: skia-rpi2-rack1-shelf2-030, "
        "1 unknown: skia-rpi2-rack1-shelf3-001")
    assert st.drift
    assert (st.jumphost.presence, st.jumphost.problems) == ("ready", [])
    assert status_views.details(st.jumphost) == "Ready, heartbeat 12s ago; v1.31.6+k3s1"


def test_text_is_one_block_per_shelf_one_cell_per_pi_in_rack_order(described):
    text = status_views.as_text(status.compute(*described, docs.NOW))
    lines = text.splitlines()
    assert lines[0] == "rack1: 80 Pis, k3s v1.31.6+k3s1, read 2026-11-21 03:00:00 UTC"
    shelf1 = lines[lines.index(docs.SHELF1) + 1:lines.index(docs.SHELF2) - 1]
    assert shelf1[0] == ("  001 ready      002 ready      003 ready      004 ready      005 ready      006 ready      "
                         "007 drained    008 ready")
    assert "012 notready" in shelf1[1] and "020 skewed" in shelf1[2]
    assert sum(len(line.split()) // 2 for line in shelf1 if not line.startswith("    ")) == 40
    assert "    007  drained as configured; Ready, heartbeat 27s ago; v1.31.6+k3s1" in shelf1
    assert "    012  NotReady; heartbeat 12m ago; v1.31.6+k3s1; bot Running, 0 restarts" in shelf1
    assert ("    030  bot crash-looping (14 restarts); Ready, heartbeat 48s ago; v1.31.6+k3s1; bot Running, "
            "14 restarts") in lines
    assert "    017  missing: in the config, not in the cluster" in lines
    unknown = lines[lines.index("not in config") + 1]
    assert unknown.strip() == "skia-rpi2-rack1-shelf3-001 unknown"
    assert lines[-2].startswith("73/80 Ready, 1 drained as configured, 2 missing")
    assert lines[-1] == "jumphost skolo-rack1-jumphost: Ready, heartbeat 12s ago; v1.31.6+k3s1"
    assert "\x1b[" not in text
    coloured = status_views.as_text(status.compute(*described, docs.NOW), colour=True)
    assert "\x1b[33m007 drained   \x1b[0m" in coloured and "\x1b[31m017 missing   \x1b[0m" in coloured


def test_json_is_stable_and_complete(described):
    doc = status_views.as_json(status.compute(*described, docs.NOW))
    assert list(doc) == ["format", "stack", "k3sVersion", "readAt", "drift", "summary", "counts", "jumphost",
                         "shelves", "unknown"]
    assert doc["format"] == 1 and doc["readAt"] == "2026-11-21T03:00:00Z" and doc["drift"] is True
    assert doc["counts"] == {"pis": 80, "ok": 73, "out": 1, "problem": 6, "unknown": 1}
    assert [s["name"] for s in doc["shelves"]] == [docs.SHELF1, docs.SHELF2]
    crashing = next(p for s in doc["shelves"] for p in s["pis"] if p["name"] == docs.CRASHING)
    assert crashing == {
        "name": docs.CRASHING, "address": "192.168.1.179", "shelf": docs.SHELF2, "cell": "crashloop", "severity": "problem",
        "presence": "ready", "configuredState": "active", "observedState": "active", "maintenance": None,
        "version": "v1.31.6+k3s1", "heartbeatSeconds": 48,
        "bot": {"pod": crashing["bot"]["pod"], "phase": "Running", "restarts": 14, "crashLooping": True},
        "problems": ["bot crash-looping (14 restarts)"]}
    assert json.loads(json.dumps(doc)) == doc


def test_html_is_one_self_contained_page_with_a_cell_and_a_title_per_pi(described):
    page = status_views.as_html(status.compute(*described, docs.NOW))
    assert page.count('<div class="pi ') == 81
    assert page.count('<div class="pi ok"') == 73 and page.count('<div class="pi problem"') == 6
    assert ('title="skia-rpi2-rack1-shelf2-030 (192.168.1.179)\nbot crash-looping (14 restarts); Ready, heartbeat '
            '48s ago; v1.31.6+k3s1; bot Running, 14 restarts">030<small>crashloop</small></div>') in page
    assert '>shelf3-001<small>unknown</small></div>' in page
    for external in ("<script", "src=", "href=", "@import", "url("):
        assert external not in page
    assert '<ul class="legend">' in page


def test_a_pi_being_upgraded_is_out_of_service_not_a_problem(described):
    rack, nodes, pods = described
    for item in nodes["items"]:
        if item["metadata"]["name"] == f"{docs.SHELF1}-001":
            item["metadata"]["labels"]["skolo.skia.org/maintenance"] = "k3s-upgrade"
            item["spec"]["unschedulable"] = True
    pods["items"] = [p for p in pods["items"] if p["spec"]["nodeName"] != f"{docs.SHELF1}-001"]
    st = status.compute(rack, nodes, pods, docs.NOW)
    pi = by_name(st)[f"{docs.SHELF1}-001"]
    # Cordoned, no bot and between versions on purpose: the roll has it in hand, not drift.
    assert (pi.cell, pi.severity, pi.problems) == ("upgrading", "out", [])
    # While a roll is under way, a Pi still on the older release is queued for it, not skewed.
    skewed = by_name(st)[docs.SKEWED]
    assert (skewed.cell, skewed.severity, skewed.problems) == ("queued", "out", [])
    assert "1 upgrading, 1 queued for the upgrade" in st.summary()


def test_an_older_release_with_no_roll_under_way_is_drift(described):
    rack, nodes, pods = described
    skewed = by_name(status.compute(rack, nodes, pods, docs.NOW))[docs.SKEWED]
    assert (skewed.cell, skewed.severity) == ("skewed", "problem")
    assert skewed.problems == [f"runs {docs.OLD_VERSION}, config pins {rack.k3s_version}"]


def test_a_clean_rack_has_no_drift(described):
    rack = rack1(drained=False)
    nodes, pods = docs.described_rack1(rack, rack.images.swarming)
    healthy = {docs.NOT_READY, docs.SKEWED, docs.CORDONED, docs.CRASHING, docs.UNKNOWN, docs.DRAINED}
    clean_nodes = [n for n in nodes["items"] if n["metadata"]["name"] not in healthy]
    st = status.compute(rack, docs.listing(clean_nodes), pods, docs.NOW)
    assert not any(pi.problems for pi in st.pis if pi.name not in set(docs.MISSING) | healthy)


def test_status_of_a_1000_pi_rack_is_fast_enough_to_watch():
    """Not a benchmark (benchmarks/status_map.py is): a generous bound that catches a quadratic."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from status_map import fleet

    rack, nodes, pods = fleet(1000)
    start = time.perf_counter()
    st = status.compute(rack, nodes, pods, docs.NOW)
    status_views.as_text(st), status_views.as_json(st), status_views.as_html(st)
    assert time.perf_counter() - start < 5


# --- the command ------------------------------------------------------------------------------

@pytest.fixture
def cli(tmp_path):
    """rackctl status with rack1's stack (DRAINED drained) and a stand-in kubectl on PATH that
    answers from the described rack's documents. cli(*args, fail=None) -> CompletedProcess."""
    config = tmp_path / "config"
    config.mkdir()
    shutil.copy(ROOT / "Pulumi.yaml", config)
    (config / "Pulumi.rack1.yaml").write_text(docs.with_drained_pi((ROOT / "Pulumi.rack1.yaml").read_text()))
    recorded = tmp_path / "recorded"
    recorded.mkdir()
    rack = rack1()
    nodes, pods = docs.described_rack1(rack, rack.images.swarming, now=status.now())
    (recorded / "nodes.json").write_text(json.dumps(nodes))
    (recorded / "pods.json").write_text(json.dumps(pods))
    (recorded / "cluster").write_text("rack1")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shutil.copy(STANDIN, bin_dir / "kubectl")
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("# the stand-in kubectl does not read it\n")

    def run(*args, env=None, **kw):
        environ = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", RECORDED=str(recorded),
                       KUBECONFIG=str(kubeconfig), NO_COLOR="")
        environ.update(env or {})
        return subprocess.run([sys.executable, "-m", "rackctl", "--config-dir", str(config), "status", "rack1", *args],
                              cwd=ROOT, env=environ, capture_output=True, text=True, **kw)

    run.recorded, run.tmp = recorded, tmp_path
    return run


def test_status_command_prints_the_map_and_exits_1_on_drift(cli):
    result = cli()
    assert result.returncode == 1, result.stderr
    assert result.stderr == ""
    assert result.stdout.splitlines()[-2].startswith("73/80 Ready, 1 drained as configured, 2 missing:")
    # Read-only: the only calls are the cluster name, then nodes and the swarming pods (those two at
    # once, so in either order).
    first, *reads = (cli.recorded / "calls.log").read_text().splitlines()
    assert first == f"--kubeconfig {cli.tmp / 'kubeconfig'} config view --minify -o jsonpath={{.contexts[0].context.cluster}}"
    assert sorted(reads) == [
        f"--kubeconfig {cli.tmp / 'kubeconfig'} get --raw /api/v1/namespaces/swarming/pods --request-timeout=15s",
        f"--kubeconfig {cli.tmp / 'kubeconfig'} get --raw /api/v1/nodes --request-timeout=15s"]


def test_status_command_exits_0_when_the_rack_matches_its_code(cli):
    rack = rack1()
    nodes, pods = docs.described_rack1(rack, rack.images.swarming, now=status.now())
    broken = {docs.NOT_READY, docs.SKEWED, docs.CORDONED, docs.CRASHING, docs.UNKNOWN}
    nodes["items"] = [n for n in nodes["items"] if n["metadata"]["name"] not in broken]
    pods["items"] = [p for p in pods["items"] if p["spec"]["nodeName"] not in broken]
    for name in (docs.NOT_READY, docs.SKEWED, docs.CORDONED, docs.CRASHING) + docs.MISSING:
        pi = next(p for p in rack.rpis if p.name == name)
        nodes["items"].append(docs.node(docs.NodeSpec(name, pi.address, rack.k3s_version), status.now()))
        pods["items"].append(docs.bot_pod(docs.BotSpec(name), rack.images.swarming, status.now()))
    (cli.recorded / "nodes.json").write_text(json.dumps(nodes))
    (cli.recorded / "pods.json").write_text(json.dumps(pods))
    result = cli("--format", "json")
    assert result.returncode == 0, result.stdout
    doc = json.loads(result.stdout)
    assert doc["drift"] is False and doc["summary"] == "79/80 Ready, 1 drained as configured"


@pytest.mark.parametrize("fail, line", [
    ("The connection to the server 127.0.0.1:6442 was refused - did you specify the right host or port?",
     "rackctl: cannot reach the API server: The connection to the server 127.0.0.1:6442 was refused - did you "
     "specify the right host or port?"),
    ("Unable to connect to the server: dial tcp 192.168.1.8:6443: i/o timeout",
     "rackctl: cannot reach the API server: Unable to connect to the server: dial tcp 192.168.1.8:6443: i/o timeout"),
    ('Error from server (Forbidden): nodes is forbidden: User "system:serviceaccount:default:nobody" cannot list '
     'resource "nodes" in API group "" at the cluster scope',
     'rackctl: the kubeconfig may not read the rack: Error from server (Forbidden): nodes is forbidden: User '
     '"system:serviceaccount:default:nobody" cannot list resource "nodes" in API group "" at the cluster scope'),
])
def test_an_unreadable_cluster_is_one_line_and_exit_2(cli, fail, line):
    (cli.recorded / "fail").write_text(fail + "\n")
    result = cli()
    assert (result.returncode, result.stdout, result.stderr) == (2, "", line + "\n")


def test_bad_input_is_one_line_and_exit_2(cli):
    (cli.recorded / "cluster").write_text("rack2")
    wrong = cli()
    assert (wrong.returncode, wrong.stderr) == (2, "rackctl: the kubeconfig is for cluster 'rack2', not 'rack1'; "
                                                   "refusing to hold rack1's config against another rack\n")
    missing = cli(env={"KUBECONFIG": ""})
    assert (missing.returncode, missing.stderr) == (2, "rackctl: no kubeconfig: run inside `rackctl attach rack1 -- "
                                                       "...`, or pass --kubeconfig (e.g. one from `rackctl observer "
                                                       "rack1`)\n")
    unknown = subprocess.run([sys.executable, "-m", "rackctl", "status", "rack99"], cwd=ROOT, capture_output=True,
                             text=True)
    assert (unknown.returncode, unknown.stderr) == (2, "rackctl: no stack file Pulumi.rack99.yaml; stacks here: "
                                                       "rack1, rack2\n")
    no_kubectl = cli(env={"PATH": "/nonexistent"})
    assert (no_kubectl.returncode, no_kubectl.stderr) == (2, "rackctl: kubectl is not installed\n")
    assert "Traceback" not in wrong.stderr + missing.stderr + unknown.stderr + no_kubectl.stderr


def test_html_out_writes_a_page_and_never_replaces_a_file_it_did_not_write(cli):
    page = cli.tmp / "rack1.html"
    assert cli("--format", "html", "--out", str(page)).returncode == 1
    assert page.read_text().count('<div class="pi ') == 81
    assert cli("--format", "html", "--out", str(page)).returncode == 1  # its own page: replaced
    mine = cli.tmp / "notes.html"
    mine.write_text("<p>my notes</p>")
    refused = cli("--format", "html", "--out", str(mine))
    assert (refused.returncode, refused.stderr) == (
        2, f"rackctl: --out {mine} exists and was not written by rackctl status; give a new file name. Nothing was "
           f"changed\n")
    assert mine.read_text() == "<p>my notes</p>"


def test_watch_refreshes_until_ctrl_c(cli):
    environ = dict(os.environ, PATH=f"{cli.tmp / 'bin'}:{os.environ['PATH']}", RECORDED=str(cli.recorded),
                   KUBECONFIG=str(cli.tmp / "kubeconfig"))
    proc = subprocess.Popen([sys.executable, "-m", "rackctl", "--config-dir", str(cli.tmp / "config"), "status", "rack1",
                             "--format", "json", "--watch", "--interval", "0.2"],
                            cwd=ROOT, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        frames = [json.loads(proc.stdout.readline()) for _ in range(3)]
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert [f["summary"].split(",")[0] for f in frames] == ["73/80 Ready"] * 3
    assert proc.returncode == 1 and "Traceback" not in err
