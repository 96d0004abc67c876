"""docs/services.md: every option of every service, generated from the settings models
(components/settings/services.py) and the components' Args, so that an option is written once.

For each key: its YAML name, its type as the settings check it (the same words the error
messages use), its default (the settings' own, or else the component Args' default, which is
what an unset option takes), and its meaning (the Args field's docstring, or the model's).
`rackctl schema --write` writes it with Pulumi.yaml; `rackctl schema --check` and a test fail
when it and the models differ.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import typing
from pathlib import Path

from pydantic import BaseModel, PlainValidator

from components.alert_to_pubsub import AlertToPubsubArgs
from components.datastore_backup import DatastoreBackupArgs
from components.metadata import MetadataArgs
from components.nfs_server import NfsServerArgs
from components.power_cycle import PowerCycleArgs
from components.prometheus import PrometheusArgs
from components.router_backup import RouterBackupArgs
from components.settings.base import Model, camel
from components.settings.fields import NAMESPACE, Check
from components.settings.services import Services
from components.swarming import SwarmingArgs

DOC = Path("docs") / "services.md"
ARGS = {"metadata": MetadataArgs, "prometheus": PrometheusArgs, "alertToPubsub": AlertToPubsubArgs,
        "routerBackup": RouterBackupArgs, "powerCycle": PowerCycleArgs, "nfs": NfsServerArgs,
        "swarming": SwarmingArgs, "datastoreBackup": DatastoreBackupArgs}
COMMON = {"enabled": "Run this service on the rack. Switching it off removes its objects and, where it replaced a "
                     "legacy unit, starts that unit again.",
          "legacyUnit": "The legacy push-system unit this service replaces: stopped before the service starts, "
                        "started again when it is switched off ('' for none).",
          "extraArgs": "Further flags of Skia's program, checked against the flags its main.go defines; flags "
                       "the rack sets itself are refused."}


def _docstrings(cls: type) -> dict[str, str]:
    """A dataclass's attribute docstrings (the string right after each field), read from its source."""
    tree = ast.parse(inspect.getsource(cls))
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    out = {}
    for field, after in zip(body, body[1:], strict=False):  # each with the statement after it
        if (isinstance(field, ast.AnnAssign) and isinstance(field.target, ast.Name) and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)):
            out[field.target.id] = " ".join(after.value.value.split())
    return out


# Defaults that come from the rack's own LAN (components/settings/places.py).
FROM_THE_LAN = {("nfs", "subnet"): "the rack LAN",
                ("routerBackup", "devices"): "the EdgeRouter at the LAN's first address, user admin"}


def type_text(annotation: typing.Any, metadata: typing.Sequence[typing.Any] = ()) -> str:
    """A field's type in the words its check uses (pydantic keeps a field's own Annotated
    metadata apart from its annotation)."""
    for m in metadata:
        if isinstance(m, PlainValidator) and isinstance(m.func, Check):
            return m.func.expected
    if typing.get_origin(annotation) is typing.Union:
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    if typing.get_origin(annotation) is typing.Annotated:
        base, *inner = typing.get_args(annotation)
        return type_text(base, inner)
    origin = typing.get_origin(annotation)
    if origin is tuple:
        return f"a list of {type_text(typing.get_args(annotation)[0]).removeprefix('a ').removeprefix('an ')}"
    if origin is dict:
        key, value = typing.get_args(annotation)
        return f"an object of {type_text(key)} -> {type_text(value)}"
    if isinstance(annotation, type) and issubclass(annotation, Model):
        return "{" + ", ".join(annotation.yaml_keys()) + "}"
    return getattr(annotation, "__name__", str(annotation))


def _default_text(value: typing.Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, BaseModel):
        return "{}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return "[]" if not value else ", ".join(f"`{v}`" for v in value)
    if value == "":
        return "`''`"
    return f"`{value}`"


def _rows(service: str, model: type[Model]) -> list[str]:
    args = ARGS[service]
    arg_fields = {f.name: f for f in dataclasses.fields(args)}
    docs = _docstrings(args)
    rows = []
    for name, field in model.model_fields.items():
        key = field.alias or camel(name)
        if field.annotation is typing.Any:  # a key that is only ever refused (alertToPubsub.topic)
            continue
        default = field.get_default(call_default_factory=True)
        if (service, key) in FROM_THE_LAN:
            default = FROM_THE_LAN[(service, key)]
        elif default is None and name in arg_fields and arg_fields[name].default is not dataclasses.MISSING:
            default = f"{_default_text(arg_fields[name].default)} (component default)"
        else:
            default = _default_text(default)
        meaning = COMMON.get(key) or docs.get(name) or " ".join((field.description or "").split()) or "-"
        rows.append(f"| `{key}` | {type_text(field.annotation, field.metadata)} | {default} | {meaning} |")
    return rows


def services_markdown() -> str:
    lines = ["# Service options", "",
             "Generated from `components/settings/services.py` and each component's Args by "
             "`rackctl schema --write`; edit those, not this file (CI fails when they differ).", "",
             f"Each service is `{NAMESPACE}:services.<service>` in a stack file; every key is optional. An option "
             "left unset takes its component's default. Dangerous values are refused before any host is touched "
             "(README: Config).", ""]
    for name, field in Services.model_fields.items():
        key = field.alias or camel(name)
        model = field.annotation
        assert isinstance(model, type) and issubclass(model, Model)
        lines += [f"## {key}", "", "| Key | Type | Default | Meaning |", "|---|---|---|---|", *_rows(key, model), ""]
    return "\n".join(lines)
