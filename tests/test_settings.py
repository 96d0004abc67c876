"""The settings layer: every config error, exactly as the operator reads it."""

from __future__ import annotations

import pytest
import yaml

from components import settings
from components.settings import ConfigError
from tests.conftest import PLANTED, ROOT, stack_raw


def parse(raw, secrets=None, plaintext=frozenset()):
    return settings.parse("rack2", raw, PLANTED if secrets is None else secrets, plaintext)


def problems(raw, secrets=None, plaintext=frozenset()) -> list[str]:
    with pytest.raises(ConfigError) as e:
        parse(raw, secrets, plaintext)
    return e.value.problems


def test_rack2_defaults():
    s = parse(stack_raw("rack2"))
    assert s.jumphost.model_dump() == dict(name="skolo-rack2-jumphost", address="192.168.1.8",
                                           lan_address="192.168.1.8", lan_cidr=None, user="chrome-bot", port=22,
                                           host_key=stack_raw("rack2")["jumphost"]["hostKey"])
    assert [p.name for p in s.rpis] == [f"skia-rpi2-rack2-shelf1-00{i}" for i in range(1, 5)]
    assert all(p.rejoin == 0 and p.host_key.startswith("ssh-ed25519 ") for p in s.rpis)
    assert s.k3s_version == "v1.31.6+k3s1" and s.k3s_minor == "1.31"
    assert s.k3s_install_script_url == "https://get.k3s.io"
    assert s.api_server == "https://127.0.0.1:6442"
    assert s.cluster_cidr == "10.44.0.0/14"
    assert s.services.metadata.legacy_unit == "metadata-server"


def test_rack1_shelves_expand_to_named_pis_at_consecutive_addresses():
    s = parse(stack_raw("rack1"))
    assert len(s.rpis) == 80
    assert (s.rpis[0].name, s.rpis[0].address) == ("skia-rpi2-rack1-shelf1-001", "192.168.1.100")
    assert (s.rpis[39].name, s.rpis[39].address) == ("skia-rpi2-rack1-shelf1-040", "192.168.1.139")
    assert (s.rpis[40].name, s.rpis[40].address) == ("skia-rpi2-rack1-shelf2-001", "192.168.1.150")
    assert s.api_server == "https://192.168.1.8:6443"
    assert s.services.metadata.legacy_unit == "metadata-server"


def test_custom_jumphost_and_pi_fields():
    raw = stack_raw("rack2")
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    raw["jumphost"] = {"name": "jh", "address": "rack2.skolo.example", "lanAddress": "192.168.1.8",
                       "user": "ops", "port": 2222, "hostKey": key + " root@jh"}
    raw["rpis"] = [{"name": "pi-1", "address": "192.168.1.20", "hostKey": key, "rejoin": 2},
                   {"shelf": "pi-shelf", "count": 2, "firstAddress": "192.168.1.30", "start": 5,
                    "overrides": {"pi-shelf-006": {"rejoin": 1}}}]
    raw["apiServer"] = ""
    raw["services"] = {"powerCycle": {"enabled": False}, "metadata": {"legacyUnit": ""}}
    s = parse(raw)
    assert s.jumphost.model_dump() == dict(name="jh", address="rack2.skolo.example", lan_address="192.168.1.8",
                                           lan_cidr=None, user="ops", port=2222, host_key=key)
    assert [p.model_dump() for p in s.rpis] == [
        dict(name="pi-1", address="192.168.1.20", host_key=key, rejoin=2, state="active"),
        dict(name="pi-shelf-005", address="192.168.1.30", host_key=None, rejoin=0, state="active"),
        dict(name="pi-shelf-006", address="192.168.1.31", host_key=None, rejoin=1, state="active")]
    assert s.api_server == "https://rack2.skolo.example:6443"
    assert s.services.metadata.legacy_unit == ""


