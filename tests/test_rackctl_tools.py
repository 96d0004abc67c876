"""rackctl check, diff, push, stacks and the CI workflows, run as an operator or CI runs them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rackctl import push
from tests.conftest import ROOT

STACK_FILES = ("Pulumi.yaml", "Pulumi.rack1.yaml", "Pulumi.rack2.yaml")
IMAGE = "gcr.io/skia-public/rpi-swarming-client:2021-09-03T04_05_06Z-ops-1a2b3c4-clean"


def rackctl(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "rackctl", *args], cwd=cwd, capture_output=True, text=True)


@pytest.fixture
def stack_dir(tmp_path):
    for name in STACK_FILES:
        shutil.copy2(ROOT / name, tmp_path / name)
    return tmp_path


# --- check --------------------------------------------------------------------------------

def test_check_passes_the_example_stacks_and_warns_of_missing_secrets(stack_dir):
    result = rackctl("--config-dir", str(stack_dir), "check")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("rack1: ok (81 nodes, 264 resources, services: metadata, prometheus,")
    assert lines[1].startswith("  warning: secrets not set in Pulumi.rack1.yaml: skolo:k3sToken, skolo:sshPrivateKey,")
    assert rackctl("--config-dir", str(stack_dir), "check", "--strict").returncode == 1


def test_check_fails_a_bad_stack_with_every_problem(stack_dir):
    text = (stack_dir / "Pulumi.rack2.yaml").read_text().replace("192.168.1.104", "192.168.1.103")
    (stack_dir / "Pulumi.rack2.yaml").write_text(text)
    result = rackctl("--config-dir", str(stack_dir), "check")
    assert result.returncode == 1
    assert ("rack2: FAILED\n  skolo:rpis[3].address: address '192.168.1.103' is already used by "
            "skolo:rpis[2].address; every Pi needs its own address") in result.stdout
    assert "rack1: ok" in result.stdout


def test_stacks_in_canary_order():
    assert json.loads(rackctl("stacks", "--json").stdout) == ["rack2", "rack1"]


# --- push ---------------------------------------------------------------------------------

def test_push_rewrites_one_line_and_keeps_comments(stack_dir):
    before = {n: (stack_dir / n).read_text() for n in STACK_FILES}
    result = rackctl("--config-dir", str(stack_dir), "push", "swarming", IMAGE, "--stacks", "rack1")
    assert result.returncode == 0, result.stderr
    after = (stack_dir / "Pulumi.rack1.yaml").read_text().splitlines()
    changed = [(a, b) for a, b in zip(before["Pulumi.rack1.yaml"].splitlines(), after, strict=True) if a != b]
    assert changed == [("    swarming: gcr.io/skia-public/rpi-swarming-client:2021-09-01T00_00_00Z-skolo-0000000-clean",
                        f"    swarming: {IMAGE}")]
    assert len(after) == len(before["Pulumi.rack1.yaml"].splitlines())
    assert (stack_dir / "Pulumi.rack2.yaml").read_text() == before["Pulumi.rack2.yaml"]
    assert "now run, canary first:\n  pulumi up -s rack1 --continue-on-error --parallel 32" in result.stdout


def test_push_all_dry_run_writes_nothing_and_orders_the_canary_first(stack_dir):
    before = {n: (stack_dir / n).read_text() for n in STACK_FILES}
    result = rackctl("--config-dir", str(stack_dir), "push", "swarming", IMAGE, "--all", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert {n: (stack_dir / n).read_text() for n in STACK_FILES} == before
    assert result.stdout.index("--- a/Pulumi.rack2.yaml") < result.stdout.index("--- a/Pulumi.rack1.yaml")
    assert result.stdout.endswith("would run:\n  pulumi up -s rack2 --continue-on-error --parallel 32\n"
                                  "  pulumi up -s rack1 --continue-on-error --parallel 32\n")


@pytest.mark.parametrize("args, message", [
    (("swarming", "gcr.io/skia-public/rpi-swarming-client:latest", "--all"),
     "rackctl: skolo:images.swarming: expected a pinned image reference (registry/name:tag or @sha256:...; "
     "not :latest), got 'gcr.io/skia-public/rpi-swarming-client:latest'\n"),
    (("swarmng", IMAGE, "--all"), "rackctl: unknown image key 'swarmng'; keys: metadata, prometheus, nodeExporter, "
                                  "kubeStateMetrics, alertToPubsub, routerBackup, powerCycle, nfs, swarming, datastoreBackup\n"),
    (("swarming", IMAGE, "--stacks", "rack9"), "rackctl: no stack file for rack9; stacks here: rack1, rack2\n"),
    (("swarming", IMAGE), "rackctl: name the stacks with --stacks rack1,rack2, or use --all\n"),
    (("prometheus", "prom/prometheus:v2.55.2", "--all"),
     "rackctl: images.prometheus is pinned by digest in rack2, rack1; give the new image in the same form, "
     "<repository>:<tag>@sha256:<digest> (`docker buildx imagetools inspect <repository>:<tag>` prints the digest); "
     "nothing was changed\n"),
])
def test_push_refuses_bad_input_before_writing(stack_dir, args, message):
    before = {n: (stack_dir / n).read_text() for n in STACK_FILES}
    result = rackctl("--config-dir", str(stack_dir), "push", *args)
    assert (result.returncode, result.stderr) == (2, message)
    assert {n: (stack_dir / n).read_text() for n in STACK_FILES} == before


def test_push_keeps_an_upstream_image_pinned_by_digest(stack_dir):
    pinned = "prom/prometheus:v2.55.2@sha256:" + "0123456789abcdef" * 4
    result = rackctl("--config-dir", str(stack_dir), "push", "prometheus", pinned, "--stacks", "rack2")
    assert result.returncode == 0, result.stderr
    assert f"    prometheus: {pinned}" in (stack_dir / "Pulumi.rack2.yaml").read_text()


def test_push_adds_an_images_block_where_a_stack_has_none():
    text = "# a rack\nconfig:\n  skolo:k3sVersion: v1.31.6+k3s1  # pinned\n"
    assert push.rewrite(text, "nfs", "erichough/nfs-server:2.2.2") == (
        "# a rack\nconfig:\n  skolo:k3sVersion: v1.31.6+k3s1  # pinned\n"
        "  skolo:images:\n    nfs: erichough/nfs-server:2.2.2\n")


# --- diff ---------------------------------------------------------------------------------

def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path):
    """A throwaway clone of the project's files with one commit on main."""
    repo = tmp_path / "repo"
    files = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-co", "--exclude-standard"],
                           capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, repo / name)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
    return repo


