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


class Refused(ValueError):
    """Raised by a check whose value has the right form but cannot work: its text is the whole
    refusal, saying why (the generic `expected ..., got ...` would not)."""


class Check:
    """A config type's check: `check` returns the clean value, or None (or raises) for a bad one,
    which is refused as `expected <expected>, got <the value><hint>`, or as a `Refused`'s own text.
    `expected` also documents the type (docs/services.md)."""

    def __init__(self, expected: str, check: Callable[[Any], Any], hint: str = ""):
        self.expected, self.check, self.hint = expected, check, hint

    def __call__(self, value: Any) -> Any:
        try:
            result = self.check(value)
        except Refused as e:
            raise fail(str(e)) from None
        except (ValueError, TypeError, AttributeError):
            result = None
        if result is None:
            raise fail(f"expected {self.expected}, got {show(value)}{self.hint}")
        return result


def scalar(expected: str, check: Callable[[Any], Any], hint: str = "") -> PlainValidator:
    """The validator of a config type, `Annotated[str, scalar(...)]`."""
    return PlainValidator(Check(expected, check, hint))


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


def _floating(image: str) -> bool:
    """:latest in any case is a tag that moves. (With a digest the reference ends in the digest.)"""
    return image.lower().endswith(":latest")


_CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))


def _cron_ok(v: str) -> bool:
    fields = v.split()
    if len(fields) != 5:
        return False
    for text, (low, high) in zip(fields, _CRON_RANGES, strict=True):
        for part in text.split(","):
            found = re.fullmatch(r"(\*|([0-9]+)(-([0-9]+))?)(/([0-9]+))?", part)
            if not found:
                return False
            numbers = [int(n) for n in (found.group(2), found.group(4)) if n is not None]
            if any(not low <= n <= high for n in numbers) or (len(numbers) == 2 and numbers[0] > numbers[1]):
                return False
            if found.group(6) is not None and not 1 <= int(found.group(6)) <= high:
                return False
    return True


def _bucket_ok(v: str) -> bool:
    parts = v.split(".")
    # (Each part is at most 63, so a name of one part longer than 63 cannot match.)
    return (3 <= len(v) <= 222 and all(re.fullmatch(r"[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?", p) for p in parts)
            and not v.startswith("goog") and "google" not in v and not re.fullmatch(r"[0-9.]+", v))


def _host_key(v: str):
    kind, key = v.split()[:2]
    if kind == "ssh-rsa" and base64.b64decode(key, validate=True):
        raise Refused(f"{show(v)} is an ssh-rsa key: pulumi-command offers a host only the type of the key pinned "
                      f"for it, and for RSA that is SHA-1 ssh-rsa, which OpenSSH 8.8 and later refuse (\"no matching "
                      f"host key type found\"), so every step to this host would fail; pin its ed25519 key instead: "
                      f"ssh-keyscan -t ed25519 HOST, or rackctl hostkeys")
    return f"{kind} {key}" if kind in HOST_KEY_TYPES and base64.b64decode(key, validate=True) else None


# Not ssh-rsa: pulumi-command (provider/pkg/provider/remote/connection.go) sets the client's host key
# algorithms to the pinned key's type alone, and OpenSSH 8.8+ refuses SHA-1 ssh-rsa.
HOST_KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521")
K3S_VERSION = re.compile(r"^v(\d+)\.(\d+)\.(\d+)\+k3s(\d+)$")
_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"

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
HostKey = Annotated[str, scalar("an ed25519 or ECDSA host key in authorized_keys format ('ssh-ed25519 AAAA...')",
                                _host_key,
                                hint="; read it with: ssh-keyscan -t ed25519 HOST")]
K3sVersion = Annotated[str, scalar("an exact k3s release like v1.31.6+k3s1",
                                   lambda v: v.strip() if K3S_VERSION.match(v.strip()) else None,
                                   hint="; channels and 'latest' are refused so every node runs the same, reviewed "
                                        "k3s")]
AbsPath = Annotated[str, scalar("an absolute path of letters, digits and ._/@+- without '..'", _abs_path)]
_GS_URL = r"^gs://([a-z0-9][a-z0-9._-]{1,220})(/[A-Za-z0-9._/-]*)?$"


def _destination(v: str):
    found = re.match(_GS_URL, v)
    if found:
        return v.rstrip("/") if _bucket_ok(found.group(1)) else None
    return _abs_path(v)  # anything else that starts gs: is not absolute, so refused here


Destination = Annotated[str, scalar("gs://BUCKET/FOLDER (a GCS bucket name) or an absolute path on the jumphost",
                                    _destination)]
_IMAGE = (r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*"
          r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}(@sha256:[0-9a-f]{64})?|@sha256:[0-9a-f]{64})$")
Image = Annotated[str, scalar("a pinned image reference (registry/name:tag or @sha256:...; not :latest)",
                              lambda v: v if re.match(_IMAGE, v) and not _floating(v) else None)]
Duration = Annotated[str, scalar("a duration like 15s, 30d", matching(r"^([0-9]+(ms|s|m|h|d|w|y))+$"))]
Quantity = Annotated[str, scalar("a storage size like 10Gi", matching(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$"))]
Cron = Annotated[str, scalar("a cron schedule of five fields like '0 3 * * *' (minute 0-59, hour 0-23, day 1-31, "
                             "month 1-12, weekday 0-7)", lambda v: v if _cron_ok(v) else None)]
# GCP's own rules: project ids (6-30 of a-z0-9-, a letter first, not a hyphen last; a legacy
# domain-scoped id is domain:id) and bucket names (3-63 of a-z0-9-_. per dot-separated part, up to
# 222 in all, a letter or digit at each end, not an IP address, not starting with goog).
GcpProject = Annotated[str, scalar("a GCP project id (6-30 lower-case letters, digits and hyphens, starting with a "
                                   "letter, e.g. skia-public)", matching(r"^([a-z][a-z0-9.-]*[a-z0-9]:)?"
                                                                        r"[a-z][a-z0-9-]{4,28}[a-z0-9]$"))]
Bucket = Annotated[str, scalar("a GCS bucket name (3-63 lower-case letters, digits, '-', '_' and '.', a letter or "
                               "digit at each end, e.g. skia-backups)", lambda v: v if _bucket_ok(v) else None)]
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
