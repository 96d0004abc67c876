"""What one service's pod needs, and how it is built safe: `Workload` (what is special about a
pod), `Mount`, `Peer` (who may connect to it), `Footprint` (what the pods of each namespace need
of what the admission policies restrict), and `pod_template`, the one place a pod is built.

Safe unless the Workload says otherwise: requests and limits; probes on a health endpoint; a
non-root user, no capabilities, no privilege escalation and a read-only root filesystem (with an
emptyDir at /tmp for scratch); seccomp RuntimeDefault on every pod that is not privileged; no
service-account token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional

import pulumi_kubernetes as k8s

from components.labels import APP_LABEL, NAMESPACE_LABEL, NOBODY, PART_OF_LABEL, RESTRICTED_ROLE_LABEL, \
    ROLE_JUMPHOST, ROLE_LABEL, STATE_DRAINED, STATE_LABEL, MAINTENANCE_LABEL

SCRATCH = "/tmp"
v1 = k8s.core.v1


@dataclass(frozen=True)
class Mount:
    """One volume and where it appears in the container."""

    name: str
    path: str
    secret: Optional[str] = None
    config_map: Optional[str] = None
    host_path: Optional[str] = None
    host_path_type: Optional[str] = None
    claim: Optional[str] = None
    sub_path: Optional[str] = None
    read_only: bool = True
    empty_dir: bool = False
    propagation: Optional[str] = None
    """HostToContainer: a host path whose own mounts come and go (a loop-mounted image)."""

    def volume(self) -> v1.VolumeArgs:
        return v1.VolumeArgs(
            name=self.name,
            # 0440 with the pod's fsGroup: readable by a non-root container, nobody else.
            secret=v1.SecretVolumeSourceArgs(secret_name=self.secret, default_mode=0o440) if self.secret else None,
            config_map=v1.ConfigMapVolumeSourceArgs(name=self.config_map) if self.config_map else None,
            host_path=v1.HostPathVolumeSourceArgs(path=self.host_path, type=self.host_path_type)
            if self.host_path else None,
            persistent_volume_claim=v1.PersistentVolumeClaimVolumeSourceArgs(claim_name=self.claim)
            if self.claim else None,
            empty_dir=v1.EmptyDirVolumeSourceArgs() if self.empty_dir else None,
        )

    def mount(self) -> v1.VolumeMountArgs:
        return v1.VolumeMountArgs(name=self.name, mount_path=self.path, sub_path=self.sub_path,
                                  read_only=self.read_only, mount_propagation=self.propagation)


@dataclass(frozen=True)
class Peer:
    """Who may connect: pods of an app in a namespace, or an address block."""

    namespace: Optional[str] = None
    app: Optional[str] = None
    cidr: Optional[str] = None
    except_: tuple[str, ...] = ()

    def args(self) -> k8s.networking.v1.NetworkPolicyPeerArgs:
        meta = k8s.meta.v1.LabelSelectorArgs
        if self.cidr:
            return k8s.networking.v1.NetworkPolicyPeerArgs(ip_block=k8s.networking.v1.IPBlockArgs(
                cidr=self.cidr, except_=list(self.except_) or None))
        if self.namespace is None:
            raise ValueError(f"a peer names a namespace or an address block: {self}")
        app_key = "k8s-app" if self.app == "kube-dns" else APP_LABEL  # CoreDNS carries k8s-app=kube-dns
        return k8s.networking.v1.NetworkPolicyPeerArgs(
            namespace_selector=meta(match_labels={NAMESPACE_LABEL: self.namespace}),
            pod_selector=meta(match_labels={app_key: self.app}) if self.app else None)


# Who scrapes every metrics port: the rack's Prometheus (components/prometheus.py).
PROMETHEUS = Peer("monitoring", "prometheus")


@dataclass(frozen=True, kw_only=True)
class Workload:
    """What is special about one service's pod. Defaults are the safe choice."""

    name: str
    """Name of the workload, its container and its app label."""
    image: str
    """Pinned image reference (skolo:images)."""
    args: tuple[str, ...] = ()
    """Container arguments."""
    command: tuple[str, ...] = ()
    """Container entrypoint override; empty keeps the image's."""
    ports: Mapping[str, int] = field(default_factory=dict)
    """Named container ports."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Plain environment variables (never secrets)."""
    secret_env: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    """Environment variable -> (Secret name, key)."""
    field_env: Mapping[str, str] = field(default_factory=dict)
    """Environment variable -> downward API field path (spec.nodeName)."""
    mounts: tuple[Mount, ...] = ()
    """Volumes and their mount points."""
    health: Optional[tuple[str, int]] = None
    """(path, port) of an HTTP health endpoint: readiness and liveness probes."""
    liveness: Optional[tuple[str, int]] = None
    """(path, port) for the liveness probe when it is not `health`'s: an endpoint that answers while the
    program is busy but alive (Prometheus's /-/healthy during a WAL replay, when /-/ready is 503)."""
    metrics_port: Optional[int] = None
    """Port Prometheus scrapes (prometheus.io annotations; ingress from Prometheus allowed)."""
    cpu: str = "50m"
    """CPU request; the limit is four times it."""
    memory: str = "64Mi"
    """Memory request."""
    memory_limit: Optional[str] = None
    """Memory limit; None means the request (no overcommit on a small node)."""
    role: Optional[str] = ROLE_JUMPHOST
    """Node role this pod is pinned to (ROLE_LABEL); None runs it anywhere."""
    run_as_user: Optional[int] = NOBODY
    """UID; None means root (only for what needs it)."""
    privileged: bool = False
    """Privileged container (adb over USB, the NFS server)."""
    read_only_root: bool = True
    """The program does not write its own filesystem (scratch goes to an emptyDir at /tmp)."""
    host_network: bool = False
    """Use the node's network namespace."""
    service_account: Optional[str] = None
    """ServiceAccount whose token is mounted; None mounts no token."""
    termination_grace_seconds: Optional[int] = None
    """Grace period on pod deletion; None keeps Kubernetes' 30 s."""
    tolerate_everything: bool = False
    """Tolerate every taint (node-level agents)."""
    avoid_drained: bool = False
    """Stay off nodes whose config state is drained or that are being upgraded (a drain leaves
    DaemonSet pods alone, so the label is what stops them)."""

    @property
    def labels(self) -> dict[str, str]:
        return {APP_LABEL: self.name, PART_OF_LABEL: "skolo"}


