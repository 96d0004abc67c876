"""The one place that knows the stack's config keys.

It turns the raw `skolo:*` values of one stack into frozen, validated settings before any
resource is declared. Every problem is collected and reported at once, each line naming the
full key path and the bad value, with the fix where there is one. Secret values are wrapped
in `Secret` as soon as they are read and are never echoed, not even in errors.

What this module does not own: defaults for top-level keys live in Pulumi.yaml (the Pulumi
CLI applies them, and rackctl applies the same file when rendering), and nothing here touches
a host or declares a resource.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

import pulumi

NAMESPACE = "skolo"

# Top-level keys, exactly as Pulumi.yaml declares them. tests/test_settings.py checks the two
# agree, so a key cannot be added to one and forgotten in the other.
# Secret key -> the service that needs it (None: the cluster itself). A service's secrets are
# required only while the service is enabled.
SECRET_OWNERS = {
    "k3sToken": None,
    "sshPrivateKey": None,
    "metadataServiceAccountKey": "metadata",
    "alertToPubsubServiceAccountKey": "alertToPubsub",
    "routerBackupServiceAccountKey": "routerBackup",
    "routerBackupSshKey": "routerBackup",
    "powerCyclePassword": "powerCycle",
    "swarmingServiceAccountKey": "swarming",
    "adbKey": "swarming",
    "datastoreBackupServiceAccountKey": "datastoreBackup",
    "imagePullKey": None,
}
OPTIONAL_SECRETS = ("imagePullKey",)
SECRET_KEYS = tuple(SECRET_OWNERS)
PLAIN_KEYS = (
    "jumphost",
    "rpis",
    "k3sVersion",
    "k3sInstallScriptUrl",
    "apiServer",
    "clusterCidr",
    "legacyMetadataUnit",
    "images",
    "services",
    "guardrails",
)
ALL_KEYS = PLAIN_KEYS + SECRET_KEYS

# k3s's own default service CIDR; the pod CIDR must not overlap it.
SERVICE_CIDR = ipaddress.ip_network("10.43.0.0/16")
# k3s gives every node a /24 out of the cluster CIDR.
NODE_CIDR_PREFIX = 24

_K3S_VERSION = re.compile(r"^v(\d+)\.(\d+)\.(\d+)\+k3s(\d+)$")
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
_DNS_SUBDOMAIN = re.compile(rf"^{_DNS_LABEL}(\.{_DNS_LABEL})*$")
_UNIT_NAME = re.compile(r"^[A-Za-z0-9:_.@\\-]+$")
_HOST_KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
)


class ConfigError(pulumi.RunError):
    """Every problem found in one stack's config, one per line. Printed without a traceback."""

    def __init__(self, stack: str, problems: list[str]):
        self.problems = problems
        noun = "problem" if len(problems) == 1 else "problems"
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(
            f"stack {stack!r} has {len(problems)} config {noun}; nothing was changed on any host:\n{lines}"
        )


class Secret:
    """A secret config value. Its text is only reachable through `reveal()`, never by str/repr."""

    __slots__ = ("_value", "key")

    def __init__(self, key: str, value: str):
        self.key = key
        self._value = value

    def reveal(self) -> str:
        return self._value

    def output(self) -> pulumi.Output[str]:
        """The value as a secret Output, the only form in which it should reach a resource."""
        return pulumi.Output.secret(self._value)

    def __repr__(self) -> str:
        return f"Secret({self.key}, <redacted>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other.key == self.key and other._value == self._value

    def __hash__(self) -> int:
        return hash(self.key)


@dataclass(frozen=True, kw_only=True)
class Jumphost:
    """The rack's jumphost: the k3s server and the SSH bastion for every Pi."""

    name: str
    """Kubernetes node name of the jumphost."""
    address: str
    """How the operator's machine reaches the jumphost over SSH (IPv4 or host name)."""
    lan_address: str
    """The jumphost's IPv4 on the rack LAN: where Pis reach the API server."""
    user: str = "chrome-bot"
    """SSH user on the jumphost and on every Pi."""
    port: int = 22
    """SSH port of the jumphost."""
    host_key: Optional[str] = None
    """Pinned SSH host key (authorized_keys format); None means the key is not checked."""


@dataclass(frozen=True, kw_only=True)
class Rpi:
    """One Raspberry Pi: a k3s agent and, later, one swarming bot."""

    name: str
    """k3s node name, hostname and swarming bot id (skia-rpi2-rack1-shelf1-001)."""
    address: str
    """IPv4 on the rack LAN, reached through the jumphost."""
    host_key: Optional[str] = None
    """Pinned SSH host key (authorized_keys format); None means the key is not checked."""
    rejoin: int = 0
    """Bump to re-join a re-flashed Pi: its Node is deleted and k3s installed afresh."""
    state: str = "active"
    """active; cordoned (no new pods); drained (pods evicted, unschedulable)."""


