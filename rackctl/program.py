"""Run the real Pulumi program for one stack under the Pulumi SDK's mock runtime.

No Pulumi CLI, no network, no hosts: `pulumi.runtime.set_mocks` stands in for the engine, and
a recording monitor keeps every resource the program registers with its inputs, which inputs
were secret, and the options that decide a rack's behaviour (parent, provider, dependencies,
delete-before-replace, additional secret outputs). Config comes from the stack file exactly
as the CLI would pass it (rackctl/stackfiles.py).

Stand-ins, at the very edge and named as such: a resource's outputs are its inputs, plus
`stdout` for the one host script whose output the program reads (the kubeconfig: a stand-in k3s
kubeconfig).
"""

from __future__ import annotations

import runpy
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pulumi
from pulumi.runtime import mocks, rpc
from pulumi.runtime.sync_await import _sync_await

from rackctl import stackfiles
from rackctl.stackfiles import NAMESPACE, PROJECT_DIR

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
    component_outputs: dict[str, dict] = field(default_factory=dict)
    """URN -> what a component registered as its outputs (the engine keeps them in the state)."""

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

    def RegisterResourceOutputs(self, request):
        if "::pulumi:pulumi:Stack::" not in request.urn:  # the stack's own outputs are Run.outputs
            self.run.component_outputs[request.urn] = _unwrap_secrets(rpc.deserialize_properties(request.outputs))
        return super().RegisterResourceOutputs(request)


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
    config = stackfiles.stack_config(stack, config_dir or project_dir, secrets, overrides)
    run = run_program(stack, config.values, config.secret_keys, project_dir)
    run.placeholders = config.placeholders
    return run



