"""Skia's images get only what their programs accept (components/skia.py, read from Skia's
main.go files): a Go program exits 2 on a flag it does not define, and an image with a CMD but
no ENTRYPOINT runs whatever the pod names. Checked on every container the program declares, for
every swarming era, and on what a stack may add by hand."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from components import skia
from components.settings import ConfigError
from tests.conftest import stack_raw
from tests.test_services import container, objects
from tests.test_settings import parse, problems

ERA_IMAGES = {"2020-04-21": "gcr.io/skia-public/rpi-swarming-client:2021-01-29T10_00_00Z-jcgregorio-bfc4238-clean",
              "2021-06-16": "gcr.io/skia-public/rpi-swarming-client:2021-06-20T10_00_00Z-jcgregorio-c034719-clean",
              "2021-06-30": "gcr.io/skia-public/rpi-swarming-client:2021-08-27T10_00_00Z-jcgregorio-2a62313-clean"}


def skia_containers(run) -> list[tuple[str, skia.Program, dict]]:
    """(workload, contract, container) for every container of one of Skia's images."""
    found = []
    for kind in ("Deployment", "DaemonSet"):
        for name, obj in objects(run, kind).items():
            c = container(obj)
            repository = c["image"].split("/")[-1].split(":")[0]
            if repository == "rpi-swarming-client":
                found.append((name, next(e.program for e in skia.SWARMING_ERAS.values()
                                         if e.program.command == tuple(c.get("command") or ())), c))
            elif repository in ("metadata", "alert-to-pubsub", "podwatcher"):
                found.append((name, next(p for p in (skia.METADATA, skia.ALERT_TO_PUBSUB, skia.PODWATCHER)
                                          if p.image == repository), c))
    return found


@pytest.mark.parametrize("stack, overrides", [
    ("rack1", None), ("rack2", None),
    *[("rack2", {"images": {**stack_raw("rack2")["images"], "swarming": image},
                 "services": {"swarming": {"era": era}}}) for era, image in ERA_IMAGES.items()]],
    ids=["rack1", "rack2", *[f"era-{e}" for e in ERA_IMAGES]])
def test_every_skia_container_passes_only_flags_its_program_defines(run_stack, stack, overrides):
    found = skia_containers(run_stack(stack, overrides=overrides))
    assert {c["image"].split("/")[-1].split(":")[0] for _, _, c in found} == {
        "metadata", "alert-to-pubsub", "podwatcher", "rpi-swarming-client"}
    for name, program, c in found:
        args = tuple(c.get("args") or ())
        assert program.problems(args) == [], name
        assert program.required <= skia.flag_names(args), name
        assert skia.flag_names(args) == program.managed, name  # what the settings refuse to let a stack add
        # An image with only a CMD runs what the pod names; one with an ENTRYPOINT keeps it.
        assert tuple(c.get("command") or ()) == program.command, name


@pytest.mark.parametrize("era", sorted(skia.SWARMING_ERAS))
def test_swarming_runs_its_eras_program_with_its_eras_config(run_stack, era):
    run = run_stack("rack2", overrides={"images": {**stack_raw("rack2")["images"], "swarming": ERA_IMAGES[era]},
                                        "services": {"swarming": {"era": era}}})
    c = container(objects(run, "DaemonSet")["swarming"])
    assert c["command"] == list(skia.SWARMING_ERAS[era].program.command)
    assert f"--config={skia.SWARMING_ERAS[era].config}" in c["args"]


def test_metadata_url_reaches_the_metadata_service_from_the_swarming_namespace(run_stack):
    """Resolved as the cluster would: <service>.<namespace>.svc.cluster.local, the Service's port,
    its targetPort, and a container port of a pod its selector picks."""
    run = run_stack("rack1")
    args = container(objects(run, "DaemonSet")["swarming"])["args"]
    url = urlsplit(next(a.split("=", 1)[1] for a in args if a.startswith("--metadata_url=")))
    service_name, namespace, *rest = url.hostname.split(".")
    assert rest == ["svc", "cluster", "local"] and namespace != "swarming"
    (service,) = [r.inputs for r in run.of_type("kubernetes:core/v1:Service")
                  if r.inputs["metadata"] == {**r.inputs["metadata"], "name": service_name, "namespace": namespace}]
    (port,) = [p for p in service["spec"]["ports"] if p["port"] == url.port]
    pods = [obj["spec"]["template"] for obj in objects(run, "Deployment").values()
            if obj["metadata"]["namespace"] == namespace
            and service["spec"]["selector"].items() <= obj["spec"]["template"]["metadata"]["labels"].items()]
    (pod,) = pods
    assert port["targetPort"] in {p["containerPort"] for p in pod["spec"]["containers"][0]["ports"]}
    assert url.path == "/computeMetadata/v1/instance/service-accounts/default/token"


