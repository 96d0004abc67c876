"""`kubectl get nodes -o json` and `kubectl get pods -n swarming -o json` documents for a rack
described in a few lines: what k3s v1.31 on Raspberry Pis returns, field for field (the tests
check every item against the 1.31 schema, strictly). What `rackctl status` reads from a real
cluster, without one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Optional

NOW = datetime(2026, 11, 21, 3, 0, 0, tzinfo=timezone.utc)


def _ts(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _uid(*parts: str) -> str:
    h = hashlib.sha256("/".join(parts).encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


@dataclass
class NodeSpec:
    name: str
    address: str
    version: str
    ready: bool = True
    heartbeat_seconds: int = 25
    unschedulable: bool = False
    labels: Optional[dict] = None
    server: bool = False


@dataclass
class BotSpec:
    node: str
    phase: str = "Running"
    restarts: int = 0
    crash_looping: bool = False


def node(spec: NodeSpec, now: datetime = NOW) -> dict:
    beat = now - timedelta(seconds=spec.heartbeat_seconds)
    labels = {"beta.kubernetes.io/arch": "amd64" if spec.server else "arm64", "beta.kubernetes.io/os": "linux",
              "kubernetes.io/arch": "amd64" if spec.server else "arm64", "kubernetes.io/hostname": spec.name,
              "kubernetes.io/os": "linux", "node.kubernetes.io/instance-type": "k3s"}
    if spec.server:
        labels.update({"node-role.kubernetes.io/control-plane": "true", "node-role.kubernetes.io/master": "true"})
    else:
        labels["skolo.skia.org/role"] = "rpi"
    labels.update(spec.labels or {})
    taints = []
    if spec.unschedulable:
        taints.append({"effect": "NoSchedule", "key": "node.kubernetes.io/unschedulable", "timeAdded": _ts(now)})
    if not spec.ready:
        taints += [{"effect": "NoSchedule", "key": "node.kubernetes.io/unreachable", "timeAdded": _ts(beat)},
                   {"effect": "NoExecute", "key": "node.kubernetes.io/unreachable", "timeAdded": _ts(beat)}]
    pressure = [{"lastHeartbeatTime": _ts(beat), "lastTransitionTime": "2026-11-01T10:00:00Z",
                 "message": f"kubelet has {what}", "reason": reason, "status": "False", "type": kind}
                for kind, reason, what in (("MemoryPressure", "KubeletHasSufficientMemory", "sufficient memory available"),
                                           ("DiskPressure", "KubeletHasNoDiskPressure", "no disk pressure"),
                                           ("PIDPressure", "KubeletHasSufficientPID", "sufficient PID available"))]
    ready = ({"lastHeartbeatTime": _ts(beat), "lastTransitionTime": "2026-11-01T10:00:00Z",
              "message": "kubelet is posting ready status", "reason": "KubeletReady", "status": "True", "type": "Ready"}
             if spec.ready else
             {"lastHeartbeatTime": _ts(beat), "lastTransitionTime": _ts(beat + timedelta(seconds=40)),
              "message": "Kubelet stopped posting node status.", "reason": "NodeStatusUnknown", "status": "Unknown",
              "type": "Ready"})
    doc = {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {
            "annotations": {"alpha.kubernetes.io/provided-node-ip": spec.address,
                            "k3s.io/hostname": spec.name, "k3s.io/internal-ip": spec.address,
                            "k3s.io/node-args": '["agent"]' if not spec.server else '["server"]',
                            "node.alpha.kubernetes.io/ttl": "0",
                            "volumes.kubernetes.io/controller-managed-attach-detach": "true"},
            "creationTimestamp": "2026-10-01T09:00:00Z", "finalizers": ["wrangler.cattle.io/node"],
            "labels": labels, "name": spec.name, "resourceVersion": "104857", "uid": _uid("node", spec.name)},
        "spec": {"podCIDR": "10.44.3.0/24", "podCIDRs": ["10.44.3.0/24"], "providerID": f"k3s://{spec.name}"},
        "status": {
            "addresses": [{"address": spec.address, "type": "InternalIP"}, {"address": spec.name, "type": "Hostname"}],
            "allocatable": {"cpu": "4", "ephemeral-storage": "28819139742", "memory": "3880412Ki", "pods": "110"},
            "capacity": {"cpu": "4", "ephemeral-storage": "29624780Ki", "memory": "3880412Ki", "pods": "110"},
            "conditions": pressure + [ready],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {"architecture": "amd64" if spec.server else "arm64", "bootID": _uid("boot", spec.name),
                         "containerRuntimeVersion": "containerd://1.7.23-k3s2",
                         "kernelVersion": "6.6.51+rpt-rpi-v8", "kubeProxyVersion": spec.version,
                         "kubeletVersion": spec.version, "machineID": _uid("machine", spec.name).replace("-", ""),
                         "operatingSystem": "linux", "osImage": "Debian GNU/Linux 12 (bookworm)",
                         "systemUUID": _uid("system", spec.name)}},
    }
    if taints:
        doc["spec"]["taints"] = taints
    if spec.unschedulable:
        doc["spec"]["unschedulable"] = True
    return doc


def bot_pod(spec: BotSpec, image: str, now: datetime = NOW) -> dict:
    suffix = hashlib.sha256(spec.node.encode()).hexdigest()[:5]
    started = _ts(now - timedelta(hours=5))
    if spec.crash_looping:
        state = {"waiting": {"message": "back-off 5m0s restarting failed container=swarming "
                                        f"pod=swarming-{suffix}_swarming", "reason": "CrashLoopBackOff"}}
        last = {"terminated": {"containerID": f"containerd://{_uid('c', spec.node).replace('-', '')}",
                               "exitCode": 1, "finishedAt": _ts(now - timedelta(minutes=2)), "reason": "Error",
                               "startedAt": _ts(now - timedelta(minutes=3))}}
    elif spec.phase == "Running":
        state, last = {"running": {"startedAt": started}}, {}
    else:
        state, last = {"waiting": {"reason": "ContainerCreating"}}, {}
    running = "running" in state
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "creationTimestamp": started, "generateName": "swarming-",
            "labels": {"app.kubernetes.io/name": "swarming", "controller-revision-hash": "6d4b8c9f7",
                       "pod-template-generation": "3"},
            "name": f"swarming-{suffix}", "namespace": "swarming",
            "ownerReferences": [{"apiVersion": "apps/v1", "blockOwnerDeletion": True, "controller": True,
                                 "kind": "DaemonSet", "name": "swarming", "uid": _uid("ds", "swarming")}],
            "resourceVersion": "204800", "uid": _uid("pod", spec.node)},
        "spec": {"containers": [{"image": image, "imagePullPolicy": "IfNotPresent", "name": "swarming",
                                 "resources": {}}],
                 "nodeName": spec.node, "restartPolicy": "Always", "serviceAccountName": "default"},
        "status": {
            "conditions": [{"lastProbeTime": None, "lastTransitionTime": started, "status": "True" if running else "False",
                            "type": "Ready"}],
            "containerStatuses": [{"containerID": f"containerd://{_uid('c', spec.node).replace('-', '')}", "image": image,
                                   "imageID": f"{image.split(':')[0]}@sha256:{'ab' * 32}", "lastState": last,
                                   "name": "swarming", "ready": running, "restartCount": spec.restarts,
                                   "started": running, "state": state}],
            "hostIP": "192.168.1.100", "phase": spec.phase, "podIP": "10.44.3.12", "qosClass": "BestEffort",
            "startTime": started},
    }


def listing(items: list[dict]) -> dict:
    """What `kubectl get ... -o json` prints around the items."""
    return {"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}}


# --- rack1 as the status tests (and the README's map) describe it ------------------------------

SHELF1, SHELF2 = "skia-rpi2-rack1-shelf1", "skia-rpi2-rack1-shelf2"
DRAINED = f"{SHELF1}-007"  # drained in the stack file and in the cluster: as configured
NOT_READY = f"{SHELF1}-012"  # its kubelet stopped posting 12 minutes ago
SKEWED = f"{SHELF1}-020"  # still on the previous k3s patch release
CORDONED = f"{SHELF2}-003"  # cordoned by hand; the stack says active
MISSING = (f"{SHELF2}-017", f"{SHELF2}-018")  # declared, never joined
CRASHING = f"{SHELF2}-030"  # its swarming bot is crash-looping
UNKNOWN = "skia-rpi2-rack1-shelf3-001"  # joined, but in no stack file
OLD_VERSION = "v1.31.5+k3s1"


def with_drained_pi(stack_text: str) -> str:
    """rack1's stack file with DRAINED's state set, as an operator swapping its phone would."""
    anchor = f"        {DRAINED}:\n"
    assert anchor in stack_text
    return stack_text.replace(anchor, anchor + "          state: drained\n", 1)


def described_rack1(rack, image: str, now: datetime = NOW) -> tuple[dict, dict]:
    """(nodes, pods) of rack1 as described above; `rack` is its Settings."""
    version = rack.k3s_version
    specs = [NodeSpec(rack.jumphost.name, "192.168.1.8", version, server=True, heartbeat_seconds=12)]
    for pi in rack.rpis:
        if pi.name in MISSING:
            continue
        spec = NodeSpec(pi.name, pi.address, version, heartbeat_seconds=20 + len(specs) % 40)
        if pi.name == DRAINED:
            spec.unschedulable, spec.labels = True, {"skolo.skia.org/state": "drained"}
        elif pi.name == CORDONED:
            spec.unschedulable = True
        elif pi.name == NOT_READY:
            spec.ready, spec.heartbeat_seconds = False, 12 * 60
        elif pi.name == SKEWED:
            spec.version = OLD_VERSION
        specs.append(spec)
    specs.append(NodeSpec(UNKNOWN, "192.168.3.100", version))
    bots = [BotSpec(s.name, restarts=14 if s.name == CRASHING else 0,
                    crash_looping=s.name == CRASHING) for s in specs[1:] if s.name != DRAINED]
    return listing([node(s, now) for s in specs]), listing([bot_pod(b, image, now) for b in bots])