PI_STATES = ("active", "cordoned", "drained")


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything the program needs to know about one rack, validated."""

    rack: str
    """The stack name, used as the cluster name (rack1, rack2, ...)."""
    jumphost: Jumphost
    rpis: tuple[Rpi, ...]
    k3s_version: str
    """Exact k3s release, e.g. v1.31.6+k3s1."""
    install_script_url: str
    """Where the k3s install script is fetched from (a mirror on an air-gapped rack)."""
    api_server: str
    """URL the Kubernetes provider talks to."""
    cluster_cidr: str
    """Pod CIDR; fixed when the server is first created."""
    legacy_metadata_unit: Optional[str]
    """systemd unit of the legacy metadata server to stop at cut-over; None to skip."""
    k3s_token: Secret = field(repr=False)
    ssh_private_key: Secret = field(repr=False)
    images: Mapping[str, str] = field(default_factory=dict)
    """Image reference per image key (DEFAULT_IMAGES merged with skolo:images)."""
    services: Mapping[str, "Service"] = field(default_factory=dict)
    """Per service: enabled, and the options the stack set (component Args hold the defaults)."""
    secrets: Mapping[str, Secret] = field(default_factory=dict, repr=False)
    """Service secrets that are set, by config key."""
    guardrails: "Service" = None
    """Admission policies: enabled, and the allowlist additions the stack set."""

    def enabled(self, service: str) -> bool:
        return self.services[service].enabled

    @property
    def k3s_minor(self) -> str:
        """'1.31' for v1.31.6+k3s1: the Kubernetes schema version objects are checked against."""
        major, minor = _K3S_VERSION.match(self.k3s_version).groups()[:2]
        return f"{major}.{minor}"

    @property
    def node_names(self) -> tuple[str, ...]:
        return (self.jumphost.name,) + tuple(p.name for p in self.rpis)


@dataclass(frozen=True)
class Service:
    enabled: bool
    options: Mapping[str, Any]
    """Component Args field -> value, only for what the stack set."""


class _Problems:
    """Collects problems; `check` helpers return None after recording one."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.lines.append(f"{path}: {message}")


def _show(value: Any) -> str:
    """A bad value as the operator wrote it, short enough for one line."""
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            int: "a number", float: "a number", type(None): "nothing"}.get(type(value), type(value).__name__)


def _string(p: _Problems, path: str, value: Any) -> Optional[str]:
    if not isinstance(value, str) or not value.strip():
        p.add(path, f"expected a non-empty string, got {_type_name(value)} {_show(value)}")
        return None
    return value.strip()


def _ipv4(p: _Problems, path: str, value: Any) -> Optional[str]:
    if isinstance(value, str):
        try:
            return str(ipaddress.IPv4Address(value.strip()))
        except ipaddress.AddressValueError:
            pass
    p.add(path, f"expected an IPv4 address, got {_show(value)}")
    return None


def _node_name(p: _Problems, path: str, value: Any) -> Optional[str]:
    if isinstance(value, str) and len(value) <= 253 and _DNS_SUBDOMAIN.match(value):
        return value
    p.add(path, f"expected a node name (RFC 1123: lower-case letters, digits, '-' and '.', "
                f"starting and ending with a letter or digit), got {_show(value)}")
    return None


def _port(p: _Problems, path: str, value: Any) -> Optional[int]:
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535:
        return value
    p.add(path, f"expected a TCP port from 1 to 65535, got {_show(value)}")
    return None


def _count(p: _Problems, path: str, value: Any, minimum: int) -> Optional[int]:
    if isinstance(value, int) and not isinstance(value, bool) and value >= minimum:
        return value
    p.add(path, f"expected a whole number of at least {minimum}, got {_show(value)}")
    return None


def _host_key(p: _Problems, path: str, value: Any) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, str):
        parts = value.split()
        if len(parts) >= 2 and parts[0] in _HOST_KEY_TYPES:
            try:
                base64.b64decode(parts[1], validate=True)
                return f"{parts[0]} {parts[1]}"
            except binascii.Error:
                pass
    p.add(path, f"expected a host key in authorized_keys format ('ssh-ed25519 AAAA...'), got "
                f"{_show(value)}; read it with: ssh-keyscan -t ed25519 HOST")
    return None


def _object(p: _Problems, path: str, value: Any, known: tuple[str, ...],
            required: tuple[str, ...]) -> Optional[dict]:
    if not isinstance(value, dict):
        p.add(path, f"expected an object with keys {', '.join(known)}, got {_type_name(value)} {_show(value)}")
        return None
    for key in value:
        if key not in known:
            hint = difflib.get_close_matches(key, known, n=1)
            fix = f" (did you mean {hint[0]}?)" if hint else f"; known keys: {', '.join(known)}"
            p.add(f"{path}.{key}", f"unknown key{fix}")
    for key in required:
        if key not in value:
            p.add(f"{path}.{key}", "missing; this key is required")
    return value