def test_flags_a_stack_adds_are_passed_after_the_racks_own(run_stack):
    run = run_stack("rack2", overrides={"services": {"swarming": {"extraArgs": ["--username=chrome-bot"]},
                                                     "metadata": {"extraArgs": ["--local"]}}})
    assert container(objects(run, "DaemonSet")["swarming"])["args"][-1] == "--username=chrome-bot"
    assert container(objects(run, "Deployment")["metadata"])["args"] == ["--port=:8000", "--prom_port=:20000", "--local"]


def _with(mutate):
    raw = stack_raw("rack2")
    mutate(raw)
    return problems(raw)


@pytest.mark.parametrize("mutate, expected", [
    (lambda r: r["services"].update(swarming={"extraArgs": ["--topic=x"]}),
     ["skolo:services.swarming.extraArgs[0]: --topic is not a flag of test_machine_monitor "
      "(machine/go/test_machine_monitor/main.go (01bc5f9247 .. 99922d5a94^)); it defines: --config, --local, "
      "--metadata_url, --port, --prom_port, --python_exe, --start_swarming, --swarming_bot_zip, --username"]),
    (lambda r: r["services"].update(swarming={"era": "2020-04-21", "extraArgs": ["--username=chrome-bot"]},
                                    ) or r["images"].update(swarming=ERA_IMAGES["2020-04-21"]),
     ["skolo:services.swarming.extraArgs[0]: --username is not a flag of bot_config (sk8s/go/bot_config/main.go "
      "(598d42fd41 .. c034719775^)); it defines: --config, --local, --metadata_url, --port, --prom_port, "
      "--python_exe, --start_swarming, --swarming_bot_zip"]),
    (lambda r: r["services"].update(metadata={"extraArgs": ["--port=:9000"]}),
     ["skolo:services.metadata.extraArgs[0]: --port is set by this rack already; use the service's own option for it"]),
    (lambda r: r["services"].update(alertToPubsub={"extraArgs": ["-period", "30s"]}),
     ["skolo:services.alertToPubsub.extraArgs[0]: '-period' is not a flag as --name or --name=value (Go's flag "
      "package stops at the first non-flag, silently ignoring the rest)",
      "skolo:services.alertToPubsub.extraArgs[1]: '30s' is not a flag as --name or --name=value (Go's flag "
      "package stops at the first non-flag, silently ignoring the rest)"]),
    (lambda r: r["services"].update(powerCycle={"extraArgs": ["--port=:9210"]}),
     ["skolo:services.powerCycle.extraArgs[0]: --port is not a flag of podwatcher (sk8s/go/podwatcher/main.go "
      "(a7a36bfa39 2020-05-15 .. 99922d5a94^)); it defines: --config, --local, --powercycle_config, --prom_port"]),
    (lambda r: r["services"].update(alertToPubsub={"topic": "rack-alerts"}),
     ["skolo:services.alertToPubsub.topic: alert-to-pubsub has no --topic flag: it always publishes to "
      "promtheus-alerts in the project (am/go/alert-to-pubsub/main.go (99922d5a94^ .. 2026-08)); remove topic"]),
    (lambda r: r["images"].update(powerCycle="gcr.io/skia-public/power-cycle-daemon:2021-01-01T00_00_00Z-x-1234567-clean"),
     ["skolo:images.powerCycle: this service runs podwatcher from Skia's podwatcher image "
      "(gcr.io/skia-public/podwatcher), got 'gcr.io/skia-public/power-cycle-daemon:2021-01-01T00_00_00Z-x-1234567-clean'"]),
    (lambda r: r["images"].update(swarming=ERA_IMAGES["2020-04-21"]),
     [f"skolo:images.swarming: {ERA_IMAGES['2020-04-21']!r} is an image of era 2020-04-21 (/usr/bin/bot_config, "
      "--config=/usr/local/share/rpi-swarming-client/prod.json), not of era 2021-06-30; set "
      "skolo:services.swarming.era: 2020-04-21"]),
    (lambda r: r["images"].update(metadata="gcr.io/skia-public/metadata:2024-06-01T00_00_00Z-skolo-0000000-clean"),
     ["skolo:images.metadata: 'gcr.io/skia-public/metadata:2024-06-01T00_00_00Z-skolo-0000000-clean' was built on "
      "2024-06-01; the flags this rack passes to metadata are known for images of 2020-05-05 .. 2021-09-10 "
      "(sk8s/go/metadata/main.go (2020-05-05 .. 99922d5a94^))"]),
    (lambda r: r["services"].update(swarming={"era": "2021"}),
     ["skolo:services.swarming.era: expected one of 2020-04-21, 2021-06-16, 2021-06-30, got '2021'"]),
    (lambda r: r["services"].update(routerBackup={"devices": [{"name": "sw", "address": "192.168.1.2", "user": "ubnt",
                                                               "kind": "cisco"}]}),
     ["skolo:services.routerBackup.devices[0].kind: expected one of edgerouter, edgeswitch, got 'cisco'"]),
    (lambda r: r["services"].update(routerBackup={"devices": [{"name": "sw", "address": "192.168.1.2", "user": "ubnt",
                                                               "kind": "edgeswitch", "path": "/config/config.boot"}]}),
     ["skolo:services.routerBackup.devices[0].path: an EdgeSwitch has no config file: router-backup reads its "
      "running-config through the CLI; remove path"]),
])
def test_a_flag_or_device_the_program_cannot_take_is_refused_naming_the_key(mutate, expected):
    assert _with(mutate) == expected


