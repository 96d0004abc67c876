"""The stack files, read as the Pulumi CLI reads them: Pulumi.yaml's defaults first, each stack's
`config:` values as the CLI hands them to the program (strings as they are, the rest JSON), the
secret keys named; a secret the file holds encrypted, or not at all, becomes a clearly marked
placeholder. Also the stacks there are, their order for a rollout, and a stack's validated
settings without running the program (rackctl/program.py runs it).
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import yaml

from components import settings
from components.settings.secrets import OPTIONAL as OPTIONAL_SECRETS

PROJECT_DIR = Path(__file__).resolve().parent.parent
NAMESPACE = "skolo"

PLACEHOLDER_PREFIX = "rackctl-render-placeholder"


def placeholder(key: str) -> str:
    """A value of the right form for `key`, unmistakably not a real secret."""
    marker = f"{PLACEHOLDER_PREFIX}-{key}"
    form = next(s.form for s in settings.SECRETS if s.key == key)
    if form == "json":
        return json.dumps({"type": "service_account", "private_key": marker})
    if form == "pem":
        return f"-----BEGIN OPENSSH PRIVATE KEY-----\n{marker}\n-----END OPENSSH PRIVATE KEY-----\n"
    return marker


class StackFileError(Exception):
    """The stack file cannot be read at all (as opposed to config the settings layer rejects)."""


STACK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
"""Pulumi's own rule for a stack name (sdk/go/common/tokens/stack_name.go: letters, digits, '_',
'.', '-', at most 100), and a letter or digit first, so a name is never '.', '..' or a flag."""


def stack_name(text: str) -> str:
    """`text` if it may name a stack; every command's stack arguments come through here."""
    if not STACK_NAME.fullmatch(text):
        raise StackFileError(f"stack name {text!r}: expected letters, digits, '-', '_' and '.', starting with a "
                             f"letter or digit, at most 100 (rack3 names Pulumi.rack3.yaml); a name, not a path")
    return text


def stack_path(config_dir: Path, stack: str) -> Path:
    """Where stack `stack`'s file is: Pulumi.<stack>.yaml in `config_dir`, for a valid name only."""
    return config_dir / f"Pulumi.{stack_name(stack)}.yaml"


def _as_cli_value(value: Any) -> str:
    """How the Pulumi CLI hands a config value to the program: strings as-is, the rest as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


MAX_BYTES = 1 << 20  # a rack of a thousand Pis, with shelves and host keys, is under 200 KiB
MAX_DEPTH = 32  # the deepest config (guardrails.namespaces.NS.hostPaths) is six levels
OTHER_NAMESPACES = ("pulumi", "kubernetes", "command")  # set by the CLI or its providers, not read here


def read_text(path: Path) -> str:
    """A stack file's text: UTF-8, and small enough to be one. Refused naming the file and the
    place, never quoting it (it may hold a secret in plain text)."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_BYTES + 1)
    except IsADirectoryError:
        raise StackFileError(f"{path.name} is a directory, not a stack file") from None
    except OSError as e:
        raise StackFileError(f"{path.name} cannot be read: {e.strerror}") from None
    if len(data) > MAX_BYTES:
        raise StackFileError(f"{path.name} is over {MAX_BYTES // 1024} KiB; a stack file is a few KiB of config")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise StackFileError(f"{path.name} line {line}: not UTF-8 text (byte 0x{data[e.start]:02x}); save it as "
                             f"UTF-8") from None