def _jumphost(p: _Problems, raw: Any) -> Optional[Jumphost]:
    path = f"{NAMESPACE}:jumphost"
    obj = _object(p, path, raw, ("name", "address", "lanAddress", "user", "port", "hostKey"),
                  ("name", "address"))
    if obj is None:
        return None
    name = _node_name(p, f"{path}.name", obj["name"]) if "name" in obj else None
    address = _string(p, f"{path}.address", obj["address"]) if "address" in obj else None
    if "lanAddress" in obj:
        lan = _ipv4(p, f"{path}.lanAddress", obj["lanAddress"])
    elif address is not None:
        try:
            lan = str(ipaddress.IPv4Address(address))
        except ipaddress.AddressValueError:
            lan = None
            p.add(f"{path}.lanAddress", f"missing; required when {path}.address is a host name "
                                        f"({address!r}): the Pis join the API server at this IPv4 address")
    else:
        lan = None
    user = _string(p, f"{path}.user", obj["user"]) if "user" in obj else Jumphost.user
    port = _port(p, f"{path}.port", obj["port"]) if "port" in obj else Jumphost.port
    host_key = _host_key(p, f"{path}.hostKey", obj.get("hostKey"))
    if None in (name, address, lan, user, port) or ("hostKey" in obj and host_key is None):
        return None
    return Jumphost(name=name, address=address, lan_address=lan, user=user, port=port, host_key=host_key)


_PI_KEYS = ("name", "address", "hostKey", "rejoin", "state")
_PI_OVERRIDE_KEYS = ("hostKey", "rejoin", "state")
_SHELF_KEYS = ("shelf", "count", "firstAddress", "start", "overrides")


def _pi_fields(p: _Problems, path: str, obj: dict) -> Optional[dict]:
    """hostKey, rejoin and state, shared by explicit entries and shelf overrides."""
    host_key = _host_key(p, f"{path}.hostKey", obj.get("hostKey"))
    rejoin = _count(p, f"{path}.rejoin", obj["rejoin"], 0) if "rejoin" in obj else Rpi.rejoin
    state = obj.get("state", Rpi.state)
    if state not in PI_STATES:
        p.add(f"{path}.state", f"expected one of {', '.join(PI_STATES)}, got {_show(state)}")
        state = None
    if rejoin is None or state is None or ("hostKey" in obj and host_key is None):
        return None
    return {"host_key": host_key, "rejoin": rejoin, "state": state}


def _shelf(p: _Problems, path: str, obj: dict) -> list[tuple[str, Rpi]]:
    """`{shelf: skia-rpi2-rack1-shelf1, count: 40, firstAddress: 192.168.1.100}`."""
    prefix = _node_name(p, f"{path}.shelf", obj["shelf"]) if "shelf" in obj else None
    count = _count(p, f"{path}.count", obj["count"], 1) if "count" in obj else None
    first = _ipv4(p, f"{path}.firstAddress", obj["firstAddress"]) if "firstAddress" in obj else None
    start = _count(p, f"{path}.start", obj["start"], 0) if "start" in obj else 1
    overrides = obj.get("overrides", {})
    if not isinstance(overrides, dict):
        p.add(f"{path}.overrides", f"expected an object of node name -> {{hostKey, rejoin, state}}, got {_show(overrides)}")
        overrides = {}
    if None in (prefix, count, first, start):
        return []
    last = ipaddress.IPv4Address(first) + (count - 1) if int(ipaddress.IPv4Address(first)) + count - 1 <= 0xFFFFFFFF else None
    if last is None or ipaddress.IPv4Address(first).packed[:3] != last.packed[:3]:
        p.add(f"{path}.count", f"{count} Pis starting at {first} run past the end of its /24; "
                               f"split the shelf or lower the count")
        return []
    names = [f"{prefix}-{i:03d}" for i in range(start, start + count)]
    for name in overrides:
        if name not in names:
            p.add(f"{path}.overrides.{name}", f"not a Pi of this shelf (it has {names[0]} .. {names[-1]})")
    pis = []
    for i, name in enumerate(names):
        extra = overrides.get(name, {})
        opath = f"{path}.overrides.{name}"
        if _object(p, opath, extra, _PI_OVERRIDE_KEYS, ()) is None:
            continue
        fields = _pi_fields(p, opath, extra)
        if fields is not None:
            pis.append((f"{path}.shelf", Rpi(name=name, address=str(ipaddress.IPv4Address(first) + i), **fields)))
    return pis


