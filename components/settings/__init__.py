"""The one place that knows the stack's config keys.

Turns the raw `skolo:*` values of one stack into frozen, validated settings before any resource
is declared: pydantic models (models.py: the stack; hosts.py: jumphost and Pis; services.py;
places.py: what stays on the LAN and off system directories) over scalar types that say what a
good value is (fields.py), and a table of secrets (secrets.py). Every problem is reported at once,
with its full key path, the bad value (never a secret's) and the fix. Pulumi.yaml's `config:`
block is generated from the models (`rackctl schema --write`). Nothing here touches a host or
declares a resource.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Optional

from pydantic import ValidationError

from components.settings import secrets as _secrets
from components.settings.base import ConfigError, lines
from components.settings.fields import NAMESPACE
from components.settings.hosts import Rpi
from components.settings.models import Settings
from components.settings.secrets import SECRET_KEYS, SECRETS, Secret
from components.settings.services import IMAGE_SERVICES, SERVICES

PLAIN_KEYS = tuple(Settings.yaml_keys())
__all__ = ["ConfigError", "IMAGE_SERVICES", "NAMESPACE", "PLAIN_KEYS", "Rpi", "SECRETS",
           "SECRET_KEYS", "SERVICES", "Secret", "Settings", "decode", "load", "parse"]


def parse(stack: str, raw: Mapping[str, Any], secrets: Mapping[str, Optional[str]],
          plaintext_secrets: frozenset[str] = frozenset()) -> Settings:
    """Validate one stack's config. Pure: no Pulumi runtime, no hosts. `raw` maps plain keys
    (no `skolo:` prefix) to decoded values; `secrets` maps secret keys to values (None when
    unset); `plaintext_secrets` names those set without --secret."""
    try:
        settings, problems = Settings.model_validate({k: v for k, v in raw.items() if k not in SECRET_KEYS}), []
    except ValidationError as e:
        settings, problems = None, lines(e)
    secret_problems, good = _secrets.check(settings, secrets, plaintext_secrets)
    if settings is None or secret_problems:
        raise ConfigError(stack, problems + secret_problems)
    settings._rack, settings._secrets = stack, good
    return settings


def decode(value: Any) -> Any:
    """The CLI hands every value over as a string; objects and lists arrive as JSON."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def load() -> Settings:
    """Read this stack's `skolo:*` config from the Pulumi runtime and validate it. Bad config is
    raised as a ConfigError that is also a pulumi.RunError: the CLI prints it without a traceback."""
    import pulumi
    from pulumi.runtime import config as runtime

    # Every `skolo:` key the stack sets, so that a misspelt key is reported, not ignored.
    ours = f"{NAMESPACE}:"
    present = {k.removeprefix(ours) for k in set(runtime.CONFIG.get()) | set(runtime.get_config_env())
               if k.startswith(ours)}
    values = {k: runtime.get_config(ours + k) for k in present | set(PLAIN_KEYS) if k not in SECRET_KEYS}
    raw = {k: decode(v) for k, v in values.items() if v is not None}
    secrets = {k: runtime.get_config(ours + k) for k in SECRET_KEYS}
    plaintext = {k for k, v in secrets.items() if v is not None and not runtime.is_config_secret(ours + k)}
    try:
        return parse(pulumi.get_stack(), raw, secrets, frozenset(plaintext))
    except ConfigError as e:
        class ReportedConfigError(ConfigError, pulumi.RunError):
            """A ConfigError the Pulumi CLI prints as a message, without a traceback."""

        raise ReportedConfigError(e.stack, e.problems) from None
