"""The scalar types of the stack config, each with the message an operator reads when a value is
wrong: `expected <what>, got <the value><the fix>`. pydantic does the walking and collecting."""

from __future__ import annotations

import base64
import ipaddress
import json
import re
from typing import Annotated, Any, Callable, Optional, Union
from urllib.parse import urlsplit

from pydantic import PlainValidator
from pydantic_core import PydanticCustomError

NAMESPACE = "skolo"


def fail(message: str) -> PydanticCustomError:
    """An error whose text is exactly `message` (braces and all)."""
    return PydanticCustomError("skolo", "{message}", {"message": message})


def show(value: Any) -> str:
    """A bad value as the operator wrote it, short enough for one line."""
    text = repr(value) if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "nothing"}.get(type(value), type(value).__name__)


def scalar(expected: str, check: Callable[[Any], Any], hint: str = "") -> PlainValidator:
    """The validator of a config type, `Annotated[str, scalar(...)]`: `check` returns the clean
    value, or None (or raises) for a bad one."""

    def validate(value: Any) -> Any:
        try:
            result = check(value)
        except (ValueError, TypeError, AttributeError):
            result = None
        if result is None:
            raise fail(f"expected {expected}, got {show(value)}{hint}")
        return result

    return PlainValidator(validate)


def matching(pattern: str) -> Callable[[Any], Any]:
    return lambda v: v if re.match(pattern, v) else None


def _int(test: Callable[[int], bool]) -> Callable[[Any], Any]:
    return lambda v: v if isinstance(v, int) and not isinstance(v, bool) and test(v) else None


def count(minimum: int, maximum: Optional[int] = None) -> PlainValidator:
    """`Annotated[int, count(1)]`: a whole number in range (a boolean is not one)."""
    return scalar(f"a whole number from {minimum} to {maximum}" if maximum else f"a whole number of at least "
                       f"{minimum}", _int(lambda v: minimum <= v <= (maximum or v)))


def url(*schemes: str) -> PlainValidator:
    def check(v: str):
        parts = urlsplit(v.strip())
        parts.port  # noqa: B018 - raises ValueError on a bad port
        return v.strip() if parts.scheme in schemes and parts.hostname else None

    return scalar(f"a {' or '.join(schemes)} URL", check)


def one_of(*choices: str) -> PlainValidator:
    return scalar(f"one of {', '.join(choices)}", lambda v: v if v in choices else None)


def _abs_path(v: str):
    return (v.rstrip("/") or "/") if re.match(r"^/[A-Za-z0-9._/@+-]*$", v) and ".." not in v.split("/") else None


def _host_key(v: str):
    kind, key = v.split()[:2]
    return f"{kind} {key}" if kind in HOST_KEY_TYPES and base64.b64decode(key, validate=True) else None


HOST_KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521")
K3S_VERSION = re.compile(r"^v(\d+)\.(\d+)\.(\d+)\+k3s(\d+)$")
_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
_CRON = r"(\*|[0-9]+(-[0-9]+)?)(/[0-9]+)?"

Text = Annotated[str, scalar("a non-empty string", lambda v: v.strip() or None)]
# Words that reach a host script or an ssh command line: no spaces, no leading '-', no shell.
User = Annotated[str, scalar("a user name (letters, digits, '_', '.' and '-', not starting with '-')",
                             matching(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"))]
_DNS_NAME = r"^[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)*$"
Host = Annotated[str, scalar("an IPv4 address or a DNS name", lambda v: str(ipaddress.IPv4Address(v))
                             if re.match(r"^[0-9.]+$", v) else matching(_DNS_NAME)(v))]
Sha256 = Annotated[str, scalar("a SHA-256 checksum (64 hex digits), or '' for none",
                               lambda v: v.lower() if re.match(r"^([0-9a-fA-F]{64})?$", v) else None)]
Bool = Annotated[bool, scalar("true or false", lambda v: v if isinstance(v, bool) else None)]
IPv4 = Annotated[str, scalar("an IPv4 address", lambda v: str(ipaddress.IPv4Address(v.strip())))]
Network = Annotated[str, scalar("an IPv4 network like 192.168.1.0/24",
                                lambda v: str(ipaddress.IPv4Network(v.strip())))]
ClusterNetwork = Annotated[str, scalar("an IPv4 network like 10.44.0.0/14",
                                       lambda v: str(ipaddress.IPv4Network(v.strip())))]
NodeName = Annotated[str, scalar("a node name (RFC 1123: lower-case letters, digits, '-' and '.', starting and "
                                 "ending with a letter or digit)",
                                 lambda v: v if len(v) <= 253 and re.match(rf"^{_LABEL}(\.{_LABEL})*$", v) else None)]
Port = Annotated[int, scalar("a TCP port from 1 to 65535", _int(lambda v: 1 <= v <= 65535))]
HostKey = Annotated[str, scalar("a host key in authorized_keys format ('ssh-ed25519 AAAA...')", _host_key,
                                hint="; read it with: ssh-keyscan -t ed25519 HOST")]
K3sVersion = Annotated[str, scalar("an exact k3s release like v1.31.6+k3s1",
                                   lambda v: v.strip() if K3S_VERSION.match(v.strip()) else None,
                                   hint="; channels and 'latest' are refused so every node runs the same, reviewed "
                                        "k3s")]
AbsPath = Annotated[str, scalar("an absolute path of letters, digits and ._/@+- without '..'", _abs_path)]
_GS_URL = r"^gs://[a-z0-9][a-z0-9._-]{1,220}(/[A-Za-z0-9._/-]*)?$"
Destination = Annotated[str, scalar("gs://BUCKET/FOLDER or an absolute path on the jumphost",
                                    lambda v: v.rstrip("/") if re.match(_GS_URL, v) else _abs_path(v))]
_IMAGE = (r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*"
          r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}(@sha256:[0-9a-f]{64})?|@sha256:[0-9a-f]{64})$")
Image = Annotated[str, scalar("a pinned image reference (registry/name:tag or @sha256:...; not :latest)",
                              lambda v: v if re.match(_IMAGE, v) and not v.endswith(":latest") else None)]
Duration = Annotated[str, scalar("a duration like 15s, 30d", matching(r"^([0-9]+(ms|s|m|h|d|w|y))+$"))]
Quantity = Annotated[str, scalar("a storage size like 10Gi", matching(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$"))]
Cron = Annotated[str, scalar("a cron schedule of five fields like '0 3 * * *'", lambda v: v if len(v.split()) == 5
                             and all(re.match(rf"^{_CRON}(,{_CRON})*$", f) for f in v.split()) else None)]
Registry = Annotated[str, scalar("a registry prefix ending in '/', like gcr.io/skia-public/",
                                 matching(r"^[a-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)*/$"))]
MaxUnavailable = Annotated[Union[int, str], scalar(
    "a number of Pis (at least 1) or a percentage like '5%'",
    lambda v: _int(lambda n: n >= 1)(v) or (v if re.match(r"^([1-9][0-9]?|100)%$", v) else None))]
Unit = Annotated[str, scalar("a systemd unit name like metadata-server, or '' for none",
                             lambda v: v if v == "" else matching(r"^[A-Za-z0-9:_.@][A-Za-z0-9:_.@-]*$")(v))]
Capability = Annotated[str, scalar("a Linux capability like NET_ADMIN (named one by one, not ALL)",
                                   lambda v: v if v != "ALL" and v.isupper() and v.replace("_", "").isalpha()
                                   else None)]
# Whole numbers the models use most.
Positive = Annotated[int, count(1)]
NonNegative = Annotated[int, count(0)]
