"""Whole-program runs of the example racks under the mock runtime, and the K3sServer and
RpiAgent components as they are wired into them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from components import hostscripts
from components.k3s_server import rewrite_kubeconfig
from components.settings import ConfigError
from rackctl.program import STAND_IN_KUBECONFIG
from tests.conftest import PLANTED, ROOT

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
    # sshd, install, kubeconfig; four legacy cut-overs; the bundle and the Pis' key; one step per Pi.
    assert len(run.of_type(CMD)) == 3 + 4 + 2 + 80
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


DECLARED_AS_JSON = """
import dataclasses, json, sys
from rackctl import program
from tests.conftest import PLANTED
run = program.run_stack(sys.argv[1], secrets=PLANTED)
# The SDK gathers a resource's dependencies in a set of URNs (pulumi/runtime/resource.py): their order
# is the set's, and the engine does not diff them. Everything else is compared as declared.
declared = {r.urn: {**dataclasses.asdict(r), "dependencies": sorted(r.dependencies)} for r in run.resources}
print(json.dumps({"resources": declared, "outputs": run.outputs}, sort_keys=True, default=sorted))
"""


@pytest.mark.parametrize("stack", ["rack2", "rack1"])
def test_same_config_declares_identical_inputs_so_a_second_up_changes_nothing(stack):
    """Two runs of the program in two processes, with different hash seeds (so an order taken from
    a set or a dict built from one shows), declare the same resources, inputs and options. Keyed by
    URN: the order in which components register is async and means nothing to the engine."""
    runs = [subprocess.run([sys.executable, "-c", DECLARED_AS_JSON, stack], cwd=ROOT, capture_output=True, text=True,
                           timeout=300, env={**os.environ, "PYTHONHASHSEED": seed}) for seed in ("1", "2")]
    for run in runs:
        assert run.returncode == 0, run.stderr[-2000:]
    first, second = (json.loads(run.stdout) for run in runs)
    assert len(first["resources"]) > 100
    assert first == second


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
    in_the_way = " rpcbind.socket rpcbind.service" if service == "nfs" else ""  # test_nfs_export.py says why
    assert params(script_of(cutover)) == {"UNIT": unit + in_the_way}
    assert script_of(cutover, "delete").name == "legacy-unit-start"
    assert cutover.inputs["connection"]["host"] == "192.168.1.8"
    if service != "metadata":  # its namespace, and so every object in it, waits for the cut-over
        namespace = next(r for r in run.of_type("kubernetes:core/v1:Namespace") if r.parent == run.named(name).urn)
        assert cutover.urn in namespace.dependencies
    custom = run_stack("rack2", overrides={"services": {service: {"legacyUnit": "old-thing"}}})
    assert params(script_of(custom.named(f"{name}-legacy-unit-cutover"))) == {"UNIT": "old-thing" + in_the_way}
    for off in ({"legacyUnit": ""}, {"enabled": False}) if service != "nfs" else ({"enabled": False},):
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


def rack_env(run) -> dict:
    """The bundle's rack.env as the jumphost gets it."""
    files = hostscripts.unbundle(next(r for r in run.of_type(CMD) if r.name.endswith("-fleet-bundle")).inputs["stdin"])
    return params(hostscripts.HostScript("rack.env", files["rack.env"]))


def test_custom_install_url_and_cidr_reach_every_install(run_stack):
    run = run_stack("rack2", overrides={"k3sInstallScriptUrl": "http://mirror.rack2.lan/k3s-install.sh",
                                        "k3sInstallScriptSha256": "a" * 64,
                                        "clusterCidr": "10.48.0.0/16", "k3sVersion": "v1.32.2+k3s1"})
    server = params(script_of(run.named("rack2-install")))
    pis = rack_env(run)
    for p in (server, pis):
        assert p["INSTALL_SCRIPT_URL"] == "http://mirror.rack2.lan/k3s-install.sh"
        assert p["INSTALL_SCRIPT_SHA256"] == "a" * 64
    assert server["K3S_VERSION"] == "v1.32.2+k3s1"
    assert {call(r)[2]["K3S_VERSION"] for r in pi_steps(run)} == {"v1.32.2+k3s1"}
    assert yaml.safe_load(server["CONFIG_YAML"])["cluster-cidr"] == "10.48.0.0/16"


def call(resource, phase="create"):
    return hostscripts.unwrap_call(resource.inputs[phase])


def pi_steps(run):
    return [r for r in run.of_type(CMD) if r.name.startswith("skia-rpi2")]


def test_every_pi_step_runs_on_the_pinned_jumphost_and_pins_its_pi(run_stack):
    run = run_stack("rack2")
    jump = run.named("rack2-install").inputs["connection"]
    from tests.conftest import stack_raw

    raw = stack_raw("rack2")
    assert jump["hostKey"] == raw["jumphost"]["hostKey"]
    for pi in raw["rpis"]:
        step = run.named(f"{pi['name']}-node")
        assert step.inputs["connection"] == jump and "proxy" not in step.inputs["connection"]
        assert call(step)[2]["HOST_KEY"] == call(step, "delete")[2]["HOST_KEY"] == pi["hostKey"]
        assert "connection" in step.secret_inputs  # it carries the jumphost's private key