def _rpis(p: _Problems, raw: Any) -> Optional[tuple[Rpi, ...]]:
    path = f"{NAMESPACE}:rpis"
    if not isinstance(raw, list):
        p.add(path, f"expected a list of {{name, address}} or {{shelf, count, firstAddress}} entries, "
                    f"got {_type_name(raw)} {_show(raw)}")
        return None
    located: list[tuple[str, Rpi]] = []
    before = len(p.lines)
    for i, entry in enumerate(raw):
        epath = f"{path}[{i}]"
        if isinstance(entry, dict) and "shelf" in entry:
            if _object(p, epath, entry, _SHELF_KEYS, ("shelf", "count", "firstAddress")) is not None:
                located.extend(_shelf(p, epath, entry))
            continue
        obj = _object(p, epath, entry, _PI_KEYS, ("name", "address"))
        if obj is None:
            continue
        name = _node_name(p, f"{epath}.name", obj["name"]) if "name" in obj else None
        address = _ipv4(p, f"{epath}.address", obj["address"]) if "address" in obj else None
        fields = _pi_fields(p, epath, obj)
        if None not in (name, address, fields):
            located.append((epath, Rpi(name=name, address=address, **fields)))
    if not _no_duplicates(p, located) or len(p.lines) > before:
        return None  # a partial list would make other checks report Pis as missing
    return tuple(pi for _, pi in located)


def _no_duplicates(p: _Problems, located: list[tuple[str, Rpi]]) -> bool:
    """Two Pis with one name or one address would fight over a Node or an SSH target."""
    ok = True
    for attr in ("name", "address"):
        seen: dict[str, str] = {}
        for path, pi in located:
            value = getattr(pi, attr)
            if path.endswith(".shelf"):
                field_name = "shelf" if attr == "name" else "firstAddress"
                where = f"{path[:-len('.shelf')]}.{field_name} ({pi.name})"
            else:
                where = f"{path}.{attr}"
            if value in seen:
                p.add(where, f"{attr} {value!r} is already used by {seen[value]}; every Pi needs its own {attr}")
                ok = False
            else:
                seen[value] = where
    return ok


def _k3s_version(p: _Problems, raw: Any) -> Optional[str]:
    path = f"{NAMESPACE}:k3sVersion"
    if isinstance(raw, str) and _K3S_VERSION.match(raw.strip()):
        return raw.strip()
    p.add(path, f"expected an exact k3s release like v1.31.6+k3s1, got {_show(raw)}; channels "
                f"and 'latest' are refused so every node runs the same, reviewed k3s")
    return None


def _url(p: _Problems, path: str, raw: Any, schemes: tuple[str, ...]) -> Optional[str]:
    from urllib.parse import urlsplit

    if isinstance(raw, str):
        parts = urlsplit(raw.strip())
        if parts.scheme in schemes and parts.hostname:
            try:
                parts.port  # noqa: B018 - raises on a bad port
                return raw.strip()
            except ValueError:
                pass
    p.add(path, f"expected a {' or '.join(schemes)} URL, got {_show(raw)}")
    return None


def _cluster_cidr(p: _Problems, raw: Any, node_count: int, lan: Optional[str]) -> Optional[str]:
    path = f"{NAMESPACE}:clusterCidr"
    try:
        net = ipaddress.IPv4Network(raw.strip() if isinstance(raw, str) else raw)
    except (ipaddress.AddressValueError, ipaddress.NetmaskValueError, ValueError, TypeError):
        p.add(path, f"expected an IPv4 network like 10.44.0.0/14, got {_show(raw)}")
        return None
    capacity = 2 ** (NODE_CIDR_PREFIX - net.prefixlen) if net.prefixlen <= NODE_CIDR_PREFIX else 0
    if capacity < node_count:
        p.add(path, f"{net} holds {capacity} node /24s but the rack has {node_count} nodes; "
                    f"use a larger network such as 10.44.0.0/14 (1024 nodes)")
        return None
    if net.overlaps(SERVICE_CIDR):
        p.add(path, f"{net} overlaps k3s's service network {SERVICE_CIDR}; use 10.44.0.0/14")
        return None
    if lan and ipaddress.IPv4Address(lan) in net:
        p.add(path, f"{net} contains the jumphost's LAN address {lan}; pick a network the rack LAN does not use")
        return None
    return str(net)


def _unit(p: _Problems, raw: Any) -> Optional[str]:
    path = f"{NAMESPACE}:legacyMetadataUnit"
    if raw == "":
        return None
    if isinstance(raw, str) and _UNIT_NAME.match(raw):
        return raw
    p.add(path, f"expected a systemd unit name like metadata-server, or '' for none, got {_show(raw)}")
    return None


def _secret(p: _Problems, key: str, raw: Optional[str], is_secret: bool,
            check: Callable[[str], Optional[str]]) -> Optional[Secret]:
    path = f"{NAMESPACE}:{key}"
    fix = f"set it with: pulumi config set --secret {path} (README: taking a rack live)"
    if raw is None or raw == "":
        p.add(path, f"missing; {fix}")
        return None
    if not is_secret:
        p.add(path, f"is stored in plain text in the stack file; remove it and {fix}")
        return None
    problem = check(raw)
    if problem:
        p.add(path, f"{problem} (value not shown); {fix}")
        return None
    return Secret(path, raw)


def _check_token(value: str) -> Optional[str]:
    if any(c.isspace() for c in value.strip()) or not value.strip():
        return "expected a single-line token without spaces"
    return None


