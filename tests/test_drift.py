"""`rackctl drift`: the nightly job's verdict per stack, and the one GitHub issue it keeps. The
issue calls go to a stand-in GitHub API (tests/standins/github_api.py: a real HTTP server on
loopback that keeps issues the way GitHub's REST API does, for the four calls drift makes),
through the command as the workflow runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest

from rackctl import drift
from tests.conftest import ROOT
from tests.standins.github_api import StandInGitHub

CLEAN_STATUS = json.dumps({"format": 1, "summary": "80/80 Ready", "drift": False})
DRIFT_STATUS = json.dumps({"format": 1, "summary": "78/80 Ready, 2 missing: a, b", "drift": True})
CHANGES = ("Previewing update (rack1):\n~ command:remote:Command rack1-sshd update [diff: ~create]\n"
           "error: no changes were expected but changes were proposed\n")
TOKEN = "ghs_standInToken0123456789"


@pytest.mark.parametrize("preview, preview_code, status, status_code, state", [
    ("no changes\n", 0, CLEAN_STATUS, 0, "clean"),
    (CHANGES, 255, CLEAN_STATUS, 0, "drift"),
    ("no changes\n", 0, DRIFT_STATUS, 1, "drift"),
    (CHANGES, 255, DRIFT_STATUS, 1, "drift"),
    ("error: could not connect to the backend\n", 255, CLEAN_STATUS, 0, "error"),
    ("no changes\n", 0, "rackctl: cannot reach the API server: dial tcp 192.168.1.8:6443: i/o timeout", 2, "error"),
    ("no changes\n", 0, "not json at all", 1, "error"),
])
def test_assess(preview, preview_code, status, status_code, state):
    assert drift.assess(preview, preview_code, status, status_code).state == state


def test_assess_says_what_it_found():
    found = drift.assess(CHANGES, 255, "rackctl: cannot reach the API server: i/o timeout", 2)
    assert found.said == [
        "pulumi preview --refresh: the rack differs from the stack's state or code (diff below)",
        "rackctl status could not read the rack (exit 2): rackctl: cannot reach the API server: i/o timeout"]


@pytest.mark.parametrize("state, open_issue, action", [
    ("drift", None, drift.Action("create")),
    ("drift", 12, drift.Action("update", 12)),
    ("error", None, drift.Action("create")),
    ("error", 12, drift.Action("update", 12)),
    ("clean", 12, drift.Action("close", 12)),
    ("clean", None, drift.Action("none")),
])
def test_decide(state, open_issue, action):
    assert drift.decide(drift.Finding(state), open_issue) == action


def test_a_long_preview_keeps_its_end_and_fits_an_issue():
    preview = "x" * 100 + "\n" + "y" * 100000 + "\nerror: no changes were expected but changes were proposed\n"
    text = drift.body("rack1", drift.assess(preview, 255, CLEAN_STATUS, 0), preview, "https://run", "now")
    assert len(text) < 65536 and text.startswith(drift.marker("rack1"))
    assert "(cut: its end is below)" in text and text.endswith("proposed\n```\n\n</details>\n")


# --- through the command, against a stand-in GitHub API ------------------------------------------

@pytest.fixture
def github():
    server = StandInGitHub(TOKEN)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def nightly(tmp_path, github, stack, preview, preview_code, status, status_code, token=TOKEN):
    (tmp_path / "preview.txt").write_text(preview)
    (tmp_path / "status.json").write_text(status)
    env = dict(os.environ, GITHUB_API_URL=github.url, GITHUB_REPOSITORY="google/skolo-racks", GITHUB_TOKEN=token,
               GITHUB_SERVER_URL="https://github.com", GITHUB_RUN_ID="42")
    return subprocess.run([sys.executable, "-m", "rackctl", "drift", stack, "--preview", str(tmp_path / "preview.txt"),
                           "--preview-code", str(preview_code), "--status", str(tmp_path / "status.json"),
                           "--status-code", str(status_code)], cwd=ROOT, env=env, capture_output=True, text=True)


def test_one_issue_per_stack_opened_updated_then_closed(tmp_path, github):
    first = nightly(tmp_path, github, "rack1", CHANGES, 255, DRIFT_STATUS, 1)
    assert first.returncode == 1, first.stderr
    assert first.stdout.splitlines()[-1] == "  opened an issue"
    [issue] = github.issues.values()
    assert issue["title"] == "drift: rack1 differs from its code" and issue["labels"] == ["drift"]
    assert issue["body"].startswith("<!-- rackctl drift: rack1 -->\n## rack1 differs from its code\n")
    assert "https://github.com/google/skolo-racks/actions/runs/42" in issue["body"]
    assert "- rackctl status: 78/80 Ready, 2 missing: a, b" in issue["body"]
    assert "~ command:remote:Command rack1-sshd update" in issue["body"]

    # Another rack's issue is its own.
    assert nightly(tmp_path, github, "rack2", CHANGES, 255, CLEAN_STATUS, 0).returncode == 1
    assert len(github.issues) == 2

    # The next night, still drifting: the same issue, updated.
    again = nightly(tmp_path, github, "rack1", "no changes\n", 0, DRIFT_STATUS, 1)
    assert again.stdout.splitlines()[-1] == "  updated issue #1"
    assert len(github.issues) == 2 and "pulumi preview --refresh: no changes" in github.issues[1]["body"]

    # Clean: closed, with a comment saying so; rack2's stays open.
    clean = nightly(tmp_path, github, "rack1", "no changes\n", 0, CLEAN_STATUS, 0)
    assert (clean.returncode, clean.stdout.splitlines()[-1]) == (0, "  closed issue #1")
    assert github.issues[1]["state"] == "closed" and github.issues[1]["comments"][0].startswith("rack1 is clean again")
    assert github.issues[2]["state"] == "open"
    # Clean again: nothing to do, and a later drift opens a new issue.
    assert nightly(tmp_path, github, "rack1", "no changes\n", 0, CLEAN_STATUS, 0).stdout.splitlines()[-1] == \
        "  no issue to change"
    assert nightly(tmp_path, github, "rack1", CHANGES, 255, CLEAN_STATUS, 0).stdout.splitlines()[-1] == \
        "  opened an issue"
    methods = [(m, p) for m, p, _ in github.requests]
    assert ("PATCH", "/repos/google/skolo-racks/issues/1") in methods
    everything = "".join(r.stdout + r.stderr for r in (first, again, clean))
    assert TOKEN not in everything and TOKEN not in json.dumps(github.issues)


def test_a_rack_that_cannot_be_checked_gets_an_issue_and_exit_2(tmp_path, github):
    result = nightly(tmp_path, github, "rack1", "no changes\n", 0,
                     "rackctl: cannot reach the API server: dial tcp 192.168.1.8:6443: i/o timeout", 2)
    assert result.returncode == 2
    assert github.issues[1]["body"].startswith("<!-- rackctl drift: rack1 -->\n## rack1 could not be checked\n")


def test_github_refusing_is_one_line_and_exit_2(tmp_path, github):
    result = nightly(tmp_path, github, "rack1", CHANGES, 255, CLEAN_STATUS, 0, token="wrong")
    assert (result.returncode, result.stderr) == (
        2, "rackctl: GitHub answered 401 to GET /issues?state=open&labels=drift&per_page=100&page=1\n")
    missing = subprocess.run([sys.executable, "-m", "rackctl", "drift", "rack1", "--preview", "x", "--preview-code",
                              "0", "--status", "y", "--status-code", "0"], cwd=ROOT, capture_output=True, text=True,
                             env={k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")})
    assert (missing.returncode, missing.stderr) == (
        2, "rackctl: GITHUB_REPOSITORY and GITHUB_TOKEN not set (the workflow sets them; or use --dry-run)\n")


def test_dry_run_says_what_it_would_do_without_github(tmp_path):
    (tmp_path / "p").write_text(CHANGES)
    (tmp_path / "s").write_text(DRIFT_STATUS)
    result = subprocess.run([sys.executable, "-m", "rackctl", "drift", "rack1", "--preview", str(tmp_path / "p"),
                             "--preview-code", "255", "--status", str(tmp_path / "s"), "--status-code", "1",
                             "--dry-run"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stdout.splitlines()[0] == "rack1: drift"
    assert result.stdout.splitlines()[-1] == "  would have: opened an issue (--dry-run)"


def test_a_missing_input_file_is_named_and_never_no_changes(tmp_path):
    """The preview step died before writing its output, and its exit code (0 by default in the
    workflow's variable) says nothing: that is 'could not check', naming the file, exit 2."""
    (tmp_path / "s").write_text(DRIFT_STATUS)
    result = subprocess.run([sys.executable, "-m", "rackctl", "drift", "rack1", "--preview", str(tmp_path / "p"),
                             "--preview-code", "0", "--status", str(tmp_path / "s"), "--status-code", "1",
                             "--dry-run"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2
    lines = result.stdout.splitlines()
    assert lines[0] == "rack1: error"
    assert lines[1] == (f"  --preview {tmp_path / 'p'} (no such file or directory) is missing: the step that writes "
                        f"it did not run, so it was not checked")
    assert "no changes" not in result.stdout
