"""The settings layer's value checks at their boundaries (components/settings/fields.py), and the
lines an operator reads when one refuses (components/settings/base.py). Written where mutation
testing found checks whose edges no test held (README: "How good are the tests")."""

from __future__ import annotations

import pytest

from components import settings
from components.settings import ConfigError
from components.settings.fields import _bucket_ok, _cron_ok, show, type_name
from tests.conftest import PLANTED, stack_raw


@pytest.mark.parametrize("schedule", [
    "0 4 * * *", "*/15 * * * *", "0 0 1 1 0", "59 23 31 12 7", "0-59 0-23 1-31 1-12 0-7", "1,2,59 * * * *",
    "0-30/5 * * * *", "*/59 */23 */31 */12 */7", "5-5 * * * *", "0 4 * * 1-5", "*/1 * * * *",
])
def test_a_cron_schedule_in_range_is_accepted(schedule):
    assert _cron_ok(schedule)


@pytest.mark.parametrize("schedule", [
    "60 * * * *", "* 24 * * *", "* * 0 * *", "* * 32 * *", "* * * 0 *", "* * * 13 *", "* * * * 8",
    "0-60 * * * *", "* * * 1-13 *", "6-5 * * * *", "*/0 * * * *", "*/60 * * * *", "* */24 * * *", "* * */32 * *",
    "* * * */13 *", "* * * * */8", "* * * *", "* * * * * *", "", "a * * * *", "1- * * * *", "1,,2 * * * *",
    "*/ * * * *", "-1 * * * *", "1,60 * * * *", "@daily",
])
def test_a_cron_schedule_out_of_range_or_malformed_is_refused(schedule):
    assert not _cron_ok(schedule)


@pytest.mark.parametrize("bucket", [
    "abc", "a" * 63, "a-b_c", "a.b.c", "1abc", "a" * 63 + "." + "b" * 63,
    ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 30]),  # 222, the longest
])
def test_a_bucket_name_gcp_accepts_is_accepted(bucket):
    assert _bucket_ok(bucket)


@pytest.mark.parametrize("bucket", [
    "ab", "a" * 64, "-abc", "abc-", "Abc", "a b", "goog-bucket", "my-google-bucket", "192.168.1.1", "a..b",
    ".abc", "abc.", "a" * 64 + ".b", ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 31]),  # 223
])
def test_a_bucket_name_gcp_refuses_is_refused(bucket):
    assert not _bucket_ok(bucket)


@pytest.mark.parametrize("value, name", [
    ({}, "an object"), ([], "a list"), ("x", "a string"), (True, "a boolean"), (1, "a number"), (1.5, "a number"),
    (None, "nothing"), (b"x", "bytes"),
])
def test_type_names_in_messages(value, name):
    assert type_name(value) == name


def test_a_value_is_shown_whole_up_to_80_characters_then_cut():
    assert show("a" * 78) == repr("a" * 78) and len(show("a" * 78)) == 80
    assert show("a" * 79) == "'" + "a" * 76 + "..."
    assert show(7) == "7" and show([1, "x"]) == '[1, "x"]' and show(None) == "null"


def parse_rack2(mutate, secrets=None) -> list[str]:
    """The problems rack2's config has once `mutate` has changed it ([] when it parses), with the
    planted secrets or `secrets`."""
    raw = stack_raw("rack2")
    mutate(raw)
    try:
        settings.parse("rack2", raw, PLANTED if secrets is None else secrets)
    except ConfigError as e:
        return list(e.problems)
    return []