def test_every_problem_is_reported_at_once_with_key_path_and_value():
    raw = stack_raw("rack2")
    raw["rpis"][3]["address"] = "abc"
    raw["rpis"][1]["name"] = "Bad_Name"
    raw["k3sVersion"] = "latest"
    assert problems(raw) == [
        "skolo:rpis[1].name: expected a node name (RFC 1123: lower-case letters, digits, '-' and '.', "
        "starting and ending with a letter or digit), got 'Bad_Name'",
        "skolo:rpis[3].address: expected an IPv4 address, got 'abc'",
        "skolo:k3sVersion: expected an exact k3s release like v1.31.6+k3s1, got 'latest'; channels and "
        "'latest' are refused so every node runs the same, reviewed k3s",
    ]


def test_error_text_says_nothing_was_changed_and_lists_each_problem():
    raw = stack_raw("rack2")
    raw["k3sVersion"] = "stable"
    with pytest.raises(ConfigError) as e:
        parse(raw)
    assert str(e.value).startswith("stack 'rack2' has 1 config problem; nothing was changed on any host:\n  skolo:k3sVersion:")


@pytest.mark.parametrize("mutate, expected", [
    (lambda r: r.pop("jumphost"), ["skolo:jumphost: missing; this key is required (see Pulumi.rack1.yaml)"]),
    (lambda r: r.pop("rpis"), ["skolo:rpis: missing; this key is required (see Pulumi.rack1.yaml)"]),
    (lambda r: r.update(jumphost="192.168.1.8"),
     ["skolo:jumphost: expected an object with keys name, address, lanAddress, lanCidr, user, port, hostKey, "
      "got a string '192.168.1.8'"]),
    (lambda r: r["jumphost"].pop("name"), ["skolo:jumphost.name: missing; this key is required"]),
    (lambda r: r["jumphost"].update(adress="x"), ["skolo:jumphost.adress: unknown key (did you mean address?)"]),
    (lambda r: r["jumphost"].update(port="22"), ["skolo:jumphost.port: expected a TCP port from 1 to 65535, got '22'"]),
    (lambda r: r["jumphost"].update(address="rack2"),
     ["skolo:jumphost.lanAddress: missing; required when skolo:jumphost.address is a host name ('rack2'): "
      "the Pis join the API server at this IPv4 address"]),
    (lambda r: r["jumphost"].update(hostKey="AAAA"),
     ["skolo:jumphost.hostKey: expected an ed25519 or ECDSA host key in authorized_keys format ('ssh-ed25519 "
      "AAAA...'), got 'AAAA'; read it with: ssh-keyscan -t ed25519 HOST"]),
    (lambda r: r["rpis"][0].update(hostKey="ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7" + "x" * 40),
     ["skolo:rpis[0].hostKey: 'ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx... is an "
      "ssh-rsa key: pulumi-command offers a host only the type of the key pinned for it, and for RSA that is SHA-1 "
      "ssh-rsa, which OpenSSH 8.8 and later refuse (\"no matching host key type found\"), so every step to this "
      "host would fail; pin its ed25519 key instead: ssh-keyscan -t ed25519 HOST, or rackctl hostkeys"]),
    (lambda r: r.update(rpis={"name": "x"}),
     ["skolo:rpis: expected a list of {name, address} or {shelf, count, firstAddress} entries, got an object "
      '{"name": "x"}']),
    (lambda r: r["rpis"][2].update(address="192.168.1.101"),
     ["skolo:rpis[2].address: address '192.168.1.101' is already used by skolo:rpis[0].address; "
      "every Pi needs its own address"]),
    (lambda r: r["rpis"][2].update(name="skia-rpi2-rack2-shelf1-001"),
     ["skolo:rpis[2].name: name 'skia-rpi2-rack2-shelf1-001' is already used by skolo:rpis[0].name; "
      "every Pi needs its own name"]),
    (lambda r: r["rpis"][0].update(rejoin=-1), ["skolo:rpis[0].rejoin: expected a whole number of at least 0, got -1"]),
    (lambda r: r.update(upgrade={"maxUnavailable": 0}),
     ["skolo:upgrade.maxUnavailable: expected a whole number from 1 to 50, got 0"]),
    (lambda r: r.update(upgrade={"maxUnavailable": 400}),
     ["skolo:upgrade.maxUnavailable: expected a whole number from 1 to 50, got 400"]),
    (lambda r: r["rpis"].append({"shelf": "s", "count": 300, "firstAddress": "192.168.1.200"}),
     ["skolo:rpis[4].count: 300 Pis starting at 192.168.1.200 run past the end of its /24; "
      "split the shelf or lower the count"]),
    (lambda r: r["rpis"].append({"shelf": "s", "count": 2, "firstAddress": "192.168.1.104"}),
     ["skolo:rpis[4].firstAddress (s-001): address '192.168.1.104' is already used by skolo:rpis[3].address; "
      "every Pi needs its own address"]),
    (lambda r: r["rpis"].append({"shelf": "s", "count": 2, "firstAddress": "192.168.1.50",
                                 "overrides": {"s-009": {"rejoin": 1}}}),
     ["skolo:rpis[4].overrides.s-009: not a Pi of this shelf (it has s-001 .. s-002)"]),
    (lambda r: r["rpis"].append({"name": "skolo-rack2-jumphost", "address": "192.168.1.9"}),
     ["skolo:rpis: skolo-rack2-jumphost has the same name as skolo:jumphost"]),
    (lambda r: r.update(k3sVersion="v1.31"),
     ["skolo:k3sVersion: expected an exact k3s release like v1.31.6+k3s1, got 'v1.31'; channels and 'latest' "
      "are refused so every node runs the same, reviewed k3s"]),
    (lambda r: r.update(apiServer="http://127.0.0.1:6442"),
     ["skolo:apiServer: expected a https URL, got 'http://127.0.0.1:6442'"]),
    (lambda r: r.update(k3sInstallScriptUrl="get.k3s.io"),
     ["skolo:k3sInstallScriptUrl: expected a https or http URL, got 'get.k3s.io'"]),
    (lambda r: r.update(clusterCidr="10.42.0.0/24"),
     ["skolo:clusterCidr: 10.42.0.0/24 holds 1 node /24s but the rack has 5 nodes; use a larger network such "
      "as 10.44.0.0/14 (1024 nodes)"]),
    (lambda r: r.update(clusterCidr="10.40.0.0/14"),
     ["skolo:clusterCidr: 10.40.0.0/14 overlaps k3s's service network 10.43.0.0/16; use 10.44.0.0/14"]),
    (lambda r: r.update(clusterCidr="192.168.0.0/16"),
     ["skolo:clusterCidr: 192.168.0.0/16 contains the jumphost's LAN address 192.168.1.8; pick a network the "
      "rack LAN does not use"]),
    (lambda r: r.update(clusterCidr="nope"), ["skolo:clusterCidr: expected an IPv4 network like 10.44.0.0/14, got 'nope'"]),
    (lambda r: r["services"].update(metadata={"legacyUnit": "rm -rf /"}),
     ["skolo:services.metadata.legacyUnit: expected a systemd unit name like metadata-server, or '' for none, "
      "got 'rm -rf /'"]),
    (lambda r: r.update(legacyMetadataUnit="metadata-server"),
     ["skolo:legacyMetadataUnit: moved to skolo:services.metadata.legacyUnit (README: config)"]),
    (lambda r: r.update(k3sversion="v1.31.6+k3s1"), ["skolo:k3sversion: unknown key (did you mean skolo:k3sVersion?)"]),
    # Dangerous values, refused before any host is touched.
    (lambda r: r["jumphost"].update(address="../../x"),
     ["skolo:jumphost.address: expected an IPv4 address or a DNS name, got '../../x'"]),
    (lambda r: r["rpis"][0].update(address="8.8.8.8"),
     ["skolo:rpis[0].address: 8.8.8.8 is a public address; Pis live on the rack's private LAN (192.168.1.0/24)"]),
    (lambda r: r["rpis"][0].update(address="10.0.0.5"),
     ["skolo:rpis[0].address: 10.0.0.5 is outside the rack LAN 192.168.1.0/24 (skolo:jumphost.lanCidr)"]),
    (lambda r: r["rpis"][0].update(address="192.168.1.255"),
     ["skolo:rpis[0].address: 192.168.1.255 is the broadcast address of the rack LAN 192.168.1.0/24"]),
    (lambda r: r["rpis"][0].update(address="192.168.1.0"),
     ["skolo:rpis[0].address: 192.168.1.0 is the network address of the rack LAN 192.168.1.0/24"]),
    (lambda r: r["rpis"].append({"shelf": "s", "count": 3, "firstAddress": "192.168.2.10"}),
     ["skolo:rpis[4].firstAddress (s-001): 192.168.2.10 is outside the rack LAN 192.168.1.0/24 "
      "(skolo:jumphost.lanCidr)"]),
    (lambda r: r["jumphost"].update(lanCidr="10.0.0.0/8"),
     ["skolo:jumphost.lanCidr: 10.0.0.0/8 does not contain the jumphost's LAN address 192.168.1.8"]),
    (lambda r: r["jumphost"].update(address="8.8.4.4"),
     ["skolo:jumphost.lanAddress: the rack LAN 8.8.4.0/24 is not a private network (10.0.0.0/8, 172.16.0.0/12 or "
      "192.168.0.0/16); the NFS export, the metadata server and every Pi are open to it"]),
    (lambda r: r["jumphost"].update(lanCidr="192.168.0.0/15"),
     ["skolo:jumphost.lanCidr: the rack LAN 192.168.0.0/15 is not a private network (10.0.0.0/8, 172.16.0.0/12 or "
      "192.168.0.0/16); the NFS export, the metadata server and every Pi are open to it"]),
    (lambda r: r["jumphost"].update(address="10.9.0.8", lanCidr="10.0.0.0/12"),
     ["skolo:jumphost.lanCidr: the rack LAN 10.0.0.0/12 is wider than a rack (at most a /16, 65534 addresses); the "
      "NFS export, the metadata server and every Pi are open to all of it"]),
    (lambda r: r["services"]["routerBackup"]["devices"][0].update(address="192.168.2.1"),
     ["skolo:services.routerBackup.devices[0].address: 192.168.2.1 is outside the rack LAN 192.168.1.0/24 "
      "(skolo:jumphost.lanCidr); the rack reaches only its own devices, with their keys and passwords"]),
    (lambda r: r["services"]["powerCycle"]["mpower"][0].update(address="10.1.1.1"),
     ["skolo:services.powerCycle.mpower[0].address: 10.1.1.1 is outside the rack LAN 192.168.1.0/24 "
      "(skolo:jumphost.lanCidr); the rack reaches only its own devices, with their keys and passwords"]),
    (lambda r: r["rpis"].append({"shelf": "skia-rpi2-" + "x" * 50, "count": 1, "firstAddress": "192.168.1.50"}),
     ["skolo:rpis[4].shelf (skia-rpi2-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx-001): "
      "'skia-rpi2-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx-001' has 64 characters; a node name is also "
      "the Pi's hostname, which may have at most 63"]),
    (lambda r: r["services"].update(nfs={"exportPath": "/"}),
     ["skolo:services.nfs.exportPath: / is a system directory; export the Pis' root image directory (like "
      "/opt/prod/root), never the jumphost's own files"]),
    (lambda r: r["services"].update(nfs={"exportPath": "/etc/rancher"}),
     ["skolo:services.nfs.exportPath: /etc/rancher is a system directory; export the Pis' root image directory (like "
      "/opt/prod/root), never the jumphost's own files"]),
    (lambda r: r["services"].update(nfs={"subnet": "192.168.0.0/16"}),
     ["skolo:services.nfs.subnet: 192.168.0.0/16 reaches beyond the rack LAN 192.168.1.0/24 "
      "(skolo:jumphost.lanCidr); the Pis' root image would be exported outside the rack"]),
    (lambda r: r["services"].update(nfs={"subnet": "10.1.2.0/24"}),
     ["skolo:services.nfs.subnet: 10.1.2.0/24 reaches beyond the rack LAN 192.168.1.0/24 "
      "(skolo:jumphost.lanCidr); the Pis' root image would be exported outside the rack"]),
    (lambda r: r["services"].update(datastoreBackup={"destination": "/"}),
     ["skolo:services.datastoreBackup.destination: / is a system directory; use a directory of its own like "
      "/var/backups/skolo-k3s"]),
    (lambda r: r["services"].update(datastoreBackup={"destination": "/opt/prod/root/k3s"}),
     ["skolo:services.datastoreBackup.destination: /opt/prod/root/k3s is inside the NFS export /opt/prod/root, which "
      "the whole rack can read; the backups hold the cluster token"]),
    (lambda r: r.update(k3sInstallScriptUrl="http://mirror.rack2.lan/install.sh"),
     ["skolo:k3sInstallScriptUrl: 'http://mirror.rack2.lan/install.sh' is fetched without TLS, so anything on the way "
      "could hand every host another installer to run as root; use https, or pin the script with "
      "skolo:k3sInstallScriptSha256 (sha256sum of the script)"]),
    (lambda r: r.update(k3sInstallScriptSha256="abc"),
     ["skolo:k3sInstallScriptSha256: expected a SHA-256 checksum (64 hex digits), or '' for none, got 'abc'"]),
    (lambda r: r["services"].update(routerBackup={"devices": [{"name": "r", "address": "192.168.1.1",
                                                               "kind": "edgerouter", "user": "-oProxyCommand=x"}]}),
     ["skolo:services.routerBackup.devices[0].user: expected a user name (letters, digits, '_', '.' and '-', not "
      "starting with '-'), got '-oProxyCommand=x'"]),
    (lambda r: r["services"].update(routerBackup={"devices": [{"name": "r", "address": "192.168.1.1",
                                                               "kind": "edgerouter", "user": "ad min"}]}),
     ["skolo:services.routerBackup.devices[0].user: expected a user name (letters, digits, '_', '.' and '-', not "
      "starting with '-'), got 'ad min'"]),
    (lambda r: r["services"].update(routerBackup={"devices": [{"name": "r", "address": "192.168.1.1",
                                                               "kind": "edgerouter", "user": "admin",
                                                               "path": "/config/$(reboot)"}]}),
     ["skolo:services.routerBackup.devices[0].path: expected an absolute path of letters, digits and ._/@+- without "
      "'..', got '/config/$(reboot)'"]),
    (lambda r: r["services"].update(metadata={"legacyUnit": "-metadata"}),
     ["skolo:services.metadata.legacyUnit: expected a systemd unit name like metadata-server, or '' for none, "
      "got '-metadata'"]),
])
def test_exact_error_messages(mutate, expected):
    raw = stack_raw("rack2")
    mutate(raw)
    assert problems(raw) == expected


