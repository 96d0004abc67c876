"""Benchmark (not a test): `rackctl status` against a real v1.31 API server holding a 1000-Pi rack.

    .venv/bin/python benchmarks/status_real_cluster.py [PIS]

Starts the tests' control plane (tests/controlplane.py: KUBEBUILDER_ASSETS or build/k8s, and
etcd), creates PIS Pi Nodes and the jumphost (Ready, at the stack's version) and one swarming bot
pod per Pi (Running), writes a stack file declaring those Pis, then times the whole command as an
operator runs it (`rackctl status STACK --kubeconfig ... --format json`: Python start-up, two
kubectl reads, the comparison and the JSON view). Goal (issue 18): under 2 s here. Nodes and pods
are created as the admin: no kubelet runs, and nothing here renews their Leases, so the node
controller will mark them NotReady after a while; that changes the answer, not the work.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import yaml  # noqa: E402

from components import kube, settings  # noqa: E402
from settings_load import fleet  # noqa: E402
from tests.conftest import PLANTED  # noqa: E402
from tests.controlplane import ControlPlane, missing_reason, now  # noqa: E402


def main() -> None:
    pis = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    if missing_reason():
        sys.exit(missing_reason())
    raw = fleet(pis)
    rack = settings.parse("rack1", raw, PLANTED)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "cp").mkdir()
        cp = ControlPlane(work / "cp").start()
        try:
            started = time.perf_counter()
            nodes = [(rack.jumphost.name, "10.0.0.8", kube.ROLE_JUMPHOST)] + [
                (pi.name, pi.address, kube.ROLE_RPI) for pi in rack.rpis]
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda n: make_node(cp, *n, rack.k3s_version), nodes))
                cp.request("POST", "/api/v1/namespaces", {"metadata": {"name": "swarming"}})
                list(pool.map(lambda pi: make_bot(cp, pi.name, rack.images.swarming), rack.rpis))
            print(f"{len(nodes)} Nodes and {pis} bot pods created in {time.perf_counter() - started:.1f} s")

            config = work / "config"
            config.mkdir()
            (config / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
            (config / "Pulumi.rack1.yaml").write_text(yaml.safe_dump(
                {"config": {f"skolo:{k}": v for k, v in raw.items()}}, sort_keys=False))
            kubeconfig = cp.write_kubeconfig(work / "rack1.kubeconfig", cluster="rack1", user={
                "client-certificate": str(cp.admin.cert), "client-key": str(cp.admin.key)})
            times = []
            for _ in range(5):
                start = time.perf_counter()
                result = subprocess.run(
                    [sys.executable, "-m", "rackctl", "--config-dir", str(config), "status", "rack1",
                     "--kubeconfig", str(kubeconfig), "--format", "json"], cwd=ROOT, capture_output=True, text=True,
                    env={"PATH": f"{cp.bin}:/usr/bin:/bin"})
                times.append(time.perf_counter() - start)
                assert result.returncode in (0, 1), result.stderr
                doc = json.loads(result.stdout)
                assert doc["counts"]["pis"] == pis
            print(f"rackctl status of a {pis}-Pi rack on a real API server: best {min(times):.2f} s, "
                  f"median {statistics.median(times):.2f} s (goal: under 2 s)")
        finally:
            cp.stop()


def make_node(cp: ControlPlane, name: str, address: str, role: str, version: str) -> None:
    r = cp.request("POST", "/api/v1/nodes", {"metadata": {"name": name, "labels": {kube.ROLE_LABEL: role}}})
    assert r.ok, r.text
    stamp = now()
    r = cp.request("PATCH", f"/api/v1/nodes/{name}/status", {"status": {
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "lastHeartbeatTime": stamp,
                        "lastTransitionTime": stamp}],
        "addresses": [{"type": "InternalIP", "address": address}],
        "nodeInfo": {"kubeletVersion": version, "kubeProxyVersion": version, "architecture": "arm64",
                     "operatingSystem": "linux", "osImage": "", "containerRuntimeVersion": "", "kernelVersion": "",
                     "machineID": "", "systemUUID": "", "bootID": ""}}},
        content_type="application/strategic-merge-patch+json")
    assert r.ok, r.text


def make_bot(cp: ControlPlane, node: str, image: str) -> None:
    name = f"swarming-{node[-12:]}"
    r = cp.request("POST", "/api/v1/namespaces/swarming/pods", {"metadata": {
        "name": name, "labels": {kube.APP_LABEL: "swarming"}},
        "spec": {"nodeName": node, "containers": [{"name": "swarming", "image": image}]}})
    assert r.ok, r.text
    r = cp.request("PATCH", f"/api/v1/namespaces/swarming/pods/{name}/status", {"status": {
        "phase": "Running", "containerStatuses": [{"name": "swarming", "image": image, "imageID": "", "ready": True,
                                                   "restartCount": 0, "state": {"running": {"startedAt": now()}}}]}},
        content_type="application/strategic-merge-patch+json")
    assert r.ok, r.text


if __name__ == "__main__":
    main()
