"""The CI workflows, held to the trust boundary: code from a pull request never meets the racks'
secrets before a person approves it. The policy is a function of a workflow's text, run on every
workflow here and on a bad one (so a policy that passes everything fails this test). GitHub's
workflow schema is checked with check-jsonschema."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
PINNED = re.compile(r"^\s*-?\s*uses:\s*[\w.-]+/[\w./-]+@[0-9a-f]{40}\s+# v\d+\.\d+\.\d+\s*$")
SAME_REPO = "github.event.pull_request.head.repo.full_name == github.repository"
# The only write a job may have, and why: commenting on the pull request it belongs to.
ALLOWED_WRITES = {"pull-requests", "issues"}
DEPLOY_RUNNERS = ["self-hosted", "skolo-lab", "skolo-deploy"]
PREVIEW_RUNNERS = ["self-hosted", "skolo-lab", "skolo-preview"]


def jobs_of(name: str) -> dict:
    return yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())["jobs"]


def lab_jobs() -> list[tuple[str, dict]]:
    """(workflow/job, job) for every job on the lab's self-hosted runners."""
    return [(f"{w.name}/{name}", job) for w in WORKFLOWS for name, job in jobs_of(w.name).items()
            if "self-hosted" in job["runs-on"]]


def policy_problems(text: str) -> list[str]:
    doc = yaml.safe_load(text)
    triggers = doc.get(True) or doc.get("on") or {}  # YAML reads a bare `on:` as True
    problems = []
    for n, line in enumerate(text.splitlines(), 1):
        if re.match(r"^\s*-?\s*uses:", line) and not PINNED.match(line):
            problems.append(f"line {n}: action not pinned to a full commit SHA with its tag in a comment: {line.strip()}")
    if "pull_request_target" in triggers:
        problems.append("pull_request_target runs with secrets on a fork's pull request")
    if doc.get("permissions") != {}:
        problems.append("the workflow's token must start with no permissions (permissions: {})")
    if "secrets." in yaml.safe_dump(doc.get("env") or {}):
        problems.append("secrets in the workflow's env reach every job; give them to the jobs that need them")
    for name, job in doc["jobs"].items():
        job_text = yaml.safe_dump(job)
        permissions = job.get("permissions")
        if not isinstance(permissions, dict):
            problems.append(f"{name}: no permissions of its own")
            permissions = {}
        writes = {scope for scope, level in permissions.items() if level == "write"}
        if writes - ALLOWED_WRITES:
            problems.append(f"{name}: writes {sorted(writes - ALLOWED_WRITES)}")
        checkouts = [s for s in job.get("steps", []) if str(s.get("uses", "")).startswith("actions/checkout@")]
        for step in checkouts:
            if (step.get("with") or {}).get("persist-credentials") is not False:
                problems.append(f"{name}: checkout keeps the token in .git (persist-credentials: false)")
        if "secrets." in job_text and not job.get("environment"):
            problems.append(f"{name}: gets secrets without a protected environment")
        if writes and checkouts and not job.get("environment"):
            problems.append(f"{name}: runs the repository's code with a token that writes, unprotected")
        if "pull_request" in triggers and job.get("environment") and SAME_REPO not in str(job.get("if", "")):
            problems.append(f"{name}: a pull request from a fork could reach its environment")
    return problems


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_every_workflow_keeps_pull_request_code_away_from_secrets(workflow):
    assert policy_problems(workflow.read_text()) == []


def test_the_policy_refuses_what_the_old_pull_request_workflow_did():
    old = """
on: {pull_request: {branches: [main]}}
permissions: {contents: read, pull-requests: write}
jobs:
  preview:
    runs-on: [self-hosted, skolo-lab]
    env: {PULUMI_CONFIG_PASSPHRASE: "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}"}
    steps:
      - uses: actions/checkout@v4
      - uses: pulumi/actions@v6
"""
    assert policy_problems(old) == [
        "line 9: action not pinned to a full commit SHA with its tag in a comment: - uses: actions/checkout@v4",
        "line 10: action not pinned to a full commit SHA with its tag in a comment: - uses: pulumi/actions@v6",
        "the workflow's token must start with no permissions (permissions: {})",
        "preview: no permissions of its own",
        "preview: checkout keeps the token in .git (persist-credentials: false)",
        "preview: gets secrets without a protected environment",
    ]


def test_pull_request_previews_wait_for_a_person_and_never_serve_forks():
    doc = yaml.safe_load((ROOT / ".github/workflows/pull-request.yml").read_text())
    jobs = doc["jobs"]
    # One rack's secrets per approval: each stack's preview waits in that rack's own environment.
    assert jobs["preview"]["environment"] == "preview-${{ matrix.stack }}" and SAME_REPO in jobs["preview"]["if"]
    assert "secrets." not in yaml.safe_dump(jobs["test"])  # the job that runs the tests on PR code
    assert not any("checkout" in str(s.get("uses", "")) for s in jobs["comment"]["steps"])
    assert jobs["comment"]["permissions"] == {"pull-requests": "write"}


