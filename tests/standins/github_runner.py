"""STAND-IN for a GitHub Actions runner, for the jobs of our own workflows (.github/workflows/).

What is real: every `run:` step runs as the runner runs it on Linux: its script in a file, run
by `bash -e FILE` (GitHub's default when no shell is given), in the job's workspace, with the
workflow's, the job's and the step's `env:` (expressions resolved), and the runner's files and
variables (GITHUB_OUTPUT, GITHUB_ENV, GITHUB_PATH, GITHUB_STEP_SUMMARY, GITHUB_WORKSPACE,
RUNNER_TEMP, CI=true); what a step writes to them is read back as GitHub does. Steps run in
order; after a failing step only `if: always()` steps run, and the job fails.

Stand-ins, at the edge: the `uses:` actions (checkout: the test prepares the workspace;
setup-python: `python` on PATH; pulumi/actions: the directory the test gives on PATH, for the CLI
it would install), and the contexts GitHub fills in
(`github`, `secrets`, `vars`, `needs`, `matrix`), which the test supplies. `wrap` runs each
step under a prefix (`ip netns exec NS`: a runner inside the lab's network).

Not modelled: job-level `if:`, the order of jobs (`needs`), concurrency groups, environments and
their approvals, matrix expansion, `shell:` other than the default, `working-directory`, and
any other action (the jobs that upload and download artifacts, the PR's test and comment, are not
run: a job that uses an unknown action fails, naming it).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
# The github context values a runner exports as GITHUB_<NAME> (the token is not one: a step gets
# it only through its env).
DEFAULT_GITHUB_VARIABLES = ("repository", "server_url", "api_url", "run_id", "ref", "base_ref", "event_name", "sha")


def evaluate(expression: str, contexts: dict) -> Any:
    """The expressions our workflows use: a context path, fromJSON(path), always()."""
    if expression == "always()":
        return True
    call = re.fullmatch(r"fromJSON\((.+)\)", expression)
    if call:
        return json.loads(evaluate(call.group(1).strip(), contexts))
    value: Any = contexts
    for part in expression.split("."):
        if not isinstance(value, dict) or part not in value:
            return ""  # GitHub: a missing property is an empty string
        value = value[part]
    return value


def substitute(text: str, contexts: dict) -> str:
    def one(match: re.Match) -> str:
        value = evaluate(match.group(1), contexts)
        return value if isinstance(value, str) else json.dumps(value)
    return EXPRESSION.sub(one, text)


def _read_file_command(path: Path) -> dict[str, str]:
    """name=value lines, and name<<DELIMITER blocks, as GITHUB_OUTPUT and GITHUB_ENV hold them."""
    values: dict[str, str] = {}
    lines = path.read_text().splitlines() if path.exists() else []
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            end = lines.index(delimiter, i + 1)
            values[name] = "\n".join(lines[i + 1:end])
            i = end + 1
            continue
        if "=" in line:
            name, value = line.split("=", 1)
            values[name] = value
        i += 1
    return values


@dataclass
class Step:
    name: str
    outcome: str  # success, failure, skipped, stand-in
    output: str = ""


@dataclass
class Job:
    ok: bool
    outputs: dict[str, str]
    steps: list[Step] = field(default_factory=list)

    def step(self, name_part: str) -> Step:
        return next(s for s in self.steps if name_part in s.name)


class Runner:
    def __init__(self, workspace: Path, temp: Path, contexts: dict, pulumi_bin: Path,
                 path: Optional[list[Path]] = None, wrap: tuple[str, ...] = (), timeout: float = 600):
        self.workspace, self.temp, self.contexts = workspace, temp, contexts
        self.pulumi_bin, self.extra_path = pulumi_bin, list(path or [])
        self.wrap, self.timeout = wrap, timeout

    def run_job(self, workflow: str, job_name: str, matrix: Optional[dict] = None,
                needs: Optional[dict] = None) -> Job:
        doc = yaml.safe_load((self.workspace / ".github" / "workflows" / workflow).read_text())
        job = doc["jobs"][job_name]
        contexts = {**self.contexts, "matrix": matrix or {}, "needs": needs or {}, "steps": {}}
        self.temp.mkdir(parents=True, exist_ok=True)
        env_file, path_file = self.temp / "env", self.temp / "path"
        env_file.write_text("")
        path_file.write_text("")
        python_dir = self.temp / "setup-python"
        path_added: list[str] = []
        steps: list[Step] = []
        failed = False
        for index, step in enumerate(job["steps"]):
            name = step.get("name") or step.get("uses") or step.get("run", "").splitlines()[0]
            if failed and str(step.get("if", "")) not in ("always()", "${{ always() }}"):
                steps.append(Step(name, "skipped"))
                continue
            env = {**{k: substitute(str(v), contexts) for k, v in (doc.get("env") or {}).items()},
                   **{k: substitute(str(v), contexts) for k, v in (job.get("env") or {}).items()},
                   **{k: substitute(str(v), contexts) for k, v in (step.get("env") or {}).items()}}
            if "uses" in step:
                steps.append(self._action(step, contexts, python_dir, path_added))
                continue
            script = self.temp / f"step-{index}.sh"
            script.write_text(substitute(step["run"], contexts))
            output_file, summary = self.temp / f"output-{index}", self.temp / "summary.md"
            output_file.write_text("")
            run_env = {
                "PATH": ":".join([*reversed(path_added), *map(str, self.extra_path), "/usr/local/sbin",
                                  "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]),
                "HOME": str(self.temp / "home"), "LANG": "C.UTF-8", "CI": "true", "GITHUB_ACTIONS": "true",
                "GITHUB_WORKSPACE": str(self.workspace), "RUNNER_TEMP": str(self.temp),
                "GITHUB_OUTPUT": str(output_file), "GITHUB_ENV": str(env_file), "GITHUB_PATH": str(path_file),
                "GITHUB_STEP_SUMMARY": str(summary),
                **{f"GITHUB_{k.upper()}": contexts["github"][k] for k in DEFAULT_GITHUB_VARIABLES
                   if k in (contexts.get("github") or {})},
                **_read_file_command(env_file), **env}
            (self.temp / "home").mkdir(exist_ok=True)
            proc = subprocess.run([*self.wrap, "bash", "-e", str(script)], cwd=self.workspace, env=run_env,
                                  stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=self.timeout)
            path_added += [line for line in path_file.read_text().splitlines() if line and line not in path_added]
            if step.get("id"):
                contexts["steps"][step["id"]] = {"outputs": _read_file_command(output_file)}
            ok = proc.returncode == 0
            failed = failed or not ok
            steps.append(Step(name, "success" if ok else "failure", proc.stdout + proc.stderr))
        outputs = {k: substitute(str(v), contexts) for k, v in (job.get("outputs") or {}).items()}
        return Job(not failed, outputs, steps)

    def _action(self, step: dict, contexts: dict, python_dir: Path, path_added: list[str]) -> Step:
        uses, given = step["uses"].split("@")[0], {k: substitute(str(v), contexts)
                                                  for k, v in (step.get("with") or {}).items()}
        if uses == "actions/checkout":
            return Step(step["uses"], "stand-in", "the test prepared the workspace")
        if uses == "actions/setup-python":
            python_dir.mkdir(exist_ok=True)
            link = python_dir / "python"
            if not link.exists():
                link.symlink_to(getattr(sys, "_base_executable", sys.executable))
            path_added.append(str(python_dir))
            return Step(step["uses"], "stand-in", f"python on PATH for {given.get('python-version')}")
        if uses == "pulumi/actions":
            assert set(given) == {"pulumi-version"}, f"pulumi/actions runs only to install the CLI here: {given}"
            path_added.append(str(self.pulumi_bin))
            return Step(step["uses"], "stand-in", f"the Pulumi CLI {given['pulumi-version']}")
        raise AssertionError(f"the stand-in runner does not know the action {uses}")
