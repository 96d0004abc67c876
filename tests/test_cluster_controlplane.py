"""The test control plane itself (tests/controlplane.py): a port taken between choosing it and
binding it is retried on new ports, and every process it started ends by PID."""

from __future__ import annotations

import os
import socket

import pytest

from tests.ci import cannot_run
from tests.controlplane import ControlPlane, free_port, missing_reason

pytestmark = pytest.mark.cluster


def test_a_port_taken_before_the_api_server_binds_it_is_retried(tmp_path):
    if reason := missing_reason():
        cannot_run(f"the control-plane tests: {reason}")
    holder = socket.socket()  # another process's listener, on the port handed to the API server
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    handed = iter([holder.getsockname()[1]])
    cp = ControlPlane(tmp_path)
    try:
        cp.start(lambda: next(handed, None) or free_port())
        assert cp.attempts == 2
        assert "address already in use" in (tmp_path / "kube-apiserver.log").read_text()  # the first one's
        assert cp.kubectl("get", "--raw", "/readyz").stdout == "ok"
        pids = [proc.pid for proc in cp.processes.values()]
        assert len(pids) == 4
    finally:
        cp.stop()
        holder.close()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_request_of_the_stand_in_kubelet_that_the_server_refuses_is_recorded(control_plane):
    """What makes conftest fail a test: the stand-in records a refusal (a 403 here, a Pi's node
    identity reading every Secret) and does not record a race (a 404 for an object gone)."""
    cp, kubelet, _ = control_plane
    who = kubelet.node_identity("skia-rpi2-rack9-shelf1-001")
    before = len(kubelet.errors)
    kubelet._check(cp.request("GET", "/api/v1/secrets", who=who), "reading every Secret")
    kubelet._check(cp.request("GET", "/api/v1/namespaces/default/pods/gone"), "reading a pod that went")
    recorded = kubelet.errors[before:]
    del kubelet.errors[before:]  # recorded on purpose: not this test's failure
    assert len(recorded) == 1 and recorded[0].startswith("reading every Secret: 403 "), recorded
