"""Every class of bad or hostile input gets one clear line, exit 2 (or the stack FAILED in
`check`), and never a traceback: the stack-file reader every command shares
(rackctl/stackfiles.py), the one output-path check (rackctl/outputs.py), the one kubeconfig check
(rackctl/kubeconfigs.py), and values checked for meaning (components/settings). Each message is
pinned exactly."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from unittest import mock

import pytest

from components import settings
from components.settings import ConfigError
from rackctl.__main__ import main
from tests.conftest import ROOT, stack_raw


def rackctl(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """rackctl's main, in this process (an interpreter per call would cost a second each): what it
    prints and returns. An exception escaping main is what a user would see as a traceback, and
    fails the test as one."""
    out, err = io.StringIO(), io.StringIO()
    with mock.patch.dict(os.environ, env or {}), redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as e:  # argparse's own usage errors
            code = e.code
    return subprocess.CompletedProcess(["rackctl", *args], code, out.getvalue(), err.getvalue())


@pytest.fixture
def project(tmp_path) -> Path:
    """A copy of the project's stack files, where a third stack file can be broken."""
    for name in ("Pulumi.yaml", "Pulumi.rack2.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


# --- the stack-file reader ----------------------------------------------------------------------

ALIAS_BOMB = "config:\n  skolo:a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"  skolo:{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True))


@pytest.mark.parametrize("content, message", [
    (b"config:\n  skolo:k3sVersion: v1.31.6+k3s1\n# caf\xe9 au lait\n",
     "Pulumi.rack3.yaml line 3: not UTF-8 text (byte 0xe9); save it as UTF-8"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "Pulumi.rack3.yaml line 1: not UTF-8 text (byte 0x89); save it as UTF-8"),
    (ALIAS_BOMB.encode(), "Pulumi.rack3.yaml line 3: uses a YAML alias (*a); write the value out"),
    (("config:\n  skolo:rpis: " + "[" * 10000 + "]" * 10000 + "\n").encode(),
     "Pulumi.rack3.yaml line 2: nested over 32 levels deep"),
    (b"config:\n  7: 1\n", "Pulumi.rack3.yaml: config key 7 is not a string; write it as skolo:<key>"),
    (b"config:\n  k3sVersion: v1.31.6+k3s1\n",
     "Pulumi.rack3.yaml: config key 'k3sVersion' has no namespace; write it as skolo:k3sVersion"),
    (b"config:\n  skola:k3sVersion: v1.31.6+k3s1\n",
     "Pulumi.rack3.yaml: config key 'skola:k3sVersion' is in namespace 'skola', which this program does not read; "
     "did you mean skolo:k3sVersion?"),
    (b"config:\n  aws:region: us-east-1\n",
     "Pulumi.rack3.yaml: config key 'aws:region' is in namespace 'aws', which this program does not read; its keys "
     "are skolo:<key>"),
    (b"config:\n  skolo:x: '" + b"a" * (1 << 20) + b"'\n",
     "Pulumi.rack3.yaml is over 1024 KiB; a stack file is a few KiB of config"),
], ids=["latin-1", "binary", "alias-bomb", "deep", "int-key", "no-namespace", "misspelled-namespace",
        "other-namespace", "huge"])
def test_a_hostile_stack_file_fails_alone_in_seconds(project, content, message):
    (project / "Pulumi.rack3.yaml").write_bytes(content)
    start = time.monotonic()
    result = rackctl("--config-dir", str(project), "check", "--stacks", "rack3")
    assert time.monotonic() - start < 30
    assert (result.returncode, result.stdout) == (1, f"rack3: FAILED: {message}\n"
                                                     f"check: 1 of 1 stacks failed: rack3: {message}\n")
    # Commands that name the broken stack say the same line and exit 2.
    for args in (["render", "rack3", "--out", str(project / "out")], ["stacks"]):
        result = rackctl("--config-dir", str(project), *args)
        assert (result.returncode, result.stderr) == (2, f"rackctl: {message}\n")
    assert not (project / "out").exists()


def test_a_broken_stack_file_leaves_the_others_checked(project):
    (project / "Pulumi.rack3.yaml").write_bytes(b"config:\n  skolo:k3sVersion: v1\n# caf\xe9\n")
    result = rackctl("--config-dir", str(project), "check")
    assert result.returncode == 1
    assert "rack2: ok" in result.stdout
    reason = "Pulumi.rack3.yaml line 3: not UTF-8 text (byte 0xe9); save it as UTF-8"
    assert f"rack3: FAILED: {reason}\n" in result.stdout
    assert result.stdout.endswith(f"check: 1 of 2 stacks failed: rack3: {reason}\n")


