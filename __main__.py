"""One rack: its k3s server, one agent per Raspberry Pi, the rack's Kubernetes provider, and the
services every rack runs (each can be switched off per stack in skolo:services).

Wiring only. What each piece does lives in components/; what the config means lives in
components/settings/.
"""

import functools

import pulumi

from components import kube, nfs_server, remote, settings
from components.access import Access, AccessArgs
from components.alert_to_pubsub import AlertToPubsub, AlertToPubsubArgs
from components.datastore_backup import DatastoreBackup, DatastoreBackupArgs
from components.fleet import Fleet, FleetArgs
from components.guardrails import Guardrails, GuardrailsArgs
from components.k3s_server import K3sServer, K3sServerArgs
from components.legacy_unit import LegacyUnit, LegacyUnitArgs
from components.metadata import LEGACY_TOKEN_URL, Metadata, MetadataArgs
from components.nfs_server import NfsServer, NfsServerArgs
from components.node_roles import NodeRoles, NodeRolesArgs
from components.power_cycle import PowerCycle, PowerCycleArgs
from components.prometheus import Prometheus, PrometheusArgs
from components.router_backup import RouterBackup, RouterBackupArgs
from components.rpi_agent import RpiAgent, RpiAgentArgs
from components.swarming import Swarming, SwarmingArgs

rack = settings.load()
jumphost = rack.jumphost
ssh_key = rack.ssh_private_key.output()
token = rack.k3s_token.output()

jumphost_ssh = remote.jumphost_connection(
    address=jumphost.address, port=jumphost.port, user=jumphost.user,
    private_key=ssh_key, host_key=jumphost.host_key)


def legacy_unit(service: str, name: str, alias: pulumi.Alias | None = None,
                in_the_way: tuple[str, ...] = ()) -> list[LegacyUnit]:
    """The launch plan's cut-over: a legacy unit of the push system (and the host units
    `in_the_way` of its replacement) stops before the service that replaces it starts, and starts
    again when the service is switched off (the rollback)."""
    units = ((services.named(service).legacy_unit,) if services.named(service).legacy_unit else ()) + in_the_way
    if not (rack.enabled(service) and units):
        return []
    return [LegacyUnit(f"{name}-legacy-unit", LegacyUnitArgs(connection=jumphost_ssh, units=units, alias=alias))]


images, services = rack.images, rack.services
# Before k3s starts: traefik takes the legacy metadata server's port 80. (This step was
# K3sServer's until the cut-overs became one mechanism: the alias moves it instead of running its
# delete, which is the rollback.)
metadata_cutover = legacy_unit("metadata", "metadata", alias=pulumi.Alias(
    name=f"{rack.rack}-legacy-cutover",
    parent=f"urn:pulumi:{pulumi.get_stack()}::{pulumi.get_project()}::skolo:rack:K3sServer::{rack.rack}"))

server = K3sServer(rack.rack, K3sServerArgs(
    node_name=jumphost.name,
    connection=jumphost_ssh,
    k3s_version=rack.k3s_version,
    install_script_url=rack.k3s_install_script_url,
    install_script_sha256=rack.k3s_install_script_sha256,
    token=token,
    tls_sans=tuple(dict.fromkeys([jumphost.address, jumphost.lan_address, jumphost.name])),
    cluster_cidr=rack.cluster_cidr,
    api_server=rack.api_server,
    cluster_name=rack.rack,
), pulumi.ResourceOptions(depends_on=metadata_cutover))

# What the jumphost needs to look after every Pi, installed once: the bundle of scripts it runs
# for them and the key it reaches them with.
fleet = Fleet(f"{rack.rack}-fleet", FleetArgs(
    connection=jumphost_ssh,
    ssh_private_key=ssh_key,
    user=jumphost.user,
    server_url=f"https://{jumphost.lan_address}:6443",
    install_script_url=rack.k3s_install_script_url,
    install_script_sha256=rack.k3s_install_script_sha256,
    max_unavailable=rack.upgrade.max_unavailable,
    swarming_grace_seconds=services.swarming.termination_grace_seconds or SwarmingArgs.termination_grace_seconds,
))

# One small step per Pi, done from the jumphost; after the server, so a new version reaches the
# server before any Pi.
agents = [
    RpiAgent(pi.name, RpiAgentArgs(
        node_name=pi.name,
        address=pi.address,
        host_key=pi.host_key,
        k3s_version=rack.k3s_version,
        state=pi.state,
        rejoin=pi.rejoin,
        jumphost=jumphost_ssh,
        bundle=fleet.bundle,
    ), pulumi.ResourceOptions(depends_on=[server.install, fleet]))
    for pi in rack.rpis
]

