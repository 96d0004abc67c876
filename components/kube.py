"""Shared Kubernetes boilerplate: the rack's provider, placement labels, and the one place
where pods, Deployments, DaemonSets, CronJobs, Services, Ingresses, Secrets and ConfigMaps are
built.

Every object goes through `Kit`, so every object uses the rack's own provider (never the
ambient KUBECONFIG), is parented to its component, gets resource requests and limits, probes
where the service has a health endpoint, a non-root security context unless it asks for root,
and no service-account token unless it needs one. A service file says only what is special
about it, as a `Workload`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

import pulumi
import pulumi_kubernetes as k8s

# Set on each node by k3s when it first registers (config.yaml node-label). A custom prefix:
# the kubelet may not set node-role.kubernetes.io/* labels on itself.
ROLE_LABEL = "skolo.skia.org/role"
ROLE_JUMPHOST = "jumphost"
ROLE_RPI = "rpi"
# Set by the node-state host script from each Pi's `state` in config.
STATE_LABEL = "skolo.skia.org/state"
STATE_DRAINED = "drained"

APP_LABEL = "app.kubernetes.io/name"
PART_OF_LABEL = "app.kubernetes.io/part-of"
PULL_SECRET = "image-pull"
GOOGLE_KEY_DIR = "/var/secrets/google"
# Processes that need no root run as this (nobody).
NOBODY = 65534


def role_label(role: str) -> str:
    """`key=value` form for k3s's node-label flag."""
    return f"{ROLE_LABEL}={role}"


def provider(name: str, *, kubeconfig: pulumi.Input[str], cluster: str,
             opts: pulumi.ResourceOptions) -> k8s.Provider:
    """The rack's Kubernetes provider.

    The kubeconfig is wrapped as secret (the provider schema does not mark it so). The cluster
    name is the stable `cluster_identifier`: a kubeconfig that is unknown during a first preview
    or that changes later (a new certificate) updates the provider instead of replacing every
    object in the rack.
    """
    return k8s.Provider(
        name,
        kubeconfig=pulumi.Output.secret(kubeconfig),
        cluster_identifier=cluster,
        delete_unreachable=False,
        opts=opts,
    )


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

    def volume(self) -> k8s.core.v1.VolumeArgs:
        return k8s.core.v1.VolumeArgs(
            name=self.name,
            # 0440 with the pod's fsGroup: readable by a non-root container, nobody else.
            secret=k8s.core.v1.SecretVolumeSourceArgs(secret_name=self.secret, default_mode=0o440)
            if self.secret else None,
            config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(name=self.config_map) if self.config_map else None,
            host_path=k8s.core.v1.HostPathVolumeSourceArgs(path=self.host_path, type=self.host_path_type)
            if self.host_path else None,
            persistent_volume_claim=k8s.core.v1.PersistentVolumeClaimVolumeSourceArgs(claim_name=self.claim)
            if self.claim else None,
        )

    def mount(self) -> k8s.core.v1.VolumeMountArgs:
        return k8s.core.v1.VolumeMountArgs(name=self.name, mount_path=self.path, sub_path=self.sub_path,
                                           read_only=self.read_only)


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
    metrics_port: Optional[int] = None
    """Port Prometheus scrapes (prometheus.io annotations)."""
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
    host_network: bool = False
    """Use the node's network namespace."""
    service_account: Optional[str] = None
    """ServiceAccount whose token is mounted; None mounts no token."""
    termination_grace_seconds: Optional[int] = None
    """Grace period on pod deletion; None keeps Kubernetes' 30 s."""
    tolerate_everything: bool = False
    """Tolerate every taint (node-level agents)."""
    avoid_drained: bool = False
    """Stay off nodes whose config state is drained (a drain leaves DaemonSet pods alone)."""

    @property
    def labels(self) -> dict[str, str]:
        return {APP_LABEL: self.name, PART_OF_LABEL: "skolo"}