@pytest.mark.parametrize("mutate, expected", [
    (lambda r: r.pop("jumphost"),
     "skolo:jumphost: missing; this key is required (see Pulumi.rack1.yaml)"),
    (lambda r: r["jumphost"].pop("address"),
     "skolo:jumphost.address: missing; this key is required"),
    (lambda r: r.update(jumphost=["j"]),
     "skolo:jumphost: expected an object with keys name, address, lanAddress, lanCidr, user, port, hostKey, "),
    (lambda r: r["services"]["routerBackup"].update(schedule="0 24 * * *"),
     "skolo:services.routerBackup.schedule: expected a cron schedule of five fields like '0 3 * * *' (minute 0-59, "
     "hour 0-23, day 1-31, month 1-12, weekday 0-7), got '0 24 * * *'"),
    (lambda r: r["upgrade"].update(maxUnavailable=0),
     "skolo:upgrade.maxUnavailable: expected a whole number from 1 to 50, got 0"),
    (lambda r: r["upgrade"].update(maxUnavailable=51),
     "skolo:upgrade.maxUnavailable: expected a whole number from 1 to 50, got 51"),
    (lambda r: r["upgrade"].update(maxUnavailable=True),
     "skolo:upgrade.maxUnavailable: expected a whole number from 1 to 50, got true"),
    (lambda r: r["services"].setdefault("swarming", {}).update(terminationGraceSeconds=29),
     "skolo:services.swarming.terminationGraceSeconds: expected a whole number of at least 30, got 29"),
    (lambda r: r["services"].setdefault("metadata", {}).update(extraArgs="--x"),
     "skolo:services.metadata.extraArgs: expected a list, got a string '--x'"),
    (lambda r: r.setdefault("guardrails", {}).update(namespaces=["a"]),
     'skolo:guardrails.namespaces: expected an object of namespace -> {hostPaths, hostPathPrefixes, privileged, '
     'hostNetwork, root, capabilities}, got a list ["a"]'),
])
def test_the_line_an_operator_reads_names_the_key_and_the_value(mutate, expected):
    problems = parse_rack2(mutate)
    assert any(p.startswith(expected) for p in problems), problems


def test_two_problems_of_one_rule_are_both_reported():
    def twice(raw):
        raw["rpis"][1]["address"] = raw["rpis"][0]["address"]
        raw["rpis"][3]["address"] = raw["rpis"][2]["address"]
        raw["services"].setdefault("metadata", {})["extraArgs"] = "--x"
    assert parse_rack2(twice) == [
        "skolo:rpis[1].address: address '192.168.1.101' is already used by skolo:rpis[0].address; every Pi needs its "
        "own address",
        "skolo:rpis[3].address: address '192.168.1.103' is already used by skolo:rpis[2].address; every Pi needs its "
        "own address",
        "skolo:services.metadata.extraArgs: expected a list, got a string '--x'"]


def test_every_host_the_rack_reaches_over_ssh_is_listed_for_pinning():
    """What `rackctl check --strict` and `rackctl hostkeys` go through: every SSH host, named by
    what it is, with its pinned key."""
    rack = settings.parse("rack2", stack_raw("rack2"), PLANTED)
    assert [(what, name, address) for what, name, address, _ in rack.ssh_hosts()] == [
        ("jumphost", "skolo-rack2-jumphost", "192.168.1.8"),
        *[("Pi", f"skia-rpi2-rack2-shelf1-00{i}", f"192.168.1.10{i}") for i in range(1, 5)],
        ("edgerouter (routerBackup)", "router", "192.168.1.1"), ("mpower (powerCycle)", "rack2-mpower", "192.168.1.20")]
    assert all(key.startswith("ssh-ed25519 ") for *_, key in rack.ssh_hosts())
    raw = stack_raw("rack2")
    raw["services"]["routerBackup"]["enabled"] = False
    raw["services"]["powerCycle"]["enabled"] = False
    off = settings.parse("rack2", raw, PLANTED)
    assert [what for what, *_ in off.ssh_hosts()] == ["jumphost", "Pi", "Pi", "Pi", "Pi"]


def _checked(type_, value):
    """The clean value a config type gives, or the message it refuses `value` with (through
    pydantic, as the models use it)."""
    from pydantic import TypeAdapter, ValidationError

    try:
        return TypeAdapter(type_).validate_python(value)
    except ValidationError as e:
        [error] = e.errors()
        return error["msg"]


ED25519 = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


