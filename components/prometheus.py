"""Prometheus: the rack's monitoring, and the alert rules that page for it.

Owns the monitoring namespace: Prometheus 2.x on the jumphost with a persistent volume
(k3s's local-path provisioner), its read-only identity (Toolforge's "infrastructure read-only
account": get/list/watch, nothing else), prometheus.yml and the rules generated from the
Python data below, and, as children, a node-exporter on every node and kube-state-metrics.

Alerts go straight to alert-to-pubsub, which speaks Alertmanager API v1, as Skia ran it.
That is why Prometheus stays on 2.x: 3.x no longer speaks v1. An Alertmanager in front would
add grouping and silences, but also a second thing to keep alive on every rack for a feed
whose consumer (Skia's alert-manager) already groups and silences.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components import kube
from components.kube_state_metrics import KubeStateMetrics, KubeStateMetricsArgs
from components.node_exporter import NodeExporter, NodeExporterArgs

PORT = 9090
CONFIG_DIR = "/etc/prometheus"
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"

# Memory from the rack's size. An estimate, to check on the rack against
# prometheus_tsdb_head_series and the PrometheusMemoryNearLimit alert:
# - series: a Pi carries about 1,500 (node-exporter's default collectors on a 4-core Pi about
#   600, its kubelet's own metrics about 600, cAdvisor about 150 for the bot, node-exporter and
#   pause containers, kube-state-metrics about 100 for the Node and its pods); the jumphost about
#   25,000 (the API server's request histograms are most of it, plus its kubelet, cAdvisor for
#   the stack's pods, node-exporter and the services' own metrics).
# - memory: Prometheus 2.x holds about 3-4 KiB per head series (labels, index postings, the open
#   chunk), and Go's collector (GOGC=100) lets the heap grow to twice what is live: 8 KiB a series,
#   over a 256 MiB base (the binary, the WAL's buffers, queries).
SERIES_PER_PI = 1_500
SERIES_JUMPHOST = 25_000
BYTES_PER_SERIES = 8 * 1024
BASE_MIB = 256


def memory_for(pis: int) -> str:
    """The memory request and limit for a rack of `pis` Pis, in 64 MiB steps."""
    series = SERIES_JUMPHOST + pis * SERIES_PER_PI
    mib = BASE_MIB + series * BYTES_PER_SERIES / 2**20
    return f"{-(-int(mib) // 64) * 64}Mi"


@dataclass(frozen=True, kw_only=True)
class PrometheusArgs:
    provider: k8s.Provider
    """The rack's Kubernetes provider."""
    image: str
    """Prometheus 2.x image."""
    node_exporter_image: str
    """node-exporter image."""
    kube_state_metrics_image: str
    """kube-state-metrics image."""
    cluster: str
    """The rack name, the `cluster` external label on every series and alert."""
    alertmanager_target: Optional[str] = None
    """host:port of alert-to-pubsub; None sends alerts nowhere (they still show in Prometheus)."""
    image_pull_key: Optional[pulumi.Input[str]] = field(default=None, repr=False)
    """gcr.io pull key, when the images are private."""
    namespace: str = "monitoring"
    """Namespace of everything this component owns."""
    scrape_interval: str = "15s"
    """How often every target is scraped."""
    retention: str = "15d"
    """How long samples are kept."""
    storage: str = "10Gi"
    """Size of the data volume."""
    swarming_namespace: str = "swarming"
    """Where the swarming bots run (for the bot alerts)."""
    backup_namespaces: tuple[str, ...] = ("backup", "k3s-backup")
    """Where the backup CronJobs run (router/switch configs, the k3s datastore), for the backup alerts."""
    backup_max_age_hours: int = 26
    """A backup older than this alerts."""
    pis: int = 0
    """How many Pis the rack has: Prometheus's memory is sized from its series (memory_for)."""


def _sd_job(name: str, role: str, relabel: list[dict], **extra) -> dict:
    return {"job_name": name, "kubernetes_sd_configs": [{"role": role}], "relabel_configs": relabel, **extra}


def _kubelet(path: str) -> list[dict]:
    """Scrape a node's kubelet on its own port (the node role's address, InternalIP:10250), with
    the ServiceAccount's token. The kubelet asks the API server whether the token may `get
    nodes/metrics`: that is all this needs. Going through the API server's node proxy instead would
    need `nodes/proxy`, which reaches the whole kubelet API, exec into any pod included."""
    return [
        {"source_labels": ["__meta_kubernetes_node_name"], "target_label": "node"},
        {"source_labels": ["__meta_kubernetes_node_label_skolo_skia_org_role"], "target_label": "role"},
        {"target_label": "__metrics_path__", "replacement": path},
    ]


