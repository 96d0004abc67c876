"""A real Kubernetes v1.31 control plane for the tests: etcd, kube-apiserver, kube-controller-manager
and kube-scheduler on 127.0.0.1, each on a free port, in a temp dir the fixture owns, stopped by
PID even when a test fails.

The binaries come from `KUBEBUILDER_ASSETS` (the envtest convention: `setup-envtest use 1.31 -p
path` outside this lab, `../shared/k8s/unpack DIR` in it; `.ci/run` unpacks them into
build/k8s); etcd from there or from PATH (Debian's `etcd-server`).

The API server runs as k3s's does where it matters here: Node and RBAC authorization, the
NodeRestriction admission plugin, privileged containers allowed, service-account tokens. Clients
are real certificates from a CA made with openssl: the admin (system:masters), and any identity a
test asks for, `system:node:<name>` in group `system:nodes` among them.

No kubelet runs. `StandInKubelet` (named as one) does, for the Nodes a test registers, the few
things a kubelet and k3s's local-path provisioner would: it registers each Node with its own node
identity (so NodeRestriction judges its labels), posts Ready at a version, renews its Lease so the
real node controller keeps it Ready (a Node whose Lease stops is marked NotReady by that
controller), posts Ready again for a live Node the controller marked NotReady (as a kubelet's
status loop does, so a stall on a loaded machine heals instead of stranding the Node), reports
the pods bound to its live Nodes Running, finishes deleting pods that are Terminating on its
live Nodes, and binds a volume for a claim the scheduler has picked a node for. Leases are
renewed on a thread of their own, so pod work never delays them. Every request of its that the
API server refuses is recorded, and fails the test it happened in (tests/conftest.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import requests

from tests.processes import spawn

ROOT = Path(__file__).resolve().parent.parent
BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
HOW_TO_GET = ("set KUBEBUILDER_ASSETS to a directory holding kube-apiserver, kube-controller-manager, "
              "kube-scheduler and kubectl v1.31 (in this lab: ../shared/k8s/unpack build/k8s; elsewhere: "
              "setup-envtest use 1.31 -p path) and install etcd (Debian: apt-get install etcd-server)")
CLUSTER_CIDR = "10.44.0.0/14"  # what the rack's k3s is given (skolo:clusterCidr's default)
SERVICE_CIDR = "10.43.0.0/16"  # k3s's default
# The node controller marks a Node whose Lease has not been renewed for this long NotReady
# (Unknown). Shorter than Kubernetes' 40 s default so that a test of it does not wait long.
NODE_GRACE_SECONDS = 16

# What k3s ships and the rack's objects rely on: its local-path StorageClass (k3s
# manifests/local-storage.yaml), which does not allow volume expansion.
K3S_OBJECTS = [{
    "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
    "metadata": {"name": "local-path", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
    "provisioner": "rancher.io/local-path", "volumeBindingMode": "WaitForFirstConsumer", "reclaimPolicy": "Delete"}]


def assets() -> Optional[Path]:
    """The directory with the control plane's binaries, or None."""
    where = os.environ.get("KUBEBUILDER_ASSETS")
    if not where:
        default = ROOT / "build" / "k8s"
        where = str(default) if default.is_dir() else ""
    if not where or not all(os.access(Path(where) / b, os.X_OK) for b in BINARIES):
        return None
    return Path(where)


def etcd_binary(directory: Optional[Path]) -> Optional[str]:
    if directory and os.access(directory / "etcd", os.X_OK):
        return str(directory / "etcd")
    return shutil.which("etcd")


def missing_reason() -> Optional[str]:
    """Why the control plane cannot start here, or None when it can."""
    directory = assets()
    if directory is None:
        return f"no Kubernetes control plane binaries: {HOW_TO_GET}"
    if etcd_binary(directory) is None:
        return f"no etcd: {HOW_TO_GET}"
    if shutil.which("openssl") is None:
        return "no openssl to make the control plane's certificates"
    return None


