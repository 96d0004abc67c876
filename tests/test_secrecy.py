"""Known secrets are planted as the stack's config; none may surface anywhere but a secret
input or a secret output. Covers every secret config key the program declares."""

from __future__ import annotations

import json

import pytest

from components import settings
from rackctl import render
from tests.conftest import NEEDLES, PLANTED


def test_planted_values_cover_every_secret_key():
    assert set(PLANTED) == set(settings.SECRET_KEYS) == set(NEEDLES)


def _leaks(text: str) -> list[str]:
    return [key for key, needle in NEEDLES.items() if needle in text]


@pytest.mark.parametrize("stack", ["rack1", "rack2"])
def test_secrets_reach_only_secret_inputs_and_outputs(run_stack, stack, tmp_path):
    run = run_stack(stack)
    carriers = set()
    for r in run.resources:
        for key, value in r.inputs.items():
            found = _leaks(json.dumps(value))
            if found:
                assert key in r.secret_inputs, f"{r.type} {r.name}.{key} carries {found} in plain state"
                carriers.add((r.type, key))
        for phase in ("create", "delete", "update"):
            assert not _leaks(str(r.inputs.get(phase) or "")), f"{r.name}.{phase} command text holds a secret"
    # Where the secrets are supposed to be: stdin of the server install and of the Pis' key,
    # every SSH connection, and the provider's kubeconfig (no planted value, but secret).
    assert ("command:remote:Command", "stdin") in carriers
    assert ("command:remote:Command", "connection") in carriers
    for name, value in run.outputs.items():
        if name not in run.secret_outputs:
            assert not _leaks(json.dumps(value)), f"plain stack output {name} holds a secret"
    written = render.write(run, tmp_path / "out")
    for path in written:
        assert not _leaks(path.read_text()), f"rendered file {path} holds a secret"
    summary = render.summary(run, tmp_path / "out", written)
    assert not _leaks(summary)


def test_token_only_on_stdin_of_the_server_install(run_stack):
    """The Pis' joins read it from the jumphost's own token file: it is sent once."""
    run = run_stack("rack2")
    holders = sorted(r.name for r in run.resources if NEEDLES["k3sToken"] in str(r.inputs.get("stdin")))
    assert holders == ["rack2-install"]


def test_kubeconfig_output_and_provider_input_are_secret(run_stack):
    run = run_stack("rack2")
    assert "kubeconfig" in run.secret_outputs
    provider = run.of_type("pulumi:providers:kubernetes")[0]
    assert "kubeconfig" in provider.secret_inputs