@dataclass
class NamespaceNeeds:
    """What the pods of one namespace need of what the admission policies restrict."""

    host_paths: set[str] = field(default_factory=set)
    privileged: bool = False
    host_network: bool = False
    root: bool = False

    def merge(self, other: "NamespaceNeeds") -> "NamespaceNeeds":
        return NamespaceNeeds(self.host_paths | other.host_paths, self.privileged or other.privileged,
                              self.host_network or other.host_network, self.root or other.root)


@dataclass
class Footprint:
    """Recorded as the pods are built, so the policies allow exactly what the stack declares,
    namespace by namespace."""

    images: set[str] = field(default_factory=set)
    namespaces: dict[str, NamespaceNeeds] = field(default_factory=dict)

    def record(self, namespace: str, w: Workload) -> None:
        self.images.add(w.image)
        needs = self.namespaces.setdefault(namespace, NamespaceNeeds())
        self.namespaces[namespace] = needs.merge(NamespaceNeeds(
            {m.host_path for m in w.mounts if m.host_path}, w.privileged, w.host_network, w.run_as_user is None))

    def merge(self, other: "Footprint") -> "Footprint":
        merged = Footprint(self.images | other.images, dict(self.namespaces))
        for ns, needs in other.namespaces.items():
            merged.namespaces[ns] = merged.namespaces.get(ns, NamespaceNeeds()).merge(needs)
        return merged


def _times(quantity: str, factor: int) -> str:
    """'50m' * 4 = '200m'; '1' * 4 = '4'. CPU quantities only."""
    return f"{int(quantity[:-1]) * factor}m" if quantity.endswith("m") else str(int(quantity) * factor)


def _security(w: Workload) -> v1.SecurityContextArgs:
    if w.privileged:
        return v1.SecurityContextArgs(privileged=True, allow_privilege_escalation=True, run_as_user=0)
    root = w.run_as_user is None
    return v1.SecurityContextArgs(
        allow_privilege_escalation=False, capabilities=v1.CapabilitiesArgs(drop=["ALL"]),
        read_only_root_filesystem=True if w.read_only_root else None,
        run_as_non_root=None if root else True, run_as_user=0 if root else w.run_as_user)