def test_missing_secrets_say_how_to_set_them():
    cluster_only = {k: v for k, v in PLANTED.items() if k not in ("k3sToken", "sshPrivateKey")}
    assert problems(stack_raw("rack2"), secrets=cluster_only) == [
        "skolo:k3sToken: missing; set it with: pulumi config set --secret skolo:k3sToken (README: taking a rack live)",
        "skolo:sshPrivateKey: missing; set it with: pulumi config set --secret skolo:sshPrivateKey "
        "(README: taking a rack live)",
    ]


def test_plaintext_secret_is_refused_without_echoing_it():
    lines = problems(stack_raw("rack2"), plaintext=frozenset({"k3sToken"}))
    assert lines == ["skolo:k3sToken: is stored in plain text in the stack file; remove it and set it with: "
                     "pulumi config set --secret skolo:k3sToken (README: taking a rack live)"]
    assert PLANTED["k3sToken"] not in "\n".join(lines)


def test_malformed_secrets_are_described_but_never_shown():
    bad = dict(PLANTED, k3sToken="two words-SECRETVALUE", sshPrivateKey="ssh-ed25519 AAAA-SECRETVALUE")
    lines = problems(stack_raw("rack2"), secrets=bad)
    assert lines == [
        "skolo:k3sToken: expected a single-line token without spaces (value not shown); set it with: "
        "pulumi config set --secret skolo:k3sToken (README: taking a rack live)",
        "skolo:sshPrivateKey: expected an unencrypted private key in PEM/OpenSSH form ('-----BEGIN ... "
        "PRIVATE KEY-----') (value not shown); set it with: pulumi config set --secret skolo:sshPrivateKey "
        "(README: taking a rack live)",
    ]
    assert "SECRETVALUE" not in "\n".join(lines)