@pytest.mark.parametrize("type_name_, value, expected", [
    ("Port", 1, 1), ("Port", 65535, 65535), ("Port", 0, "expected a TCP port from 1 to 65535, got 0"),
    ("Port", 65536, "expected a TCP port from 1 to 65535, got 65536"),
    ("Port", True, "expected a TCP port from 1 to 65535, got true"),
    ("Port", "22", "expected a TCP port from 1 to 65535, got '22'"),
    ("NonNegative", 0, 0), ("NonNegative", -1, "expected a whole number of at least 0, got -1"),
    ("NonNegative", 10**9, 10**9),
    ("HostKey", f"ssh-ed25519 {ED25519} root@pi", f"ssh-ed25519 {ED25519}"),
    # Characters outside base64 are refused, not skipped (b64decode's validate=True).
    ("HostKey", "ssh-ed25519 AAAA!C3Nz", "expected an ed25519 or ECDSA host key in authorized_keys format "
                                        "('ssh-ed25519 AAAA...'), got 'ssh-ed25519 AAAA!C3Nz'; read it with: "
                                        "ssh-keyscan -t ed25519 HOST"),
    ("HostKey", "ssh-dss AAAAB3NzaC1kc3M=", "expected an ed25519 or ECDSA host key in authorized_keys format "
                                            "('ssh-ed25519 AAAA...'), got 'ssh-dss AAAAB3NzaC1kc3M='; read it with: "
                                            "ssh-keyscan -t ed25519 HOST"),
    ("HostKey", "ssh-rsa AAAA!B3Nz", "expected an ed25519 or ECDSA host key in authorized_keys format "
                                     "('ssh-ed25519 AAAA...'), got 'ssh-rsa AAAA!B3Nz'; read it with: "
                                     "ssh-keyscan -t ed25519 HOST"),
    ("AbsPath", "/var/lib/x/", "/var/lib/x"), ("AbsPath", "/", "/"), ("AbsPath", "//", "/"),
    ("AbsPath", "/Mixed/Case@1+2", "/Mixed/Case@1+2"), ("AbsPath", "/data/X/", "/data/X"), ("AbsPath", "/a/b..c", "/a/b..c"),
    ("AbsPath", "/a/../b", "expected an absolute path of letters, digits and ._/@+- without '..', got '/a/../b'"),
    ("AbsPath", "/a/..", "expected an absolute path of letters, digits and ._/@+- without '..', got '/a/..'"),
    ("AbsPath", "a/b", "expected an absolute path of letters, digits and ._/@+- without '..', got 'a/b'"),
    ("AbsPath", "/a b", "expected an absolute path of letters, digits and ._/@+- without '..', got '/a b'"),
    ("Destination", "gs://skia-backups/rack1/", "gs://skia-backups/rack1"),
    ("Destination", "gs://skia-backups", "gs://skia-backups"), ("Destination", "gs://skia-backups/X/", "gs://skia-backups/X"),
    ("Destination", "/srv/backups/", "/srv/backups"),
    ("Destination", "gs://goog-backups/x", "expected gs://BUCKET/FOLDER (a GCS bucket name) or an absolute path on "
                                          "the jumphost, got 'gs://goog-backups/x'"),
    ("Destination", "gs:/srv", "expected gs://BUCKET/FOLDER (a GCS bucket name) or an absolute path on the "
                               "jumphost, got 'gs:/srv'"),
    ("state", "active", "active"),
    ("state", "gone", "expected one of active, cordoned, drained, got 'gone'"),
])
def test_each_config_type_cleans_or_refuses_exactly(type_name_, value, expected):
    from components.settings import fields, hosts

    types = {"Port": fields.Port, "NonNegative": fields.NonNegative, "HostKey": fields.HostKey,
             "AbsPath": fields.AbsPath, "Destination": fields.Destination,
             "state": hosts.PiOverride.model_fields["state"].rebuild_annotation()}
    assert _checked(types[type_name_], value) == expected


