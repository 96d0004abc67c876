"""AlertToPubsub: turns the rack's Prometheus alerts into Pub/Sub messages.

Owns the alerting namespace: the service-account key Secret (roles/pubsub.editor, which also
creates the topic if missing, and roles/logging.logWriter), a Deployment on the jumphost and the
Service Prometheus sends alerts to, as if it were an Alertmanager (API v1). The program always
publishes to the same topic, promtheus-alerts (sic); only the project is chosen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from components import kube

PORT = 8000
METRICS_PORT = 20000


@dataclass(frozen=True, kw_only=True)
class AlertToPubsubArgs:
    provider: k8s.Provider
    """The rack's Kubernetes provider."""
    image: str
    """gcr.io/skia-public/alert-to-pubsub image."""
    location: str
    """--location: the rack name carried by every alert."""
    service_account_key: pulumi.Input[str] = field(repr=False)
    """JSON key allowed to publish."""
    image_pull_key: Optional[pulumi.Input[str]] = field(default=None, repr=False)
    """gcr.io pull key, when the images are private."""
    project: str = "skia-public"
    """GCP project of the topic."""
    extra_args: tuple[str, ...] = ()
    """Further flags of alert-to-pubsub (checked against its contract by the settings)."""
    namespace: str = "alerting"
    """Namespace of everything this component owns."""


def alert_to_pubsub_args(args: AlertToPubsubArgs) -> tuple[str, ...]:
    return (f"--port=:{PORT}", f"--prom_port=:{METRICS_PORT}", f"--location={args.location}",
            f"--project={args.project}", *args.extra_args)


class AlertToPubsub(pulumi.ComponentResource):
    alertmanager_target: str
    """host:port Prometheus delivers alerts to."""

    def __init__(self, name: str, args: AlertToPubsubArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("skolo:services:AlertToPubsub", name, None, opts)
        kit = kube.Kit.of(self, args, opts)
        key_env, key_mount = kit.google_key("alert-to-pubsub-sa", args.service_account_key)
        w = kube.Workload(
            name="alert-to-pubsub", image=args.image, args=alert_to_pubsub_args(args),
            ports={"http": PORT, "metrics": METRICS_PORT},
            env=key_env, mounts=(key_mount,),
            health=("/healthz", PORT), metrics_port=METRICS_PORT, cpu="50m", memory="100Mi")
        kit.deployment(w)
        kit.service(w, {"http": (PORT, PORT)})
        kit.allow_ingress(w, [PORT], [kube.PROMETHEUS])  # alerts come from Prometheus only
        self.alertmanager_target = f"alert-to-pubsub.{args.namespace}.svc.cluster.local:{PORT}"
        self.footprint = kit.footprint
        self.register_outputs({"alertmanagerTarget": self.alertmanager_target})