def test_secret_never_shows_in_repr_or_str():
    s = parse(stack_raw("rack2"))
    for text in (repr(s), str(s), repr(s.k3s_token), f"{s.ssh_private_key}"):
        assert PLANTED["k3sToken"] not in text and "planted-ssh-key-body" not in text
    assert s.k3s_token.reveal() == PLANTED["k3sToken"]


def test_pulumi_yaml_is_generated_from_the_models():
    """One source of truth: the file is what `rackctl schema --write` makes of the models."""
    from rackctl import schema

    assert (ROOT / "Pulumi.yaml").read_text() == schema.render(ROOT / "Pulumi.yaml"), \
        "Pulumi.yaml differs from components/settings: run .venv/bin/python -m rackctl schema --write"


def test_every_service_option_is_documented_from_the_models():
    """docs/services.md is what the settings models and the components' Args say: every key of
    every service, its type in the words of its check, its default and its meaning."""
    from components.settings.services import Services
    from rackctl import options_doc

    text = (ROOT / "docs" / "services.md").read_text()
    assert text == options_doc.services_markdown(), \
        "docs/services.md differs from components/settings: run .venv/bin/python -m rackctl schema --write"
    for service, field in Services.model_fields.items():
        model = field.annotation
        section = text.split(f"## {field.alias}\n", 1)[1].split("\n## ", 1)[0]
        documented = {line.split("`")[1] for line in section.splitlines() if line.startswith("| `")}
        assert documented == set(model.yaml_keys()) - {"topic"}, service
    assert "| `schedule` | a cron schedule of five fields like '0 3 * * *' (minute 0-59" in text
    assert "| `subnet` | an IPv4 network like 192.168.1.0/24 | the rack LAN |" in text
    assert "| `retention` | a duration like 15s, 30d | `15d` (component default) | How long samples are kept. |" in text


