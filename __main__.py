"""One rack: its k3s server, one agent per Raspberry Pi, and the rack's Kubernetes provider.

Wiring only. What each piece does lives in components/; what the config means lives in
components/settings.py.
"""

import pulumi

from components import kube, remote, settings
from components.k3s_server import K3sServer, K3sServerArgs
from components.rpi_agent import RpiAgent, RpiAgentArgs

rack = settings.load()
jumphost = rack.jumphost
ssh_key = rack.ssh_private_key.output()
token = rack.k3s_token.output()

jumphost_ssh = remote.jumphost_connection(
    address=jumphost.address, port=jumphost.port, user=jumphost.user,
    private_key=ssh_key, host_key=jumphost.host_key)

server = K3sServer(rack.rack, K3sServerArgs(
    node_name=jumphost.name,
    connection=jumphost_ssh,
    k3s_version=rack.k3s_version,
    install_script_url=rack.install_script_url,
    token=token,
    tls_sans=tuple(dict.fromkeys([jumphost.address, jumphost.lan_address, jumphost.name])),
    cluster_cidr=rack.cluster_cidr,
    api_server=rack.api_server,
    cluster_name=rack.rack,
    legacy_metadata_unit=rack.legacy_metadata_unit,
))

agents = [
    RpiAgent(pi.name, RpiAgentArgs(
        node_name=pi.name,
        address=pi.address,
        connection=remote.pi_connection(address=pi.address, host_key=pi.host_key, jumphost=jumphost_ssh),
        jumphost_connection=jumphost_ssh,
        host_key=pi.host_key,
        user=jumphost.user,
        k3s_version=rack.k3s_version,
        install_script_url=rack.install_script_url,
        server_url=f"https://{jumphost.lan_address}:6443",
        token=token,
        ssh_private_key=ssh_key,
        rejoin=pi.rejoin,
    ), pulumi.ResourceOptions(depends_on=[server.install]))
    for pi in rack.rpis
]

k8s_provider = kube.provider(f"{rack.rack}-k8s", kubeconfig=server.kubeconfig, cluster=rack.rack,
                             opts=pulumi.ResourceOptions(depends_on=[server]))

pulumi.export("kubeconfig", server.kubeconfig)
pulumi.export("apiServer", server.api_server)
pulumi.export("nodeNames", list(rack.node_names))