def _check_private_key(value: str) -> Optional[str]:
    text = value.strip()
    if not (text.startswith("-----BEGIN ") and "PRIVATE KEY-----" in text.splitlines()[0]
            and text.endswith("PRIVATE KEY-----")):
        return "expected an unencrypted private key in PEM/OpenSSH form ('-----BEGIN ... PRIVATE KEY-----')"
    return None



# ---- services -----------------------------------------------------------------------------

SERVICES = ("metadata", "prometheus", "alertToPubsub", "routerBackup", "powerCycle", "nfs", "swarming",
            "datastoreBackup")

# Upstream images, pinned here and nowhere else. Skia's own images (gcr.io/skia-public) have no
# default: every stack pins them, since their tags come from Skia's builds.
_CLOUD_CLI = "gcr.io/google.com/cloudsdktool/google-cloud-cli:499.0.0-slim"  # sh, python3, scp, gsutil
DEFAULT_IMAGES = {
    "prometheus": "prom/prometheus:v2.55.1",
    "nodeExporter": "prom/node-exporter:v1.8.2",
    "kubeStateMetrics": "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.13.0",
    "routerBackup": _CLOUD_CLI,
    "datastoreBackup": _CLOUD_CLI,
    "nfs": "erichough/nfs-server:2.2.1",
}
# Image key -> the service that runs it.
IMAGE_SERVICES = {
    "metadata": "metadata",
    "prometheus": "prometheus",
    "nodeExporter": "prometheus",
    "kubeStateMetrics": "prometheus",
    "alertToPubsub": "alertToPubsub",
    "routerBackup": "routerBackup",
    "powerCycle": "powerCycle",
    "nfs": "nfs",
    "swarming": "swarming",
    "datastoreBackup": "datastoreBackup",
}
_IMAGE = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*"
                    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[0-9a-f]{64})$")
_DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$")
_CRON_FIELD = re.compile(r"^(\*|[0-9]+(-[0-9]+)?)(/[0-9]+)?(,(\*|[0-9]+(-[0-9]+)?)(/[0-9]+)?)*$")


def _image(p: _Problems, path: str, value: Any) -> Optional[str]:
    if isinstance(value, str) and _IMAGE.match(value) and not value.endswith(":latest"):
        return value
    p.add(path, f"expected a pinned image reference (registry/name:tag or @sha256:...; not :latest), got {_show(value)}")
    return None


def _duration(p: _Problems, path: str, value: Any) -> Optional[str]:
    if isinstance(value, str) and _DURATION.match(value):
        return value
    p.add(path, f"expected a duration like 15s, 30d, got {_show(value)}")
    return None


def _quantity(p: _Problems, path: str, value: Any) -> Optional[str]:
    if isinstance(value, str) and _QUANTITY.match(value):
        return value
    p.add(path, f"expected a storage size like 10Gi, got {_show(value)}")
    return None


def _cron(p: _Problems, path: str, value: Any) -> Optional[str]:
    if isinstance(value, str) and len(value.split()) == 5 and all(_CRON_FIELD.match(f) for f in value.split()):
        return value
    p.add(path, f"expected a cron schedule of five fields like '0 3 * * *', got {_show(value)}")
    return None


def _abs_path(p: _Problems, path: str, value: Any) -> Optional[str]:
    if isinstance(value, str) and value.startswith("/") and ".." not in value.split("/") and " " not in value:
        return value.rstrip("/") or "/"
    p.add(path, f"expected an absolute path without '..' or spaces, got {_show(value)}")
    return None


def _network(p: _Problems, path: str, value: Any) -> Optional[str]:
    try:
        return str(ipaddress.IPv4Network(value))
    except (ipaddress.AddressValueError, ipaddress.NetmaskValueError, ValueError, TypeError):
        p.add(path, f"expected an IPv4 network like 192.168.1.0/24, got {_show(value)}")
        return None


def _destination(p: _Problems, path: str, value: Any) -> Optional[str]:
    if isinstance(value, str) and re.match(r"^gs://[a-z0-9][a-z0-9._-]{1,220}(/[A-Za-z0-9._/-]*)?$", value):
        return value.rstrip("/")
    if isinstance(value, str) and value.startswith("/"):
        return _abs_path(p, path, value)
    p.add(path, f"expected gs://BUCKET/FOLDER or an absolute path on the jumphost, got {_show(value)}")
    return None


def _bool(p: _Problems, path: str, value: Any) -> Optional[bool]:
    if isinstance(value, bool):
        return value
    p.add(path, f"expected true or false, got {_show(value)}")
    return None


def _max_unavailable(p: _Problems, path: str, value: Any):
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    if isinstance(value, str) and re.match(r"^([1-9][0-9]?|100)%$", value):
        return value
    p.add(path, f"expected a number of Pis (at least 1) or a percentage like '5%', got {_show(value)}")
    return None


def _string_option(p, path, value):
    return _string(p, path, value)


