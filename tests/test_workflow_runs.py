"""The workflows' jobs run step by step as a runner runs them (tests/standins/github_runner.py),
against the SSH sandbox: a jumphost whose API server (a stand-in that answers with one line)
listens on its own 127.0.0.1:6443, and a stack `lab` whose apiServer is https://127.0.0.1:6442,
"through a tunnel", like the canary rack2. The lab jobs' steps run inside the sandbox's
workstation namespace, as a runner in the lab network would.

Stand-ins, at the edge, each named: GitHub's runner (its actions and contexts), the Pulumi CLI
and GitHub's CLI (tests/standins/pulumi, tests/standins/gh: the real Pulumi CLI cannot be built
here), GitHub's issues API (tests/standins/github_api.py), and the package index: the workspace's
.venv is installed before the jobs run (the sandbox has no route to PyPI), so the jobs' own pip
steps find every pin satisfied.

Not run here: the pull request's `test` job's `.ci/run` step, which is this suite.
Needs root (namespaces), as CI has."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from components import settings
from tests import hosts
from rackctl.program import STAND_IN_KUBECONFIG
from tests.conftest import ROOT
from tests.processes import spawn
from tests.standins.github_runner import Runner

pytestmark = pytest.mark.hosts

hosts.require("the workflow-run tests")

TOKEN = "ghs_standInWorkflowToken0123"
GITHUB_PORT = 8099


def workspace(path: Path, rack: hosts.Rack) -> Path:
    """What actions/checkout would give: the project's files, with one stack, `lab`, the sandbox's
    rack (its secrets set, encrypted as a real stack's are; every host key pinned)."""
    files = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-co", "--exclude-standard"], capture_output=True,
                           text=True, check=True).stdout.split()
    for name in files:
        if (ROOT / name).is_file() and not (name.startswith("Pulumi.") and name != "Pulumi.yaml"):
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, path / name)
    key = rack.jumphost.host_key_pub
    off = {s: {"enabled": False} for s in ("metadata", "prometheus", "alertToPubsub", "routerBackup", "powerCycle",
                                           "nfs", "swarming")}
    config = {"skolo:jumphost": {"name": "lab-jumphost", "address": rack.jumphost.address, "user": "root",
                                 "hostKey": key},
              "skolo:rpis": [{"name": "lab-pi-001", "address": "10.231.0.50", "hostKey": key}],
              "skolo:k3sVersion": "v1.31.6+k3s1", "skolo:apiServer": "https://127.0.0.1:6442", "skolo:services": off}
    config.update({f"skolo:{k}": {"secure": "v1:c3RhbmQtaW4tY2lwaGVydGV4dA=="} for k in settings.SECRET_KEYS})
    (path / "Pulumi.lab.yaml").write_text(yaml.safe_dump({"config": config}))
    return path


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("workflow-runs")
    rack = hosts.start_rack(tmp, pis=0)
    try:
        hosts.serve_stand_in_api(rack)
        github_state = tmp / "github.json"
        github = spawn(["ip", "netns", "exec", rack.workstation, sys.executable,
                        str(ROOT / "tests" / "standins" / "github_api.py"), "127.0.0.1", str(GITHUB_PORT), TOKEN,
                        str(github_state)], stdout=subprocess.PIPE, text=True)
        rack.processes.append(github)
        assert hosts.read_line(github, 30) == "listening"
        ws = workspace((tmp / "ws"), rack)
        # The package index's stand-in: the runner's packages, installed before the jobs run.
        subprocess.run([sys.executable, "-m", "venv", str(ws / ".venv")], check=True)
        for how in (["--require-hashes", "-r", "requirements.lock"], ["-r", "requirements-dev.txt"]):
            subprocess.run([str(ws / ".venv" / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", *how],
                           cwd=ws, check=True, timeout=900)
        standin = tmp / "standin"
        (standin / "bin").mkdir(parents=True)
        for tool in ("pulumi", "gh"):
            script = (ROOT / "tests" / "standins" / tool).read_text().replace("__STANDIN__", str(standin))
            (standin / "bin" / tool).write_text(script)
            (standin / "bin" / tool).chmod(0o755)
        shutil.copy2(rack.user_key, standin / "key")
        (standin / "kubeconfig").write_text(STAND_IN_KUBECONFIG)
        (standin / "api-server").write_text("127.0.0.1 6442\n")
        contexts = {
            "github": {"repository": "google/skolo-racks", "server_url": "https://github.com", "run_id": "42",
                       "api_url": f"http://127.0.0.1:{GITHUB_PORT}", "ref": "refs/heads/main", "base_ref": "main",
                       "token": TOKEN, "event": {"pull_request": {"number": 7}}},
            "secrets": {"PULUMI_CONFIG_PASSPHRASE": "stand-in passphrase", "PULUMI_STATE_GCP_KEY": "{}"},
            "vars": {"PULUMI_BACKEND_URL": f"file://{tmp / 'state'}"}}
        # What the lab's runners have installed (README: Runners): kubectl v1.31 and an OpenSSH client.
        kubectl = ROOT / "build" / "k8s"
        hosted = Runner(ws, tmp / "hosted", contexts, standin / "bin", path=[standin / "bin"])
        in_lab = Runner(ws, tmp / "runner", contexts, standin / "bin", path=[standin / "bin", kubectl],
                        wrap=("ip", "netns", "exec", rack.workstation))
        yield rack, ws, standin, github_state, hosted, in_lab
    finally:
        rack.close()


def calls(standin: Path, tool: str) -> list[str]:
    log = standin / f"{tool}.log"
    return log.read_text().splitlines() if log.exists() else []


def no_secret_in(job, rack: hosts.Rack) -> None:
    needle = rack.user_key.read_text().splitlines()[2]
    for step in job.steps:
        assert needle not in step.output and TOKEN not in step.output, step.name


def test_deploy_runs_the_canary_through_its_tunnel(lab):
    rack, ws, standin, _, hosted, in_lab = lab
    plan = hosted.run_job("deploy.yml", "plan")
    assert plan.ok, [(s.name, s.output[-2000:]) for s in plan.steps if s.outcome == "failure"]
    assert plan.outputs == {"canary": "lab", "rest": "[]"}
    before = len(calls(standin, "pulumi"))
    canary = in_lab.run_job("deploy.yml", "canary", needs={"plan": {"outputs": plan.outputs}})
    assert canary.ok, [(s.name, s.output[-2000:]) for s in canary.steps if s.outcome == "failure"]
    assert calls(standin, "pulumi")[before:] == [
        "config get skolo:sshPrivateKey --stack lab",
        "up --yes --diff --parallel 32 --non-interactive --color never --stack lab",
        "reached 127.0.0.1:6442: stand-in API server"]
    assert "Resources: 3 unchanged" in canary.step("pulumi up").output
    no_secret_in(canary, rack)
    assert not list((in_lab.temp).glob("rackctl-lab-*"))


def test_without_the_tunnel_pulumi_would_not_reach_a_tunnel_stack(lab):
    """The negative control, and what a first real deploy of rack2 would have met: the same
    command outside rackctl attach finds nothing at the stack's apiServer."""
    rack, ws, standin, _, _, _ = lab
    result = subprocess.run(["ip", "netns", "exec", rack.workstation, str(standin / "bin" / "pulumi"), "up", "--yes",
                             "--stack", "lab"], cwd=ws, capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stderr) == (255, "error: could not reach the Kubernetes API at "
                                                       "127.0.0.1:6442\n")


def test_drift_checks_through_the_tunnel_and_keeps_its_issue(lab):
    rack, ws, standin, github_state, hosted, in_lab = lab
    plan = hosted.run_job("drift.yml", "plan")
    assert plan.ok and json.loads(plan.outputs["stacks"]) == ["lab"]
    before = len(calls(standin, "pulumi"))
    drift = in_lab.run_job("drift.yml", "drift", matrix={"stack": "lab"}, needs={"plan": {"outputs": plan.outputs}})
    outcomes = {s.name: s.outcome for s in drift.steps}
    # The stand-in API server answers no HTTP, so status cannot read the rack: the issue says so
    # and the job is red (exit 2), as designed for a rack that cannot be checked.
    assert not drift.ok and outcomes["Open, update or close the stack's drift issue"] == "failure"
    assert outcomes["Wait while a deploy is queued or running (never touch a stack while it deploys)"] == "success"
    assert calls(standin, "gh")[:5] == [f"run list --workflow deploy.yml --status {s} --limit 50 --json databaseId "
                                        f"--jq length" for s in ("queued", "waiting", "pending", "requested",
                                                                 "in_progress")]
    assert calls(standin, "pulumi")[before:] == [
        "config get skolo:sshPrivateKey --stack lab",
        "preview --refresh --expect-no-changes --diff --non-interactive --color never --stack lab",
        "reached 127.0.0.1:6442: stand-in API server",
        "stack output --show-secrets kubeconfig -s lab",
        "config get skolo:sshPrivateKey --stack lab"], [(s.name, s.output[-1500:]) for s in drift.steps]
    assert (ws / "drift" / "preview.code").read_text() == "0\n"
    assert (ws / "drift" / "status.code").read_text() == "2\n"
    [issue] = json.loads(github_state.read_text())["issues"].values()
    assert issue["title"] == "drift: lab differs from its code" and issue["labels"] == ["drift"]
    assert "rackctl status could not read the rack (exit 2)" in issue["body"]
    no_secret_in(drift, rack)


def test_a_pull_request_preview_reaches_its_rack_and_is_commented(lab):
    rack, ws, standin, _, _, in_lab = lab
    before = len(calls(standin, "pulumi"))
    preview = in_lab.run_job("pull-request.yml", "preview", matrix={"stack": "lab"},
                             needs={"test": {"outputs": {"changed": '["lab"]'}}})
    assert preview.ok, [(s.name, s.output[-2000:]) for s in preview.steps if s.outcome == "failure"]
    assert calls(standin, "pulumi")[before:] == [
        "config get skolo:sshPrivateKey --stack lab",
        "preview --diff --non-interactive --color never --stack lab",
        "reached 127.0.0.1:6442: stand-in API server"]
    comment = (standin / "comment-7.md").read_text()
    assert comment.startswith("### What pulumi would change on lab\n\n```\n") and "Resources: 3 unchanged" in comment
    no_secret_in(preview, rack)
