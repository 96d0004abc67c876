"""Whole-program runs of the example racks under the mock runtime, and the K3sServer and
RpiAgent components as they are wired into them."""

from __future__ import annotations

import pytest
import yaml

from components import hostscripts, remote
from components.k3s_server import rewrite_kubeconfig
from components.settings import ConfigError
from rackctl.program import STAND_IN_KUBECONFIG

CMD = "command:remote:Command"


def script_of(resource, phase="create"):
    return hostscripts.unwrap(resource.inputs[phase])


def params(script) -> dict:
    """The NAME=value lines script() wrote, decoded with the shell's own quoting rules."""
    import shlex

    out = {}
    for line in shlex.split(script.text.split("\nset -eu", 1)[0], comments=True):
        if "=" in line:
            key, value = line.split("=", 1)
            out[key] = value
    return out


def test_rack1_declares_the_server_and_80_agents(run_stack):
    run = run_stack("rack1")
    assert len(run.of_type("skolo:rack:K3sServer")) == 1
    assert len(run.of_type("skolo:rack:RpiAgent")) == 80
    # sshd, install, kubeconfig; four legacy cut-overs; five steps per Pi.
    assert len(run.of_type(CMD)) == 3 + 4 + 80 * 5
    assert len(run.of_type("pulumi:providers:kubernetes")) == 1
    assert run.outputs["apiServer"] == "https://192.168.1.8:6443"
    assert run.outputs["nodeNames"][:2] == ["skolo-rack1-jumphost", "skia-rpi2-rack1-shelf1-001"]
    assert len(run.outputs["nodeNames"]) == 81


def test_rack2_outputs(run_stack):
    run = run_stack("rack2")
    assert run.outputs["apiServer"] == "https://127.0.0.1:6442"
    assert run.outputs["nodeNames"] == ["skolo-rack2-jumphost"] + [f"skia-rpi2-rack2-shelf1-00{i}" for i in range(1, 5)]
    assert run.secret_outputs == {"kubeconfig"}
    kubeconfig = yaml.safe_load(run.outputs["kubeconfig"])
    assert kubeconfig["current-context"] == "rack2"
    assert kubeconfig["clusters"][0] == {"cluster": {"certificate-authority-data": "c3RhbmQtaW4tY2E=",
                                                     "server": "https://127.0.0.1:6442"}, "name": "rack2"}


def test_same_config_declares_identical_inputs_so_a_second_up_changes_nothing(run_stack):
    first, second = run_stack("rack2"), run_stack("rack2")
    assert {r.urn: r.inputs for r in first.resources} == {r.urn: r.inputs for r in second.resources}


def test_every_child_is_parented_and_named_from_its_component(run_stack):
    run = run_stack("rack2")
    for component in run.of_type("skolo:rack:K3sServer") + run.of_type("skolo:rack:RpiAgent"):
        children = [r for r in run.resources if r.parent == component.urn]
        assert children and all(c.name.startswith(component.name + "-") for c in children)


def test_server_cutover_then_install_then_kubeconfig(run_stack):
    run = run_stack("rack1")
    cutover, sshd, install, read = (run.named(n) for n in (
        "metadata-legacy-unit-cutover", "rack1-sshd", "rack1-install", "rack1-kubeconfig"))
    assert params(script_of(cutover)) == {"UNIT": "metadata-server"}
    assert script_of(cutover).name == "legacy-unit-stop"
    assert script_of(cutover, "delete").name == "legacy-unit-start"
    # traefik needs the legacy server's port 80: the cut-over comes before anything of k3s.
    assert cutover.urn in sshd.dependencies and sshd.urn in install.dependencies
    assert install.urn in read.dependencies
    assert set(read.additional_secret_outputs) >= {"stdout", "stderr"}
    assert read.inputs["logging"] == "none"


