"""The rack as the stack file describes it. `Settings` is the whole stack, validated; its field
order is the order of Pulumi.yaml and of the error lines. Field docstrings become Pulumi.yaml's
descriptions."""

from __future__ import annotations

import difflib
import ipaddress
from typing import Annotated, Any, Optional

from pydantic import Field, PrivateAttr, TypeAdapter, ValidationInfo, WrapValidator, field_validator, model_validator

from components.settings import hosts, places
from components.settings.base import Model, rules, shape
from components.settings.fields import NAMESPACE, ClusterNetwork, K3sVersion, Sha256, count, fail, url
from components.settings.hosts import Jumphost, PiEntry, Rpi
from components.settings.secrets import SECRET_KEYS, Secret
from components.settings.services import IMAGE_SERVICES, Guardrails, Images, Services, SkiaService

SERVICE_CIDR = ipaddress.ip_network("10.43.0.0/16")  # k3s's own; the pod network must not overlap it
NODE_CIDR_PREFIX = 24  # k3s gives every node a /24 of the pod network
# Keys that moved: the stack gets told where, not that the key is unknown.
MOVED = {"legacyMetadataUnit": "services.metadata.legacyUnit"}


class Upgrade(Model):
    # More than a few dozen at once is no longer a roll: the rack's bots all stop together.
    max_unavailable: Annotated[int, count(1, 50)] = 4


_PI_ENTRIES = TypeAdapter(Annotated[tuple[PiEntry, ...], shape(
    list, "a list of {name, address} or {shelf, count, firstAddress} entries")])


def _every_pi(entries: Any, handler: Any, info: ValidationInfo) -> tuple[Rpi, ...]:
    """`skolo:rpis` as written (Pis and shelves) -> every Pi, one per name and address, on the LAN."""
    return hosts.expand(_PI_ENTRIES.validate_python(entries), info.data.get("jumphost"))


