"""Metadata: the GCE metadata emulator the rack's bots get their OAuth tokens from.

Owns the metadata namespace: the service-account key Secret, a Deployment pinned to the
jumphost, its Service, the traefik Ingress that answers http://metadata/ and http://jumphost/ on
port 80 (the rack router's /etc/hosts points both at the jumphost), and who may reach the token
port: the swarming bots, traefik, and the rack LAN (Pis outside Kubernetes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from components import kube

PORT = 8000
METRICS_PORT = 20000
TOKEN_PATH = "/computeMetadata/v1/instance/service-accounts/default/token"
# With this component switched off, the bots fall back to the legacy server on the jumphost,
# which the rack router's /etc/hosts names `metadata`.
LEGACY_TOKEN_URL = f"http://metadata{TOKEN_PATH}"


@dataclass(frozen=True, kw_only=True)
class MetadataArgs:
    provider: k8s.Provider
    """The rack's Kubernetes provider."""
    image: str
    """gcr.io/skia-public/metadata image."""
    service_account_key: pulumi.Input[str] = field(repr=False)
    """JSON key whose tokens are handed out."""
    image_pull_key: Optional[pulumi.Input[str]] = field(default=None, repr=False)
    """gcr.io pull key, when the images are private."""
    namespace: str = "metadata"
    """Namespace of everything this component owns."""
    lan_cidr: str
    """The rack LAN: Pis outside Kubernetes may fetch tokens."""
    hosts: tuple[str, ...] = ("metadata", "jumphost")
    """Host names traefik routes to the metadata server."""
    clients: tuple[kube.Peer, ...] = (kube.Peer("swarming", "swarming"), kube.Peer("kube-system", "traefik"))
    """Who else may fetch tokens: the swarming bots, and traefik (port 80 on the jumphost)."""
    extra_args: tuple[str, ...] = ()
    """Further flags of the metadata program (checked against its contract by the settings)."""


class Metadata(pulumi.ComponentResource):
    token_url: str
    """URL of the token endpoint from any namespace (namespace-qualified Service name and port)."""

    def __init__(self, name: str, args: MetadataArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("skolo:services:Metadata", name, None, opts)
        kit = kube.Kit.of(self, args, opts)
        key_env, key_mount = kit.google_key("metadata-sa", args.service_account_key)
        w = kube.Workload(
            name="metadata", image=args.image,
            args=(f"--port=:{PORT}", f"--prom_port=:{METRICS_PORT}", *args.extra_args),
            ports={"http": PORT, "metrics": METRICS_PORT},
            env=key_env, mounts=(key_mount,),
            health=("/healthz", PORT), metrics_port=METRICS_PORT, run_as_user=2000)
        kit.deployment(w)
        kit.service(w, {"http": (PORT, PORT)})
        kit.ingress("metadata", args.hosts, "metadata", PORT)
        kit.allow_ingress(w, [PORT], [*args.clients, kube.Peer(cidr=args.lan_cidr)])
        self.token_url = kit.service_url("metadata", PORT) + TOKEN_PATH
        self.footprint = kit.footprint
        self.register_outputs({"tokenUrl": self.token_url})