@pytest.mark.parametrize("value, expected", [
    ("https://10.0.0.1:6443", "https://10.0.0.1:6443"), (" https://rack1:6443 ", "https://rack1:6443"),
    ("http://10.0.0.1:6443", "expected a https URL, got 'http://10.0.0.1:6443'"),
    ("https://", "expected a https URL, got 'https://'"),
    ("https://rack1:99999", "expected a https URL, got 'https://rack1:99999'"),
])
def test_the_api_server_is_an_https_url_with_a_host(value, expected):
    from typing import Annotated

    from components.settings import fields

    assert _checked(Annotated[str, fields.url("https")], value) == expected


def test_an_unknown_key_with_nothing_close_lists_the_known_keys_or_says_so():
    assert parse_rack2(lambda r: r["jumphost"].update(zzqqxx=1)) == [
        "skolo:jumphost.zzqqxx: unknown key; known keys: name, address, lanAddress, lanCidr, user, port, hostKey"]
    assert parse_rack2(lambda r: r.update(zzqqxx=1)) == ["skolo:zzqqxx: unknown key"]


def test_a_value_yaml_reads_as_a_date_is_shown_as_written_not_a_crash():
    import datetime

    assert parse_rack2(lambda r: r.update(k3sVersion=datetime.date(2024, 1, 1))) == [
        "skolo:k3sVersion: expected an exact k3s release like v1.31.6+k3s1, got \"2024-01-01\"; channels and "
        "'latest' are refused so every node runs the same, reviewed k3s"]


def test_every_pi_that_takes_the_jumphosts_name_or_address_is_named():
    def clash(raw):
        raw["rpis"][0]["name"] = raw["jumphost"]["name"]
        raw["rpis"][1]["address"] = raw["jumphost"]["address"]
        raw["rpis"][2]["address"] = raw["jumphost"]["address"]
    assert parse_rack2(clash) == [
        "skolo:rpis[2].address: address '192.168.1.8' is already used by skolo:rpis[1].address; every Pi needs its "
        "own address",
        "skolo:rpis: skolo-rack2-jumphost has the same name as skolo:jumphost",
        "skolo:rpis: skia-rpi2-rack2-shelf1-002 has the same address as skolo:jumphost",
        "skolo:rpis: skia-rpi2-rack2-shelf1-003 has the same address as skolo:jumphost"]


def test_a_rule_spanning_pis_is_reported_beside_the_problems_found_before_it():
    def two(raw):
        raw["jumphost"]["port"] = 0
        raw["rpis"][1]["address"] = raw["rpis"][0]["address"]
    assert parse_rack2(two) == [
        "skolo:jumphost.port: expected a TCP port from 1 to 65535, got 0",
        "skolo:rpis[1].address: address '192.168.1.101' is already used by skolo:rpis[0].address; every Pi needs its "
        "own address"]


def test_the_error_says_how_many_problems_and_lists_each_on_its_own_line():
    assert str(ConfigError("rack2", ["a: x", "b: y"])) == (
        "stack 'rack2' has 2 config problems; nothing was changed on any host:\n  a: x\n  b: y")
    assert str(ConfigError("rack2", ["a: x"])) == "stack 'rack2' has 1 config problem; nothing was changed on any host:\n  a: x"


SWITCH = {"name": "sw", "address": "192.168.1.21", "user": "ubnt", "ports": {"skia-rpi2-rack2-shelf1-001": 1},
          "hostKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINXv9OwZKuatP74erf76Kqi6tUpO7Kk75MDBL2sAgWQr"}


def test_an_edgeswitch_in_power_cycle_alone_needs_its_password():
    without = {k: v for k, v in PLANTED.items() if k != "powerCyclePassword"}
    # rack2's routerBackup has only an EdgeRouter
    assert parse_rack2(lambda raw: raw["services"]["powerCycle"].update(edgeswitch=[SWITCH]), without) == [
        "skolo:powerCyclePassword: missing; set it with: pulumi config set --secret skolo:powerCyclePassword "
        "(README: taking a rack live)"]


@pytest.mark.parametrize("ports, shown", [(["a"], '["a"]'), ({}, "{}"), ("1-4", "'1-4'")])
def test_ports_are_a_map_or_a_shelf(ports, shown):
    def wire(raw):
        raw["services"]["powerCycle"]["mpower"][0]["ports"] = ports
    assert parse_rack2(wire) == [f"skolo:services.powerCycle.mpower[0].ports: expected bot name -> port, or "
                                 f"{{shelf, count, firstPort}}, got {shown}"]