@dataclass
class Footprint:
    """What a component's pods need of the things admission policies restrict. Recorded as the
    pods are built, so the policies allow exactly what the stack declares."""

    images: set[str] = field(default_factory=set)
    host_paths: set[str] = field(default_factory=set)
    privileged: set[str] = field(default_factory=set)
    """Namespaces with privileged containers."""
    host_network: set[str] = field(default_factory=set)
    """Namespaces with host-network pods."""
    root: set[str] = field(default_factory=set)
    """Namespaces with containers running as root."""

    def merge(self, other: "Footprint") -> "Footprint":
        return Footprint(*(getattr(self, f) | getattr(other, f) for f in
                           ("images", "host_paths", "privileged", "host_network", "root")))


class Kit:
    """Builds a component's Kubernetes objects: its provider, parent, namespace and names."""

    def __init__(self, parent: pulumi.Resource, provider: k8s.Provider, namespace: str,
                 image_pull_key: Optional[pulumi.Input[str]] = None, create_namespace: bool = True,
                 depends_on: Sequence[pulumi.Resource] = ()):
        self.parent = parent
        self.provider = provider
        self.namespace = namespace
        self.pull_secret: Optional[str] = None
        self.footprint = Footprint()
        self._ns: Optional[k8s.core.v1.Namespace] = None
        if create_namespace:
            # Everything in the namespace depends on it, so what the component waits for (a
            # legacy unit's cut-over) comes before any of its objects.
            self._ns = k8s.core.v1.Namespace(
                f"{namespace}-ns", metadata=self.meta(namespace, namespaced=False),
                opts=self.opts(depends_on, with_ns=False))
        if image_pull_key is not None:
            self.pull_secret = PULL_SECRET
            self.secret(PULL_SECRET, {".dockerconfigjson": pulumi.Output.from_input(image_pull_key).apply(
                _dockerconfigjson)}, type_="kubernetes.io/dockerconfigjson")

    @classmethod
    def of(cls, component: pulumi.Resource, args, opts: Optional[pulumi.ResourceOptions]) -> "Kit":
        """The kit of a service component: its Args' provider, namespace and pull key, and the
        component's own depends_on (children do not inherit it)."""
        after = (opts.depends_on if opts else None) or []
        after = list(after) if isinstance(after, (list, tuple)) else [after]
        return cls(component, args.provider, args.namespace, args.image_pull_key, depends_on=after)

    def for_parent(self, parent: pulumi.Resource) -> "Kit":
        """The same namespace and provider, for a child component's objects."""
        kit = object.__new__(Kit)
        kit.__dict__.update(self.__dict__)
        kit.parent = parent
        return kit

    def opts(self, depends_on: Sequence[pulumi.Resource] = (), with_ns: bool = True) -> pulumi.ResourceOptions:
        deps = list(depends_on) + ([self._ns] if with_ns and self._ns is not None else [])
        return pulumi.ResourceOptions(parent=self.parent, provider=self.provider, depends_on=deps or None)

    def meta(self, name: str, labels: Optional[Mapping[str, str]] = None,
             annotations: Optional[Mapping[str, str]] = None, namespaced: bool = True) -> k8s.meta.v1.ObjectMetaArgs:
        return k8s.meta.v1.ObjectMetaArgs(
            name=name, namespace=self.namespace if namespaced else None,
            labels=dict(labels) if labels else {PART_OF_LABEL: "skolo"},
            annotations=dict(annotations) if annotations else None)

    def _id(self, kind: str, name: str) -> str:
        """Pulumi resource name: unique per rack, readable in a preview."""
        return f"{self.namespace}-{kind}-{name}"

    # Configuration and secrets -----------------------------------------------------------

    def secret(self, name: str, data: Mapping[str, pulumi.Input[str]], type_: str = "Opaque") -> k8s.core.v1.Secret:
        """A Secret from secret config values. Everything in it is marked secret in state."""
        return k8s.core.v1.Secret(
            self._id("secret", name), metadata=self.meta(name), type=type_,
            string_data={k: pulumi.Output.secret(v) for k, v in data.items()}, opts=self.opts())

    def google_key(self, name: str, key: pulumi.Input[str]) -> tuple[dict[str, str], Mount]:
        """A service-account JSON key as Secret `name`, and the env and mount that hand it to
        Google client libraries (GOOGLE_APPLICATION_CREDENTIALS)."""
        self.secret(name, {"key.json": key})
        return ({"GOOGLE_APPLICATION_CREDENTIALS": f"{GOOGLE_KEY_DIR}/key.json"},
                Mount("sa-key", GOOGLE_KEY_DIR, secret=name))

    def config_map(self, name: str, data: Mapping[str, str]) -> k8s.core.v1.ConfigMap:
        """A ConfigMap of generated, non-secret files."""
        return k8s.core.v1.ConfigMap(self._id("configmap", name), metadata=self.meta(name), data=dict(data),
                                     opts=self.opts())

    def service_account(self, name: str) -> k8s.core.v1.ServiceAccount:
        """A ServiceAccount of this namespace. Its token reaches only a pod that names it
        (Workload.service_account); what it may do is whatever is bound to it."""
        return k8s.core.v1.ServiceAccount(self._id("serviceaccount", name), metadata=self.meta(name),
                                          automount_service_account_token=False, opts=self.opts())

    def cluster_reader(self, name: str, rules: Sequence[k8s.rbac.v1.PolicyRuleArgs]) -> k8s.core.v1.ServiceAccount:
        """A ServiceAccount of this namespace bound to a ClusterRole of `rules` (read-only ones)."""
        account = self.service_account(name)
        role_name = f"skolo:{self.namespace}:{name}"
        role = k8s.rbac.v1.ClusterRole(self._id("clusterrole", name), metadata=self.meta(role_name, namespaced=False),
                                       rules=list(rules), opts=self.opts())
        k8s.rbac.v1.ClusterRoleBinding(
            self._id("clusterrolebinding", name), metadata=self.meta(role_name, namespaced=False),
            role_ref=k8s.rbac.v1.RoleRefArgs(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=role_name),
            subjects=[k8s.rbac.v1.SubjectArgs(kind="ServiceAccount", name=name, namespace=self.namespace)],
            opts=self.opts([role, account]))
        return account

    def volume_claim(self, name: str, size: str) -> k8s.core.v1.PersistentVolumeClaim:
        """A volume on the node's disk (k3s's local-path provisioner): the pod stays on that node."""
        return k8s.core.v1.PersistentVolumeClaim(
            self._id("pvc", name), metadata=self.meta(name),
            spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
                access_modes=["ReadWriteOnce"], storage_class_name="local-path",
                resources=k8s.core.v1.VolumeResourceRequirementsArgs(requests={"storage": size})),
            opts=self.opts())

    # Pods --------------------------------------------------------------------------------

    def _record(self, w: Workload) -> None:
        fp = self.footprint
        fp.images.add(w.image)
        fp.host_paths.update(m.host_path for m in w.mounts if m.host_path)
        for needed, namespaces in ((w.privileged, fp.privileged), (w.host_network, fp.host_network),
                                   (w.run_as_user is None, fp.root)):
            if needed:
                namespaces.add(self.namespace)

    def pod_template(self, w: Workload, restart_policy: Optional[str] = None) -> k8s.core.v1.PodTemplateSpecArgs:
        self._record(w)
        annotations = None
        if w.metrics_port:
            annotations = {"prometheus.io/scrape": "true", "prometheus.io/port": str(w.metrics_port)}
        probe = None
        if w.health:
            path, port = w.health
            probe = k8s.core.v1.ProbeArgs(http_get=k8s.core.v1.HTTPGetActionArgs(path=path, port=port),
                                          period_seconds=10, failure_threshold=3)
        root = w.run_as_user is None
        env = [k8s.core.v1.EnvVarArgs(name=k, value=v) for k, v in w.env.items()]
        env += [k8s.core.v1.EnvVarArgs(name=k, value_from=k8s.core.v1.EnvVarSourceArgs(
            field_ref=k8s.core.v1.ObjectFieldSelectorArgs(field_path=f))) for k, f in w.field_env.items()]
        env += [k8s.core.v1.EnvVarArgs(name=k, value_from=k8s.core.v1.EnvVarSourceArgs(
            secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(name=s, key=key))) for k, (s, key) in w.secret_env.items()]
        container = k8s.core.v1.ContainerArgs(
            name=w.name,
            image=w.image,
            image_pull_policy="IfNotPresent",
            command=list(w.command) or None,
            args=list(w.args) or None,
            ports=[k8s.core.v1.ContainerPortArgs(name=n, container_port=p) for n, p in w.ports.items()] or None,
            env=env or None,
            volume_mounts=[m.mount() for m in w.mounts] or None,
            readiness_probe=probe,
            liveness_probe=k8s.core.v1.ProbeArgs(
                http_get=probe.http_get, initial_delay_seconds=30, period_seconds=20, failure_threshold=6)
            if probe else None,
            resources=k8s.core.v1.ResourceRequirementsArgs(
                requests={"cpu": w.cpu, "memory": w.memory},
                limits={"cpu": _times(w.cpu, 4), "memory": w.memory_limit or w.memory}),
            security_context=k8s.core.v1.SecurityContextArgs(
                privileged=True if w.privileged else None,
                allow_privilege_escalation=True if w.privileged else False,
                run_as_non_root=None if root else True,
                run_as_user=0 if root else w.run_as_user,
                capabilities=None if w.privileged else k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
            ),
        )
        placement = []
        if w.role:
            placement.append(k8s.core.v1.NodeSelectorRequirementArgs(key=ROLE_LABEL, operator="In", values=[w.role]))
        if w.avoid_drained:
            placement.append(k8s.core.v1.NodeSelectorRequirementArgs(
                key=STATE_LABEL, operator="NotIn", values=[STATE_DRAINED]))
        affinity = None
        if placement:
            affinity = k8s.core.v1.AffinityArgs(node_affinity=k8s.core.v1.NodeAffinityArgs(
                required_during_scheduling_ignored_during_execution=k8s.core.v1.NodeSelectorArgs(
                    node_selector_terms=[k8s.core.v1.NodeSelectorTermArgs(match_expressions=placement)])))
        return k8s.core.v1.PodTemplateSpecArgs(
            metadata=k8s.meta.v1.ObjectMetaArgs(labels=w.labels, annotations=annotations),
            spec=k8s.core.v1.PodSpecArgs(
                containers=[container],
                security_context=k8s.core.v1.PodSecurityContextArgs(
                    run_as_user=w.run_as_user, run_as_group=w.run_as_user, fs_group=w.run_as_user,
                    seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"))
                if not root else None,
                volumes=[m.volume() for m in w.mounts] or None,
                affinity=affinity,
                host_network=True if w.host_network else None,
                dns_policy="ClusterFirstWithHostNet" if w.host_network else None,
                service_account_name=w.service_account,
                automount_service_account_token=w.service_account is not None,
                image_pull_secrets=[k8s.core.v1.LocalObjectReferenceArgs(name=self.pull_secret)]
                if self.pull_secret else None,
                termination_grace_period_seconds=w.termination_grace_seconds,
                restart_policy=restart_policy,
                tolerations=[k8s.core.v1.TolerationArgs(operator="Exists")] if w.tolerate_everything else None,
            ),
        )

    def deployment(self, w: Workload, depends_on: Sequence[pulumi.Resource] = ()) -> k8s.apps.v1.Deployment:
        """One replica. Recreate, since a jumphost service may hold a node-local volume."""
        return k8s.apps.v1.Deployment(
            self._id("deployment", w.name), metadata=self.meta(w.name, w.labels),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=1, selector=k8s.meta.v1.LabelSelectorArgs(match_labels=w.labels),
                strategy=k8s.apps.v1.DeploymentStrategyArgs(type="Recreate"),
                template=self.pod_template(w)),
            opts=self.opts(depends_on))

    def daemon_set(self, w: Workload, max_unavailable: pulumi.Input[str | int] = 1) -> k8s.apps.v1.DaemonSet:
        """One pod per matching node, rolled with at most `max_unavailable` pods down at a time."""
        return k8s.apps.v1.DaemonSet(
            self._id("daemonset", w.name), metadata=self.meta(w.name, w.labels),
            spec=k8s.apps.v1.DaemonSetSpecArgs(
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=w.labels),
                update_strategy=k8s.apps.v1.DaemonSetUpdateStrategyArgs(
                    type="RollingUpdate",
                    rolling_update=k8s.apps.v1.RollingUpdateDaemonSetArgs(max_unavailable=max_unavailable)),
                template=self.pod_template(w)),
            opts=self.opts())

    def cron_job(self, w: Workload, schedule: str, deadline_seconds: int) -> k8s.batch.v1.CronJob:
        """A job on a schedule: never two at once, a bounded run time, recent history kept."""
        return k8s.batch.v1.CronJob(
            self._id("cronjob", w.name), metadata=self.meta(w.name, w.labels),
            spec=k8s.batch.v1.CronJobSpecArgs(
                schedule=schedule, concurrency_policy="Forbid", starting_deadline_seconds=3600,
                successful_jobs_history_limit=3, failed_jobs_history_limit=3,
                job_template=k8s.batch.v1.JobTemplateSpecArgs(spec=k8s.batch.v1.JobSpecArgs(
                    backoff_limit=2, active_deadline_seconds=deadline_seconds,
                    template=self.pod_template(w, restart_policy="Never")))),
            opts=self.opts())

    # Networking --------------------------------------------------------------------------

    def service(self, w: Workload, ports: Mapping[str, tuple[int, int]],
                name: Optional[str] = None) -> k8s.core.v1.Service:
        """A ClusterIP Service for `w`: port name -> (service port, container port)."""
        svc = name or w.name
        return k8s.core.v1.Service(
            self._id("service", svc), metadata=self.meta(svc, w.labels),
            spec=k8s.core.v1.ServiceSpecArgs(
                selector=w.labels,
                ports=[k8s.core.v1.ServicePortArgs(name=n, port=p, target_port=t) for n, (p, t) in ports.items()]),
            opts=self.opts())

    def ingress(self, name: str, hosts: Sequence[str], service: str, port: int) -> k8s.networking.v1.Ingress:
        """traefik (k3s's ingress, host port 80) routing each host name to `service`."""
        backend = k8s.networking.v1.IngressBackendArgs(service=k8s.networking.v1.IngressServiceBackendArgs(
            name=service, port=k8s.networking.v1.ServiceBackendPortArgs(number=port)))
        return k8s.networking.v1.Ingress(
            self._id("ingress", name), metadata=self.meta(name),
            spec=k8s.networking.v1.IngressSpecArgs(
                ingress_class_name="traefik",
                rules=[k8s.networking.v1.IngressRuleArgs(host=h, http=k8s.networking.v1.HTTPIngressRuleValueArgs(
                    paths=[k8s.networking.v1.HTTPIngressPathArgs(path="/", path_type="Prefix", backend=backend)]))
                       for h in hosts]),
            opts=self.opts())

    def service_url(self, service: str, port: int) -> str:
        """In-cluster URL of a Service of this namespace, usable from any namespace."""
        return f"http://{service}.{self.namespace}.svc.cluster.local:{port}"


def _times(quantity: str, factor: int) -> str:
    """'50m' * 4 = '200m'; '1' * 4 = '4'. CPU quantities only."""
    if quantity.endswith("m"):
        return f"{int(quantity[:-1]) * factor}m"
    return str(int(quantity) * factor)


def _dockerconfigjson(key: str) -> str:
    """A gcr.io pull secret from a service-account JSON key (user _json_key)."""
    import base64
    import json

    auth = base64.b64encode(f"_json_key:{key}".encode()).decode()
    return json.dumps({"auths": {"gcr.io": {"username": "_json_key", "password": key, "auth": auth}}})