def test_a_missing_config_dir_is_an_error_not_an_empty_success(tmp_path):
    result = rackctl("--config-dir", str(tmp_path / "nowhere"), "check")
    assert (result.returncode, result.stderr) == (2, f"rackctl: --config-dir {tmp_path / 'nowhere'}: no such directory\n")
    result = rackctl("--config-dir", str(tmp_path), "stacks")
    assert (result.returncode, result.stderr) == (
        2, f"rackctl: --config-dir {tmp_path} has no Pulumi.yaml; give the project's directory\n")


# --- output paths ---------------------------------------------------------------------------------

def test_output_paths_are_checked_before_anything_is_written(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("the operator's\n")
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    cases = {
        "": "--out: give a path",
        "/proc/skolo": "--out /proc/skolo: /proc is the kernel's, not a place for files; give a path in your own "
                       "directories",
        f"{a_file}/page.html": f"--out {a_file}/page.html: {a_file} is a file, not a directory",
        str(dangling): f"--out {dangling} is a symbolic link (to {tmp_path / 'nowhere'}, which does not exist); give "
                       f"the path itself",
    }
    for out, message in cases.items():
        for args in (["render", "rack2", "--out", out], ["status", "rack2", "--format", "html", "--out", out],
                     ["observer", "rack2", "--out", out, "--kubeconfig", str(a_file)]):
            result = rackctl(*args)
            assert (result.returncode, result.stderr) == (2, f"rackctl: {message}\n"), args
    assert a_file.read_text() == "the operator's\n" and not (tmp_path / "nowhere").exists()
    # A file the operator owns is never replaced: observer treats it as status does.
    for args, writer in ((["status", "rack2", "--format", "html"], "rackctl status"),
                         (["observer", "rack2", "--kubeconfig", str(a_file)], "rackctl observer")):
        result = rackctl(*args, "--out", str(a_file))
        assert (result.returncode, result.stderr) == (
            2, f"rackctl: --out {a_file} exists and was not written by {writer}; give a new file name. Nothing was "
               f"changed\n")
    assert a_file.read_text() == "the operator's\n"


# --- kubeconfigs ----------------------------------------------------------------------------------

KUBECTL_CONFIG_VIEW = """#!/bin/sh
# STAND-IN kubectl: answers only `config view --minify` with the cluster named in $CLUSTER.
case "$*" in *"config view --minify"*) printf '%s' "$CLUSTER" ;; *) echo "unexpected: $*" >&2; exit 1 ;; esac
"""


def test_a_kubeconfig_is_named_when_missing_and_refused_when_it_is_another_racks(tmp_path):
    missing = tmp_path / "rack2.kubeconfig"
    for args in (["status", "rack2"], ["observer", "rack2", "--out", str(tmp_path / "obs")]):
        result = rackctl(*args, "--kubeconfig", str(missing))
        assert (result.returncode, result.stderr) == (2, f"rackctl: kubeconfig {missing}: no such file\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl").write_text(KUBECTL_CONFIG_VIEW)
    (bin_dir / "kubectl").chmod(0o755)
    missing.write_text("# the stand-in kubectl does not read it\n")
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "CLUSTER": "rack1"}
    result = rackctl("status", "rack2", "--kubeconfig", str(missing), env=env)
    assert (result.returncode, result.stderr) == (
        2, "rackctl: the kubeconfig is for cluster 'rack1', not 'rack2'; refusing to hold rack2's config against "
           "another rack\n")
    result = rackctl("observer", "rack2", "--out", str(tmp_path / "obs"), "--kubeconfig", str(missing), env=env)
    assert (result.returncode, result.stderr) == (
        2, "rackctl: the kubeconfig is for cluster 'rack1', not 'rack2'; refusing to mint rack2's observer token on "
           "another rack\n")
    assert not (tmp_path / "obs").exists()


# --- values checked for meaning -----------------------------------------------------------------

