"""rackctl check, diff, push, stacks and the CI workflows, run as an operator or CI runs them."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rackctl import push
from tests.conftest import ROOT
from tests.test_inputs import rackctl as in_process

STACK_FILES = ("Pulumi.yaml", "Pulumi.rack1.yaml", "Pulumi.rack2.yaml")
IMAGE = "gcr.io/skia-public/rpi-swarming-client:2021-09-03T04_05_06Z-ops-1a2b3c4-clean"


def rackctl(*args, cwd=ROOT):
    """rackctl's main in this process, in `cwd` (tests/test_inputs.py's runner): what it prints and
    returns. (`rackctl diff` runs itself again in worktrees; its own tests run it as a command.)"""
    with contextlib.chdir(cwd):
        return in_process(*args)


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
    assert ("rack2: FAILED: skolo:rpis[3].address: address '192.168.1.103' is already used by "
            "skolo:rpis[2].address; every Pi needs its own address") in result.stdout
    assert "rack1: ok" in result.stdout
    # The last line names the failed stack and its reason: a summary never stands alone.
    assert result.stdout.splitlines()[-1] == ("check: 1 of 2 stacks failed: rack2: skolo:rpis[3].address: address "
                                              "'192.168.1.103' is already used by skolo:rpis[2].address; every Pi "
                                              "needs its own address")


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


@pytest.mark.parametrize("service, image, reason", [
    ("metadata", "gcr.io/skia-public/alert-to-pubsub:2021-09-01T00_00_00Z-x-abc1234-clean",
     "skolo:images.metadata: this service runs metadata from Skia's metadata image (gcr.io/skia-public/metadata), "
     "got 'gcr.io/skia-public/alert-to-pubsub:2021-09-01T00_00_00Z-x-abc1234-clean'"),
    ("swarming", "gcr.io/skia-public/rpi-swarming-client:2022-03-01T00_00_00Z-x-abc1234-clean",
     "skolo:images.swarming: "),
], ids=["another-service", "after-the-k3s-era"])
def test_push_refuses_an_image_check_would_refuse_and_writes_no_stack(stack_dir, service, image, reason):
    """Checked with rackctl check's own checks before anything is written, for every chosen stack:
    one refusal, in one line, naming the key and the value; no stack file changes."""
    before = {n: (stack_dir / n).read_text() for n in STACK_FILES}
    result = rackctl("--config-dir", str(stack_dir), "push", service, image, "--all")
    assert result.returncode == 2, result.stdout
    assert result.stderr.startswith(f"rackctl: images.{service}: {image} would make Pulumi.rack2.yaml fail rackctl "
                                    f"check, so nothing was written: {reason}")
    assert result.stderr.count("\n") == 1 and image in result.stderr.split("nothing was written: ", 1)[1]
    assert {n: (stack_dir / n).read_text() for n in STACK_FILES} == before
    assert "--- a/" not in result.stdout  # no diff shown for a push that is refused


def test_a_stack_name_is_a_name_for_every_command(stack_dir):
    """One rule (stackfiles.stack_name), every STACK argument and --stacks list, before any work."""
    reason = ("stack name '../rack2': expected letters, digits, '-', '_' and '.', starting with a letter or "
              "digit, at most 100 (rack3 names Pulumi.rack3.yaml); a name, not a path")
    for args, where in [(["render", "../rack2"], "render: error: argument stack"),
                        (["check", "--stacks", "rack1,../rack2"], "check: error: argument --stacks"),
                        (["push", "swarming", IMAGE, "--stacks", "../rack2"], "push: error: argument --stacks"),
                        (["hostkeys", "../rack2"], "hostkeys: error: argument stack"),
                        (["new", "../rack2", "--jumphost-name", "j", "--jumphost-address", "192.168.3.8",
                          "--shelf", "s:1:192.168.3.100"], "new: error: argument stack"),
                        (["status", "../rack2"], "status: error: argument stack"),
                        (["attach", "../rack2"], "attach: error: argument stack")]:
        result = rackctl("--config-dir", str(stack_dir), *args)
        assert result.returncode == 2, args
        assert result.stderr.splitlines()[-1] == f"rackctl {where}: {reason}", args
    for name in (".", "..", ".hidden", "-rf", "a/b", "a" * 101, "rack 3"):
        assert rackctl("--config-dir", str(stack_dir), "render", name).returncode == 2, name
    assert not list(stack_dir.parent.glob("Pulumi.*"))


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


def test_diff_outside_a_git_repository_says_it_needs_one(stack_dir):
    result = subprocess.run([sys.executable, "-m", "rackctl", "--config-dir", str(stack_dir), "diff"], cwd=ROOT,
                            capture_output=True, text=True, env={**os.environ, "GIT_CEILING_DIRECTORIES": str(stack_dir.parent)})
    assert (result.returncode, result.stderr) == (
        2, f"rackctl: {stack_dir} is not in a git repository; rackctl diff compares two commits of the project "
           f"(run it in a clone, or use rackctl render STACK for one tree)\n")


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


# --- writing a stack file: checked first --------------------------------------------------

def test_before_writing_checks_the_new_text_in_a_private_copy(stack_dir):
    from rackctl import check

    text = (stack_dir / "Pulumi.rack2.yaml").read_text()
    before = sorted(p.name for p in stack_dir.iterdir())
    check.before_writing("rack2", stack_dir, text, "the same text")  # passes: no error
    with pytest.raises(check.CheckError) as e:
        check.before_writing("rack2", stack_dir, text.replace("v1.31.6+k3s1", "v1.31"), "k3sVersion v1.31")
    assert str(e.value) == ("k3sVersion v1.31 would make Pulumi.rack2.yaml fail rackctl check, so nothing was "
                            "written: skolo:k3sVersion: expected an exact k3s release like v1.31.6+k3s1, got 'v1.31'; channels "
                            "and 'latest' are refused so every node runs the same, reviewed k3s")
    assert sorted(p.name for p in stack_dir.iterdir()) == before
    assert (stack_dir / "Pulumi.rack2.yaml").read_text() == text


def test_hostkeys_refuses_to_pin_a_key_check_would_refuse(stack_dir, monkeypatch):
    """STAND-IN at the edge: ssh-keyscan (tests/test_hostkeys_ssh.py runs the real one) is replaced by a
    scan whose Pi offers a DSA key, which the settings refuse. Nothing is written; one line says why."""
    from rackctl import hostkeys

    dsa = "ssh-dss " + base64.b64encode(b"\x00\x00\x00\x07ssh-dss" + b"\x01" * 40).decode()

    def scan(jumphost, pinned, addresses, ssh_options):
        return "ssh-ed25519 " + base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519" + b"\x02" * 36).decode(), {
            a: dsa for a in addresses}

    monkeypatch.setattr(hostkeys, "scan", scan)
    stack = stack_dir / "Pulumi.rack2.yaml"
    pinned = "      hostKey: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICYn2ez1kYaCd7uSR0gEuccJRmSAo8o6Islfxwos6Fp5\n"
    assert pinned in stack.read_text()
    stack.write_text(stack.read_text().replace(pinned, ""))  # skia-rpi2-rack2-shelf1-001 is not pinned yet
    before = stack.read_text()
    with pytest.raises(check_module().CheckError) as e:
        hostkeys.hostkeys("rack2", stack_dir, [], dry_run=False, out=lambda line: None)
    assert str(e.value).startswith("pinning 1 host keys would make Pulumi.rack2.yaml fail rackctl check, so nothing "
                                   "was written: skolo:rpis[0].hostKey: ")
    assert "ssh-dss" in str(e.value) and "\n" not in str(e.value)
    assert (stack_dir / "Pulumi.rack2.yaml").read_text() == before


def check_module():
    from rackctl import check

    return check


def test_hostkeys_pins_no_rsa_key_and_says_why(stack_dir, monkeypatch):
    """STAND-IN at the edge, ssh-keyscan as above: a Pi that offers only an RSA host key is named,
    not pinned (pulumi-command could not reach it: components/settings/fields.py HOST_KEY_TYPES)."""
    from rackctl import hostkeys

    rsa = "ssh-rsa " + base64.b64encode(b"\x00\x00\x00\x07ssh-rsa" + b"\x03" * 40).decode()
    monkeypatch.setattr(hostkeys, "scan", lambda jumphost, pinned, addresses, options: (pinned, {
        a: rsa for a in addresses}))
    stack = stack_dir / "Pulumi.rack2.yaml"
    pinned = "      hostKey: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICYn2ez1kYaCd7uSR0gEuccJRmSAo8o6Islfxwos6Fp5\n"
    stack.write_text(stack.read_text().replace(pinned, ""))
    before = stack.read_text()
    said: list[str] = []
    assert hostkeys.hostkeys("rack2", stack_dir, [], dry_run=False, out=said.append) == 1
    assert said[-1] == ("not pinned, they offer only an ssh-rsa host key, which pulumi-command cannot use with "
                        "OpenSSH 8.8 and later (it would offer SHA-1 ssh-rsa): Pi skia-rpi2-rack2-shelf1-001 "
                        "(192.168.1.101), Pi skia-rpi2-rack2-shelf1-002 (192.168.1.102), Pi skia-rpi2-rack2-shelf1-003 "
                        "(192.168.1.103), Pi skia-rpi2-rack2-shelf1-004 (192.168.1.104), edgerouter (routerBackup) "
                        "router (192.168.1.1), mpower (powerCycle) rack2-mpower (192.168.1.20); give each an ed25519 "
                        "key (ssh-keygen -A on the host), then run again")
    assert stack.read_text() == before


def test_check_warns_only_of_the_secrets_the_stack_file_does_not_hold_encrypted(stack_dir):
    stack = stack_dir / "Pulumi.rack2.yaml"
    secure = "    secure: v1:AAAAbm90IHJlYWxseQ==\n"
    stack.write_text(stack.read_text().replace(
        "config:\n", f"config:\n  skolo:k3sToken:\n{secure}  skolo:sshPrivateKey:\n{secure}"
                     f"  kubernetes:adbKey:\n{secure}", 1))  # another namespace's key is not ours
    result = rackctl("--config-dir", str(stack_dir), "check", "--stacks", "rack2")
    assert result.returncode == 0, result.stdout
    assert result.stdout.splitlines()[1] == (
        "  warning: secrets not set in Pulumi.rack2.yaml: skolo:metadataServiceAccountKey, "
        "skolo:alertToPubsubServiceAccountKey, skolo:routerBackupServiceAccountKey, skolo:routerBackupSshKey, "
        "skolo:powerCycleSshKey, skolo:powerCycleServiceAccountKey, skolo:swarmingServiceAccountKey, skolo:adbKey, "
        "skolo:adbPublicKey; set each with: pulumi config set --secret KEY -s rack2")