def _shape_problem(path: Path, text: str) -> Optional[str]:
    """What the YAML's structure does that a stack file must not: aliases (an alias bomb expands
    to gigabytes when the values are written out), nesting past MAX_DEPTH (the loader recurses)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.events import AliasEvent, CollectionEndEvent, CollectionStartEvent

    depth = 0
    for event in YAML(typ="safe", pure=True).parse(text):
        if isinstance(event, AliasEvent):
            return f"{path.name} line {event.start_mark.line + 1}: uses a YAML alias (*{event.anchor}); write the " \
                   f"value out"
        if isinstance(event, CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                return f"{path.name} line {event.start_mark.line + 1}: nested over {MAX_DEPTH} levels deep"
        elif isinstance(event, CollectionEndEvent):
            depth -= 1
    return None


def _key_problem(path: Path, key: Any) -> Optional[str]:
    """A config key the CLI would not hand to this program as one of its keys."""
    if not isinstance(key, str):
        return f"{path.name}: config key {key!r} is not a string; write it as {NAMESPACE}:<key>"
    namespace, colon, name = key.partition(":")
    if not colon or not namespace or not name:
        return f"{path.name}: config key {key!r} has no namespace; write it as {NAMESPACE}:{key.strip(':')}"
    if namespace != NAMESPACE and namespace not in OTHER_NAMESPACES:
        hint = difflib.get_close_matches(namespace, [NAMESPACE], n=1, cutoff=0.5)
        return (f"{path.name}: config key {key!r} is in namespace {namespace!r}, which this program does not read"
                + (f"; did you mean {NAMESPACE}:{name}?" if hint else f"; its keys are {NAMESPACE}:<key>"))
    return None


def read_stack_file(path: Path) -> dict[str, Any]:
    """The `config:` mapping of a stack file. Refused, naming the file and the place but never
    quoting it (it may hold a secret in plain text): text that is not UTF-8 or is too large,
    broken YAML, aliases and deep nesting, duplicate keys (YAML would keep the last silently), a
    `config:` that is not a mapping, and keys that are not `skolo:<key>`."""
    from ruamel.yaml import YAML
    from ruamel.yaml.constructor import DuplicateKeyError
    from ruamel.yaml.error import MarkedYAMLError

    text = read_text(path)
    try:
        if problem := _shape_problem(path, text):
            raise StackFileError(problem)
        doc = YAML(typ="safe", pure=True).load(text) or {}
    except DuplicateKeyError as e:
        key = re.search(r'duplicate key "(.*?)"', e.problem or "")
        line = e.problem_mark.line + 1 if e.problem_mark else "?"
        raise StackFileError(f"{path.name} line {line}: {key.group(1) if key else 'a key'} is set "
                             f"twice; YAML would silently keep the last one") from None
    except MarkedYAMLError as e:
        where = f" (line {e.problem_mark.line + 1}, column {e.problem_mark.column + 1})" if e.problem_mark else ""
        raise StackFileError(f"{path.name} is not valid YAML{where}: {e.problem}") from None
    config = doc.get("config", {}) if isinstance(doc, dict) else None
    if not isinstance(config, dict):
        raise StackFileError(f"{path.name}: expected `config:` to be a mapping of key: value, "
                             f"got {type(config).__name__ if config is not None else type(doc).__name__}")
    for key in config:
        if problem := _key_problem(path, key):
            raise StackFileError(problem)
    return config


def stack_yaml():
    """ruamel.yaml set up to rewrite a stack file keeping its comments and its own style: maps
    by two, list dashes two in, items four in."""
    from ruamel.yaml import YAML

    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = 4096
    y.indent(mapping=2, sequence=4, offset=2)
    return y


@dataclass
class StackConfig:
    """The config the CLI would give the program for one stack."""

    values: dict[str, str]
    """Every key, as the CLI hands it over: strings as they are, the rest as JSON."""
    secret_keys: list[str]
    """The keys the CLI would mark secret: encrypted in the stack file, or supplied as secrets.
    A secret key stored in plain text is not among them, so the settings layer refuses it."""
    placeholders: list[str]
    """Secret keys the stack file does not hold in the clear (encrypted or unset): placeholders."""


def stack_config(stack: str, project_dir: Path = PROJECT_DIR, secrets: Optional[dict[str, str]] = None,
                 overrides: Optional[dict[str, Any]] = None) -> StackConfig:
    """`secrets` supplies secret values (tests plant known ones); secrets not supplied become
    placeholders. `overrides` replaces or, with value None, removes plain keys (tests)."""
    stack_file = stack_path(project_dir, stack)
    if not stack_file.exists():
        raise StackFileError(f"no stack file {stack_file.name}; stacks here: {', '.join(stacks(project_dir))}")
    project = yaml.safe_load((project_dir / "Pulumi.yaml").read_text())
    values = {k: d["default"] for k, d in (project.get("config") or {}).items() if isinstance(d, dict) and "default" in d}
    for key, value in read_stack_file(stack_file).items():
        if not (isinstance(value, dict) and set(value) == {"secure"}):  # encrypted: only the CLI can read it
            values[key] = value
    for key, value in (overrides or {}).items():
        full = key if ":" in key else f"{NAMESPACE}:{key}"
        if value is None:
            values.pop(full, None)
        else:
            values[full] = value
    supplied = secrets if secrets is not None else {}
    secret_keys, placeholders = [], []
    for short in settings.SECRET_KEYS:
        full = f"{NAMESPACE}:{short}"
        if short in supplied:
            values.pop(full, None)
            if supplied[short] is not None:
                values[full] = supplied[short]
                secret_keys.append(full)
        elif full not in values and short not in OPTIONAL_SECRETS:
            values[full] = placeholder(short)
            secret_keys.append(full)
            placeholders.append(full)
    return StackConfig({k: _as_cli_value(v) for k, v in values.items()}, secret_keys, placeholders)


def stacks(config_dir: Path = PROJECT_DIR) -> list[str]:
    """Every stack with a Pulumi.<stack>.yaml, by name."""
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in config_dir.glob("Pulumi.*.yaml"))


def settings_for(stack: str, config_dir: Path = PROJECT_DIR) -> settings.Settings:
    """A stack's validated settings, read from its file as the CLI would (placeholders for
    secrets), without running the program."""
    config = stack_config(stack, config_dir)
    raw, secrets = {}, {}
    for full, value in config.values.items():
        namespace, key = full.split(":", 1)
        if namespace != NAMESPACE:
            continue
        if key in settings.SECRET_KEYS:
            secrets[key] = value
        else:
            raw[key] = settings.decode(value)
    plaintext = frozenset(k for k in secrets if f"{NAMESPACE}:{k}" not in config.secret_keys)
    return settings.parse(stack, raw, secrets, plaintext)


def canary_order(names: list[str], config_dir: Path = PROJECT_DIR) -> list[str]:
    """Stacks in the order changes should reach them: the smallest rack (the canary) first."""
    return sorted(names, key=lambda s: (len(settings_for(s, config_dir).rpis), s))