# Depends on the whole server component, so no object reaches the cluster before the legacy
# metadata unit has let go of port 80 and k3s is up.
k8s_provider = kube.provider(f"{rack.rack}-k8s", kubeconfig=server.kubeconfig, cluster=rack.rack,
                             opts=pulumi.ResourceOptions(depends_on=[server]))

# The jumphost's workloads go only where an administrator's label says (not a Pi's own claim).
NodeRoles(f"{rack.rack}-node-roles", NodeRolesArgs(provider=k8s_provider, jumphost=jumphost.name))

secret = {key: value.output() for key, value in rack.secrets.items()}
common = dict(provider=k8s_provider, image_pull_key=secret.get("imagePullKey"))
declared = []  # every service component, for the admission policies' allowlists

metadata = alerting = backup = None
if rack.enabled("metadata"):
    metadata = Metadata("metadata", MetadataArgs(
        image=images.metadata, service_account_key=secret["metadataServiceAccountKey"], lan_cidr=str(jumphost.lan),
        **common, **services.metadata.options()))
    declared.append(metadata)
if rack.enabled("alertToPubsub"):
    alerting = AlertToPubsub("alert-to-pubsub", AlertToPubsubArgs(
        image=images.alert_to_pubsub, location=rack.rack,
        service_account_key=secret["alertToPubsubServiceAccountKey"], **common, **services.alert_to_pubsub.options()))
    declared.append(alerting)
if rack.enabled("routerBackup"):
    backup = RouterBackup("router-backup", RouterBackupArgs(
        image=images.router_backup, service_account_key=secret["routerBackupServiceAccountKey"],
        ssh_key=secret["routerBackupSshKey"], switch_password=secret.get("powerCyclePassword"),
        lan_cidr=str(jumphost.lan),
        **common, **services.router_backup.options()),
        pulumi.ResourceOptions(depends_on=legacy_unit("routerBackup", "router-backup")))
    declared.append(backup)
if rack.enabled("datastoreBackup"):
    declared.append(DatastoreBackup("datastore-backup", DatastoreBackupArgs(
        image=images.datastore_backup, rack=rack.rack,
        service_account_key=secret.get("datastoreBackupServiceAccountKey"),
        **common, **services.datastore_backup.options())))
if rack.enabled("prometheus"):
    declared.append(Prometheus("prometheus", PrometheusArgs(
        image=images.prometheus, node_exporter_image=images.node_exporter,
        kube_state_metrics_image=images.kube_state_metrics, cluster=rack.rack,
        alertmanager_target=alerting.alertmanager_target if alerting else None,
        backup_max_age_hours=backup.max_age_hours if backup else RouterBackupArgs.max_age_hours,
        pis=len(rack.rpis),
        **common, **services.prometheus.options())))
if rack.enabled("powerCycle"):
    declared.append(PowerCycle("power-cycle", PowerCycleArgs(
        image=images.power_cycle, ssh_key=secret["powerCycleSshKey"],
        service_account_key=secret["powerCycleServiceAccountKey"], password=secret.get("powerCyclePassword"),
        pis=tuple((pi.name, pi.address, pi.host_key) for pi in rack.rpis), user=jumphost.user,
        **common, **services.power_cycle.options()),
        pulumi.ResourceOptions(depends_on=legacy_unit("powerCycle", "power-cycle"))))
if rack.enabled("nfs"):
    declared.append(NfsServer("nfs", NfsServerArgs(image=images.nfs, **common, **services.nfs.options()),
                              pulumi.ResourceOptions(depends_on=legacy_unit(
                                  "nfs", "nfs", in_the_way=nfs_server.HOST_UNITS_IN_THE_WAY))))
if rack.enabled("swarming"):
    declared.append(Swarming("swarming", SwarmingArgs(
        image=images.swarming, token_url=metadata.token_url if metadata else LEGACY_TOKEN_URL,
        service_account_key=secret["swarmingServiceAccountKey"], adb_key=secret["adbKey"],
        adb_public_key=secret["adbPublicKey"], **common, **services.swarming.options())))

# Toolforge's lessons: admission policies that allow what the stack runs and nothing it does
# not, and a read-only way in for operators.
if rack.guardrails.enabled:
    footprint = functools.reduce(kube.Footprint.merge, (c.footprint for c in declared), kube.Footprint())
    Guardrails("guardrails", GuardrailsArgs(provider=k8s_provider, footprint=footprint, **rack.guardrails.options()))
Access("access", AccessArgs(provider=k8s_provider))

pulumi.export("kubeconfig", server.kubeconfig)
pulumi.export("apiServer", server.api_server)
pulumi.export("nodeNames", list(rack.node_names))