def free_port() -> int:
    """A port free now. etcd and kube-apiserver bind their own ports and cannot report a port 0
    back, so another process may take this one before they bind it: ControlPlane.start retries
    with new ports when one of them finds its port taken (PORT_CLASH in its log)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PORT_CLASH = "address already in use"
START_ATTEMPTS = 3


def wait_for(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.2) -> Any:
    """Poll `condition` until it returns something true; its value. Fails naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f}s")
        time.sleep(every)


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Identity:
    """A client certificate for one user and its groups, and a kubeconfig around it."""

    user: str
    cert: Path
    key: Path
    kubeconfig: Path


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager + kube-scheduler, started by `start()`."""

    def __init__(self, workdir: Path):
        self.dir = workdir
        self.bin = assets()
        if self.bin is None:
            raise RuntimeError(missing_reason())
        self.processes: dict[str, subprocess.Popen] = {}
        self.port = 0
        self.url = ""
        self.attempts = 0
        """How many starts it took (more than one: a port was taken between choosing and binding)."""
        self.ca = self.dir / "ca.crt"
        self._identities: dict[str, Identity] = {}
        self._sessions: dict[tuple[str, int], requests.Session] = {}

    # Certificates ----------------------------------------------------------------------

    def _openssl(self, *args: str) -> None:
        subprocess.run(["openssl", *args], cwd=self.dir, check=True, capture_output=True)

    def _certificates(self) -> None:
        self._openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
                      "-days", "2", "-subj", "/CN=skolo-test-ca")
        self._openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "apiserver.key", "-out", "apiserver.csr",
                      "-subj", "/CN=kube-apiserver")
        (self.dir / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.43.0.1\n")
        self._openssl("x509", "-req", "-in", "apiserver.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                      "-out", "apiserver.crt", "-days", "2", "-extfile", "san.ext")
        self._openssl("genrsa", "-out", "sa.key", "2048")
        self._openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub")

    def identity(self, user: str, groups: Iterable[str] = ()) -> Identity:
        """A client certificate (CN=user, O=each group) and a kubeconfig for it, made once."""
        key = f"{user}|{','.join(sorted(groups))}"
        if key in self._identities:
            return self._identities[key]
        stem = f"id-{len(self._identities)}"
        subject = "".join(f"/O={g}" for g in sorted(groups)) + f"/CN={user}"
        self._openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                      "-keyout", f"{stem}.key", "-out", f"{stem}.csr", "-subj", subject)
        self._openssl("x509", "-req", "-in", f"{stem}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                      "-out", f"{stem}.crt", "-days", "2")
        kubeconfig = self.dir / f"{stem}.kubeconfig"
        self.write_kubeconfig(kubeconfig, cluster="test", user={
            "client-certificate": str(self.dir / f"{stem}.crt"), "client-key": str(self.dir / f"{stem}.key")})
        ident = Identity(user, self.dir / f"{stem}.crt", self.dir / f"{stem}.key", kubeconfig)
        self._identities[key] = ident
        return ident

    def write_kubeconfig(self, path: Path, *, cluster: str, user: dict) -> Path:
        """A kubeconfig for this API server whose cluster, context and user are named `cluster`."""
        doc = {"apiVersion": "v1", "kind": "Config", "current-context": cluster,
               "clusters": [{"name": cluster, "cluster": {"server": self.url, "certificate-authority": str(self.ca)}}],
               "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": cluster}}],
               "users": [{"name": cluster, "user": user}]}
        path.write_text(json.dumps(doc, indent=1))
        path.chmod(0o600)
        return path

    @property
    def admin(self) -> Identity:
        return self.identity("skolo-test-admin", ["system:masters"])

    # Processes -------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.dir / f"{name}.log", "ab")  # appended: a retried start keeps the first one's reason
        self.processes[name] = spawn(argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.dir, start_new_session=True)
        log.close()

    def _alive(self) -> None:
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                tail = (self.dir / f"{name}.log").read_text(errors="replace").splitlines()[-15:]
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n" + "\n".join(tail))

    def start(self, ports: Optional[Callable[[], int]] = None) -> "ControlPlane":
        """Start etcd, the API server, the controller manager and the scheduler, on ports from
        `ports` (default free_port); again on new ports when one was taken meanwhile."""
        assert self.bin is not None
        try:
            self._certificates()
            while True:
                self.attempts += 1
                try:
                    self._start(ports or free_port)
                    return self
                except RuntimeError as e:
                    if PORT_CLASH not in str(e) or self.attempts >= START_ATTEMPTS:
                        raise
                    self.stop()  # and again, on new ports
        except BaseException:
            self.stop()
            raise

    def _start(self, ports: Callable[[], int]) -> None:
        assert self.bin is not None
        self.processes, self._identities, self._sessions = {}, {}, {}
        self.port = ports()
        self.url = f"https://127.0.0.1:{self.port}"
        client, peer = ports(), ports()
        etcd = f"http://127.0.0.1:{client}"
        self._spawn("etcd", [etcd_binary(self.bin) or "etcd", "--data-dir", str(self.dir / f"etcd-{self.attempts}"),
                             "--listen-client-urls", etcd, "--advertise-client-urls", etcd,
                             "--listen-peer-urls", f"http://127.0.0.1:{peer}",
                             "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
                             "--initial-cluster", f"default=http://127.0.0.1:{peer}",
                             "--unsafe-no-fsync"])
        self._spawn("kube-apiserver", [
            str(self.bin / "kube-apiserver"), f"--etcd-servers={etcd}", "--bind-address=127.0.0.1",
            f"--secure-port={self.port}", "--tls-cert-file=apiserver.crt", "--tls-private-key-file=apiserver.key",
            "--client-ca-file=ca.crt", "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--service-account-key-file=sa.pub", "--service-account-signing-key-file=sa.key",
            "--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
            "--allow-privileged=true", "--endpoint-reconciler-type=none",
            f"--service-cluster-ip-range={SERVICE_CIDR}"])
        admin = self.admin
        wait_for(self._ready, 90, "the API server answering /readyz", every=0.5)
        self._spawn("kube-controller-manager", [
            str(self.bin / "kube-controller-manager"), f"--kubeconfig={admin.kubeconfig}",
            "--use-service-account-credentials", "--service-account-private-key-file=sa.key",
            "--root-ca-file=ca.crt", f"--cluster-cidr={CLUSTER_CIDR}", "--allocate-node-cidrs",
            "--leader-elect=false", "--secure-port=0", f"--node-monitor-grace-period={NODE_GRACE_SECONDS}s",
            "--node-monitor-period=2s",
            # Its status writes make the API server recompile the policies again, at times nothing
            # here controls (see LiveRack.converge and kubernetes#135757).
            "--controllers=*,-validatingadmissionpolicy-status-controller"])
        self._spawn("kube-scheduler", [str(self.bin / "kube-scheduler"), f"--kubeconfig={admin.kubeconfig}",
                                       "--leader-elect=false", "--secure-port=0"])
        # The controllers are up once the service-account controller has made `default` accounts.
        wait_for(lambda: self._alive() or self.get("/api/v1/namespaces/default/serviceaccounts/default",
                                                   check=False) is not None,
                 60, "the controller manager making the default ServiceAccount", every=0.5)
        for obj in K3S_OBJECTS:
            self.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(obj))

    def _ready(self) -> bool:
        self._alive()
        try:
            r = self.session(self.admin).get(f"{self.url}/readyz", timeout=5)
            return r.status_code == 200
        except requests.RequestException:
            return False

    def stop(self) -> None:
        """Stop every process this control plane started, by PID, last started first."""
        for session in self._sessions.values():
            session.close()
        for proc in reversed(list(self.processes.values())):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)

    def log(self, name: str) -> str:
        return (self.dir / f"{name}.log").read_text(errors="replace")

    def policy_refreshes(self) -> int:
        """How often the API server has recompiled its admission policies (it logs each time)."""
        return self.log("kube-apiserver").count("refreshing policies")

    @contextlib.contextmanager
    def controllers_paused(self):
        """The controller manager stopped (SIGSTOP to its PID) for the block: no controller creates
        a pod, so nothing is admitted but what the test itself sends."""
        proc = self.processes["kube-controller-manager"]
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(proc.pid, signal.SIGCONT)

    def wait_policies_recompiled(self, before: int, quiet: float = 1.0) -> None:
        """Wait until the API server has recompiled its policies since `before` and then logged no
        further recompile for `quiet` seconds."""
        wait_for(lambda: self.policy_refreshes() > before, 30, "the API server recompiling its policies")
        last, since = self.policy_refreshes(), time.monotonic()
        while time.monotonic() - since < quiet:
            time.sleep(0.1)
            now_count = self.policy_refreshes()
            if now_count != last:
                last, since = now_count, time.monotonic()

    # Clients ---------------------------------------------------------------------------

    def session(self, who: Identity) -> requests.Session:
        """One per identity and thread (the stand-in kubelet's thread and the test's never share
        one: requests does not promise a Session is safe across threads)."""
        key = (who.user, threading.get_ident())
        if key not in self._sessions:
            s = requests.Session()
            s.cert = (str(who.cert), str(who.key))
            s.verify = str(self.ca)
            s.trust_env = False  # REQUESTS_CA_BUNDLE would otherwise replace `verify`; no proxies either
            self._sessions[key] = s
        return self._sessions[key]

    def request(self, method: str, path: str, body: Any = None, *, who: Optional[Identity] = None,
                content_type: str = "application/json", params: Optional[dict] = None) -> requests.Response:
        data = body if isinstance(body, (str, bytes)) or body is None else json.dumps(body)
        return self.session(who or self.admin).request(
            method, f"{self.url}{path}", data=data, params=params, timeout=30,
            headers={"Content-Type": content_type} if data is not None else None)

    def get(self, path: str, *, who: Optional[Identity] = None, check: bool = True) -> Optional[dict]:
        r = self.request("GET", path, who=who)
        if r.status_code == 404 and not check:
            return None
        if check:
            r.raise_for_status()
        return r.json() if r.ok else None

    def kubectl(self, *args: str, who: Optional[Identity] = None, input: Optional[str] = None,
                check: bool = True, timeout: float = 120, env: Optional[dict[str, str]] = None
                ) -> subprocess.CompletedProcess:
        assert self.bin is not None
        result = subprocess.run([str(self.bin / "kubectl"), f"--kubeconfig={(who or self.admin).kubeconfig}", *args],
                                input=input, capture_output=True, text=True, timeout=timeout,
                                env={**os.environ, **env} if env else None)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
        return result

    def json(self, *args: str, who: Optional[Identity] = None) -> dict:
        return json.loads(self.kubectl(*args, "-o", "json", who=who).stdout)




@dataclass
class StandInNode:
    """What a stand-in kubelet posts for one Node."""

    name: str
    address: str
    version: str
    labels: dict[str, str] = field(default_factory=dict)
    arch: str = "arm64"
    alive: bool = True
    """Renews its Lease (the node controller keeps it Ready) and finishes deleting its pods."""


class StandInKubelet:
    """STAND-IN for the kubelets of the Nodes a test registers, and for k3s's local-path
    provisioner: the module docstring says what it does. One thread serves every Node."""

    RENEW_EVERY = 2.0
    """Seconds between Lease renewals: an eighth of the node controller's grace (NODE_GRACE_SECONDS)."""
    # Answers that are races with the test, not faults: the object went (404) or came (409) meanwhile.
    RACES = (404, 409)

    def __init__(self, cp: ControlPlane):
        self.cp = cp
        self.nodes: dict[str, StandInNode] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.errors: list[str] = []
        """Every request the API server refused, and every exception, in order: read by conftest."""
        self._threads = [threading.Thread(target=self._serve, args=(work, every), name=f"standin-kubelet-{name}",
                                          daemon=True)
                         for name, work, every in (("leases", self._leases, self.RENEW_EVERY),
                                                   ("pods", self._pods, 1.0))]
        for thread in self._threads:
            thread.start()

    def _check(self, r: requests.Response, what: str) -> None:
        if not r.ok and r.status_code not in self.RACES:
            self.errors.append(f"{what}: {r.status_code} {r.text[:200]}")

    def node_identity(self, name: str) -> Identity:
        return self.cp.identity(f"system:node:{name}", ["system:nodes"])

    def register(self, node: StandInNode) -> None:
        """Create the Node as its own kubelet would (its identity, the labels a kubelet may set),
        then post Ready at its version."""
        who = self.node_identity(node.name)
        labels = {"kubernetes.io/hostname": node.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": node.arch,
                  "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": node.arch,
                  "node.kubernetes.io/instance-type": "k3s", **node.labels}
        r = self.cp.request("POST", "/api/v1/nodes", {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": node.name, "labels": labels,
                         "annotations": {"k3s.io/internal-ip": node.address, "k3s.io/hostname": node.name}},
            "spec": {"providerID": f"k3s://{node.name}"}}, who=who)
        if r.status_code != 409:
            assert r.ok, f"registering Node {node.name}: {r.status_code} {r.text}"
        with self._lock:
            self.nodes[node.name] = node
        self.post_status(node)
        self._renew(node)

    def post_status(self, node: StandInNode) -> None:
        stamp = now()
        conditions = [{"type": kind, "status": "False", "reason": reason, "lastHeartbeatTime": stamp,
                       "lastTransitionTime": stamp, "message": reason}
                      for kind, reason in (("MemoryPressure", "KubeletHasSufficientMemory"),
                                           ("DiskPressure", "KubeletHasNoDiskPressure"),
                                           ("PIDPressure", "KubeletHasSufficientPID"))]
        conditions.append({"type": "Ready", "status": "True", "reason": "KubeletReady", "lastHeartbeatTime": stamp,
                           "lastTransitionTime": stamp, "message": "stand-in kubelet"})
        status = {"status": {
            "conditions": conditions,
            "addresses": [{"type": "InternalIP", "address": node.address}, {"type": "Hostname", "address": node.name}],
            "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110", "ephemeral-storage": "30Gi"},
            "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110", "ephemeral-storage": "30Gi"},
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {"kubeletVersion": node.version, "kubeProxyVersion": node.version, "architecture": node.arch,
                         "operatingSystem": "linux", "osImage": "Debian GNU/Linux 12 (bookworm)",
                         "containerRuntimeVersion": "containerd://1.7.23-k3s2", "kernelVersion": "6.6.51",
                         "machineID": "", "systemUUID": "", "bootID": ""}}}
        r = self.cp.request("PATCH", f"/api/v1/nodes/{node.name}/status", status, who=self.node_identity(node.name),
                            content_type="application/strategic-merge-patch+json")
        self._check(r, f"posting {node.name}'s status")

    def set_version(self, name: str, version: str) -> None:
        """The Pi's agent restarted at `version`: its kubelet posts Ready at it."""
        with self._lock:
            node = self.nodes[name]
            node.version = version
        self.post_status(node)

    def kill(self, name: str) -> None:
        """The Pi stops: no more Lease renewals (the node controller will mark it NotReady)."""
        with self._lock:
            self.nodes[name].alive = False

    def revive(self, name: str) -> None:
        """The Pi's kubelet resumes after a stall: it renews its Lease again and, as a kubelet's
        status loop does, posts Ready where the node controller marked the Node NotReady."""
        with self._lock:
            self.nodes[name].alive = True

    def forget(self, name: str) -> None:
        with self._lock:
            self.nodes.pop(name, None)

    def _renew(self, node: StandInNode) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{node.name}"
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": node.name, "namespace": "kube-node-lease"},
                "spec": {"holderIdentity": node.name, "leaseDurationSeconds": 40, "renewTime": now_micro()}}
        who = self.node_identity(node.name)
        r = self.cp.request("PATCH", path, {"spec": body["spec"]}, who=who, content_type="application/merge-patch+json")
        if r.status_code == 404:
            r = self.cp.request("POST", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", body, who=who)
        self._check(r, f"renewing {node.name}'s Lease")

    def _finish_deletions(self, pods: dict, alive: dict[str, StandInNode]) -> None:
        for pod in pods.get("items", []):
            meta = pod["metadata"]
            if meta.get("deletionTimestamp") and pod["spec"].get("nodeName") in alive:
                r = self.cp.request("DELETE", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                                    {"gracePeriodSeconds": 0}, who=self.node_identity(pod["spec"]["nodeName"]))
                self._check(r, f"finishing the deletion of pod {meta['namespace']}/{meta['name']}")

    def _run_pods(self, pods: dict, alive: dict[str, StandInNode]) -> None:
        """What a kubelet reports of a pod bound to its live Node: its containers started, Running."""
        for pod in pods.get("items", []):
            meta, spec, status = pod["metadata"], pod["spec"], pod.get("status") or {}
            if spec.get("nodeName") not in alive or meta.get("deletionTimestamp") or status.get("phase") != "Pending":
                continue
            if spec.get("restartPolicy") == "Never":
                continue  # a Job's pod: nothing here would run it to completion
            stamp = now()
            r = self.cp.request("PATCH", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status", {"status": {
                "phase": "Running", "startTime": stamp, "hostIP": alive[spec["nodeName"]].address,
                "conditions": [{"type": t, "status": "True", "lastTransitionTime": stamp}
                               for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")],
                "containerStatuses": [{"name": c["name"], "image": c["image"], "imageID": "", "ready": True,
                                       "started": True, "restartCount": 0,
                                       "state": {"running": {"startedAt": stamp}}} for c in spec["containers"]]}},
                who=self.node_identity(spec["nodeName"]), content_type="application/strategic-merge-patch+json")
            self._check(r, f"reporting pod {meta['namespace']}/{meta['name']} Running")

    def _provision(self) -> None:
        """STAND-IN for local-path-provisioner: a PersistentVolume on the node the scheduler chose."""
        claims = self.cp.get("/api/v1/persistentvolumeclaims") or {}
        for pvc in claims.get("items", []):
            meta = pvc["metadata"]
            node = (meta.get("annotations") or {}).get("volume.kubernetes.io/selected-node")
            if not node or pvc["spec"].get("volumeName"):
                continue
            name = f"pvc-{meta['uid']}"
            r = self.cp.request("POST", "/api/v1/persistentvolumes", {
                "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
                "spec": {"capacity": {"storage": pvc["spec"]["resources"]["requests"]["storage"]},
                         "accessModes": pvc["spec"]["accessModes"], "persistentVolumeReclaimPolicy": "Delete",
                         "storageClassName": pvc["spec"].get("storageClassName"),
                         "claimRef": {"namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"]},
                         "hostPath": {"path": f"/var/lib/rancher/k3s/storage/{name}", "type": "DirectoryOrCreate"},
                         "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                             {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}}})
            self._check(r, f"binding a volume for claim {meta['namespace']}/{meta['name']}")

    def _alive(self) -> dict[str, StandInNode]:
        with self._lock:  # this pass's live Nodes, as they are now
            return {name: node for name, node in self.nodes.items() if node.alive}

    def _leases(self) -> None:
        """Renew every live Node's Lease; post Ready again where the node controller has marked a
        live Node NotReady or Unknown (it did while the Lease lapsed: a stall under load)."""
        alive = self._alive()
        for node in alive.values():
            self._renew(node)
        listed = self.cp.get("/api/v1/nodes") or {}
        for item in listed.get("items", []):
            node = alive.get(item["metadata"]["name"])
            ready = next((c["status"] for c in (item.get("status") or {}).get("conditions") or []
                          if c["type"] == "Ready"), None)
            if node is not None and ready != "True":
                self.post_status(node)

    def _pods(self) -> None:
        alive = self._alive()
        pods = self.cp.get("/api/v1/pods") or {}
        self._finish_deletions(pods, alive)
        self._run_pods(pods, alive)
        self._provision()

    def _serve(self, work: Callable[[], None], every: float) -> None:
        while not self._stop.wait(every):
            try:
                work()
            except Exception as e:  # recorded: conftest fails the test it happened in
                self.errors.append(f"{work.__name__}: {e!r}")

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