def test_the_metadata_cutover_moved_out_of_the_server_keeps_its_state(run_stack):
    """Renamed without an alias, Pulumi would delete the old cut-over, and its delete is the
    rollback: the legacy server would start again, fighting traefik for port 80."""
    (alias,) = run_stack("rack1").named("metadata-legacy-unit-cutover").aliases
    assert alias == 'spec {   name: "rack1-legacy-cutover"   parentUrn: "urn:pulumi:rack1::skolo::skolo:rack:K3sServer::rack1" }'


@pytest.mark.parametrize("service, name, unit", [
    ("metadata", "metadata", "metadata-server"), ("routerBackup", "router-backup", "router-backup"),
    ("powerCycle", "power-cycle", "powercycle-daemon"), ("nfs", "nfs", "nfs-kernel-server")])
def test_each_legacy_unit_stops_before_its_service_and_returns_with_it(run_stack, service, name, unit):
    run = run_stack("rack2")
    cutover = run.named(f"{name}-legacy-unit-cutover")
    assert params(script_of(cutover)) == {"UNIT": unit} and script_of(cutover, "delete").name == "legacy-unit-start"
    assert cutover.inputs["connection"]["host"] == "192.168.1.8"
    if service != "metadata":  # its namespace, and so every object in it, waits for the cut-over
        namespace = next(r for r in run.of_type("kubernetes:core/v1:Namespace") if r.parent == run.named(name).urn)
        assert cutover.urn in namespace.dependencies
    custom = run_stack("rack2", overrides={"services": {service: {"legacyUnit": "old-thing"}}})
    assert params(script_of(custom.named(f"{name}-legacy-unit-cutover"))) == {"UNIT": "old-thing"}
    for off in ({"legacyUnit": ""}, {"enabled": False}):
        assert f"{name}-legacy-unit-cutover" not in {r.name for r in run_stack(
            "rack2", overrides={"services": {service: off}}).resources}


def test_server_install_script_params_and_config(run_stack):
    run = run_stack("rack1")
    install = run.named("rack1-install")
    p = params(script_of(install))
    assert {k: p[k] for k in ("ROLE", "NODE_NAME", "K3S_VERSION", "INSTALL_SCRIPT_URL", "TOKEN_FILE")} == {
        "ROLE": "server", "NODE_NAME": "skolo-rack1-jumphost", "K3S_VERSION": "v1.31.6+k3s1",
        "INSTALL_SCRIPT_URL": "https://get.k3s.io", "TOKEN_FILE": "/etc/rancher/k3s/skolo-token"}
    assert yaml.safe_load(p["CONFIG_YAML"]) == {
        "node-name": "skolo-rack1-jumphost",
        "token-file": "/etc/rancher/k3s/skolo-token",
        "write-kubeconfig-mode": "0600",
        "tls-san": ["192.168.1.8", "skolo-rack1-jumphost"],
        "cluster-cidr": "10.44.0.0/14",
        "node-label": ["skolo.skia.org/role=jumphost"],
    }
    assert "stdin" in install.secret_inputs
    assert install.inputs["stdin"].startswith("K10planted")


def test_custom_install_url_and_cidr_reach_every_install(run_stack):
    run = run_stack("rack2", overrides={"k3sInstallScriptUrl": "http://mirror.rack2.lan/k3s-install.sh",
                                        "k3sInstallScriptSha256": "a" * 64,
                                        "clusterCidr": "10.48.0.0/16", "k3sVersion": "v1.32.2+k3s1"})
    installs = [r for r in run.of_type(CMD) if r.name.endswith(("-install", "-join"))]
    assert len(installs) == 5
    for r in installs:
        p = params(script_of(r))
        assert p["INSTALL_SCRIPT_URL"] == "http://mirror.rack2.lan/k3s-install.sh"
        assert p["INSTALL_SCRIPT_SHA256"] == "a" * 64
        assert p["K3S_VERSION"] == "v1.32.2+k3s1"
    assert yaml.safe_load(params(script_of(run.named("rack2-install")))["CONFIG_YAML"])["cluster-cidr"] == "10.48.0.0/16"