_POD_LABELS = [
    {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
    {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
    {"source_labels": ["__meta_kubernetes_pod_node_name"], "target_label": "node"},
]


def _app_pods(app: str, namespace: str, port: int) -> list[dict]:
    return [
        {"source_labels": ["__meta_kubernetes_namespace", f"__meta_kubernetes_pod_label_{kube.APP_LABEL.replace('.', '_').replace('/', '_')}"],
         "action": "keep", "regex": f"{namespace};{app}"},
        {"source_labels": ["__meta_kubernetes_pod_ip"], "target_label": "__address__", "replacement": f"$1:{port}"},
        *_POD_LABELS,
    ]


def prometheus_config(args: PrometheusArgs) -> dict:
    """prometheus.yml as data."""
    in_cluster = {"scheme": "https", "tls_config": {"ca_file": f"{SA_DIR}/ca.crt"},
                  "authorization": {"credentials_file": f"{SA_DIR}/token"}}
    config = {
        "global": {"scrape_interval": args.scrape_interval, "evaluation_interval": args.scrape_interval,
                   "external_labels": {"cluster": args.cluster}},
        "rule_files": ["alerts.yml"],
        "scrape_configs": [
            _sd_job("apiservers", "endpoints", [
                {"source_labels": ["__meta_kubernetes_namespace", "__meta_kubernetes_service_name",
                                   "__meta_kubernetes_endpoint_port_name"],
                 "action": "keep", "regex": "default;kubernetes;https"}], **in_cluster),
            _sd_job("nodes", "node", _kubelet("/metrics"), **in_cluster),
            _sd_job("cadvisor", "node", _kubelet("/metrics/cadvisor"), **in_cluster),
            _sd_job("node-exporter", "pod", _app_pods("node-exporter", args.namespace, NodeExporterArgs.port)),
            _sd_job("kube-state-metrics", "pod", _app_pods("kube-state-metrics", args.namespace,
                                                           KubeStateMetricsArgs.port), honor_labels=True),
            _sd_job("pods", "pod", [
                {"source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"],
                 "action": "keep", "regex": "true"},
                {"source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_path"],
                 "regex": "(.+)", "target_label": "__metrics_path__"},
                {"source_labels": ["__meta_kubernetes_pod_ip", "__meta_kubernetes_pod_annotation_prometheus_io_port"],
                 "regex": "(.+);(.+)", "target_label": "__address__", "replacement": "$1:$2"},
                {"source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_name"], "target_label": "app"},
                *_POD_LABELS,
            ]),
        ],
    }
    if args.alertmanager_target:
        config["alerting"] = {"alertmanagers": [
            {"api_version": "v1", "static_configs": [{"targets": [args.alertmanager_target]}]}]}
    return config


def _alert(name: str, expr: str, for_: str, description: str, category: str = "infra") -> dict:
    return {"alert": name, "expr": expr, "for": for_, "labels": {"category": category, "severity": "warning"},
            "annotations": {"description": description}}


def alert_rules(args: PrometheusArgs) -> dict:
    """The rack's alert rules as data. Labels `category`, annotations `description`, as Skia's."""
    sw, bk = args.swarming_namespace, "|".join(args.backup_namespaces)
    return {"groups": [{"name": "rack", "rules": [
        _alert("TargetDown", "up == 0", "5m",
               "{{ $labels.job }} target {{ $labels.instance }} on {{ $externalLabels.cluster }} has been down for 5 minutes."),
        _alert("CrashLoop", "increase(kube_pod_container_status_restarts_total[15m]) > 3", "5m",
               "{{ $labels.namespace }}/{{ $labels.pod }} ({{ $labels.container }}) restarted more than 3 times "
               "in 15 minutes on {{ $externalLabels.cluster }}."),
        _alert("NodeNotReady", 'kube_node_status_condition{condition="Ready",status="true"} == 0', "10m",
               "Node {{ $labels.node }} on {{ $externalLabels.cluster }} has not been Ready for 10 minutes."),
        _alert("SwarmingBotNotRunning",
               f'sum by (namespace, pod) (kube_pod_status_phase{{namespace="{sw}",phase!="Running"}}) > 0', "15m",
               "Swarming bot pod {{ $labels.pod }} on {{ $externalLabels.cluster }} has not been Running for 15 minutes."),
        _alert("SwarmingBotsMissing",
               f'kube_daemonset_status_desired_number_scheduled{{namespace="{sw}"}} '
               f'- kube_daemonset_status_number_available{{namespace="{sw}"}} > 0', "30m",
               "{{ $value }} Pis on {{ $externalLabels.cluster }} have had no available swarming bot for 30 minutes."),
        _alert("BackupStale",
               f'time() - kube_cronjob_status_last_successful_time{{namespace=~"{bk}"}} > {args.backup_max_age_hours * 3600}',
               "10m", f"The last good {{{{ $labels.cronjob }}}} run on {{{{ $externalLabels.cluster }}}} is older than "
                      f"{args.backup_max_age_hours} hours."),
        _alert("BackupFailed", f'kube_job_status_failed{{namespace=~"{bk}"}} > 0 and on (job_name) '
                               f'(time() - kube_job_status_start_time{{namespace=~"{bk}"}} < 86400)', "0m",
               "Backup job {{ $labels.job_name }} on {{ $externalLabels.cluster }} failed; see kubectl -n "
               "{{ $labels.namespace }} logs job/{{ $labels.job_name }}."),
        _alert("TooManyGoRoutines", "go_goroutines > 3000", "5m",
               "{{ $labels.job }} {{ $labels.instance }} on {{ $externalLabels.cluster }} runs over 3000 goroutines."),
        _alert("TooManyOpenFDs", "process_open_fds > 5000", "5m",
               "{{ $labels.job }} {{ $labels.instance }} on {{ $externalLabels.cluster }} has over 5000 open files."),
        _alert("PrometheusMemoryNearLimit",
               f'container_memory_working_set_bytes{{namespace="{args.namespace}",container="prometheus"}} '
               f'/ on (namespace, pod, container) kube_pod_container_resource_limits{{namespace="{args.namespace}",'
               f'container="prometheus",resource="memory"}} > 0.8', "15m",
               "Prometheus on {{ $externalLabels.cluster }} uses over 80% of its memory limit: the rack has more series "
               "than components/prometheus.py estimates (see prometheus_tsdb_head_series)."),
        _alert("AlertToPubSubSendFailures", "rate(pubsub_send_failure[10m]) > 0", "10m",
               "alert-to-pubsub on {{ $externalLabels.cluster }} is failing to publish alerts to Pub/Sub."),
    ]}]}