def test_pulumi_yaml_declares_what_the_cli_can_enforce_and_names_every_other_secret():
    """The CLI requires every declared key without a default in every stack and refuses a secret
    with a default: so only the secrets every stack needs are declared; the rest are listed."""
    text = (ROOT / "Pulumi.yaml").read_text()
    declared = {k.split(":", 1)[1]: d for k, d in yaml.safe_load(text)["config"].items()}
    always = [s.key for s in settings.SECRETS if s.when == "always"]
    assert always == ["k3sToken", "sshPrivateKey"]
    assert list(declared) == list(settings.PLAIN_KEYS) + always
    for key, decl in declared.items():
        assert decl["type"] in ("string", "integer", "boolean", "array", "object") and decl["description"], key
        assert ("default" in decl) == (key not in always and key not in ("jumphost", "rpis", "k3sVersion")), key
        if key in always:
            assert decl["secret"] is True, key
    for spec in settings.SECRETS:
        if spec.when != "always":
            assert f"#   skolo:{spec.key} ({spec.when}): " in text, spec.key


def test_example_stacks_commit_no_secret_values():
    for stack in ("rack1", "rack2"):
        doc = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
        assert not set(doc["config"]) & {f"skolo:{k}" for k in settings.SECRET_KEYS}


@pytest.mark.parametrize("spec", [s for s in settings.SECRETS if s.when.startswith("while ") and s.when.endswith(
    " is enabled")], ids=lambda s: s.key)