def test_deploy_is_one_protected_environment_per_stack_canary_first():
    doc = yaml.safe_load((ROOT / ".github/workflows/deploy.yml").read_text())
    jobs = doc["jobs"]
    assert jobs["canary"]["environment"] == "${{ needs.plan.outputs.canary }}"
    assert jobs["rest"]["environment"] == "${{ matrix.stack }}"
    assert jobs["rest"]["needs"] == ["plan", "canary"] and jobs["rest"]["strategy"]["max-parallel"] == 1
    for job in ("canary", "rest"):
        assert jobs[job]["concurrency"]["group"].startswith("deploy-")
        assert jobs[job]["concurrency"]["cancel-in-progress"] is False
        assert jobs[job]["runs-on"] == DEPLOY_RUNNERS
    assert ".venv/bin/python -m rackctl check --strict" in [s.get("run") for s in jobs["plan"]["steps"]]
    assert doc["env"] == {"PULUMI_CONTINUE_ON_ERROR": "true"}


def test_drift_runs_nightly_per_stack_behind_the_deploys_protection():
    doc = yaml.safe_load((ROOT / ".github/workflows/drift.yml").read_text())
    triggers = doc.get(True) or doc["on"]
    assert set(triggers) == {"schedule", "workflow_dispatch"} and triggers["schedule"][0]["cron"]
    job = doc["jobs"]["drift"]
    assert job["environment"] == "${{ matrix.stack }}" and job["runs-on"] == DEPLOY_RUNNERS
    assert job["strategy"]["matrix"]["stack"] == "${{ fromJSON(needs.plan.outputs.stacks) }}"
    assert job["strategy"]["fail-fast"] is False
    assert job["if"] == "github.ref == 'refs/heads/main'"
    assert job["permissions"] == {"actions": "read", "contents": "read", "issues": "write"}
    assert job["concurrency"] == {"group": "drift-${{ matrix.stack }}", "cancel-in-progress": False}
    runs = "\n".join(s.get("run", "") for s in job["steps"])
    assert "pulumi preview --refresh --expect-no-changes" in runs
    assert 'rackctl attach "$STACK"' in runs and 'rackctl status "$STACK" --format json' in runs
    assert '.venv/bin/python -m rackctl drift "$STACK"' in runs
    # The key for the tunnel: rackctl attach --key-from-stack keeps it in a private 0600 file while attached.
    assert 'rackctl attach "$STACK" --key-from-stack -- \\\n' in runs and "sshPrivateKey" not in runs
    assert "secrets." not in yaml.safe_dump(doc["jobs"]["plan"])


# A command that reaches a rack: its API server (pulumi's Kubernetes provider, kubectl, rackctl
# status/observer) or its hosts (pulumi-command over SSH, rackctl hostkeys).
REACHES_A_RACK = re.compile(r"\bpulumi (up|preview|refresh|destroy|import|stack output)\b"
                            r"|\brackctl (status|observer|hostkeys)\b")
ATTACH = '.venv/bin/python -m rackctl attach "$STACK" '


def commands(run: str) -> list[str]:
    """A run: script's commands, one per line, backslash continuations joined."""
    return [line.strip() for line in run.replace("\\\n", " ").splitlines() if line.strip()]


def test_every_job_reaches_its_rack_through_rackctl_attach():
    """One mechanism in every job: each command that reaches a rack runs inside `rackctl attach
    "$STACK" --key-from-stack` (which opens the tunnel where a stack's apiServer is one), and no
    step hands pulumi a command through pulumi/actions, where it could not be wrapped."""
    seen = 0
    for where, job in lab_jobs():
        assert job["env"]["STACK"] in ("${{ matrix.stack }}", "${{ needs.plan.outputs.canary }}"), where
        for step in job["steps"]:
            if str(step.get("uses", "")).startswith("pulumi/actions@"):
                assert set(step["with"]) == {"pulumi-version"}, where  # installs the CLI, runs nothing
            for command in commands(step.get("run", "")):
                if REACHES_A_RACK.search(command):
                    seen += 1
                    assert command.startswith(ATTACH) and " --key-from-stack " in command, (where, command)
                    inner = command.split(" -- ", 1)[1]
                    assert '--stack "$STACK"' in inner or 'rackctl status "$STACK"' in inner, (where, command)
    assert seen == 5  # preview, canary's up, rest's up, drift's preview and its status


def test_attach_opens_the_tunnel_where_each_stack_says_its_api_server_is():
    """Every stack the workflows reach: rack2's apiServer is https://127.0.0.1:6442 (a tunnel), so
    attach listens there, where the program's Kubernetes provider dials; rack1's is the jumphost."""
    from rackctl import attach, stackfiles

    where = {stack: attach.tunnel_address(stackfiles.settings_for(stack).api_server) for stack in stackfiles.stacks()}
    assert where == {"rack1": None, "rack2": ("127.0.0.1", 6442)}


