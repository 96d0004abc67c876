"""`rackctl schema`: Pulumi.yaml's `config:` block, generated from the settings models so that a key is
written once:
`rackctl schema --write` rewrites everything below MARKER, and a test fails when the file and
the models differ.

Declared: every plain key (type, description, default) and the secrets every stack needs. The
other secrets are listed in a comment: the Pulumi CLI requires every declared key that has no
default in every stack, and refuses a default on a secret.
"""

from __future__ import annotations

import textwrap
import typing
from pathlib import Path

import yaml
from pydantic import BaseModel

from components.settings.fields import NAMESPACE
from components.settings.models import Settings
from components.settings.secrets import SECRETS

MARKER = "# Generated from components/settings by `rackctl schema --write`: edit the models, not this block."
_TYPES = {str: "string", int: "integer", bool: "boolean"}


def _pulumi_type(annotation) -> dict:
    if typing.get_origin(annotation) is typing.Union:  # Optional[X]
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return {"type": "object"}
    if typing.get_origin(annotation) in (tuple, list):
        return {"type": "array", "items": {"type": "object"}}
    return {"type": _TYPES[annotation]}


def _default(value):
    return value.model_dump(exclude_defaults=True, by_alias=True) if isinstance(value, BaseModel) else value


def _words(text: str) -> str:
    return " ".join(text.split())


def config_block() -> dict:
    block = {}
    for field in Settings.model_fields.values():
        decl = _pulumi_type(field.annotation)
        if not field.is_required():
            if field.get_default(call_default_factory=True) is None:  # the CLI reads a null default as none, and then requires the key
                raise ValueError(f"{field.alias}: give it a default Pulumi.yaml can declare (not None)")
            decl["default"] = _default(field.get_default(call_default_factory=True))
        decl["description"] = _words(field.description or "")
        block[f"{NAMESPACE}:{field.alias}"] = decl
    for spec in SECRETS:
        if spec.when == "always":
            block[f"{NAMESPACE}:{spec.key}"] = {"type": "string", "secret": True, "description": spec.description}
    return block


def conditional_secrets_comment() -> str:
    lines = ["Secrets needed only sometimes (set each with `pulumi config set --secret skolo:KEY`):"]
    lines += [f"  {NAMESPACE}:{s.key} ({s.when}): {s.description}" for s in SECRETS if s.when != "always"]
    return "\n".join("#" + (" " + line if line else "") for text in lines
                     for line in textwrap.wrap(text, 110, subsequent_indent="    ") or [""]) + "\n"


def render(project_file: Path) -> str:
    """Pulumi.yaml as it should be: the file's own head, then the generated block."""
    head = project_file.read_text().split(MARKER)[0].rstrip("\n") + "\n"
    body = yaml.safe_dump({"config": config_block()}, sort_keys=False, width=110, allow_unicode=True)
    return f"{head}{MARKER}\n{conditional_secrets_comment()}{body}"