def test_a_service_secret_is_needed_exactly_while_its_service_is_enabled(spec):
    service = spec.when.split()[1]
    without = {k: v for k, v in PLANTED.items() if k != spec.key}
    assert problems(stack_raw("rack2"), secrets=without) == [
        f"skolo:{spec.key}: missing; set it with: pulumi config set --secret skolo:{spec.key} "
        f"(README: taking a rack live)"]
    raw = stack_raw("rack2")
    raw["services"][service] = {"enabled": False}
    assert not parse(raw, secrets=without).enabled(service)


def test_a_datastore_backup_to_gcs_needs_its_key_and_one_to_the_jumphost_does_not():
    raw = stack_raw("rack2")
    raw["services"]["datastoreBackup"] = {"destination": "gs://skia-backups/k3s/rack2"}
    without = {k: v for k, v in PLANTED.items() if k != "datastoreBackupServiceAccountKey"}
    assert problems(raw, secrets=without) == [
        "skolo:datastoreBackupServiceAccountKey: missing; set it with: pulumi config set --secret "
        "skolo:datastoreBackupServiceAccountKey (README: taking a rack live)"]
    raw["services"]["datastoreBackup"] = {"destination": "/var/backups/k3s"}
    assert parse(raw, secrets=without).services.datastore_backup.options() == {"destination": "/var/backups/k3s"}