def test_workflows_match_the_github_workflow_schema():
    checker = Path(sys.executable).parent / "check-jsonschema"
    result = subprocess.run([str(checker), "--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOWS)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_check_catches_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps: not-a-list\n")
    checker = Path(sys.executable).parent / "check-jsonschema"
    result = subprocess.run([str(checker), "--builtin-schema", "vendor.github-workflows", str(broken)],
                            capture_output=True, text=True)
    assert result.returncode != 0


def test_pull_request_code_and_deploys_never_share_a_runner():
    """Approved PR code runs on the preview runners only; deploys and drift on the deploy runners
    only. A job on one cannot be picked up by the other (the README says how to register them)."""
    seen = {}
    for where, job in lab_jobs():
        seen[where] = job["runs-on"]
        assert ("skolo-preview" in job["runs-on"]) != ("skolo-deploy" in job["runs-on"]), where
    assert seen["pull-request.yml/preview"] == PREVIEW_RUNNERS
    assert all(labels == DEPLOY_RUNNERS for where, labels in seen.items() if not where.startswith("pull-request"))


def test_nothing_can_cancel_or_replace_a_pending_deploy():
    """GitHub keeps one pending job per concurrency group and cancels the older: so only deploys
    are in a deploy's group. Drift and previews wait for deploys instead, before any pulumi step."""
    groups = {where: (job.get("concurrency") or {}).get("group", "") for where, job in lab_jobs()}
    for where, group in groups.items():
        assert group.startswith("deploy-") == where.startswith("deploy.yml/"), (where, group)
    for where in ("pull-request.yml/preview", "drift.yml/drift"):
        job = dict(lab_jobs())[where]
        steps = [str(s.get("run", "")) + str(s.get("uses", "")) for s in job["steps"]]
        wait = steps.index(".ci/wait-for-deploys")
        first_pulumi = next(i for i, s in enumerate(steps) if "pulumi/actions@" in s or "pulumi preview" in s)
        assert wait < first_pulumi, where
        assert job["permissions"].get("actions") == "read", where
    assert (ROOT / ".ci" / "wait-for-deploys").stat().st_mode & 0o111


def test_the_pulumi_cli_version_is_the_sdks_pin_in_requirements_txt():
    pin = re.search(r"^pulumi==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M).group(1)
    reads = "sed -n 's/^pulumi==//p' requirements.txt"
    count = 0
    for where, job in lab_jobs():
        version_steps = [s for s in job["steps"] if s.get("id") == "pulumi"]
        assert len(version_steps) == 1 and reads in version_steps[0]["run"], where
        for step in job["steps"]:
            if str(step.get("uses", "")).startswith("pulumi/actions@"):
                assert step["with"]["pulumi-version"] == "${{ steps.pulumi.outputs.version }}", where
                count += 1
    assert count == 4 and pin  # preview, canary, rest, drift


def test_lab_jobs_install_python_packages_only_from_the_hash_locked_file():
    for where, job in lab_jobs():
        installs = [s["run"] for s in job["steps"] if "pip install" in str(s.get("run", ""))]
        assert installs == ["python -m venv .venv && .venv/bin/pip install --require-hashes -r requirements.lock"], where


def test_the_lock_holds_every_pin_of_requirements_txt_with_hashes():
    """Offline half of 'CI fails when it is stale' (the pull-request workflow re-runs pip-compile,
    which keeps the lock's pins, and fails on any difference)."""
    lock = (ROOT / "requirements.lock").read_text()
    # No index of the machine that made it: the runner resolves hashes against PyPI.
    assert not re.search(r"^--(extra-)?index-url|^--find-links", lock, re.M)
    entries = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+) \\$", lock, re.M))
    normal = {k.lower().replace("_", "-").replace(".", "-"): v for k, v in entries.items()}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            assert normal.get(name.lower().replace("_", "-").replace(".", "-")) == version, line
    for block in re.split(r"\n(?=[A-Za-z0-9])", lock):
        if "==" in block:
            assert "--hash=sha256:" in block, block.splitlines()[0]
    steps = jobs_of("pull-request.yml")["test"]["steps"]
    check = next(s["run"] for s in steps if "pip-compile" in str(s.get("run", "")))
    header = re.search(r"#    (pip-compile .*)", lock).group(1)
    for option in header.split()[1:-1]:
        if not option.startswith("--output-file"):
            assert option.replace("=", " ") in check.replace("\\\n", " ").replace("  ", " "), option
    assert "diff -u requirements.lock" in check


def test_zizmor_finds_nothing_in_the_workflows():
    """zizmor's offline audits (template injection, excessive permissions, unpinned uses, ...)."""
    zizmor = Path(sys.executable).parent / "zizmor"
    result = subprocess.run([str(zizmor), "--offline", "--no-progress", str(ROOT / ".github" / "workflows")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout + result.stderr

