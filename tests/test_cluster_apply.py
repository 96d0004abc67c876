"""The stacks on a real v1.31 API server (tests/controlplane.py): every object the program declares
applies server-side with no error and no warning, and every change an operator makes through
config applies over the rack before it, as `pulumi up` would make it (tests/cluster_rack.py), or
`rackctl check` refuses it first."""

from __future__ import annotations

import copy

import pytest

from components import settings
from components.prometheus import data_claim
from tests.cluster_rack import objects, rack_nodes, scheduled, warnings
from tests.conftest import PLANTED, stack_raw
from tests.controlplane import wait_for

pytestmark = pytest.mark.cluster


def applies_cleanly(control_plane, run_stack, stack: str) -> None:
    """`stack` on a cluster with nothing of another stack's: no error, no warning, and a no-op again."""
    cp, kubelet, live = control_plane
    objs = objects(run_stack(stack))
    applied = live.bring_up(stack, rack_nodes(settings.parse(stack, stack_raw(stack), PLANTED)), objs)
    assert warnings(applied.stderr) == []
    # Applying the same objects again changes nothing, as the server judges it (kubectl prints
    # "serverside-applied" for every object, changed or not; its diff says what would change).
    again = live.diff(objs)
    assert (again.returncode, again.stdout, warnings(again.stderr)) == (0, "", []), again.stdout[:3000] + again.stderr
    # ...and the same diff sees one changed field (its positive control).
    changed = copy.deepcopy(objs)
    config_map = next(o for o in changed if o["kind"] == "ConfigMap")
    config_map["metadata"].setdefault("labels", {})["skolo.skia.org/planted"] = "changed"
    seen = live.diff(changed)
    assert seen.returncode == 1 and "+    skolo.skia.org/planted: changed" in seen.stdout, seen.stderr
    assert seen.stdout.count("+++ merged/") == 1, seen.stdout  # that object only
    for obj in objs:
        kind, meta = obj["kind"], obj["metadata"]
        found = cp.json("get", kind, meta["name"], *(["-n", meta["namespace"]] if meta.get("namespace") else []))
        assert found["metadata"]["name"] == meta["name"]


def test_rack2_applies_with_no_error_and_no_warning(control_plane, run_stack):
    applies_cleanly(control_plane, run_stack, "rack2")  # and stays live for the operator's changes


@pytest.fixture
def rack2_live(control_plane, run_stack):
    """(cp, live): rack2 on the cluster as its stack declares it, applied anew only when another
    stack (or a changed rack2) is what is live."""
    cp, _, live = control_plane
    if live.stack != "rack2":
        live.bring_up("rack2", rack_nodes(settings.parse("rack2", stack_raw("rack2"), PLANTED)),
                      objects(run_stack("rack2")))
    return cp, live


def test_operator_changes_apply_over_the_live_rack(rack2_live, run_stack):
    """rack2 live; then an image push, a service switched off and on, a Pi removed, a storage
    size changed: each converges on the real server with no error or warning."""
    cp, live = rack2_live
    raw = stack_raw("rack2")
    scheduled(cp, "metadata", "metadata", 1)

    pushed = "gcr.io/skia-public/metadata:2021-09-05T00_00_00Z-skolo-1111111-clean"
    step = live.converge(objects(run_stack("rack2", {"images": {**raw["images"], "metadata": pushed}})))
    assert warnings(step.stderr) == [] and not step.deleted
    deployment = cp.json("get", "deployment", "metadata", "-n", "metadata")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == pushed

    services = raw.get("services") or {}
    off = {**services, "routerBackup": {**(services.get("routerBackup") or {}), "enabled": False}}
    step = live.converge(objects(run_stack("rack2", {"services": off})))
    assert ("Namespace", "", "backup") in step.deleted and warnings(step.stderr) == []
    assert cp.kubectl("get", "namespace", "backup", check=False).returncode != 0
    step = live.converge(objects(run_stack("rack2")))
    assert warnings(step.stderr) == []
    assert cp.json("get", "cronjob", "router-backup", "-n", "backup")["metadata"]["name"] == "router-backup"

    fewer = [pi for pi in raw["rpis"] if pi["name"] != "skia-rpi2-rack2-shelf1-004"]
    ports = {**services["powerCycle"]["mpower"][0]["ports"]}
    ports.pop("skia-rpi2-rack2-shelf1-004")
    power = {**services["powerCycle"], "mpower": [{**services["powerCycle"]["mpower"][0], "ports": ports}]}
    step = live.converge(objects(run_stack("rack2", {"rpis": fewer, "services": {**services, "powerCycle": power}})))
    assert warnings(step.stderr) == []

    bigger = {**services, "prometheus": {**services["prometheus"], "storage": "8Gi"}}
    step = live.converge(objects(run_stack("rack2", {"services": bigger})))
    assert ("PersistentVolumeClaim", "monitoring", data_claim("5Gi")) in step.deleted
    claim = cp.json("get", "pvc", data_claim("8Gi"), "-n", "monitoring")
    assert claim["spec"]["resources"]["requests"]["storage"] == "8Gi"
    prometheus = cp.json("get", "deployment", "prometheus", "-n", "monitoring")
    volumes = prometheus["spec"]["template"]["spec"]["volumes"]
    assert {"name": "data", "persistentVolumeClaim": {"claimName": data_claim("8Gi")}} in volumes
    live.converge(objects(run_stack("rack2")), "rack2")


def test_the_api_server_refuses_a_claim_resized_in_place(rack2_live):
    """Why the claim is named by its size: the same claim with a new size is refused (local-path
    does not expand volumes), and `pulumi up` would stop part-way."""
    cp, live = rack2_live
    # As on a live rack: the claim bound to the volume made for it on the jumphost.
    claim = wait_for(lambda: (c := cp.json("get", "pvc", data_claim("5Gi"), "-n", "monitoring"))["status"].get(
        "phase") == "Bound" and c, 90, "Prometheus's claim bound")
    claim["spec"]["resources"]["requests"]["storage"] = "8Gi"
    result = live.apply([{"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                          "metadata": {"name": claim["metadata"]["name"], "namespace": "monitoring"},
                          "spec": claim["spec"]}], check=False)
    assert result.returncode != 0
    assert "only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must " \
           "support resize" in result.stderr


def test_rack1_a_rack_of_shelves_applies_with_no_error_and_no_warning(control_plane, run_stack):
    # Last in this module: the modules after it run on rack1, which stays live.
    applies_cleanly(control_plane, run_stack, "rack1")
