"""`skolo:services`, `skolo:images` and `skolo:guardrails`. An option left unset here (None) takes
the default on its component's Args, so a default is written once. Upstream images are pinned
here and nowhere else; Skia's own have no default: their tags come from Skia's builds."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Optional

from pydantic import BeforeValidator, Field, field_validator, model_validator

from components import skia
from components.settings.base import Model, rules, shape
from components.settings.fields import (
    NAMESPACE, AbsPath, Bool, Bucket, Capability, Cron, Destination, Duration, GcpProject, HostKey, IPv4, Image, MaxUnavailable, Network,
    NodeName, Positive, Quantity, Registry, Text, Unit, User, count, fail, one_of, scalar, show)


def _a_list_of(model: type[Model]):
    return shape(list, f"a list of {{{', '.join(model.yaml_keys())}}} entries")


class _ShelfPorts(Model):
    shelf: NodeName
    count: Positive
    first_port: Positive = 1


def _expand_ports(value: Any) -> Any:
    """bot name -> port, or {shelf, count, firstPort} for a shelf wired in port order."""
    if isinstance(value, dict) and "shelf" in value:
        wired = _ShelfPorts.model_validate(value)
        return {f"{wired.shelf}-{i + 1:03d}": wired.first_port + i for i in range(wired.count)}
    if not isinstance(value, dict) or not value:
        raise fail(f"expected bot name -> port, or {{shelf, count, firstPort}}, got {show(value)}")
    return value


def _port_of(last: int):
    return scalar(f"a port from 1 to {last}", lambda v: v if type(v) is int and 1 <= v <= last else None)


_StripPorts = Annotated[dict[str, Annotated[int, _port_of(8)]], BeforeValidator(_expand_ports)]
_SwitchPorts = Annotated[dict[str, Annotated[int, _port_of(52)]], BeforeValidator(_expand_ports)]


class Service(Model):
    enabled: Bool = True


class SkiaService(Service):
    """A service running one of Skia's programs; `extraArgs` adds flags that program defines."""

    PROGRAM: ClassVar[skia.Program]
    extra_args: Optional[tuple[Text, ...]] = None

    def program(self) -> skia.Program:
        return self.PROGRAM

    def image_problem(self, image: str) -> Optional[str]:
        """Why `image` does not run this service's program, as the rack passes its flags."""
        return skia.image_problem(self.program(), image)

    @model_validator(mode="after")
    def _extra_args_are_flags_the_rack_does_not_set(self) -> "SkiaService":
        program, args = self.program(), self.extra_args or ()
        problems = [(("extraArgs", i), p) for i, a in enumerate(args) for p in program.problems((a,))] + [
            (("extraArgs", i), f"--{name} is set by this rack already; use the service's own option for it")
            for i, a in enumerate(args) for name in skia.flag_names((a,)) & program.managed]
        if problems:
            raise rules(problems)
        return self


class Device(Model):
    """A router or switch whose config router-backup keeps."""

    name: NodeName
    address: IPv4
    kind: Annotated[str, one_of("edgerouter", "edgeswitch")]
    user: User
    path: Optional[AbsPath] = None
    host_key: Optional[HostKey] = None

    @model_validator(mode="after")
    def _only_a_router_has_a_config_file(self) -> "Device":
        if self.kind == "edgeswitch" and self.path:
            raise rules([(("path",), "an EdgeSwitch has no config file: router-backup reads its running-config "
                                     "through the CLI; remove path")])
        return self


class PowerStrip(Model):
    name: NodeName
    address: IPv4
    user: Optional[User] = None
    ports: _StripPorts
    host_key: Optional[HostKey] = None


class EdgeSwitch(PowerStrip):
    ports: _SwitchPorts


class Prometheus(Service):
    retention: Optional[Duration] = None
    storage: Optional[Quantity] = None
    scrape_interval: Optional[Duration] = None


class Metadata(SkiaService):
    PROGRAM = skia.METADATA
    legacy_unit: Unit = "metadata-server"


class AlertToPubsub(SkiaService):
    PROGRAM = skia.ALERT_TO_PUBSUB
    project: Optional[GcpProject] = None
    topic: Any = None

    @field_validator("topic")
    @classmethod
    def _no_topic(cls, value: Any) -> None:
        raise fail(f"alert-to-pubsub has no --topic flag: it always publishes to {skia.ALERT_TO_PUBSUB_TOPIC} "
                   f"in the project ({skia.ALERT_TO_PUBSUB.source}); remove topic")


class RouterBackup(Service):
    schedule: Optional[Cron] = None
    bucket: Optional[Bucket] = None
    folder: Optional[Text] = None
    devices: Optional[Annotated[tuple[Device, ...], _a_list_of(Device)]] = None
    max_age_hours: Optional[Positive] = None
    legacy_unit: Unit = "router-backup"


