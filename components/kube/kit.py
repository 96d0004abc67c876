"""Kit: builds one component's Kubernetes objects with the rack's own provider (never the ambient
KUBECONFIG), its parent and its namespace: the namespace itself with ingress closed by default,
Secrets, ConfigMaps, RBAC, volumes, workloads (pods from workload.py), Services, Ingresses and the
NetworkPolicies that open exactly what a service needs.
"""

from __future__ import annotations

import base64
import json
from typing import Mapping, Optional, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components.labels import GOOGLE_KEY_DIR, PART_OF_LABEL, PULL_SECRET
from components.kube.workload import PROMETHEUS, Footprint, Mount, Peer, Workload, pod_template

# The provider's own annotation (pulumi-kubernetes provider/pkg/metadata/annotations.go): it
# reports the object ready once applied, without waiting for its rollout.
SKIP_AWAIT = {"pulumi.com/skipAwait": "true"}

net = k8s.networking.v1


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
        self._accounts: dict[str, k8s.core.v1.ServiceAccount] = {}
        self._ns: Optional[k8s.core.v1.Namespace] = None
        if create_namespace:
            # Everything in the namespace depends on it, so what the component waits for (a
            # legacy unit's cut-over) comes before any of its objects.
            self._ns = k8s.core.v1.Namespace(
                f"{namespace}-ns", metadata=self.meta(namespace, namespaced=False),
                opts=self.opts(depends_on, with_ns=False))
            # Closed by default: a pod of this namespace takes connections only as a
            # NetworkPolicy below allows (and, by the NetworkPolicy spec, from its own node).
            net.NetworkPolicy(self._id("networkpolicy", "default-deny-ingress"),
                              metadata=self.meta("default-deny-ingress"),
                              spec=net.NetworkPolicySpecArgs(pod_selector=k8s.meta.v1.LabelSelectorArgs(),
                                                             policy_types=["Ingress"]), opts=self.opts())
        if image_pull_key is not None:
            self.pull_secret = PULL_SECRET
            self.secret(PULL_SECRET, {".dockerconfigjson": pulumi.Output.from_input(image_pull_key).apply(
                _dockerconfigjson)}, type_="kubernetes.io/dockerconfigjson")

    @classmethod
    def of(cls, component: pulumi.Resource, args, opts: Optional[pulumi.ResourceOptions]) -> "Kit":
        """The kit of a service component: its Args' provider, namespace and pull key, and the
        component's own depends_on (children do not inherit it)."""
        return cls(component, args.provider, args.namespace, args.image_pull_key,
                   depends_on=_resources(opts.depends_on if opts else None))

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
        account = k8s.core.v1.ServiceAccount(self._id("serviceaccount", name), metadata=self.meta(name),
                                             automount_service_account_token=False, opts=self.opts())
        self._accounts[name] = account
        return account

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

    def _workload_opts(self, w: Workload, depends_on: Sequence[pulumi.Resource] = ()) -> pulumi.ResourceOptions:
        """After the ServiceAccount the pods name: a controller cannot create a pod whose account
        does not exist yet (a FailedCreate event, and a retry with back-off)."""
        account = self._accounts.get(w.service_account or "")
        return self.opts([*depends_on, *([account] if account else [])])

    def pod_template(self, w: Workload, restart_policy: Optional[str] = None) -> k8s.core.v1.PodTemplateSpecArgs:
        self.footprint.record(self.namespace, w)
        if w.metrics_port and not w.host_network:
            self.allow_ingress(w, [w.metrics_port], [PROMETHEUS], name=f"{w.name}-metrics")
        return pod_template(w, self.pull_secret, restart_policy)

    def deployment(self, w: Workload, depends_on: Sequence[pulumi.Resource] = ()) -> k8s.apps.v1.Deployment:
        """One replica. Recreate, since a jumphost service may hold a node-local volume."""
        return k8s.apps.v1.Deployment(
            self._id("deployment", w.name), metadata=self.meta(w.name, w.labels),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=1, selector=k8s.meta.v1.LabelSelectorArgs(match_labels=w.labels),
                strategy=k8s.apps.v1.DeploymentStrategyArgs(type="Recreate"),
                template=self.pod_template(w)),
            opts=self._workload_opts(w, depends_on))

    def daemon_set(self, w: Workload, max_unavailable: pulumi.Input[str | int] = 1) -> k8s.apps.v1.DaemonSet:
        """One pod per matching node, rolled with at most `max_unavailable` pods down at a time.

        `pulumi up` does not wait for the rollout (SKIP_AWAIT): a DaemonSet here spans the rack's
        Pis, and rolling hundreds of them a few at a time (each bot may finish its test first) takes
        hours, while the provider fails the update after 10 minutes of waiting (pulumi-kubernetes
        provider/pkg/await/daemonset.go), which would fail every deploy and stop the rollout at
        the canary. `rackctl status` shows a roll in progress."""
        return k8s.apps.v1.DaemonSet(
            self._id("daemonset", w.name), metadata=self.meta(w.name, w.labels, annotations=SKIP_AWAIT),
            spec=k8s.apps.v1.DaemonSetSpecArgs(
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=w.labels),
                update_strategy=k8s.apps.v1.DaemonSetUpdateStrategyArgs(
                    type="RollingUpdate",
                    rolling_update=k8s.apps.v1.RollingUpdateDaemonSetArgs(max_unavailable=max_unavailable)),
                template=self.pod_template(w)),
            opts=self._workload_opts(w))

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
            opts=self._workload_opts(w))

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

    def allow_ingress(self, w: Workload, ports: Sequence[int], peers: Sequence[Peer],
                      name: Optional[str] = None) -> net.NetworkPolicy:
        """Let `peers` reach `ports` of `w`'s pods (the namespace is closed otherwise)."""
        return self._network_policy(w, name or f"{w.name}-ingress", "Ingress", ingress=[
            net.NetworkPolicyIngressRuleArgs(
                from_=[p.args() for p in peers],
                ports=[net.NetworkPolicyPortArgs(port=port, protocol="TCP") for port in ports])])

    def limit_egress(self, w: Workload, rules: Sequence[tuple[Sequence[Peer], Sequence[tuple[int, str]]]],
                     name: Optional[str] = None) -> net.NetworkPolicy:
        """Let `w`'s pods reach only the (peers, [(port, protocol)]) of `rules`."""
        return self._network_policy(w, name or f"{w.name}-egress", "Egress", egress=[
            net.NetworkPolicyEgressRuleArgs(
                to=[p.args() for p in peers],
                ports=[net.NetworkPolicyPortArgs(port=port, protocol=protocol) for port, protocol in ports])
            for peers, ports in rules])

    def _network_policy(self, w: Workload, name: str, direction: str, **rules) -> net.NetworkPolicy:
        """A NetworkPolicy `name` on `w`'s pods for one direction (Ingress or Egress) and its rules."""
        return net.NetworkPolicy(
            self._id("networkpolicy", name), metadata=self.meta(name),
            spec=net.NetworkPolicySpecArgs(pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=w.labels),
                                           policy_types=[direction], **rules),
            opts=self.opts())

def _dockerconfigjson(key: str) -> str:
    """A gcr.io pull secret from a service-account JSON key (user _json_key)."""
    auth = base64.b64encode(f"_json_key:{key}".encode()).decode()
    return json.dumps({"auths": {"gcr.io": {"username": "_json_key", "password": key, "auth": auth}}})


def _resources(depends_on: object) -> list[pulumi.Resource]:
    """A component's depends_on as the resources its children wait for (the program passes
    resources, never an Output of them: children cannot wait on what is not known yet)."""
    items = depends_on if isinstance(depends_on, (list, tuple)) else [] if depends_on is None else [depends_on]
    for item in items:
        if not isinstance(item, pulumi.Resource):
            raise TypeError(f"a component's depends_on must list resources, got {type(item).__name__}")
    return [item for item in items if isinstance(item, pulumi.Resource)]