def test_diff_shows_what_a_commit_changes_on_each_rack_and_nothing_secret(repo):
    stack = repo / "Pulumi.rack2.yaml"
    stack.write_text(stack.read_text().replace("    prometheus:\n", "    swarming:\n      maxUnavailable: 2\n"
                                                                    "    prometheus:\n"))
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "rack2: roll two bots at a time")
    result = rackctl("--config-dir", str(repo), "diff", "HEAD~1", "HEAD")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("=== rack1: no change\n=== rack2: changed 1 objects, 0 host scripts\n"
                          "--- a/rack2/kubernetes/swarming/DaemonSet-swarming.yaml\n"
                          "+++ b/rack2/kubernetes/swarming/DaemonSet-swarming.yaml\n")
    assert "-      maxUnavailable: 1\n+      maxUnavailable: 2\n" in out
    assert "PRIVATE KEY" not in out and "rackctl-render-placeholder" not in out
    changed = rackctl("--config-dir", str(repo), "diff", "HEAD~1", "HEAD", "--changed-stacks")
    assert json.loads(changed.stdout) == ["rack2"]


def test_diff_of_the_working_tree_against_main_and_markdown(repo):
    script = repo / "components" / "scripts" / "bundle" / "lib.sh"
    script.write_text(script.read_text().replace("sleep 5", "sleep 2"))
    result = rackctl("--config-dir", str(repo), "diff", "--format", "markdown")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("## What this change does to the racks (rackctl diff)\n\n"
                                    "- **rack1**: changed 0 objects, 82 host scripts\n"
                                    "- **rack2**: changed 0 objects, 6 host scripts\n")
    assert "<details><summary>rack2</summary>\n\n```diff\n" in result.stdout
    assert "-    sleep 5\n+    sleep 2\n" in result.stdout
    # Every Pi's call names the new bundle: one diff, the others counted.
    assert result.stdout.count("+export BUNDLE=/var/lib/skolo/bundle/") == 2
    assert "# ...and the same change in 79 more files under rack1/hosts/192.168.1.8/pis/\n" in result.stdout
    unchanged = rackctl("--config-dir", str(repo), "diff", "HEAD", "HEAD", "--exit-code")
    assert unchanged.returncode == 0 and unchanged.stdout == "=== rack1: no change\n=== rack2: no change\n"