# --- settings.load: what the program reads from the Pulumi runtime --------------------------------

def _program_problems(overrides=None, plain=()) -> ConfigError:
    """Run the program for rack2 (mock runtime) with `overrides`, and the secrets in `plain` set
    without --secret; the ConfigError it stops with."""
    from rackctl import program, stackfiles
    from tests.conftest import ROOT

    config = stackfiles.stack_config("rack2", ROOT, PLANTED, overrides)
    with pytest.raises(ConfigError) as e:
        program.run_program("rack2", dict(config.values), [k for k in config.secret_keys if k not in plain])
    return e.value


def test_the_program_reports_a_misspelt_key_and_a_plain_text_secret_before_any_resource():
    import pulumi

    error = _program_problems({"k3sversion": "v1.31.6+k3s1"}, plain=("skolo:adbKey",))
    assert isinstance(error, pulumi.RunError) and error.stack == "rack2"
    assert error.problems == [
        "skolo:k3sversion: unknown key (did you mean skolo:k3sVersion?)",
        "skolo:adbKey: is stored in plain text in the stack file; remove it and set it with: pulumi config set "
        "--secret skolo:adbKey (README: taking a rack live)"]
    assert str(error).startswith("stack 'rack2' has 2 config problems; nothing was changed on any host:\n")


def test_the_program_reads_the_keys_the_cli_hands_over_in_its_environment_too(monkeypatch):
    monkeypatch.setenv("PULUMI_CONFIG", '{"skolo:zzqq": "1"}')
    assert _program_problems().problems == ["skolo:zzqq: unknown key"]


def test_an_object_the_cli_hands_over_as_json_is_read_as_one():
    # stack_config hands objects over as JSON text, as the CLI does; a bad field inside is found
    error = _program_problems({"upgrade": {"maxUnavailable": 0}})
    assert error.problems == ["skolo:upgrade.maxUnavailable: expected a whole number from 1 to 50, got 0"]


def test_a_power_cycle_switch_outside_the_rack_lan_is_named_by_its_own_key():
    def stray(raw):
        raw["services"]["powerCycle"]["edgeswitch"] = [{**SWITCH, "address": "10.9.9.9"}]
    assert parse_rack2(stray) == [
        "skolo:services.powerCycle.edgeswitch[0].address: 10.9.9.9 is outside the rack LAN 192.168.1.0/24 "
        "(skolo:jumphost.lanCidr); the rack reaches only its own devices, with their keys and passwords"]


@pytest.mark.parametrize("destination, problem", [
    ("gs://skia-backups/rack2", None), ("/var/backups/skolo-k3s", None), ("/etc", "is a system directory"),
    ("/etc/skolo", "is a system directory"), ("/etcetera", None), ("/var", "is a system directory"),
    ("/var/x", None), ("/opt/prod/root", "is inside the NFS export"), ("/opt/prod/root/b", "is inside the NFS export"),
    ("/opt/prod/rootb", None),
])
def test_where_the_datastore_backups_may_go(destination, problem):
    def place(raw):
        raw["services"].setdefault("nfs", {})["exportPath"] = "/opt/prod/root"
        raw["services"].setdefault("datastoreBackup", {})["destination"] = destination
    problems = parse_rack2(place)
    if problem is None:
        assert problems == []
    else:
        [line] = problems
        assert line.startswith(f"skolo:services.datastoreBackup.destination: {destination} {problem}")


@pytest.mark.parametrize("key", ["sshPrivateKey", "k3sToken", "adbKey"])
def test_a_secret_reaches_the_resources_that_use_it_and_only_as_a_secret(run_stack, key):
    import json

    from tests.conftest import NEEDLES

    value = NEEDLES[key]  # inside the planted value, free of what JSON escapes
    run = run_stack("rack2")
    holders = [(r.name, name) for r in run.resources for name, v in r.inputs.items() if value in json.dumps(v)]
    assert holders, f"{key} reaches no resource"
    for name, field in holders:
        assert field in run.named(name).secret_inputs, (name, field)


