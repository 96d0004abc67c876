"""Run the real Pulumi program for one stack under the Pulumi SDK's mock runtime.

No Pulumi CLI, no network, no hosts: `pulumi.runtime.set_mocks` stands in for the engine, and
a recording monitor keeps every resource the program registers with its inputs, which inputs
were secret, and the options that decide a rack's behaviour (parent, provider, dependencies,
delete-before-replace, additional secret outputs). Config comes from the stack file exactly
as the CLI would pass it: Pulumi.yaml defaults first, values JSON-encoded, secret keys named.
Secrets the stack file holds encrypted (or not at all) become clearly marked placeholders.

Stand-ins, at the very edge and named as such: a resource's outputs are its inputs, plus
`stdout` for the one host script whose output the program reads (the kubeconfig: a stand-in k3s
kubeconfig).
"""

from __future__ import annotations

import json
import re
import runpy
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pulumi
import yaml
from pulumi.runtime import mocks, rpc
from pulumi.runtime.sync_await import _sync_await

from components import settings
from components.settings.secrets import OPTIONAL as OPTIONAL_SECRETS

PROJECT_DIR = Path(__file__).resolve().parent.parent
NAMESPACE = "skolo"

PLACEHOLDER_PREFIX = "rackctl-render-placeholder"


def _placeholder(key: str) -> str:
    """A value of the right form for `key`, unmistakably not a real secret."""
    marker = f"{PLACEHOLDER_PREFIX}-{key}"
    form = next(s.form for s in settings.SECRETS if s.key == key)
    if form == "json":
        return json.dumps({"type": "service_account", "private_key": marker})
    if form == "pem":
        return f"-----BEGIN OPENSSH PRIVATE KEY-----\n{marker}\n-----END OPENSSH PRIVATE KEY-----\n"
    return marker


# Stand-in for what k3s writes to /etc/rancher/k3s/k3s.yaml (shape as k3s writes it).
STAND_IN_KUBECONFIG = """\
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: c3RhbmQtaW4tY2E=
    server: https://127.0.0.1:6443
  name: default
contexts:
- context:
    cluster: default
    user: default
  name: default
current-context: default
kind: Config
preferences: {}
users:
- name: default
  user:
    client-certificate-data: c3RhbmQtaW4tY2VydA==
    client-key-data: c3RhbmQtaW4ta2V5
"""


class StackFileError(Exception):
    """The stack file cannot be read at all (as opposed to config the settings layer rejects)."""


@dataclass
class Declared:
    """One resource the program registered."""

    type: str
    name: str
    urn: str
    parent: str
    inputs: dict
    secret_inputs: frozenset[str]
    """Top-level input names that hold a secret anywhere inside them."""
    provider: str
    dependencies: tuple[str, ...]
    delete_before_replace: bool
    additional_secret_outputs: tuple[str, ...]
    custom: bool
    aliases: tuple[str, ...] = ()
    """The alias specs the resource declared, as text (name, parent URN)."""


@dataclass
class Run:
    """Everything one program run declared and exported."""

    stack: str
    resources: list[Declared] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    secret_outputs: set[str] = field(default_factory=set)
    placeholders: list[str] = field(default_factory=list)
    """Secret keys that were placeholders (the stack file does not hold them in the clear)."""

    def of_type(self, type_: str) -> list[Declared]:
        return [r for r in self.resources if r.type == type_]

    def named(self, name: str) -> Declared:
        matches = [r for r in self.resources if r.name == name]
        if len(matches) != 1:
            raise KeyError(f"{len(matches)} resources named {name!r}")
        return matches[0]

    def by_urn(self, urn: str) -> Declared:
        return next(r for r in self.resources if r.urn == urn)


def _has_secret(value: Any) -> bool:
    """Whether a protobuf Value holds a Pulumi secret anywhere inside it."""
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        fields = value.struct_value.fields
        sig = fields.get(rpc._special_sig_key)
        if sig is not None and sig.string_value == rpc._special_secret_sig:
            return True
        return any(_has_secret(v) for v in fields.values())
    if kind == "list_value":
        return any(_has_secret(v) for v in value.list_value.values)
    return False


def _unwrap_secrets(value: Any) -> Any:
    """The plain value, with Pulumi's secret wrappers taken off (secret_inputs records where)."""
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            return _unwrap_secrets(value.get("value"))
        return {k: _unwrap_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap_secrets(v) for v in value]
    return value