def _list_of(item_keys: tuple[str, ...], required: tuple[str, ...], checks: Mapping[str, Callable]):
    """A validator for a list of objects whose fields are checked by `checks`."""

    def check(p: _Problems, path: str, value: Any) -> Optional[tuple]:
        if not isinstance(value, list):
            p.add(path, f"expected a list of {{{', '.join(item_keys)}}} entries, got {_show(value)}")
            return None
        items, ok = [], True
        for i, entry in enumerate(value):
            ipath = f"{path}[{i}]"
            obj = _object(p, ipath, entry, item_keys, required)
            if obj is None or any(k not in obj for k in required):
                ok = False
                continue
            item = {}
            for key, fn in checks.items():
                if key in obj:
                    checked = fn(p, f"{ipath}.{key}", obj[key])
                    ok = ok and checked is not None
                    item[key] = checked
            items.append(item)
        return tuple(items) if ok else None

    return check


def _ports(max_port: int):
    """bot name -> port 1..max_port, or {shelf, count, firstPort} for a shelf wired in order."""

    def check(p: _Problems, path: str, value: Any) -> Optional[dict]:
        if isinstance(value, dict) and "shelf" in value:
            obj = _object(p, path, value, ("shelf", "count", "firstPort"), ("shelf", "count"))
            prefix = _node_name(p, f"{path}.shelf", obj.get("shelf")) if obj and "shelf" in obj else None
            count = _count(p, f"{path}.count", obj.get("count"), 1) if obj and "count" in obj else None
            first = _count(p, f"{path}.firstPort", obj["firstPort"], 1) if obj and "firstPort" in obj else 1
            if None in (prefix, count, first):
                return None
            value = {f"{prefix}-{i + 1:03d}": first + i for i in range(count)}
        if not isinstance(value, dict) or not value:
            p.add(path, f"expected bot name -> port, or {{shelf, count, firstPort}}, got {_show(value)}")
            return None
        ok = True
        for bot, port in value.items():
            if not (isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= max_port):
                p.add(f"{path}.{bot}", f"expected a port from 1 to {max_port}, got {_show(port)}")
                ok = False
        return dict(value) if ok else None

    return check


_DEVICE = _list_of(("name", "address", "user", "path"), ("name", "address", "user", "path"),
                   {"name": _node_name, "address": _ipv4, "user": _string_option, "path": _abs_path})
_MPOWER = _list_of(("name", "address", "user", "ports"), ("name", "address", "ports"),
                   {"name": _node_name, "address": _ipv4, "user": _string_option, "ports": _ports(8)})
_EDGESWITCH = _list_of(("name", "address", "user", "ports"), ("name", "address", "ports"),
                       {"name": _node_name, "address": _ipv4, "user": _string_option, "ports": _ports(52)})

# Service -> YAML option -> (component Args field, validator). Defaults live on the Args.
SERVICE_OPTIONS: Mapping[str, Mapping[str, tuple[str, Callable]]] = {
    "metadata": {},
    "prometheus": {"retention": ("retention", _duration), "storage": ("storage", _quantity),
                   "scrapeInterval": ("scrape_interval", _duration)},
    "alertToPubsub": {"project": ("project", _string_option), "topic": ("topic", _string_option)},
    "routerBackup": {"schedule": ("schedule", _cron), "bucket": ("bucket", _string_option),
                     "folder": ("folder", _string_option), "devices": ("devices", _DEVICE),
                     "maxAgeHours": ("max_age_hours", lambda p, path, v: _count(p, path, v, 1))},
    "powerCycle": {"mpower": ("mpower", _MPOWER), "edgeswitch": ("edgeswitch", _EDGESWITCH)},
    "nfs": {"exportPath": ("export_path", _abs_path), "subnet": ("subnet", _network)},
    "swarming": {"maxUnavailable": ("max_unavailable", _max_unavailable),
                 "terminationGraceSeconds": ("termination_grace_seconds", lambda p, path, v: _count(p, path, v, 30))},
    "datastoreBackup": {"schedule": ("schedule", _cron), "destination": ("destination", _destination),
                        "keep": ("keep", lambda p, path, v: _count(p, path, v, 1))},
}


def _services(p: _Problems, raw: Any) -> dict[str, Service]:
    path = f"{NAMESPACE}:services"
    if not isinstance(raw, dict):
        p.add(path, f"expected an object of service -> settings, got {_show(raw)}")
        raw = {}
    for name in raw:
        if name not in SERVICES:
            hint = difflib.get_close_matches(name, SERVICES, n=1)
            p.add(f"{path}.{name}", "unknown service" + (f" (did you mean {hint[0]}?)" if hint else
                                                         f"; services: {', '.join(SERVICES)}"))
    return {name: _switchable(p, f"{path}.{name}", raw.get(name, {}), SERVICE_OPTIONS[name]) for name in SERVICES}