def test_a_pi_gets_one_line_per_key_however_many_rules_it_breaks():
    def no_power_cycle(change):  # its ports name rack2's Pis, which these changes rename
        return lambda raw: (raw["services"]["powerCycle"].update(enabled=False), change(raw))

    @no_power_cycle
    def overlapping_shelves_off_the_lan(raw):
        raw["rpis"] = [{"shelf": "s1", "count": 2, "firstAddress": "10.0.0.1"},
                       {"shelf": "s2", "count": 2, "firstAddress": "10.0.0.1"}]
    assert parse_rack2(overlapping_shelves_off_the_lan) == [
        "skolo:rpis[1].firstAddress (s2-001): address '10.0.0.1' is already used by skolo:rpis[0].firstAddress "
        "(s1-001); every Pi needs its own address",
        "skolo:rpis[0].firstAddress (s1-001): 10.0.0.1 is outside the rack LAN 192.168.1.0/24 (skolo:jumphost.lanCidr)"]
    long = "a" * 30 + "." + "b" * 33  # 64: each label is short enough, the hostname is not

    @no_power_cycle
    def same_long_name(raw):
        raw["rpis"][0]["name"] = raw["rpis"][1]["name"] = long
    assert parse_rack2(same_long_name) == [
        f"skolo:rpis[1].name: name '{long}' is already used by skolo:rpis[0].name; every Pi needs its own name",
        f"skolo:rpis[0].name: '{long}' has 64 characters; a node name is also the Pi's hostname, which may have at "
        f"most 63"]
    assert parse_rack2(no_power_cycle(lambda raw: raw["rpis"][0].update(name=long[:-1]))) == []  # 63 is a hostname


@pytest.mark.parametrize("value, fine", [
    ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbg==\n-----END OPENSSH PRIVATE KEY-----\n", True),
    ("garbage\n-----END PRIVATE KEY-----", False),
    ("-----BEGIN CERTIFICATE-----\nMII=\n-----END CERTIFICATE-----", False),
    ("-----BEGIN PRIVATE KEY-----\nMII=\n", False),
])
def test_the_ssh_key_must_be_a_whole_private_key(value, fine):
    problems = parse_rack2(lambda raw: None, {**PLANTED, "sshPrivateKey": value})
    assert problems == ([] if fine else [
        "skolo:sshPrivateKey: expected an unencrypted private key in PEM/OpenSSH form ('-----BEGIN ... PRIVATE "
        "KEY-----') (value not shown); set it with: pulumi config set --secret skolo:sshPrivateKey (README: taking a "
        "rack live)"])


def test_a_service_account_key_that_is_not_json_is_refused_not_shown():
    assert parse_rack2(lambda raw: None, {**PLANTED, "metadataServiceAccountKey": "not json {"}) == [
        "skolo:metadataServiceAccountKey: expected a service-account JSON key ({\"type\": \"service_account\", ...}) "
        "(value not shown); set it with: pulumi config set --secret skolo:metadataServiceAccountKey (README: taking a "
        "rack live)"]


def test_an_empty_secret_is_a_missing_one():
    assert parse_rack2(lambda raw: None, {**PLANTED, "sshPrivateKey": ""}) == [
        "skolo:sshPrivateKey: missing; set it with: pulumi config set --secret skolo:sshPrivateKey (README: taking a "
        "rack live)"]


def test_with_the_config_broken_only_the_secrets_every_rack_needs_are_asked_for():
    """Which services are on is unknown when the config does not parse: the secrets of a service
    are not asked for then, the rack's own are."""
    without = {k: v for k, v in PLANTED.items() if k not in ("k3sToken", "adbKey")}
    assert parse_rack2(lambda raw: raw["jumphost"].update(port=0), without) == [
        "skolo:jumphost.port: expected a TCP port from 1 to 65535, got 0",
        "skolo:k3sToken: missing; set it with: pulumi config set --secret skolo:k3sToken (README: taking a rack live)"]
