"""A stack's Kubernetes objects on the real control plane (tests/controlplane.py), changed the way
`pulumi up` changes them: every object the program declares is applied server-side (the
provider's default), dependencies first; an object the new program no longer declares is deleted,
dependents first, and waited for until it is gone. What the API server says (errors, warnings)
comes back to the test.

The objects are exactly what `rackctl render` writes (Secrets with placeholder values), from the
real program under the mock runtime. The order stands in for the engine's dependency graph: the
kit makes workloads depend on their namespace and ServiceAccount, and nothing else a workload
names is checked when its pods are created.

Also here: the rack's Nodes as its hosts register them (the labels k3s's `node-label` and the
program's scripts give), for the stand-in kubelet to register.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from dataclasses import dataclass, field
from typing import Optional

from components import kube, settings
from rackctl import render
from rackctl.program import Run
from tests.controlplane import ControlPlane, StandInKubelet, StandInNode, wait_for

# Dependencies first, as the engine creates them.
ORDER = ("Namespace", "StorageClass", "ClusterRole", "ClusterRoleBinding", "ValidatingAdmissionPolicy",
         "ValidatingAdmissionPolicyBinding", "Node", "ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Secret",
         "PersistentVolumeClaim", "Service", "NetworkPolicy", "Ingress", "Deployment", "DaemonSet", "CronJob")
FIELD_MANAGER = "pulumi-kubernetes"
SPEC_DIFF = Path(__file__).with_name("spec_diff.py")
POLICY_KINDS = ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")
Key = tuple[str, str, str]  # kind, namespace, name


def objects(run: Run) -> list[dict]:
    """The program's Kubernetes objects as render writes them, dependencies first."""
    found = list(render.kubernetes_objects(run).values())
    unknown = {o["kind"] for o in found} - set(ORDER)
    assert not unknown, f"tests/cluster_rack.py does not know where {unknown} go in ORDER"
    return sorted(found, key=lambda o: (ORDER.index(o["kind"]), key_of(o)))


def key_of(obj: dict) -> Key:
    meta = obj["metadata"]
    return obj["kind"], meta.get("namespace") or "", meta["name"]


def as_list(objs: list[dict]) -> str:
    """Objects as one kubectl input that keeps their order."""
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": objs})


def warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("Warning:")]


@dataclass
class Applied:
    stderr: str
    deleted: list[Key] = field(default_factory=list)


