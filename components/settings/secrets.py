"""The stack's secrets: one table of every secret key, when it is needed, and what a good value
looks like. Values are wrapped in `Secret` as soon as they are read; no message quotes one.

Pulumi.yaml declares only the secrets every stack needs: the Pulumi CLI requires every declared
key without a default in every stack, and refuses a default on a secret. The others are required
here, while what uses them is enabled.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Callable, Mapping, NamedTuple, Optional

from pydantic import SecretStr

from components.settings.fields import NAMESPACE

if TYPE_CHECKING:
    import pulumi

    from components.settings.models import Settings


class Secret(SecretStr):
    """A secret config value: str/repr show '**********'; `reveal()` or `output()` give it."""

    reveal = SecretStr.get_secret_value

    def output(self) -> "pulumi.Output[str]":
        """The value as a secret Output, the only form in which it should reach a resource."""
        import pulumi

        return pulumi.Output.secret(self.get_secret_value())


def _pem(value: str) -> bool:
    text = value.strip()
    return text.startswith("-----BEGIN ") and "PRIVATE KEY-----" in text.splitlines()[0] and text.endswith(
        "PRIVATE KEY-----")


def _service_account(value: str) -> bool:
    try:
        return json.loads(value).get("type") == "service_account"
    except (ValueError, AttributeError):
        return False


# What a good value of each form looks like, and a test for it.
FORMS: Mapping[str, tuple[str, Callable[[str], bool]]] = {
    "token": ("a single-line token without spaces", lambda v: bool(v.split()) and len(v.split()) == 1),
    "pem": ("an unencrypted private key in PEM/OpenSSH form ('-----BEGIN ... PRIVATE KEY-----')", _pem),
    "json": ('a service-account JSON key ({"type": "service_account", ...})', _service_account),
    "line": ("a single line", lambda v: "\n" not in v.strip()),
}


class SecretKey(NamedTuple):
    key: str
    form: str  # a key of FORMS
    needed: Callable[["Settings"], bool]  # whether a stack must set it
    when: str  # the same, in words (README, Pulumi.yaml)
    description: str


def _switches(s: "Settings") -> bool:
    """Whether anything logs into an EdgeSwitch's CLI."""
    cycle, backup = s.services.power_cycle, s.services.router_backup
    return bool(cycle.enabled and cycle.edgeswitch) or (
        backup.enabled and any(d.kind == "edgeswitch" for d in backup.devices or ()))


def _while(service: str, form: str) -> tuple:
    return form, lambda s: s.enabled(service), f"while {service} is enabled"


def _gs_backup(s: "Settings") -> bool:
    return s.enabled("datastoreBackup") and s.services.datastore_backup.destination.startswith("gs://")


SECRETS = tuple(SecretKey(*row) for row in [
    ("k3sToken", "token", lambda s: True, "always",
     "Cluster join token, shared by all racks so jumphosts are hot-swappable (berglas etc/k3s-node-token)."),
    ("sshPrivateKey", "pem", lambda s: True, "always", "Private key of the SSH user on the jumphost and every Pi."),
    ("metadataServiceAccountKey", *_while("metadata", "json"),
     "JSON key of the service account whose tokens the metadata server hands to the bots."),
    ("alertToPubsubServiceAccountKey", *_while("alertToPubsub", "json"),
     "JSON key with roles/pubsub.editor for alert-to-pubsub."),
    ("routerBackupServiceAccountKey", *_while("routerBackup", "json"), "JSON key allowed to write the backup bucket."),
    ("routerBackupSshKey", *_while("routerBackup", "pem"),
     "SSH private key router-backup uses to copy configs off the router and switches."),
    ("powerCyclePassword", "line", _switches, "while powerCycle or routerBackup has an EdgeSwitch",
     "Password of the EdgeSwitches' CLI (Skia's POWERCYCLE_PASSWORD): power-cycle turns PoE ports off and on with it, "
     "router-backup reads the switches' configs with it."),
    ("powerCycleSshKey", *_while("powerCycle", "pem"),
     "SSH private key of the power cycler: mPower strips and, for soft cycles, the Pis' user accept it."),
    ("powerCycleServiceAccountKey", *_while("powerCycle", "json"),
     "JSON key of podwatcher's service account (logging.logWriter, datastore.user)."),
    ("swarmingServiceAccountKey", *_while("swarming", "json"),
     "JSON key of the swarming bots' service account (logging.logWriter, pubsub.admin, datastore.user)."),
    ("adbKey", *_while("swarming", "pem"), "adb private key (adbkey) the bots use to talk to the phones."),
    ("adbPublicKey", *_while("swarming", "line"), "adb public key (adbkey.pub), which adb reads beside adbkey."),
    ("datastoreBackupServiceAccountKey", "json", _gs_backup, "while datastoreBackup writes to gs://",
     "JSON key allowed to write the k3s datastore backups."),
    ("imagePullKey", "json", lambda s: False, "optional",
     "JSON key of a service account that can pull from gcr.io; when set, every namespace gets a pull secret."),
])
SECRET_KEYS = tuple(s.key for s in SECRETS)
OPTIONAL = tuple(s.key for s in SECRETS if s.when == "optional")


def check(settings: Optional["Settings"], values: Mapping[str, Optional[str]],
          plaintext: frozenset[str]) -> tuple[list[str], dict[str, Secret]]:
    """Problems with the secrets, and the good ones wrapped. When the rest of the config is
    broken (`settings` None), only the ones every stack needs are required."""
    problems, good = [], {}
    for spec in SECRETS:
        path = f"{NAMESPACE}:{spec.key}"
        fix = f"set it with: pulumi config set --secret {path} (README: taking a rack live)"
        raw = values.get(spec.key)
        if raw in (None, ""):
            if spec.needed(settings) if settings is not None else spec.when == "always":
                problems.append(f"{path}: missing; {fix}")
        elif spec.key in plaintext:
            problems.append(f"{path}: is stored in plain text in the stack file; remove it and {fix}")
        elif not FORMS[spec.form][1](raw):
            problems.append(f"{path}: expected {FORMS[spec.form][0]} (value not shown); {fix}")
        else:
            good[spec.key] = Secret(raw)
    return problems, good