def _switchable(p: _Problems, path: str, raw: Any, spec: Mapping[str, tuple[str, Callable]]) -> Service:
    """`{enabled, <option>...}` -> Service: on unless switched off, with the options that were set,
    under their Args field names (the Args hold the defaults)."""
    entry = _object(p, path, raw, ("enabled",) + tuple(spec), ()) or {}
    enabled = _bool(p, f"{path}.enabled", entry["enabled"]) if "enabled" in entry else True
    options = {}
    for key, (field_name, check) in spec.items():
        if key in entry:
            value = check(p, f"{path}.{key}", entry[key])
            if value is not None:
                options[field_name] = value
    return Service(enabled=bool(enabled), options=options)


GUARDRAIL_OPTIONS: Mapping[str, tuple[str, Callable]] = {
    "allowedRegistries": ("registries", lambda p, path, v: _string_list(p, path, v, _registry)),
    "hostPaths": ("host_paths", lambda p, path, v: _string_list(p, path, v, _abs_path)),
    "hostPathPrefixes": ("host_path_prefixes", lambda p, path, v: _string_list(p, path, v, _abs_path)),
    "privilegedNamespaces": ("privileged_namespaces", lambda p, path, v: _string_list(p, path, v, _node_name)),
    "hostNetworkNamespaces": ("host_network_namespaces", lambda p, path, v: _string_list(p, path, v, _node_name)),
    "rootNamespaces": ("root_namespaces", lambda p, path, v: _string_list(p, path, v, _node_name)),
}


def _registry(p: _Problems, path: str, value: Any) -> Optional[str]:
    if isinstance(value, str) and re.match(r"^[a-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)*/$", value):
        return value
    p.add(path, f"expected a registry prefix ending in '/', like gcr.io/skia-public/, got {_show(value)}")
    return None


def _string_list(p: _Problems, path: str, value: Any, check: Callable) -> Optional[tuple]:
    if not isinstance(value, list):
        p.add(path, f"expected a list, got {_show(value)}")
        return None
    items = [check(p, f"{path}[{i}]", v) for i, v in enumerate(value)]
    return None if None in items else tuple(items)


def _images(p: _Problems, raw: Any, services: Mapping[str, Service]) -> dict[str, str]:
    path = f"{NAMESPACE}:images"
    if not isinstance(raw, dict):
        p.add(path, f"expected an object of image key -> image reference, got {_show(raw)}")
        raw = {}
    images = dict(DEFAULT_IMAGES)
    for key, value in raw.items():
        if key not in IMAGE_SERVICES:
            hint = difflib.get_close_matches(key, IMAGE_SERVICES, n=1)
            p.add(f"{path}.{key}", "unknown image key" + (f" (did you mean {hint[0]}?)" if hint else
                                                        f"; keys: {', '.join(IMAGE_SERVICES)}"))
            continue
        checked = _image(p, f"{path}.{key}", value)
        if checked:
            images[key] = checked
    for key, service in IMAGE_SERVICES.items():
        if key not in images and services.get(service, Service(True, {})).enabled:
            p.add(f"{path}.{key}", f"missing; pin the image {service} runs, e.g. gcr.io/skia-public/<app>:"
                                   f"<yyyy-mm-ddTHH_MM_SSZ>-<user>-<hash>-clean, or set "
                                   f"{NAMESPACE}:services.{service}.enabled to false")
    return images


def _check_json_key(value: str) -> Optional[str]:
    try:
        doc = json.loads(value)
    except json.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict) or doc.get("type") != "service_account":
        return "expected a service-account JSON key ({\"type\": \"service_account\", ...})"
    return None


_SECRET_CHECKS: Mapping[str, Callable[[str], Optional[str]]] = {
    "k3sToken": _check_token,
    "sshPrivateKey": _check_private_key,
    "metadataServiceAccountKey": _check_json_key,
    "alertToPubsubServiceAccountKey": _check_json_key,
    "routerBackupServiceAccountKey": _check_json_key,
    "routerBackupSshKey": _check_private_key,
    "powerCyclePassword": lambda v: "expected a single line" if "\n" in v.strip() else None,
    "swarmingServiceAccountKey": _check_json_key,
    "adbKey": _check_private_key,
    "datastoreBackupServiceAccountKey": _check_json_key,
    "imagePullKey": _check_json_key,
}


