"""K3sServer: the rack's jumphost as the k3s server.

Owns, on the jumphost: sshd's MaxStartups (the jumphost is every Pi's bastion), the pinned k3s
server install with its config.yaml and token file, and reading back the kubeconfig. Its first
step waits for what the component depends on (the legacy metadata unit's cut-over, which frees
port 80 for traefik). Does not own the Kubernetes provider (kube.py builds it from
`kubeconfig`), the legacy units (legacy_unit.py) nor the Pis.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_command as command
import yaml

from components import hostscripts, kube, remote

KUBECONFIG_PATH = "/etc/rancher/k3s/k3s.yaml"


@dataclass(frozen=True, kw_only=True)
class K3sServerArgs:
    node_name: str
    """Kubernetes node name of the jumphost."""
    connection: command.remote.ConnectionArgs
    """SSH connection to the jumphost."""
    k3s_version: str
    """Exact k3s release; an older one than installed is refused on the host."""
    install_script_url: str
    """Where the host fetches the k3s install script."""
    install_script_sha256: str = ""
    """SHA-256 the script must match before it runs; empty: not checked (https only)."""
    token: pulumi.Input[str] = field(repr=False)
    """Cluster join token; reaches the host on stdin only."""
    tls_sans: tuple[str, ...]
    """Extra names/addresses in the API server certificate."""
    cluster_cidr: str
    """Pod network, fixed when the server is first created."""
    api_server: str
    """URL written into the exported kubeconfig."""
    cluster_name: str
    """Name of the cluster, context and user in the exported kubeconfig."""
    ssh_max_startups: str = "256:30:1024"
    """sshd MaxStartups on the jumphost (default 10:30:100 drops a rack's worth of Pi connections)."""


def server_config(args: K3sServerArgs) -> dict:
    """/etc/rancher/k3s/config.yaml for the server. No secrets: the token is in token-file."""
    return {
        "node-name": args.node_name,
        "token-file": hostscripts.K3S_TOKEN_FILE,
        "write-kubeconfig-mode": "0600",
        "tls-san": list(args.tls_sans),
        "cluster-cidr": args.cluster_cidr,
        "node-label": [kube.role_label(kube.ROLE_JUMPHOST)],
    }


def rewrite_kubeconfig(raw: str, *, server: str, name: str) -> str:
    """k3s's kubeconfig pointed at `server`, with cluster, context and user called `name`.

    Parsed as YAML, not edited with sed. Errors never quote the file: it holds client keys.
    """
    try:
        doc = yaml.safe_load(raw)
        cluster = doc["clusters"][0]
        context = doc["contexts"][0]
        user = doc["users"][0]
    except (yaml.YAMLError, KeyError, IndexError, TypeError):
        raise ValueError(f"{KUBECONFIG_PATH} on the jumphost is not a k3s kubeconfig "
                         f"(expected clusters, contexts and users); contents not shown") from None
    cluster["name"] = name
    cluster["cluster"]["server"] = server
    user["name"] = name
    context["name"] = name
    context["context"]["cluster"] = name
    context["context"]["user"] = name
    doc["clusters"], doc["contexts"], doc["users"] = [cluster], [context], [user]
    doc["current-context"] = name
    return yaml.safe_dump(doc, sort_keys=False)


class K3sServer(pulumi.ComponentResource):
    kubeconfig: pulumi.Output[str]
    """Admin kubeconfig for the rack, secret, pointing at `api_server`."""
    install: command.remote.Command
    """The k3s install; agents depend on it so they never run ahead of the server."""

    def __init__(self, name: str, args: K3sServerArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("skolo:rack:K3sServer", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        # Children do not inherit the component's depends_on: the first step takes it over.
        sshd = remote.run(
            f"{name}-sshd", connection=args.connection,
            create=hostscripts.script("sshd-max-startups", MAX_STARTUPS=args.ssh_max_startups).command,
            opts=pulumi.ResourceOptions(parent=self, depends_on=opts.depends_on if opts else None))

        config_yaml = yaml.safe_dump(server_config(args), sort_keys=False)
        self.install = remote.run(
            f"{name}-install", connection=args.connection,
            create=hostscripts.script(
                "k3s-install", ROLE="server", NODE_NAME=args.node_name, K3S_VERSION=args.k3s_version,
                INSTALL_SCRIPT_URL=args.install_script_url,
                INSTALL_SCRIPT_SHA256=args.install_script_sha256, TOKEN_FILE=hostscripts.K3S_TOKEN_FILE,
                CONFIG_YAML=config_yaml).command,
            stdin=pulumi.Output.secret(args.token),
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[sshd])))

        read = remote.run(
            f"{name}-kubeconfig", connection=args.connection,
            create=hostscripts.script("read-file", FILE=KUBECONFIG_PATH).command,
            secret_output=True,
            # A reinstall (new version) may rotate certificates: read the file again.
            triggers=[args.k3s_version],
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[self.install])))

        self.kubeconfig = pulumi.Output.secret(read.stdout.apply(
            lambda raw: rewrite_kubeconfig(raw, server=args.api_server, name=args.cluster_name)))
        self.api_server = pulumi.Output.from_input(args.api_server)
        self.register_outputs({"kubeconfig": self.kubeconfig, "apiServer": self.api_server,
                               "nodeName": args.node_name})