def _dump(doc: dict) -> str:
    return yaml.safe_dump(doc, sort_keys=False, width=120)


# Read-only: what service discovery and the kubelet scrapes need, nothing more (no nodes/proxy).
READ_ONLY_RULES = [
    k8s.rbac.v1.PolicyRuleArgs(api_groups=[""], resources=["nodes", "nodes/metrics", "services",
                                                           "endpoints", "pods"], verbs=["get", "list", "watch"]),
    k8s.rbac.v1.PolicyRuleArgs(api_groups=["discovery.k8s.io"], resources=["endpointslices"],
                               verbs=["get", "list", "watch"]),
    k8s.rbac.v1.PolicyRuleArgs(api_groups=["networking.k8s.io"], resources=["ingresses"],
                               verbs=["get", "list", "watch"]),
    k8s.rbac.v1.PolicyRuleArgs(non_resource_urls=["/metrics"], verbs=["get"]),
]


def data_claim(storage: str) -> str:
    """The data volume's claim, named by its size. A claim's size cannot change on k3s's
    local-path (no volume expansion; the API server refuses the update), so a new
    `services.prometheus.storage` is a new claim: Prometheus restarts on it empty, and the old
    claim, with the samples it held, goes when `pulumi up` deletes it after the Deployment moved."""
    return "prometheus-data-" + re.sub(r"[^a-z0-9]+", "-", storage.lower()).strip("-")


class Prometheus(pulumi.ComponentResource):
    def __init__(self, name: str, args: PrometheusArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("skolo:services:Prometheus", name, None, opts)
        kit = kube.Kit.of(self, args, opts)
        kit.cluster_reader("prometheus", READ_ONLY_RULES)
        kit.config_map("prometheus", {"prometheus.yml": _dump(prometheus_config(args)),
                                      "alerts.yml": _dump(alert_rules(args))})
        claim = data_claim(args.storage)
        kit.volume_claim(claim, args.storage)
        w = kube.Workload(
            name="prometheus", image=args.image,
            args=(f"--config.file={CONFIG_DIR}/prometheus.yml", "--storage.tsdb.path=/prometheus",
                  f"--storage.tsdb.retention.time={args.retention}", f"--web.listen-address=:{PORT}"),
            ports={"http": PORT},
            mounts=(kube.Mount("config", CONFIG_DIR, config_map="prometheus"),
                    kube.Mount("data", "/prometheus", claim=claim, read_only=False)),
            # Ready (in the Service) once the TSDB is loaded: /-/ready is 503 until then (web/web.go). Alive
            # while it serves at all: /-/healthy, so a long WAL replay after a restart is not killed
            # for being slow, over and over.
            health=("/-/ready", PORT), liveness=("/-/healthy", PORT),
            cpu="100m", memory=memory_for(args.pis),
            service_account="prometheus")
        kit.deployment(w)
        kit.service(w, {"http": (PORT, PORT)})
        child = pulumi.ResourceOptions(parent=self)
        NodeExporter(f"{name}-node-exporter", NodeExporterArgs(kit=kit, image=args.node_exporter_image), child)
        KubeStateMetrics(f"{name}-kube-state-metrics",
                         KubeStateMetricsArgs(kit=kit, image=args.kube_state_metrics_image), child)
        self.footprint = kit.footprint
        self.register_outputs({"url": kit.service_url("prometheus", PORT)})
