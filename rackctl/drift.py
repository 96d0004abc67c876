"""`rackctl drift STACK`: the nightly drift check's verdict, kept as one GitHub issue per stack.

The drift workflow (.github/workflows/drift.yml) runs, for each stack, `pulumi preview --refresh
--expect-no-changes` and `rackctl status --format json` and hands both (output and exit code) to
this command, which:
  - `assess`: clean (preview exit 0 and status exit 0), drift (the preview proposed changes, or
    status exit 1), or error (either could not check: that is worth an issue too);
  - `decide`: with the stack's open drift issue (found by the marker in its body): drift or error
    opens one, or updates the open one; clean closes the open one; clean with none does nothing;
  - applies that through GitHub's REST API ($GITHUB_API_URL, $GITHUB_REPOSITORY, $GITHUB_TOKEN;
    the token is only ever a request header).
Exit code: 0 clean, 1 drift, 2 could not check (after the issue is handled), so the run is red.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Optional, Sequence

NO_CHANGES_EXPECTED = "no changes were expected but changes were proposed"
LABEL = "drift"
PREVIEW_LIMIT = 40000  # GitHub caps an issue body at 65536 characters


class DriftError(Exception):
    pass


def marker(stack: str) -> str:
    return f"<!-- rackctl drift: {stack} -->"


def title(stack: str) -> str:
    return f"drift: {stack} differs from its code"


@dataclass
class Finding:
    state: str
    """clean, drift or error."""
    said: list[str] = field(default_factory=list)
    """One line per thing found, for the issue and the log."""

    @property
    def code(self) -> int:
        return {"clean": 0, "drift": 1, "error": 2}[self.state]


def assess(preview: str, preview_code: int, status: str, status_code: int, missing: Sequence[str] = ()) -> Finding:
    """The verdict. `missing` names input files that were not there ("--preview FILE (...)"): that
    side could not be checked, which is an error, never "no changes"."""
    said = [f"{what} is missing: the step that writes it did not run, so it was not checked" for what in missing]
    states = {"error"} if missing else set()
    if not any(what.startswith("--preview") for what in missing):
        if preview_code == 0:
            said.append("pulumi preview --refresh: no changes")
        elif NO_CHANGES_EXPECTED in preview:
            states.add("drift")
            said.append("pulumi preview --refresh: the rack differs from the stack's state or code (diff below)")
        else:
            states.add("error")
            said.append(f"pulumi preview --refresh failed (exit {preview_code}); see its output below")
    if not any(what.startswith("--status") for what in missing):
        try:
            summary = json.loads(status)["summary"] if status_code in (0, 1) else None
        except (ValueError, KeyError, TypeError):
            summary = None
        if status_code in (0, 1) and summary is not None:
            said.append(f"rackctl status: {summary}")
            if status_code == 1:
                states.add("drift")
        else:
            states.add("error")
            last = (status.strip().splitlines() or ["no output"])[-1]
            said.append(f"rackctl status could not read the rack (exit {status_code}): {last}")
    state = "error" if "error" in states else "drift" if "drift" in states else "clean"
    return Finding(state, said)


@dataclass(frozen=True)
class Action:
    kind: str
    """create, update, close or none."""
    number: Optional[int] = None


def decide(finding: Finding, open_issue: Optional[int]) -> Action:
    if finding.state == "clean":
        return Action("close", open_issue) if open_issue else Action("none")
    return Action("update", open_issue) if open_issue else Action("create")


def body(stack: str, finding: Finding, preview: str, run_url: str, when: str) -> str:
    shown = preview if len(preview) <= PREVIEW_LIMIT else "(cut: its end is below)\n" + preview[-PREVIEW_LIMIT:]
    heading = "could not be checked" if finding.state == "error" else "differs from its code"
    return "\n".join([
        marker(stack), f"## {stack} {heading}", "",
        f"Last checked {when} by the nightly drift job: {run_url}", "",
        *(f"- {line}" for line in finding.said), "",
        "This issue is updated every night while the rack drifts and closed when it is clean again. "
        "Fix the rack or the code (README: CI, drift.yml; The rack map).", "",
        "<details><summary>pulumi preview --refresh --expect-no-changes</summary>", "", "```", shown.rstrip(), "```",
        "", "</details>", ""])


class GitHub:
    """The few issue calls the drift check needs, on GitHub's REST API."""

    def __init__(self, api: str, repo: str, token: str):
        self.api, self.repo, self._token = api.rstrip("/"), repo, token

    def _call(self, method: str, path: str, payload: Optional[dict] = None):
        request = urllib.request.Request(
            f"{self.api}/repos/{self.repo}{path}", method=method,
            data=None if payload is None else json.dumps(payload).encode(),
            headers={"Authorization": f"Bearer {self._token}", "Accept": "application/vnd.github+json",
                     "X-GitHub-Api-Version": "2022-11-28", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as e:
            raise DriftError(f"GitHub answered {e.code} to {method} {path}") from None
        except urllib.error.URLError as e:
            raise DriftError(f"cannot reach GitHub at {self.api}: {e.reason}") from None

    def open_issue(self, stack: str) -> Optional[int]:
        """The stack's open drift issue: the one whose body starts with its marker."""
        page = 1
        while True:
            issues = self._call("GET", f"/issues?state=open&labels={LABEL}&per_page=100&page={page}")
            for issue in issues:
                if "pull_request" not in issue and (issue.get("body") or "").startswith(marker(stack)):
                    return int(issue["number"])
            if len(issues) < 100:
                return None
            page += 1

    def apply(self, action: Action, stack: str, text: str, closing: str) -> None:
        if action.kind == "create":
            self._call("POST", "/issues", {"title": title(stack), "body": text, "labels": [LABEL]})
        elif action.kind == "update":
            self._call("PATCH", f"/issues/{action.number}", {"body": text})
        elif action.kind == "close":
            self._call("POST", f"/issues/{action.number}/comments", {"body": closing})
            self._call("PATCH", f"/issues/{action.number}", {"state": "closed", "state_reason": "completed"})


def report(stack: str, preview: str, preview_code: int, status: str, status_code: int, when: str,
           github: Optional[GitHub], run_url: str, missing: Sequence[str] = ()) -> tuple[int, str]:
    """Assess, find the open issue, decide and apply (or with no `github`, only say). Returns the
    exit code and what was done, one line each."""
    finding = assess(preview, preview_code, status, status_code, missing)
    number = github.open_issue(stack) if github else None
    action = decide(finding, number)
    if github:
        github.apply(action, stack, body(stack, finding, preview, run_url, when),
                     f"{stack} is clean again ({when}, {run_url}): {'; '.join(finding.said)}")
    done = {"create": "opened an issue", "update": f"updated issue #{number}", "close": f"closed issue #{number}",
            "none": "no issue to change"}[action.kind]
    return finding.code, "\n".join([f"{stack}: {finding.state}", *(f"  {line}" for line in finding.said),
                                    f"  {done if github else 'would have: ' + done + ' (--dry-run)'}"])


def github_from_env() -> GitHub:
    missing = [k for k in ("GITHUB_REPOSITORY", "GITHUB_TOKEN") if not os.environ.get(k)]
    if missing:
        raise DriftError(f"{' and '.join(missing)} not set (the workflow sets them; or use --dry-run)")
    return GitHub(os.environ.get("GITHUB_API_URL", "https://api.github.com"), os.environ["GITHUB_REPOSITORY"],
                  os.environ["GITHUB_TOKEN"])
