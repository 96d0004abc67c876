"""The one reading of the CI environment variable, and what a test tier does when it cannot run.

CI (`.ci/run`, GitHub Actions) sets CI=true. There, a tier that cannot run is a failure that says
why; elsewhere it is a skip that says why and how to get what is missing. Every test that may
not be able to run asks `cannot_run` rather than reading CI itself.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    """CI=true or CI=1 (any case): what GitHub Actions and .ci/run set."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


def cannot_run(reason: str, *, module: bool = False) -> NoReturn:
    """Fail under CI, skip elsewhere; `reason` says what is missing and how to get it. `module`:
    called at a test module's top level (a skip of the whole module)."""
    if in_ci():
        pytest.fail(f"CI must run this: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=module)