def parse(stack: str, raw: Mapping[str, Any], secrets: Mapping[str, Optional[str]],
          plaintext_secrets: frozenset[str] = frozenset()) -> Settings:
    """Validate one stack's config. Pure: no Pulumi runtime, no hosts.

    `raw` maps plain keys (without the `skolo:` prefix) to decoded values, with Pulumi.yaml's
    defaults already applied. `secrets` maps secret keys to their values (None when unset);
    `plaintext_secrets` names secret keys that were set without --secret.
    """
    p = _Problems()
    for key in raw:
        if key not in ALL_KEYS:
            hint = difflib.get_close_matches(key, ALL_KEYS, n=1)
            fix = f" (did you mean {NAMESPACE}:{hint[0]}?)" if hint else ""
            p.add(f"{NAMESPACE}:{key}", f"unknown key{fix}")
    for key in PLAIN_KEYS:
        if key not in raw and key in ("jumphost", "rpis", "k3sVersion"):
            p.add(f"{NAMESPACE}:{key}", "missing; this key is required (see Pulumi.rack1.yaml)")

    jumphost = _jumphost(p, raw["jumphost"]) if "jumphost" in raw else None
    rpis = _rpis(p, raw["rpis"]) if "rpis" in raw else None
    version = _k3s_version(p, raw["k3sVersion"]) if "k3sVersion" in raw else None
    script_url = _url(p, f"{NAMESPACE}:k3sInstallScriptUrl", raw.get("k3sInstallScriptUrl"), ("https", "http"))
    api = raw.get("apiServer", "")
    if api:
        api = _url(p, f"{NAMESPACE}:apiServer", api, ("https",))
    elif jumphost is not None:
        api = f"https://{jumphost.address}:6443"
    node_count = 1 + (len(rpis) if rpis else 0)
    cidr = _cluster_cidr(p, raw.get("clusterCidr"), node_count, jumphost.lan_address if jumphost else None)
    unit = _unit(p, raw.get("legacyMetadataUnit", ""))
    if jumphost is not None and rpis:
        for pi in rpis:
            if pi.name == jumphost.name or pi.address == jumphost.lan_address:
                what = "name" if pi.name == jumphost.name else "address"
                p.add(f"{NAMESPACE}:rpis", f"{pi.name} has the same {what} as {NAMESPACE}:jumphost")

    services = _services(p, raw.get("services", {}))
    guardrails = _switchable(p, f"{NAMESPACE}:guardrails", raw.get("guardrails", {}), GUARDRAIL_OPTIONS)
    images = _images(p, raw.get("images", {}), services)
    if rpis is not None and services["powerCycle"].enabled:
        _check_bots(p, services["powerCycle"].options, {pi.name for pi in rpis})

    checked: dict[str, Secret] = {}
    for key, owner in SECRET_OWNERS.items():
        needed = owner is None or services[owner].enabled
        if key == "datastoreBackupServiceAccountKey":
            # Only a backup to GCS needs a key; one to a path on the jumphost does not.
            needed = needed and services[owner].options.get("destination", "").startswith("gs://")
        if key in OPTIONAL_SECRETS and secrets.get(key) in (None, ""):
            continue
        if not needed:
            continue
        value = _secret(p, key, secrets.get(key), key not in plaintext_secrets, _SECRET_CHECKS[key])
        if value is not None:
            checked[key] = value
    if p.lines:
        raise ConfigError(stack, p.lines)
    return Settings(rack=stack, jumphost=jumphost, rpis=rpis, k3s_version=version,
                    install_script_url=script_url, api_server=api, cluster_cidr=cidr,
                    legacy_metadata_unit=unit, k3s_token=checked["k3sToken"],
                    ssh_private_key=checked["sshPrivateKey"], images=images, services=services, guardrails=guardrails,
                    secrets={k: v for k, v in checked.items() if SECRET_OWNERS[k] or k in OPTIONAL_SECRETS})


def _check_bots(p: _Problems, options: Mapping[str, Any], pis: set[str]) -> None:
    """Every power-cycled bot must be a Pi of this rack: a typo would cycle nothing."""
    for kind in ("mpower", "edgeswitch"):
        for i, device in enumerate(options.get(kind, ())):
            for bot in device.get("ports", {}):
                if bot not in pis:
                    p.add(f"{NAMESPACE}:services.powerCycle.{kind}[{i}].ports.{bot}", "not a Pi of this rack (skolo:rpis)")


def decode(value: Any) -> Any:
    """The CLI hands every value over as a string; objects and lists arrive as JSON."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def load() -> Settings:
    """Read this stack's `skolo:*` config from the Pulumi runtime and validate it."""
    from pulumi.runtime import config as runtime_config

    raw: dict[str, Any] = {}
    secrets: dict[str, Optional[str]] = {}
    plaintext: set[str] = set()
    for full_key in _present_keys(runtime_config):
        key = full_key.split(":", 1)[1]
        if key not in SECRET_KEYS:
            raw[key] = decode(runtime_config.get_config(full_key))
    for key in SECRET_KEYS:
        full_key = f"{NAMESPACE}:{key}"
        secrets[key] = runtime_config.get_config(full_key)
        if secrets[key] is not None and not runtime_config.is_config_secret(full_key):
            plaintext.add(key)
    return parse(pulumi.get_stack(), raw, secrets, frozenset(plaintext))


def _present_keys(runtime_config) -> list[str]:
    """Every `skolo:` key the stack sets, so that misspelt keys are reported, not ignored."""
    keys = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    keys |= {f"{NAMESPACE}:{k}" for k in ALL_KEYS if runtime_config.get_config(f"{NAMESPACE}:{k}") is not None}
    return sorted(k for k in keys if k.startswith(f"{NAMESPACE}:"))