def test_connections_pin_host_keys_and_pis_go_through_the_jumphost(run_stack):
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    pi_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGjS3H4e8k1R8b3qoL7m3HFmMEj8XPgKNm1YcmvFjZQx"
    run = run_stack("rack2", overrides={
        "jumphost": {"name": "skolo-rack2-jumphost", "address": "192.168.1.8", "hostKey": key},
        "rpis": [{"name": "skia-rpi2-rack2-shelf1-001", "address": "192.168.1.101", "hostKey": pi_key}],
        "services": {"powerCycle": {"enabled": False}}})
    jump = run.named("rack2-install").inputs["connection"]
    assert {k: jump[k] for k in ("host", "port", "user", "hostKey")} == {
        "host": "192.168.1.8", "port": 22, "user": "chrome-bot", "hostKey": key}
    join = run.named("skia-rpi2-rack2-shelf1-001-join")
    pi = join.inputs["connection"]
    assert (pi["host"], pi["hostKey"], pi["user"]) == ("192.168.1.101", pi_key, "chrome-bot")
    assert (pi["dialErrorLimit"], pi["perDialTimeout"]) == (remote.PI_DIAL_ERROR_LIMIT, remote.PI_DIAL_TIMEOUT_SECONDS)
    assert {k: pi["proxy"][k] for k in ("host", "port", "user", "hostKey")} == {k: jump[k] for k in ("host", "port", "user", "hostKey")}
    assert "connection" in join.secret_inputs  # it carries the private key
    node = run.named("skia-rpi2-rack2-shelf1-001-node")
    assert params(script_of(node, "delete"))["PI_HOST_KEY"] == pi_key


def test_agent_steps_order_and_placement(run_stack):
    run = run_stack("rack2")
    name = "skia-rpi2-rack2-shelf1-003"
    agent = run.named(name)
    cgroups, boot, join, node = (run.named(f"{name}-{s}") for s in ("cgroups", "boot", "join", "node"))
    assert run.named("rack2-install").urn in agent.dependencies
    assert cgroups.urn in boot.dependencies and boot.urn in join.dependencies and join.urn in node.dependencies
    # Pi-side steps dial the Pi; the boot wait and the Node steps run on the jumphost.
    assert [r.inputs["connection"]["host"] for r in (cgroups, boot, join, node)] == [
        "192.168.1.103", "192.168.1.8", "192.168.1.103", "192.168.1.8"]
    assert script_of(cgroups).name == "rpi-cgroups"
    assert params(script_of(boot)) == {"PI_ADDRESS": "192.168.1.103", "PI_PORT": "22", "REBOOT": "yes",
                                       "DOWN_SECONDS": "180", "UP_SECONDS": "600"}
    assert script_of(boot).root is False
    assert yaml.safe_load(params(script_of(join))["CONFIG_YAML"]) == {
        "server": "https://192.168.1.8:6443", "node-name": name,
        "token-file": "/etc/rancher/k3s/skolo-token", "node-label": ["skolo.skia.org/role=rpi"]}
    assert params(script_of(join))["ROLE"] == "agent"
    assert "stdin" in join.secret_inputs
    assert script_of(node).name == "node-ready" and script_of(node, "delete").name == "node-decommission"
    assert "stdin" in node.secret_inputs and node.inputs["stdin"] == pytest.importorskip("tests.conftest").PLANTED["sshPrivateKey"]


def test_removing_a_pi_is_a_jumphost_side_delete(run_stack):
    """The Pi side has no delete command, so a dead Pi cannot block its own removal."""
    run = run_stack("rack2")
    for r in run.of_type(CMD):
        if r.name.startswith("skia-rpi2") and r.inputs.get("delete"):
            assert r.name.endswith("-node") and r.inputs["connection"]["host"] == "192.168.1.8"


