"""Labels and names the rack's objects, host scripts and policies agree on."""

from __future__ import annotations

# Set on each node by k3s when it first registers (config.yaml node-label). A custom prefix:
# the kubelet may not set node-role.kubernetes.io/* labels on itself.
ROLE_LABEL = "skolo.skia.org/role"
ROLE_JUMPHOST = "jumphost"
ROLE_RPI = "rpi"
# What the jumphost's workloads are pinned by. A kubelet may set any label on its own Node but
# those under node-restriction.kubernetes.io/ (the NodeRestriction admission plugin), so a Pi whose
# credentials a test has taken can call itself a jumphost by ROLE_LABEL, but not by this label:
# only an administrator sets it (components/node_roles.py, through the rack's admin kubeconfig).
RESTRICTED_ROLE_LABEL = "node-restriction.kubernetes.io/skolo-role"
# Set by the node-state host script from each Pi's `state` in config.
STATE_LABEL = "skolo.skia.org/state"
STATE_DRAINED = "drained"
# Set on a Pi while its k3s is being upgraded: its swarming bot finishes its test and stops.
MAINTENANCE_LABEL = "skolo.skia.org/maintenance"

APP_LABEL = "app.kubernetes.io/name"
PART_OF_LABEL = "app.kubernetes.io/part-of"
NAMESPACE_LABEL = "kubernetes.io/metadata.name"
PULL_SECRET = "image-pull"
GOOGLE_KEY_DIR = "/var/secrets/google"
# Processes that need no root run as this (nobody).
NOBODY = 65534


def role_label(role: str) -> str:
    """`key=value` form for k3s's node-label flag."""
    return f"{ROLE_LABEL}={role}"

# Where the swarming bots run: the Swarming component's namespace, read by `rackctl status` (which
# should not have to import the Pulumi SDK to know it).
SWARMING_NAMESPACE = "swarming"