class LiveRack:
    """What is on the cluster, as the last `converge` left it."""

    def __init__(self, cp: ControlPlane, kubelet: StandInKubelet):
        self.cp = cp
        self.kubelet = kubelet
        self.applied: dict[Key, dict] = {}
        self.stack: Optional[str] = None

    def converge(self, objs: list[dict], stack: Optional[str] = None) -> Applied:
        """Make the cluster hold exactly `objs` as the engine does: create and update everything
        declared, then delete what is no longer declared (dependents first), each waited for."""
        wanted = {key_of(o): o for o in objs}
        self._change_policies([o for o in objs if o["kind"] in POLICY_KINDS and self.applied.get(key_of(o)) != o], [])
        result = self.apply(objs, check=False) if objs else None
        assert result is None or result.returncode == 0, f"the API server refused the stack's objects:\n{result.stderr}"
        gone = sorted((k for k in self.applied if k not in wanted), key=lambda k: (-ORDER.index(k[0]), k))
        doomed = [self.applied[k] for k in gone if k[0] != "Node" and k[0] not in POLICY_KINDS]
        if doomed:  # one call that waits until every one of them is gone
            self.cp.kubectl("delete", "--ignore-not-found", "--wait=true", "-f", "-", input=as_list(doomed),
                            timeout=120)
        self._change_policies([], [self.applied[k] for k in gone if k[0] in POLICY_KINDS])
        for key in gone:
            if key[0] == "Node":  # a patch: deleting it takes off the fields it owns
                self._drop_patch(key[2])
            del self.applied[key]
        self.applied.update(wanted)
        self.stack = stack if objs else None
        return Applied(result.stderr if result else "", gone)

    def _change_policies(self, changed: list[dict], deleted: list[dict]) -> None:
        """Apply or delete admission policies with nothing else being admitted meanwhile, and wait
        until the API server has recompiled them. kube-apiserver 1.31 can crash evaluating a policy
        while it recompiles the policies (kubernetes/kubernetes#135757, open): so the controller
        manager is paused (no controller creates a pod) until the recompiles are over."""
        if not changed and not deleted:
            return
        with self.cp.controllers_paused():
            before = self.cp.policy_refreshes()
            if changed:
                self.apply(changed)
            if deleted:
                self.cp.kubectl("delete", "--ignore-not-found", "--wait=true", "-f", "-", input=as_list(deleted))
            self.cp.wait_policies_recompiled(before)

    def apply(self, objs: list[dict], *, dry_run: bool = False, force: bool = True,
              check: bool = True) -> subprocess.CompletedProcess:
        """Server-side apply as the provider does it (its field manager; conflicts forced, as the
        rack's provider is configured, enable_patch_force, unless `force` is False), in `objs`'
        order; `dry_run`: the server judges it and stores nothing."""
        return self.cp.kubectl("apply", "--server-side", f"--field-manager={FIELD_MANAGER}",
                               *(["--force-conflicts"] if force else []), *(["--dry-run=server"] if dry_run else []),
                               "-f", "-", input=as_list(objs), check=check)

    def diff(self, objs: list[dict]) -> subprocess.CompletedProcess:
        """What applying `objs` again would change, as the server judges it (`kubectl diff
        --server-side` with the provider's field manager), less what controllers own
        (tests/spec_diff.py): exit 0 and nothing printed when nothing."""
        # kubectl takes only a program and flags from KUBECTL_EXTERNAL_DIFF: a wrapper names the script.
        wrapper = self.cp.dir / "spec-diff"
        if not wrapper.exists():
            wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{SPEC_DIFF}" "$@"\n')
            wrapper.chmod(0o755)
        return self.cp.kubectl("diff", "--server-side", f"--field-manager={FIELD_MANAGER}", "-f", "-",
                               input=as_list(objs), check=False, env={"KUBECTL_EXTERNAL_DIFF": str(wrapper)})

    def _drop_patch(self, node: str) -> None:
        """What deleting a NodePatch does: apply it again owning nothing, so its labels go."""
        self.apply([{"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}}])

    def destroy(self) -> None:
        self.converge([])

    def bring_up(self, stack: str, nodes: list[StandInNode], objs: list[dict]) -> Applied:
        """A new rack on the cluster: the last one's objects gone, exactly `nodes` registered (the
        last rack's other Nodes retired), then `objs` applied."""
        self.destroy()
        wanted = {n.name for n in nodes}
        for name in [n for n in self.kubelet.nodes if n not in wanted]:
            self.retire(name)
        for node in nodes:
            self.kubelet.register(node)
        return self.converge(objs, stack)

    def retire(self, node: str) -> None:
        """A Node gone from the rack: its kubelet stops, the Node is deleted, and the pods bound to it
        go as the pod garbage collector removes them (after its 40 s quarantine, here at once)."""
        self.kubelet.forget(node)
        self.cp.kubectl("delete", "node", node, "--ignore-not-found", "--wait=true")
        self.cp.kubectl("delete", "pods", "-A", "--field-selector", f"spec.nodeName={node}", "--grace-period=0",
                        "--force", "--ignore-not-found")

    def pods(self, namespace: Optional[str] = None, app: Optional[str] = None) -> list[dict]:
        return pods(self.cp, namespace, app)

    def wait_no_bot(self, node: str, timeout: float = 60) -> None:
        """Wait until no swarming bot is on `node` (the DaemonSet controller takes it away)."""
        wait_for(lambda: not [p for p in self.pods("swarming", "swarming") if p["spec"].get("nodeName") == node],
                 timeout, f"{node}'s swarming bot going")

    def events(self, reason: str) -> list[dict]:
        return [e for e in self.cp.json("get", "events", "-A")["items"] if e.get("reason") == reason]


def rack_nodes(rack: settings.Settings) -> list[StandInNode]:
    """The rack's Nodes as its hosts register them: the jumphost with the labels k3s's server
    config gives it, each Pi with the labels its agent config gives it (components/fleet.py)."""
    jumphost = StandInNode(rack.jumphost.name, rack.jumphost.lan_address, rack.k3s_version, arch="amd64",
                           labels={kube.ROLE_LABEL: kube.ROLE_JUMPHOST})
    return [jumphost, *(pi_node(pi.name, pi.address, rack.k3s_version) for pi in rack.rpis)]


def pi_node(name: str, address: str, version: str) -> StandInNode:
    """A Pi's Node as its agent registers it, with the label its config gives it (components/fleet.py)."""
    return StandInNode(name, address, version, labels={kube.ROLE_LABEL: kube.ROLE_RPI})


def pods(cp: ControlPlane, namespace: Optional[str] = None, app: Optional[str] = None) -> list[dict]:
    """The pods of `app` in `namespace` (every namespace when None) that are not being deleted."""
    args = ["get", "pods", *(["-n", namespace] if namespace else ["-A"])]
    if app:
        args += ["-l", f"{kube.APP_LABEL}={app}"]
    return [p for p in cp.json(*args)["items"] if not p["metadata"].get("deletionTimestamp")]


def scheduled(cp: ControlPlane, namespace: str, app: str, count: int, timeout: float = 90) -> list[dict]:
    """Wait until `count` pods of `app` are bound to a Node; those pods. A timeout says why the
    scheduler left the others (their PodScheduled condition)."""
    seen: list[dict] = []

    def bound():
        seen[:] = pods(cp, namespace, app)
        placed = [p for p in seen if p["spec"].get("nodeName")]
        return placed if len(placed) == count else None
    try:
        return wait_for(bound, timeout, f"{count} {namespace}/{app} pods scheduled", every=0.5)
    except AssertionError as e:
        why = [c.get("message", "") for p in seen for c in (p.get("status") or {}).get("conditions") or ()
               if c.get("type") == "PodScheduled" and c.get("status") != "True"]
        raise AssertionError(f"{e}; {len(seen)} pods; unscheduled because: {why[:3]}") from None