def test_diff_names_a_stack_the_change_breaks(repo):
    stack = repo / "Pulumi.rack2.yaml"
    stack.write_text(stack.read_text().replace("v1.31.6+k3s1", "latest"))
    result = rackctl("--config-dir", str(repo), "diff", "HEAD")
    assert result.returncode == 2
    assert ("=== rack2: could not render: skolo:k3sVersion: expected an exact k3s release like v1.31.6+k3s1, "
            "got 'latest'") in result.stdout


# --- observer -------------------------------------------------------------------------------

STAND_IN_KUBECTL = """#!/bin/sh
# STAND-IN kubectl: records its arguments, names the admin kubeconfig's cluster (rackctl attach names
# it after the rack) and answers `create token` like the API server would.
echo "$*" >> "$STANDIN_LOG"
case "$*" in
  *"config view --minify"*) printf rack2 ;;
  *"create token"*) echo "eyJstand-in-observer-token" ;;
esac
"""


def test_observer_writes_a_read_only_kubeconfig_around_a_short_lived_token(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl").write_text(STAND_IN_KUBECTL)
    (bin_dir / "kubectl").chmod(0o755)
    admin = tmp_path / "admin"
    from rackctl.program import STAND_IN_KUBECONFIG
    admin.write_text(STAND_IN_KUBECONFIG)
    out = tmp_path / "rack2-observer"
    import os
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", STANDIN_LOG=str(tmp_path / "log"),
               KUBECONFIG=str(admin))
    result = subprocess.run([sys.executable, "-m", "rackctl", "observer", "rack2", "--out", str(out)],
                            cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"wrote a read-only kubeconfig for rack2 to {out} (valid 8h; context rack2-observer)\n"
    assert "stand-in-observer-token" not in result.stdout + result.stderr
    assert (tmp_path / "log").read_text().splitlines() == [
        f"--kubeconfig {admin} config view --minify -o jsonpath={{.contexts[0].context.cluster}}",
        f"--kubeconfig {admin} create token observer -n skolo-access --duration=8h"]
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    import yaml
    config = yaml.safe_load(out.read_text())
    assert config["current-context"] == "rack2-observer"
    assert config["clusters"] == [{"name": "rack2", "cluster": {"server": "https://127.0.0.1:6442",
                                                               "certificate-authority-data": "c3RhbmQtaW4tY2E="}}]
    assert config["users"] == [{"name": "rack2-observer", "user": {"token": "eyJstand-in-observer-token"}}]


def test_observer_role_reads_but_never_secrets(run_stack):
    run = run_stack("rack2")
    role = next(r for r in run.of_type("kubernetes:rbac.authorization.k8s.io/v1:ClusterRole")
                if r.inputs["metadata"]["name"] == "skolo:skolo-access:observer")
    rules = role.inputs["rules"]
    assert {v for rule in rules for v in rule["verbs"]} == {"get", "list", "watch"}
    core = next(rule for rule in rules if rule["apiGroups"] == [""])
    assert "secrets" not in core["resources"] and "pods/log" in core["resources"]
    assert all(rule["resources"] == ["*"] for rule in rules if rule["apiGroups"] != [""])
    bindings = {r.inputs["metadata"]["name"]: r.inputs["subjects"]
                for r in run.of_type("kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding")}
    assert bindings["skolo:observers"] == [{"kind": "Group", "name": "skolo:observers",
                                            "apiGroup": "rbac.authorization.k8s.io"}]
    assert bindings["skolo:skolo-access:observer"] == [{"kind": "ServiceAccount", "name": "observer",
                                                        "namespace": "skolo-access"}]