def _placement(w: Workload) -> Optional[v1.AffinityArgs]:
    terms = []
    if w.role:
        # The jumphost's label is one only an administrator can set; a Pi may claim the Pi role.
        key = RESTRICTED_ROLE_LABEL if w.role == ROLE_JUMPHOST else ROLE_LABEL
        terms.append(v1.NodeSelectorRequirementArgs(key=key, operator="In", values=[w.role]))
    if w.avoid_drained:
        terms.append(v1.NodeSelectorRequirementArgs(key=STATE_LABEL, operator="NotIn", values=[STATE_DRAINED]))
        terms.append(v1.NodeSelectorRequirementArgs(key=MAINTENANCE_LABEL, operator="DoesNotExist"))
    if not terms:
        return None
    return v1.AffinityArgs(node_affinity=v1.NodeAffinityArgs(
        required_during_scheduling_ignored_during_execution=v1.NodeSelectorArgs(
            node_selector_terms=[v1.NodeSelectorTermArgs(match_expressions=terms)])))


def _http_get(endpoint: tuple[str, int]) -> v1.HTTPGetActionArgs:
    path, port = endpoint
    return v1.HTTPGetActionArgs(path=path, port=port)


def pod_template(w: Workload, pull_secret: Optional[str],
                 restart_policy: Optional[str] = None) -> v1.PodTemplateSpecArgs:
    mounts = w.mounts + ((Mount("scratch", SCRATCH, empty_dir=True, read_only=False),)
                         if w.read_only_root and not w.privileged else ())
    probe = v1.ProbeArgs(http_get=_http_get(w.health), period_seconds=10, failure_threshold=3) if w.health else None
    env = [v1.EnvVarArgs(name=k, value=v) for k, v in w.env.items()]
    env += [v1.EnvVarArgs(name=k, value_from=v1.EnvVarSourceArgs(field_ref=v1.ObjectFieldSelectorArgs(field_path=f)))
            for k, f in w.field_env.items()]
    env += [v1.EnvVarArgs(name=k, value_from=v1.EnvVarSourceArgs(secret_key_ref=v1.SecretKeySelectorArgs(
        name=s, key=key))) for k, (s, key) in w.secret_env.items()]
    container = v1.ContainerArgs(
        name=w.name, image=w.image, image_pull_policy="IfNotPresent",
        command=list(w.command) or None, args=list(w.args) or None,
        ports=[v1.ContainerPortArgs(name=n, container_port=p) for n, p in w.ports.items()] or None,
        env=env or None, volume_mounts=[m.mount() for m in mounts] or None,
        readiness_probe=probe,
        liveness_probe=v1.ProbeArgs(http_get=_http_get(w.liveness) if w.liveness else probe.http_get,
                                    initial_delay_seconds=30, period_seconds=20, failure_threshold=6)
        if probe else None,
        resources=v1.ResourceRequirementsArgs(requests={"cpu": w.cpu, "memory": w.memory},
                                              limits={"cpu": _times(w.cpu, 4), "memory": w.memory_limit or w.memory}),
        security_context=_security(w))
    uid = w.run_as_user
    return v1.PodTemplateSpecArgs(
        metadata=k8s.meta.v1.ObjectMetaArgs(
            labels=w.labels,
            annotations={"prometheus.io/scrape": "true", "prometheus.io/port": str(w.metrics_port)}
            if w.metrics_port else None),
        spec=v1.PodSpecArgs(
            containers=[container],
            security_context=None if w.privileged else v1.PodSecurityContextArgs(
                run_as_user=uid, run_as_group=uid, fs_group=uid,
                seccomp_profile=v1.SeccompProfileArgs(type="RuntimeDefault")),
            volumes=[m.volume() for m in mounts] or None,
            affinity=_placement(w),
            host_network=True if w.host_network else None,
            dns_policy="ClusterFirstWithHostNet" if w.host_network else None,
            service_account_name=w.service_account,
            automount_service_account_token=w.service_account is not None,
            image_pull_secrets=[v1.LocalObjectReferenceArgs(name=pull_secret)] if pull_secret else None,
            termination_grace_period_seconds=w.termination_grace_seconds,
            restart_policy=restart_policy,
            tolerations=[v1.TolerationArgs(operator="Exists")] if w.tolerate_everything else None))
