"""The base of every config model, and how pydantic's errors become the lines an operator reads:
`skolo:rpis[3].address: expected an IPv4 address, got 'abc'`, every problem at once.

Models are frozen, know their YAML keys (camelCase aliases of the fields), refuse unknown keys
with a "did you mean", and describe a value that is not an object. A rule that spans fields
reports its problems with `rules([(path below the model, message), ...])`.
"""

from __future__ import annotations

import difflib
from typing import Any, ClassVar, Iterable

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, model_validator
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError

from components.settings.fields import NAMESPACE, fail, show, type_name

_OURS = ("skolo", "skolo_rules")


class ConfigError(Exception):
    """Every problem found in one stack's config, one per line. rackctl prints it as it is; in the
    Pulumi program it is raised as a pulumi.RunError too (settings.load), which the CLI prints
    without a traceback. (Importing pulumi here would cost every rackctl command 0.3 s.)"""

    def __init__(self, stack: str, problems: list[str]):
        self.stack, self.problems = stack, problems
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(f"stack {stack!r} has {len(problems)} config {noun}; nothing was changed on any host:\n"
                         + "\n".join(f"  {p}" for p in problems))


def rules(problems: Iterable[tuple[tuple, str]]) -> PydanticCustomError:
    problems = list(problems)
    return PydanticCustomError("skolo_rules", "{message}", {"message": problems[0][1], "problems": problems})


def shape(kind: type, description: str) -> BeforeValidator:
    """Refuse a value that is not a `kind` (list or dict) with `expected <description>`."""

    def check(value: Any) -> Any:
        if not isinstance(value, kind):
            raise fail(f"expected {description}, got {type_name(value)} {show(value)}")
        return value

    return BeforeValidator(check)


def camel(name: str) -> str:
    """The YAML key of a field: k3s_install_script_url -> k3sInstallScriptUrl."""
    first, *rest = name.split("_")
    return first + "".join(word[:1].upper() + word[1:] for word in rest)


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, alias_generator=camel, use_attribute_docstrings=True)
    noun: ClassVar[str] = "key"
    listing: ClassVar[str] = "known keys"

    @classmethod
    def yaml_keys(cls) -> list[str]:
        return [f.alias or name for name, f in cls.model_fields.items()]

    @classmethod
    def unknown(cls, key: str) -> str:
        hint = difflib.get_close_matches(key, cls.yaml_keys())  # best first
        return f"unknown {cls.noun}" + (f" (did you mean {hint[0]}?)" if hint else
                                        f"; {cls.listing}: {', '.join(cls.yaml_keys())}")

    @model_validator(mode="wrap")
    @classmethod
    def _an_object_of_known_keys(cls, data: Any, handler):
        if not isinstance(data, dict):
            raise fail(f"expected an object with keys {', '.join(cls.yaml_keys())}, got {type_name(data)} {show(data)}")
        unknown = [InitErrorDetails(type=fail(cls.unknown(k)), loc=(k,), input=None)
                   for k in data if k not in cls.yaml_keys()]
        try:
            result = handler(data)
        except ValidationError as e:  # re-raised with the unknown keys, so every problem shows at once
            unknown = [InitErrorDetails(type=PydanticCustomError(x["type"], "{message}", x.get("ctx"))
                                        if x["type"] in _OURS else x["type"], loc=x["loc"], input=x.get("input"))
                       for x in e.errors()] + unknown
        if unknown:
            raise ValidationError.from_exception_data(cls.__name__, unknown)
        return result

    def get(self, key: str) -> Any:
        """A field by its YAML key."""
        return getattr(self, next(name for name, f in type(self).model_fields.items() if f.alias == key))

    def options(self) -> dict[str, Any]:
        """The options that have a value, by Python name, for the component's Args. An option
        with no value here (None) takes the default on the component's Args. (The legacy unit
        is the program's wiring, not the component's.)"""
        return {k: v for k, v in self.model_dump(exclude={"enabled", "legacy_unit"}).items() if v is not None}


_BUILT_IN = {"missing": "missing; this key is required", "tuple_type": "expected a list", "dict_type": "expected an object"}


def _path(loc: Iterable) -> str:
    out = NAMESPACE
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        elif not str(part).startswith("<"):  # a union tag, not a key
            out += (":" if i == 0 else ".") + str(part)
    return out


def _context(error: ErrorDetails) -> dict[str, Any]:
    """The context our own error types always carry (pydantic's own may have none)."""
    return error.get("ctx") or {}


def lines(error: ValidationError, prefix: tuple = ()) -> list[str]:
    """One `path: message` line per problem; `prefix` is where the validated value sits."""
    out = []
    for e in error.errors():
        loc = prefix + tuple(e["loc"])
        if e["type"] == "skolo_rules":
            out += [f"{_path(loc + tuple(rel))}: {message}" for rel, message in _context(e)["problems"]]
        elif e["type"] == "missing":
            out.append(f"{_path(loc)}: {_BUILT_IN['missing']}" + (" (see Pulumi.rack1.yaml)" if len(loc) == 1 else ""))
        elif e["type"] in _BUILT_IN:
            out.append(f"{_path(loc)}: {_BUILT_IN[e['type']]}, got {type_name(e['input'])} {show(e['input'])}")
        else:
            out.append(f"{_path(loc)}: {e['msg']}")  # ours: exactly the message fail() was given
    return out