def problems_of(change: dict) -> list[str]:
    raw = stack_raw("rack2")
    with pytest.raises(ConfigError) as e:
        settings.parse("rack2", {**raw, **change}, {k: None for k in settings.SECRET_KEYS})
    return [p for p in e.value.problems if "missing; set it with" not in p]


def services(**changes) -> dict:
    raw = stack_raw("rack2").get("services", {})
    return {"services": {**raw, **{k: {**raw.get(k, {}), **v} for k, v in changes.items()}}}


@pytest.mark.parametrize("change, message", [
    ({"rpis": []}, "skolo:rpis: is empty, which would retire every Pi of the rack (each drained, its k3s removed, its "
                   "Node deleted); list the Pis, or to take the whole rack down run: pulumi destroy -s STACK"),
    (services(metadata={"extraArgs": ["--local=yes"]}),
     "skolo:services.metadata.extraArgs[0]: --local is a boolean flag: give --local, --local=true or --local=false, "
     "not 'yes'"),
    (services(alertToPubsub={"extraArgs": ["--period=15"]}),
     "skolo:services.alertToPubsub.extraArgs[0]: --period takes a Go duration like 15s, 2m or 1h30m, got '15'"),
    (services(alertToPubsub={"project": "Skia_Public"}),
     "skolo:services.alertToPubsub.project: expected a GCP project id (6-30 lower-case letters, digits and hyphens, "
     "starting with a letter, e.g. skia-public), got 'Skia_Public'"),
    (services(routerBackup={"bucket": "goog-backups"}),
     "skolo:services.routerBackup.bucket: expected a GCS bucket name (3-63 lower-case letters, digits, '-', '_' and "
     "'.', a letter or digit at each end, e.g. skia-backups), got 'goog-backups'"),
    (services(datastoreBackup={"destination": "gs://Skia/backups"}),
     "skolo:services.datastoreBackup.destination: expected gs://BUCKET/FOLDER (a GCS bucket name) or an absolute "
     "path on the jumphost, got 'gs://Skia/backups'"),
    (services(routerBackup={"schedule": "0 24 * * *"}),
     "skolo:services.routerBackup.schedule: expected a cron schedule of five fields like '0 3 * * *' (minute 0-59, "
     "hour 0-23, day 1-31, month 1-12, weekday 0-7), got '0 24 * * *'"),
    ({"images": {**stack_raw("rack2")["images"], "metadata": "gcr.io/skia-public/metadata:LATEST"}},
     "skolo:images.metadata: expected a pinned image reference (registry/name:tag or @sha256:...; not :latest), got "
     "'gcr.io/skia-public/metadata:LATEST'"),
], ids=["empty-rpis", "bool-flag", "duration-flag", "gcp-project", "bucket", "gs-bucket", "cron-range", "LATEST"])
def test_values_are_checked_for_meaning(change, message):
    assert problems_of(change) == [message]


def test_the_size_and_depth_limits_are_exact(tmp_path):
    from rackctl import stackfiles

    path = tmp_path / "Pulumi.rack3.yaml"
    head = b"config:\n  skolo:k3sVersion: v1.31.6+k3s1\n#"
    path.write_bytes(head + b"x" * (stackfiles.MAX_BYTES - len(head)))
    assert len(stackfiles.read_text(path)) == stackfiles.MAX_BYTES
    path.write_bytes(head + b"x" * (stackfiles.MAX_BYTES + 1 - len(head)))
    with pytest.raises(stackfiles.StackFileError, match="^Pulumi.rack3.yaml is over 1024 KiB; a stack file is a few"):
        stackfiles.read_text(path)
    # The document's mapping and config's are two levels; the lists make the rest.
    deep = "config:\n  skolo:x: " + "[" * (stackfiles.MAX_DEPTH - 2) + "]" * (stackfiles.MAX_DEPTH - 2) + "\n"
    assert stackfiles._shape_problem(path, deep) is None
    deeper = "config:\n  skolo:x: " + "[" * (stackfiles.MAX_DEPTH - 1) + "]" * (stackfiles.MAX_DEPTH - 1) + "\n"
    assert stackfiles._shape_problem(path, deeper) == "Pulumi.rack3.yaml line 2: nested over 32 levels deep"
    directory = tmp_path / "Pulumi.rack4.yaml"
    directory.mkdir()
    with pytest.raises(stackfiles.StackFileError, match="^Pulumi.rack4.yaml is a directory, not a stack file$"):
        stackfiles.read_text(directory)