def test_rejoin_replaces_only_that_pi_delete_first(run_stack):
    from tests.conftest import stack_raw

    pis = stack_raw("rack2")["rpis"]
    base = run_stack("rack2")
    bumped = run_stack("rack2", overrides={"rpis": [{**pi, **({"rejoin": 1} if i == 1 else {})}
                                                    for i, pi in enumerate(pis)]})
    before = {r.urn: r.inputs for r in base.resources}
    changed = sorted(r.name for r in bumped.resources if before[r.urn] != r.inputs)
    assert changed == [f"skia-rpi2-rack2-shelf1-002-{s}" for s in ("boot", "cgroups", "join", "node", "state")]
    for step in ("join", "node"):
        r = bumped.named(f"skia-rpi2-rack2-shelf1-002-{step}")
        assert r.inputs["triggers"] == [1] and r.delete_before_replace


def test_every_kubernetes_resource_uses_the_rack_provider(run_stack):
    run = run_stack("rack1")
    provider = run.of_type("pulumi:providers:kubernetes")[0]
    assert provider.inputs["clusterIdentifier"] == "rack1"
    assert "kubeconfig" in provider.secret_inputs
    assert yaml.safe_load(provider.inputs["kubeconfig"])["clusters"][0]["cluster"]["server"] == "https://192.168.1.8:6443"
    for r in run.resources:
        if r.type.startswith("kubernetes:"):
            assert r.provider.startswith(provider.urn + "::"), r.name


def test_bad_config_stops_the_program_before_any_resource(run_stack):
    with pytest.raises(ConfigError):
        run = run_stack("rack2", overrides={"k3sVersion": "latest"})
        assert run.resources == []


def test_rewrite_kubeconfig_renames_and_repoints():
    out = yaml.safe_load(rewrite_kubeconfig(STAND_IN_KUBECONFIG, server="https://10.0.0.1:6443", name="rack9"))
    assert out["clusters"][0]["name"] == out["users"][0]["name"] == out["contexts"][0]["name"] == "rack9"
    assert out["contexts"][0]["context"] == {"cluster": "rack9", "user": "rack9"}
    assert out["clusters"][0]["cluster"]["server"] == "https://10.0.0.1:6443"
    assert out["users"][0]["user"]["client-key-data"] == "c3RhbmQtaW4ta2V5"


def test_rewrite_kubeconfig_error_never_quotes_the_file():
    with pytest.raises(ValueError) as e:
        rewrite_kubeconfig("client-key-data: SECRETKEYMATERIAL", server="https://x:6443", name="r")
    assert "SECRETKEYMATERIAL" not in str(e.value)
    assert str(e.value) == ("/etc/rancher/k3s/k3s.yaml on the jumphost is not a k3s kubeconfig "
                            "(expected clusters, contexts and users); contents not shown")


def _with_state(name: str, state: str) -> dict:
    return {"rpis": [{"name": f"skia-rpi2-rack2-shelf1-00{i}", "address": f"192.168.1.10{i}",
                      **({"state": state} if f"skia-rpi2-rack2-shelf1-00{i}" == name else {})}
                     for i in range(1, 5)]}


@pytest.mark.parametrize("state", ["cordoned", "drained", "active"])
def test_changing_one_pis_state_changes_only_its_state_step(run_stack, state):
    base = run_stack("rack2", overrides=_with_state("skia-rpi2-rack2-shelf1-003", "cordoned" if state == "active" else "active"))
    changed = run_stack("rack2", overrides=_with_state("skia-rpi2-rack2-shelf1-003", state))
    before = {r.urn: r.inputs for r in base.resources}
    assert [r.name for r in changed.resources if before[r.urn] != r.inputs] == ["skia-rpi2-rack2-shelf1-003-state"]
    step = changed.named("skia-rpi2-rack2-shelf1-003-state")
    assert params(script_of(step)) == {"NODE_NAME": "skia-rpi2-rack2-shelf1-003", "STATE": state,
                                       "STATE_LABEL": "skolo.skia.org/state", "DRAIN_SECONDS": "120"}
    assert step.inputs["connection"]["host"] == "192.168.1.8"
    assert changed.named("skia-rpi2-rack2-shelf1-003-node").urn in step.dependencies
    assert not step.delete_before_replace and "delete" not in step.inputs
