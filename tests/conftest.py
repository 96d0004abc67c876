"""Shared fixtures. Each program run sets mocks and config afresh (function scope), so tests
never see each other's registrations."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rackctl import program  # noqa: E402

# Known values planted as the stack's secrets, so tests can look for them everywhere.
PLANTED = {
    "k3sToken": "K10planted-k3s-token-7f3a9c::server:planted",
    "sshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nplanted-ssh-key-body-51e0\n-----END OPENSSH PRIVATE KEY-----\n",
}


@pytest.fixture
def run_stack():
    """run_stack(stack, overrides=None, secrets=PLANTED) -> program.Run"""

    def run(stack: str, overrides=None, secrets=None) -> program.Run:
        return program.run_stack(stack, secrets=PLANTED if secrets is None else secrets, overrides=overrides)

    return run


def stack_raw(stack: str) -> dict:
    """A stack's plain config as the settings layer sees it: defaults applied, no prefix."""
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    raw = {k.split(":", 1)[1]: d["default"] for k, d in project["config"].items() if "default" in d}
    doc = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
    raw.update({k.split(":", 1)[1]: v for k, v in doc["config"].items()})
    return copy.deepcopy(raw)