def test_pi_state_in_explicit_entries_and_shelf_overrides():
    raw = stack_raw("rack2")
    raw["rpis"][1]["state"] = "drained"
    raw["rpis"].append({"shelf": "s", "count": 2, "firstAddress": "192.168.1.50",
                        "overrides": {"s-002": {"state": "cordoned"}}})
    raw["services"] = {"powerCycle": {"enabled": False}}
    s = parse(raw)
    assert [(p.name, p.state) for p in s.rpis] == [
        ("skia-rpi2-rack2-shelf1-001", "active"), ("skia-rpi2-rack2-shelf1-002", "drained"),
        ("skia-rpi2-rack2-shelf1-003", "active"), ("skia-rpi2-rack2-shelf1-004", "active"),
        ("s-001", "active"), ("s-002", "cordoned")]
    raw["rpis"][0]["state"] = "offline"
    assert problems(raw) == ["skolo:rpis[0].state: expected one of active, cordoned, drained, got 'offline'"]


def test_guardrails_settings():
    raw = stack_raw("rack2")
    raw["guardrails"] = {"allowedRegistries": ["gcr.io/skia-public/", "us-docker.pkg.dev/skia/"],
                         "rootNamespaces": ["debug"]}
    g = parse(raw).guardrails
    assert g.enabled and g.options() == {"registries": ("gcr.io/skia-public/", "us-docker.pkg.dev/skia/"),
                                       "root_namespaces": ("debug",)}
    raw["guardrails"] = {"allowedRegistries": ["gcr.io/skia-public"], "hostPaths": ["etc"]}
    assert problems(raw) == [
        "skolo:guardrails.allowedRegistries[0]: expected a registry prefix ending in '/', like gcr.io/skia-public/, "
        "got 'gcr.io/skia-public'",
        "skolo:guardrails.hostPaths[0]: expected an absolute path of letters, digits and ._/@+- without '..', "
        "got 'etc'"]


def test_every_default_image_is_pinned_as_a_stack_value_must_be():
    """Defaults skip validation; hold them to the same rule, and upstream ones to a digest."""
    from components.settings.services import Images

    defaults = {k: v for k, v in Images().model_dump(by_alias=True).items() if v}
    assert Images.model_validate(defaults).model_dump(by_alias=True) == {**Images().model_dump(by_alias=True)}
    digests = {k for k, v in defaults.items() if "@sha256:" in v}
    assert digests == {"prometheus", "nodeExporter", "kubeStateMetrics", "nfs"}