class RecordingMonitor(mocks.MockMonitor):
    """The SDK's mock monitor, keeping what it is asked to register."""

    def __init__(self, mock: mocks.Mocks, run: Run):
        super().__init__(mock)
        self.run = run

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            self.run.resources.append(Declared(
                type=request.type,
                name=request.name,
                urn=response.urn,
                parent=request.parent,
                inputs=_unwrap_secrets(rpc.deserialize_properties(request.object)),
                secret_inputs=frozenset(k for k, v in request.object.fields.items() if _has_secret(v)),
                provider=request.provider,
                dependencies=tuple(request.dependencies),
                delete_before_replace=request.deleteBeforeReplace,
                additional_secret_outputs=tuple(request.additionalSecretOutputs),
                custom=request.custom,
                aliases=tuple(str(a).replace("\n", " ").strip() for a in request.aliases) + tuple(request.aliasURNs),
            ))
        return response


class StandInMocks(mocks.Mocks):
    """Outputs are the inputs, plus the stand-in kubeconfig the module docstring names."""

    def new_resource(self, args: mocks.MockResourceArgs):
        state = dict(args.inputs)
        if args.typ == "command:remote:Command":
            create = args.inputs.get("create") or ""
            if "/etc/rancher/k3s/k3s.yaml" in create and "skolo-read-file" in create:
                state["stdout"] = STAND_IN_KUBECONFIG
            else:
                state.setdefault("stdout", "")
            state.setdefault("stderr", "")
        return f"{args.name}-id", state

    def call(self, args: mocks.MockCallArgs):
        return {}, None


def _as_cli_value(value: Any) -> str:
    """How the Pulumi CLI hands a config value to the program: strings as-is, the rest as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def read_stack_file(path: Path) -> dict[str, Any]:
    """The `config:` mapping of a stack file. Duplicate keys (YAML would keep the last silently),
    a `config:` that is not a mapping, and broken YAML are refused, naming the place but never
    quoting the file: it may hold a secret in plain text."""
    from ruamel.yaml import YAML
    from ruamel.yaml.constructor import DuplicateKeyError
    from ruamel.yaml.error import MarkedYAMLError

    try:
        doc = YAML(typ="safe", pure=True).load(path.read_text()) or {}
    except DuplicateKeyError as e:
        key = re.search(r'duplicate key "(.*?)"', e.problem or "")
        raise StackFileError(f"{path.name} line {e.problem_mark.line + 1}: {key.group(1) if key else 'a key'} is set "
                             f"twice; YAML would silently keep the last one") from None
    except MarkedYAMLError as e:
        where = f" (line {e.problem_mark.line + 1}, column {e.problem_mark.column + 1})" if e.problem_mark else ""
        raise StackFileError(f"{path.name} is not valid YAML{where}: {e.problem}") from None
    config = doc.get("config", {}) if isinstance(doc, dict) else None
    if not isinstance(config, dict):
        raise StackFileError(f"{path.name}: expected `config:` to be a mapping of key: value, "
                             f"got {type(config).__name__ if config is not None else type(doc).__name__}")
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
    stack_file = project_dir / f"Pulumi.{stack}.yaml"
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
            values[full] = _placeholder(short)
            secret_keys.append(full)
            placeholders.append(full)
    return StackConfig({k: _as_cli_value(v) for k, v in values.items()}, secret_keys, placeholders)


def run_program(stack: str, config: dict[str, str], secret_keys: list[str],
                project_dir: Path = PROJECT_DIR) -> Run:
    """Run __main__.py of `project_dir` for `stack` under mocks and return what it declared.

    Raises what the program raises (a ConfigError for bad config) after the runtime settles.
    """
    run = Run(stack=stack)
    pulumi.runtime.set_all_config(config, secret_keys)
    mock = StandInMocks()
    pulumi.runtime.set_mocks(mock, project=NAMESPACE, stack=stack, preview=False,
                             monitor=RecordingMonitor(mock, run))
    if str(project_dir) not in sys.path:
        sys.path.insert(0, str(project_dir))

    async def collect_outputs() -> None:
        root = pulumi.runtime.get_root_resource()
        for name, value in (getattr(root, "outputs", None) or {}).items():
            out = pulumi.Output.from_input(value)
            run.outputs[name] = await out.future()
            if await out.is_secret():
                run.secret_outputs.add(name)

    def program() -> None:
        runpy.run_path(str(project_dir / "__main__.py"), run_name="__main__")

    from pulumi.runtime.stack import run_pulumi_func

    _sync_await(run_pulumi_func(program))
    _sync_await(run_pulumi_func(collect_outputs))
    return run


def run_stack(stack: str, project_dir: Path = PROJECT_DIR, secrets: Optional[dict[str, str]] = None,
              overrides: Optional[dict[str, Any]] = None, config_dir: Optional[Path] = None) -> Run:
    """Run the program in `project_dir` with the config of Pulumi.`stack`.yaml in `config_dir`."""
    config = stack_config(stack, config_dir or project_dir, secrets, overrides)
    run = run_program(stack, config.values, config.secret_keys, project_dir)
    run.placeholders = config.placeholders
    return run



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