class PowerCycle(SkiaService):
    PROGRAM = skia.PODWATCHER
    mpower: Optional[Annotated[tuple[PowerStrip, ...], _a_list_of(PowerStrip)]] = None
    edgeswitch: Optional[Annotated[tuple[EdgeSwitch, ...], _a_list_of(EdgeSwitch)]] = None
    legacy_unit: Unit = "powercycle-daemon"


class Nfs(Service):
    export_path: AbsPath = "/opt/prod/root"
    subnet: Optional[Network] = None
    legacy_unit: Unit = "nfs-kernel-server"


class Swarming(SkiaService):
    max_unavailable: Optional[MaxUnavailable] = None
    termination_grace_seconds: Optional[Annotated[int, count(30)]] = None
    era: Annotated[str, one_of(*skia.SWARMING_ERAS)] = skia.NEWEST_ERA

    def program(self) -> skia.Program:
        return skia.SWARMING_ERAS[self.era].program

    def image_problem(self, image: str) -> Optional[str]:
        problem, actual = super().image_problem(image), skia.swarming_era_for(image)
        if problem and actual:
            era = skia.SWARMING_ERAS[actual]
            return (f"{image!r} is an image of era {actual} ({era.program.command[0]}, --config={era.config}), "
                    f"not of era {self.era}; set {NAMESPACE}:services.swarming.era: {actual}")
        return problem


class DatastoreBackup(Service):
    schedule: Optional[Cron] = None
    destination: Destination = "/var/backups/skolo-k3s"
    keep: Optional[Positive] = None


class Services(Model):
    noun, listing = "service", "services"
    metadata: Metadata = Metadata()
    prometheus: Prometheus = Prometheus()
    alert_to_pubsub: AlertToPubsub = AlertToPubsub()
    router_backup: RouterBackup = RouterBackup()
    power_cycle: PowerCycle = PowerCycle()
    nfs: Nfs = Nfs()
    swarming: Swarming = Swarming()
    datastore_backup: DatastoreBackup = DatastoreBackup()

    named = Model.get


SERVICES = tuple(Services.yaml_keys())

_CLOUD_CLI = "gcr.io/google.com/cloudsdktool/google-cloud-cli:499.0.0-slim"  # sh, python3, ssh, scp, gsutil


class Images(Model):
    noun, listing = "image key", "keys"
    metadata: Optional[Image] = None
    # Upstream images by tag and digest (the multi-arch index digest: the Pis are arm). Each digest
    # is the one public sources state for that tag (README: images).
    prometheus: Image = "prom/prometheus:v2.55.1@sha256:2659f4c2ebb718e7695cb9b25ffa7d6be64db013daba13e05c875451cf51b0d3"
    node_exporter: Image = ("prom/node-exporter:v1.8.2"
                            "@sha256:4032c6d5bfd752342c3e631c2f1de93ba6b86c41db6b167b9a35372c139e7706")
    kube_state_metrics: Image = ("registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.13.0"
                                 "@sha256:639a1e2da549210adddc0391ff91e270e83f7873014aec53258462812f741e6f")
    alert_to_pubsub: Optional[Image] = None
    router_backup: Image = _CLOUD_CLI
    power_cycle: Optional[Image] = None
    nfs: Image = "erichough/nfs-server:2.2.1@sha256:1efd4ece380c5ba27479417585224ef857006daa46ab84560a28c1224bc71e9e"
    swarming: Optional[Image] = None
    datastore_backup: Image = _CLOUD_CLI


# Image key -> the service that runs it: its own name, but for Prometheus's exporters.
IMAGE_SERVICES = {key: {"nodeExporter": "prometheus", "kubeStateMetrics": "prometheus"}.get(key, key)
                  for key in Images.yaml_keys()}


class NamespaceAllowance(Model):
    """What the admission policies let one namespace's pods do, beyond what the stack's own need."""

    host_paths: tuple[AbsPath, ...] = ()
    host_path_prefixes: tuple[AbsPath, ...] = ()
    privileged: Bool = False
    host_network: Bool = False
    root: Bool = False
    capabilities: tuple[Capability, ...] = ()


class Guardrails(Service):
    registries: Optional[tuple[Registry, ...]] = Field(None, alias="allowedRegistries")
    host_paths: Optional[tuple[AbsPath, ...]] = None
    host_path_prefixes: Optional[tuple[AbsPath, ...]] = None
    privileged_namespaces: Optional[tuple[NodeName, ...]] = None
    host_network_namespaces: Optional[tuple[NodeName, ...]] = None
    root_namespaces: Optional[tuple[NodeName, ...]] = None
    namespaces: Optional[Annotated[dict[NodeName, NamespaceAllowance], shape(
        dict, "an object of namespace -> {hostPaths, hostPathPrefixes, privileged, hostNetwork, root, capabilities}")
    ]] = None