def test_each_pi_is_one_small_step_that_calls_the_bundle(run_stack):
    run = run_stack("rack2")
    name = "skia-rpi2-rack2-shelf1-003"
    agent, step = run.named(name), run.named(f"{name}-node")
    assert [r.name for r in run.resources if r.parent == agent.urn] == [f"{name}-node"]
    fleet = run.named("rack2-fleet")
    where, script, p = call(step)
    assert (where, script) == (f"/var/lib/skolo/bundle/{fleet_hash(run)}", "pi-node")
    assert {k: v for k, v in p.items() if k != "HOST_KEY"} == {
        "NODE_NAME": name, "ADDRESS": "192.168.1.103", "K3S_VERSION": "v1.31.6+k3s1", "STATE": "active", "REJOIN": "0"}
    assert call(step, "delete")[:2] == ("/var/lib/skolo/bundle/current", "pi-remove")
    assert step.inputs["triggers"] == [0] and step.delete_before_replace
    assert "stdin" not in step.inputs  # the token is read on the jumphost, never sent per Pi
    # After the server's install and the Fleet (bundle and key) on the jumphost.
    assert run.named("rack2-install").urn in step.dependencies
    assert {run.named("rack2-fleet-bundle").urn, run.named("rack2-fleet-pi-key").urn} <= set(step.dependencies)
    assert fleet.type == "skolo:rack:Fleet"


def fleet_hash(run) -> str:
    return params(script_of(run.named("rack2-fleet-bundle")))["HASH"]


def test_at_most_three_resources_and_2_kib_of_inputs_per_pi(run_stack):
    import json

    run = run_stack("rack1")
    for pi in run.of_type("skolo:rack:RpiAgent"):
        mine = [r for r in run.resources if r.urn == pi.urn or r.parent == pi.urn]
        assert len(mine) <= 3, pi.name
        assert sum(len(json.dumps(r.inputs)) for r in mine) <= 2048, pi.name


def test_the_bundle_hash_reaches_every_pi_when_anything_in_the_bundle_changes(run_stack):
    base, changed = run_stack("rack2"), run_stack("rack2", overrides={"upgrade": {"maxUnavailable": 2}})
    assert rack_env(changed)["MAX_UNAVAILABLE"] == "2" and fleet_hash(base) != fleet_hash(changed)
    assert {call(r)[0] for r in pi_steps(changed)} == {f"/var/lib/skolo/bundle/{fleet_hash(changed)}"}
    before = {r.urn: r.inputs for r in base.resources}
    assert sorted(r.name for r in changed.resources if before[r.urn] != r.inputs) == [
        "rack2-fleet-bundle"] + [f"skia-rpi2-rack2-shelf1-00{i}-node" for i in range(1, 5)]


def test_the_pis_key_reaches_the_jumphost_once_on_stdin(run_stack):
    run = run_stack("rack2")
    step = run.named("rack2-fleet-pi-key")
    assert script_of(step).name == "pi-key" and "stdin" in step.secret_inputs
    assert step.inputs["stdin"] == PLANTED["sshPrivateKey"]
    assert [r.name for r in run.of_type(CMD) if (r.inputs.get("stdin") or "").startswith("-----BEGIN")] == [step.name]


def test_removing_a_pi_is_a_jumphost_side_delete(run_stack):
    """A dead Pi cannot block its own removal: the delete runs on the jumphost."""
    run = run_stack("rack2")
    for r in pi_steps(run):
        assert r.inputs["connection"]["host"] == "192.168.1.8" and call(r, "delete")[1] == "pi-remove"


def test_rejoin_replaces_only_that_pi_delete_first(run_stack):
    from tests.conftest import stack_raw

    pis = stack_raw("rack2")["rpis"]
    base = run_stack("rack2")
    bumped = run_stack("rack2", overrides={"rpis": [{**pi, **({"rejoin": 1} if i == 1 else {})}
                                                    for i, pi in enumerate(pis)]})
    before = {r.urn: r.inputs for r in base.resources}
    changed = sorted(r.name for r in bumped.resources if before[r.urn] != r.inputs)
    assert changed == ["skia-rpi2-rack2-shelf1-002-node"]
    r = bumped.named("skia-rpi2-rack2-shelf1-002-node")
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
    import pulumi

    with pytest.raises(ConfigError) as e:
        run = run_stack("rack2", overrides={"k3sVersion": "latest"})
        assert run.resources == []
    assert isinstance(e.value, pulumi.RunError)  # the CLI prints it as a message, without a traceback


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
    from tests.conftest import stack_raw

    return {"rpis": [{**pi, **({"state": state} if pi["name"] == name else {})} for pi in stack_raw("rack2")["rpis"]]}


@pytest.mark.parametrize("state", ["cordoned", "drained", "active"])
def test_changing_one_pis_state_changes_only_its_step(run_stack, state):
    base = run_stack("rack2", overrides=_with_state("skia-rpi2-rack2-shelf1-003", "cordoned" if state == "active" else "active"))
    changed = run_stack("rack2", overrides=_with_state("skia-rpi2-rack2-shelf1-003", state))
    before = {r.urn: r.inputs for r in base.resources}
    assert [r.name for r in changed.resources if before[r.urn] != r.inputs] == ["skia-rpi2-rack2-shelf1-003-node"]
    step = changed.named("skia-rpi2-rack2-shelf1-003-node")
    assert call(step)[2]["STATE"] == state
    assert step.inputs["connection"]["host"] == "192.168.1.8"
