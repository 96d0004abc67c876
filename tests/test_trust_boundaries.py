"""The operator's machine and the stack files: what rackctl may delete or write, what it says when
a file is wrong (one line, never a traceback, never a secret), and what a rack renders when it
lives on another LAN."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import yaml

from rackctl import hostkeys, render, stackfiles
from tests.conftest import PLANTED, ROOT
from tests.test_rackctl_tools import STACK_FILES, rackctl

SECRET = "K10planted-plaintext-token-7d7d::server:x"


@pytest.fixture
def stack_dir(tmp_path):
    for name in STACK_FILES:
        shutil.copy2(ROOT / name, tmp_path / name)
    return tmp_path


def no_traceback(result: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in result.stderr + result.stdout, result.stderr


# --- render --out -------------------------------------------------------------------------

def test_render_refuses_a_directory_it_did_not_write_and_touches_nothing(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("an operator's file\n")
    result = rackctl("render", "rack2", "--out", str(out))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (f"rackctl: --out {out} is not empty and was not written by rackctl render (no "
                             f".rackctl-render); give an empty or new directory. Nothing was changed\n")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_a_second_render_replaces_its_own_files_and_nothing_else(tmp_path):
    out = tmp_path / "render"
    assert rackctl("render", "rack2", "--out", str(out)).returncode == 0
    (out / "hosts" / "NOTES.md").write_text("the operator's own note\n")
    stale = out / "kubernetes" / "swarming" / "DaemonSet-swarming.yaml"
    assert stale.exists()
    before = {p for p in out.rglob("*") if p.is_file()}
    second = rackctl("--config-dir", str(ROOT), "render", "rack2", "--out", str(out))
    assert second.returncode == 0, second.stderr
    assert (out / "hosts" / "NOTES.md").read_text() == "the operator's own note\n"
    assert {p for p in out.rglob("*") if p.is_file()} == before


def test_render_never_writes_outside_out(run_stack, tmp_path):
    run = run_stack("rack2")
    command = next(r for r in run.of_type(render.COMMAND_TYPE))
    command.inputs["connection"]["host"] = "../../escaped"
    with pytest.raises(render.RenderError, match="would be written outside"):
        render.write(run, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path.parent / "escaped").exists()


def test_rendered_secrets_are_valid_manifests_with_placeholder_values(tmp_path):
    import kubernetes_validate

    out = tmp_path / "render"
    result = rackctl("render", "rack1", "--out", str(out))
    assert result.returncode == 0, result.stderr
    secrets = [yaml.safe_load(p.read_text()) for p in out.glob("kubernetes/*/Secret-*.yaml")]
    assert len(secrets) >= 10
    for secret in secrets:
        kubernetes_validate.validate(secret, "1.31.0", strict=True)
        assert all(isinstance(v, str) for v in secret["stringData"].values())
        if secret["type"] == "kubernetes.io/dockerconfigjson":
            assert json.loads(secret["stringData"][".dockerconfigjson"]) == {"auths": {}}
    line = next(x for x in result.stdout.splitlines() if x.startswith("placeholders: "))
    assert "swarming/swarming-adb" in line and "skolo:k3sToken" in line


# --- secrets stored in plain text ---------------------------------------------------------

@pytest.mark.parametrize("command", [("check",), ("render", "rack2")])
def test_a_plaintext_secret_in_a_stack_file_is_refused_naming_the_key_not_the_value(stack_dir, command):
    path = stack_dir / "Pulumi.rack2.yaml"
    path.write_text(path.read_text() + f"  skolo:k3sToken: {SECRET}\n")
    out = stack_dir / "out"
    result = rackctl("--config-dir", str(stack_dir), *command, *(["--out", str(out)] if command[0] == "render" else []))
    assert result.returncode != 0
    assert ("skolo:k3sToken: is stored in plain text in the stack file; remove it and set it with: pulumi config set "
            "--secret skolo:k3sToken (README: taking a rack live)") in result.stdout + result.stderr
    assert SECRET not in result.stdout + result.stderr
    no_traceback(result)


# --- stack files that cannot be read -------------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ("config:\n  - skolo:k3sVersion\n", "rack3: FAILED: Pulumi.rack3.yaml: expected `config:` to be a mapping of "
                                       "key: value, got list"),
    ("config:\n  skolo:k3sToken: K10first-planted\n  skolo:k3sToken: K10second-planted\n",
     "rack3: FAILED: Pulumi.rack3.yaml line 3: skolo:k3sToken is set twice; YAML would silently keep the last one"),
    ("config:\n  skolo:k3sToken: [K10-planted\n",
     "rack3: FAILED: Pulumi.rack3.yaml is not valid YAML (line 3, column 1): "),
])
def test_a_broken_stack_file_fails_alone_and_never_quotes_itself(stack_dir, text, message):
    (stack_dir / "Pulumi.rack3.yaml").write_text(text)
    result = rackctl("--config-dir", str(stack_dir), "check")
    assert result.returncode == 1
    assert message in result.stdout
    assert "rack1: ok" in result.stdout and "rack2: ok" in result.stdout
    assert "planted" not in result.stdout + result.stderr
    no_traceback(result)


# --- attach, before any tunnel ------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (("attach", "rack9", "--kubeconfig", "/nonexistent"), "rackctl: no stack file Pulumi.rack9.yaml; stacks here: "
                                                           "rack1, rack2\n"),
    (("attach", "rack9"), "rackctl: no stack file Pulumi.rack9.yaml; stacks here: rack1, rack2\n"),
    (("attach", "rack2", "--kubeconfig", "/nonexistent/kubeconfig"),
     "rackctl: --kubeconfig /nonexistent/kubeconfig: no such file\n"),
])
def test_attach_says_what_is_wrong_in_one_line(args, message):
    result = rackctl(*args, "--", "true")
    assert (result.returncode, result.stderr) == (2, message)


def test_attach_refuses_a_file_that_is_not_a_kubeconfig_without_quoting_it(tmp_path):
    bad = tmp_path / "kubeconfig"
    bad.write_text("client-key-data: PLANTEDKEYMATERIAL\n")
    result = rackctl("attach", "rack2", "--kubeconfig", str(bad), "--", "true")
    assert (result.returncode, result.stderr) == (
        2, f"rackctl: {bad} is not a kubeconfig (expected clusters, contexts and users); contents not shown\n")


# --- check --strict -----------------------------------------------------------------------

def test_strict_check_demands_only_the_secrets_a_stack_needs(stack_dir):
    result = rackctl("--config-dir", str(stack_dir), "check", "--strict")
    rack2 = result.stdout.split("rack2: ok", 1)[1]
    assert "skolo:datastoreBackupServiceAccountKey" not in rack2  # rack2 backs up onto the jumphost
    rack1 = result.stdout.split("rack2: ok", 1)[0]
    assert "skolo:datastoreBackupServiceAccountKey" in rack1  # rack1 backs up to gs://


def test_strict_check_fails_on_a_host_without_a_pinned_key_naming_it(stack_dir):
    path = stack_dir / "Pulumi.rack2.yaml"
    doc = yaml.safe_load(path.read_text())
    # Every secret present (encrypted), so only the host keys decide.
    doc["config"].update({f"skolo:{k}": {"secure": "v1:planted"} for k in PLANTED})
    del doc["config"]["skolo:rpis"][2]["hostKey"]
    path.write_text(yaml.safe_dump(doc))
    result = rackctl("--config-dir", str(stack_dir), "check", "--strict", "--stacks", "rack2")
    assert result.returncode == 1
    assert ("  error: 1 hosts without a pinned hostKey, so whatever answers at their address gets the rack's keys: "
            "Pi skia-rpi2-rack2-shelf1-003 (192.168.1.103); pin them with: rackctl hostkeys rack2") in result.stdout


def test_the_example_stacks_pin_every_host(stack_dir):
    for stack in ("rack1", "rack2"):
        parsed = stackfiles.settings_for(stack, stack_dir)
        assert [h for h in parsed.ssh_hosts() if not h[3]] == [], stack


# --- a rack on its own LAN ----------------------------------------------------------------

def test_a_rack_on_another_lan_renders_nothing_of_192_168_1(run_stack, tmp_path):
    rpis = [{"shelf": "skia-rpi2-rack5-shelf1", "count": 4, "firstAddress": "192.168.5.100"}]
    run = run_stack("rack2", overrides={"jumphost": {"name": "skolo-rack5-jumphost", "address": "192.168.5.8"},
                                        "rpis": rpis, "services": {"powerCycle": {"enabled": False}}})
    files = render.write(run, tmp_path / "out")
    leaks = [str(p) for p in files if "192.168.1." in p.read_text()]
    assert leaks == []
    devices = next(r for r in run.of_type("kubernetes:core/v1:ConfigMap")
                   if r.inputs["metadata"]["name"] == "router-backup").inputs["data"]["devices"]
    assert devices == "router 192.168.5.1 admin edgerouter /config/config.boot\n"


# --- hostkeys writes where the stack file says each host is --------------------------------

def test_hostkeys_pins_shelf_pis_in_overrides_and_lists_the_default_router(stack_dir):
    text = ("# a rack\nconfig:\n  skolo:jumphost: {name: jh, address: 192.168.1.8}  # the bastion\n"
            "  skolo:rpis:\n    - shelf: skia-rpi2-r-shelf1\n      count: 2\n      firstAddress: 192.168.1.100\n"
            "  skolo:k3sVersion: v1.31.6+k3s1\n  skolo:services:\n    metadata: {enabled: false}\n"
            "    alertToPubsub: {enabled: false}\n    powerCycle: {enabled: false}\n    swarming: {enabled: false}\n")
    (stack_dir / "Pulumi.r.yaml").write_text(text)
    parsed = stackfiles.settings_for("r", stack_dir)
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    pinned = hostkeys.pin(text, {("jumphost", "jh"): key, ("Pi", "skia-rpi2-r-shelf1-002"): key,
                                 ("edgerouter (routerBackup)", "router"): key}, parsed)
    assert pinned.startswith("# a rack\n") and "# the bastion" in pinned
    config = yaml.safe_load(pinned)["config"]
    assert config["skolo:jumphost"]["hostKey"] == key
    assert config["skolo:rpis"][0]["overrides"] == {"skia-rpi2-r-shelf1-002": {"hostKey": key}}
    assert config["skolo:services"]["routerBackup"]["devices"] == [
        {"name": "router", "address": "192.168.1.1", "kind": "edgerouter", "user": "admin", "hostKey": key}]
    (stack_dir / "Pulumi.r.yaml").write_text(pinned)
    assert stackfiles.settings_for("r", stack_dir).rpis[1].host_key == key