class Settings(Model):
    jumphost: Jumphost
    """The jumphost: {name, address (IPv4 or host name), lanAddress (its IPv4 on the rack LAN; default: address),
    user: chrome-bot, port: 22, hostKey (authorized_keys form; pinned when set)}."""
    rpis: Annotated[tuple[Rpi, ...], WrapValidator(_every_pi, json_schema_input_type=tuple[PiEntry, ...])]
    """The rack's Pis: {name, address, hostKey?, rejoin?, state?} or shelves {shelf, count, firstAddress, start?,
    overrides?: {NODE: {hostKey?, rejoin?, state?}}}. Bump rejoin to re-join a re-flashed Pi; state is active
    (default), cordoned or drained."""
    k3s_version: K3sVersion
    """Exact k3s release for every node, e.g. v1.31.6+k3s1. Channels and "latest" are refused; older than installed
    is refused on the host."""
    k3s_install_script_url: Annotated[str, url("https", "http")] = "https://get.k3s.io"
    """Where each host fetches the official k3s install script (a mirror on an air-gapped rack). http:// only with
    k3sInstallScriptSha256."""
    k3s_install_script_sha256: Sha256 = ""
    """SHA-256 of the install script; when set, each host checks the script against it before running it."""
    api_server: Annotated[str, url("https")] = Field("", validate_default=True)
    """URL the Kubernetes provider uses, e.g. https://127.0.0.1:6442 through an SSH tunnel. Empty means
    https://<jumphost address>:6443."""
    cluster_cidr: ClusterNetwork = Field("10.44.0.0/14", validate_default=True)
    """Pod network. Each node takes a /24, so /14 fits 1024 nodes (k3s's default /16 caps a rack at 256). Fixed when
    the server is first created."""
    upgrade: Upgrade = Upgrade()
    """How a new k3sVersion rolls through the Pis after the server: {maxUnavailable: 4}, the most Pis out of
    service at once."""
    services: Services = Services()
    """Per-service settings, each {enabled (default true), ...}. Options and defaults: README."""
    images: Images = Images()
    """Pinned image per image key (README); Skia's own images are required while their service is enabled."""
    guardrails: Guardrails = Guardrails.model_validate({})
    """Admission policies: {enabled, allowedRegistries, hostPaths, hostPathPrefixes (every namespace),
    privilegedNamespaces, hostNetworkNamespaces, rootNamespaces, namespaces: {NS: {hostPaths, hostPathPrefixes,
    privileged, hostNetwork, root, capabilities}}}, additions to what the stack's own pods need, namespace by
    namespace."""

    _rack: str = PrivateAttr("")
    _secrets: dict[str, Secret] = PrivateAttr(default_factory=dict)

    @classmethod
    def unknown(cls, key: str) -> str:
        if key in MOVED:
            return f"moved to {NAMESPACE}:{MOVED[key]} (README: config)"
        hint = difflib.get_close_matches(key, cls.yaml_keys() + list(SECRET_KEYS))  # best first
        return "unknown key" + (f" (did you mean {NAMESPACE}:{hint[0]}?)" if hint else "")

    @field_validator("api_server", mode="wrap")
    @classmethod
    def _https_or_the_jumphost(cls, value: Any, handler, info: ValidationInfo) -> str:
        if value == "":
            return f"https://{info.data['jumphost'].address}:6443" if "jumphost" in info.data else ""
        return handler(value)

    @model_validator(mode="after")
    def _installer_over_http_only_when_pinned(self) -> "Settings":
        if self.k3s_install_script_url.startswith("http://") and not self.k3s_install_script_sha256:
            raise rules([(("k3sInstallScriptUrl",),
                          f"{self.k3s_install_script_url!r} is fetched without TLS, so anything on the way could hand "
                          f"every host another installer to run as root; use https, or pin the script with "
                          f"{NAMESPACE}:k3sInstallScriptSha256 (sha256sum of the script)")])
        return self

    @field_validator("cluster_cidr")
    @classmethod
    def _room_for_every_node_and_no_overlap(cls, value: str, info: ValidationInfo) -> str:
        net, nodes = ipaddress.IPv4Network(value), 1 + len(info.data.get("rpis") or ())
        capacity = 2 ** (NODE_CIDR_PREFIX - net.prefixlen) if net.prefixlen <= NODE_CIDR_PREFIX else 0
        lan = info.data["jumphost"].lan_address if "jumphost" in info.data else None
        if capacity < nodes:
            raise fail(f"{net} holds {capacity} node /24s but the rack has {nodes} nodes; use a larger network such "
                       f"as 10.44.0.0/14 (1024 nodes)")
        if net.overlaps(SERVICE_CIDR):
            raise fail(f"{net} overlaps k3s's service network {SERVICE_CIDR}; use 10.44.0.0/14")
        if lan and ipaddress.IPv4Address(lan) in net:
            raise fail(f"{net} contains the jumphost's LAN address {lan}; pick a network the rack LAN does not use")
        return value

    @field_validator("services")
    @classmethod
    def _bots_are_pis_and_paths_are_safe(cls, services: Services, info: ValidationInfo) -> Services:
        pis, cycle = {pi.name for pi in info.data.get("rpis") or ()}, services.power_cycle
        strips = {"mpower": cycle.mpower or (), "edgeswitch": cycle.edgeswitch or ()}
        problems = [(("powerCycle", kind, i, "ports", bot), f"not a Pi of this rack ({NAMESPACE}:rpis)")
                    for kind, devices in strips.items() for i, device in enumerate(devices)
                    for bot in device.ports if pis and cycle.enabled and bot not in pis]
        problems += places.path_problems(services)
        if "jumphost" in info.data:
            lan_problems, services = places.with_lan_defaults(services, info.data["jumphost"].lan)
            problems += lan_problems
        if problems:
            raise rules(problems)
        return services

    @field_validator("images")
    @classmethod
    def _skia_images_pinned_and_of_the_program_run(cls, images: Images, info: ValidationInfo) -> Images:
        services, problems = info.data.get("services"), []
        if not isinstance(services, Services):  # broken: its own problems are reported
            return images
        for key, name in IMAGE_SERVICES.items():
            service, image = services.named(name), images.get(key)
            if not isinstance(service, SkiaService) or not service.enabled:
                continue
            if image is None:
                problems.append(((key,), f"missing; pin the image {name} runs, e.g. gcr.io/skia-public/<app>:"
                                         f"<yyyy-mm-ddTHH_MM_SSZ>-<user>-<hash>-clean, or set "
                                         f"{NAMESPACE}:services.{name}.enabled to false"))
            elif problem := service.image_problem(image):
                problems.append(((key,), problem))
        if problems:
            raise rules(problems)
        return images

    @property
    def rack(self) -> str:
        """The stack name, used as the cluster name (rack1, rack2, ...)."""
        return self._rack

    @property
    def k3s_token(self) -> Secret:
        return self._secrets["k3sToken"]

    @property
    def ssh_private_key(self) -> Secret:
        return self._secrets["sshPrivateKey"]

    @property
    def secrets(self) -> dict[str, Secret]:
        """Service secrets that are set, by config key."""
        return {k: v for k, v in self._secrets.items() if k not in ("k3sToken", "sshPrivateKey")}

    def enabled(self, service: str) -> bool:
        return self.services.named(service).enabled

    @property
    def k3s_minor(self) -> str:
        """'1.31' for v1.31.6+k3s1: the Kubernetes schema version objects are checked against."""
        major, minor = self.k3s_version[1:].split(".")[:2]  # validated: vMAJOR.MINOR.PATCH+k3sN
        return f"{major}.{minor}"

    def ssh_hosts(self) -> list[tuple[str, str, str, Optional[str]]]:
        """(what, name, address, pinned host key) of every host something of this rack reaches over
        SSH: the jumphost, the Pis, and the devices of the enabled backup and power cycler."""
        backup, cycle = self.services.router_backup, self.services.power_cycle
        devices = [(f"{d.kind} (routerBackup)", d) for d in backup.devices or () if backup.enabled]
        devices += [(f"{kind} (powerCycle)", d) for kind in ("mpower", "edgeswitch")
                    for d in getattr(cycle, kind) or () if cycle.enabled]
        return ([("jumphost", self.jumphost.name, self.jumphost.address, self.jumphost.host_key)]
                + [("Pi", pi.name, pi.address, pi.host_key) for pi in self.rpis]
                + [(what, d.name, d.address, d.host_key) for what, d in devices])

    @property
    def node_names(self) -> tuple[str, ...]:
        return (self.jumphost.name,) + tuple(p.name for p in self.rpis)