def test_a_switch_to_back_up_needs_the_edgeswitch_password(run_stack):
    from tests.conftest import PLANTED

    without = dict(PLANTED, powerCyclePassword=None)
    switch = {"devices": [{"name": "sw", "address": "192.168.1.2", "user": "ubnt", "kind": "edgeswitch"}]}
    with pytest.raises(ConfigError) as e:
        run_stack("rack2", overrides={"services": {"routerBackup": switch}}, secrets=without)
    assert e.value.problems == ["skolo:powerCyclePassword: missing; set it with: pulumi config set --secret "
                                "skolo:powerCyclePassword (README: taking a rack live)"]
    assert run_stack("rack2", secrets=without).named("router-backup")  # the router alone needs no password


def test_an_undated_tag_is_taken_at_its_word():
    assert skia.image_problem(skia.METADATA, "gcr.io/skia-public/metadata@sha256:" + "0" * 64) is None
    assert skia.tag_date("gcr.io/skia-public/metadata:2021-08-27T14_37_01Z-jcgregorio-9b3d6ae-clean").isoformat() == \
        "2021-08-27"


def test_podwatcher_images_without_their_config_file_are_refused():
    """--config=/usr/local/share/podwatcher/prod.json is a file of the image, copied in by its release
    script until machine/configs moved (01bc5f9247, 2021-06-30); every later image lacks it and
    podwatcher exits at start. The stack takes only images that have it."""
    raw = stack_raw("rack2")
    shipped = "gcr.io/skia-public/podwatcher:2021-06-29T17_00_00Z-jcgregorio-0000000-clean"
    assert parse({**raw, "images": {**raw["images"], "powerCycle": shipped}}).images.power_cycle == shipped
    lacking = "gcr.io/skia-public/podwatcher:2021-06-30T09_00_00Z-jcgregorio-0000000-clean"
    (problem,) = problems({**raw, "images": {**raw["images"], "powerCycle": lacking}})
    assert problem == (
        f"skolo:images.powerCycle: {lacking!r} was built on 2021-06-30, after 2021-06-29: no later image ships "
        "--config's /usr/local/share/podwatcher/prod.json (sk8s/images/podwatcher/release could not copy it from "
        "01bc5f9247, 2021-06-30), and podwatcher exits without it")


@pytest.mark.parametrize("image, python", [
    (ERA_IMAGES["2020-04-21"], "/usr/bin/python2.7"), (ERA_IMAGES["2021-06-16"], "/usr/bin/python2.7"),
    ("gcr.io/skia-public/rpi-swarming-client:2021-07-05T10_00_00Z-jcgregorio-0000000-clean", "/usr/bin/python2.7"),
    (ERA_IMAGES["2021-06-30"], "/usr/bin/python3")])
def test_swarming_runs_the_interpreter_its_image_ships(run_stack, image, python):
    """Until 3f55750f2c (2021-07-12) the image is FROM raspbian/stretch with python2.7 only; from then
    arm32v7/debian:testing-slim with python3 (sk8s/images/rpi-swarming-client/Dockerfile history).
    The boundary is inside the newest era, so it goes by the image's date, not by the era."""
    era = skia.swarming_era_for(image)
    run = run_stack("rack2", overrides={"images": {**stack_raw("rack2")["images"], "swarming": image},
                                        "services": {"swarming": {"era": era}}})
    assert f"--python_exe={python}" in container(objects(run, "DaemonSet")["swarming"])["args"]
