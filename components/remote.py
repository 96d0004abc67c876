"""How the program reaches hosts: SSH connections and the one way it runs a host script.

Owns the connection settings (host-key pinning, the jumphost as the Pis' bastion, dial
limits) and the options every remote.Command gets. Does not own what the scripts do.
"""

from __future__ import annotations

from typing import Optional, Sequence

import pulumi
import pulumi_command as command


# The jumphost does every step for every Pi (components/scripts/bundle/): ride out a burst of
# dropped handshakes. A dead Pi fails fast inside its step (ConnectTimeout in the bundle).
JUMPHOST_DIAL_ERROR_LIMIT = 10
JUMPHOST_DIAL_TIMEOUT_SECONDS = 15


def jumphost_connection(*, address: str, port: int, user: str, private_key: pulumi.Input[str],
                        host_key: Optional[str]) -> command.remote.ConnectionArgs:
    return command.remote.ConnectionArgs(
        host=address, port=port, user=user, private_key=private_key, host_key=host_key,
        dial_error_limit=JUMPHOST_DIAL_ERROR_LIMIT, per_dial_timeout=JUMPHOST_DIAL_TIMEOUT_SECONDS)


def run(name: str, *, connection: command.remote.ConnectionArgs,
        create: pulumi.Input[str], delete: Optional[str] = None,
        stdin: Optional[pulumi.Input[str]] = None, secret_output: bool = False,
        triggers: Optional[Sequence[pulumi.Input]] = None,
        opts: pulumi.ResourceOptions) -> command.remote.Command:
    """Run a host script command on create (and on update, when its text or stdin changes).

    Nothing runs when the inputs are unchanged. `secret_output` keeps stdout/stderr out of the
    logs and marks them secret in state. Previous output is never handed to the next run as
    environment: it may be secret, and sshd would refuse it anyway.
    """
    extra = pulumi.ResourceOptions(additional_secret_outputs=["stdout", "stderr"]) if secret_output else None
    return command.remote.Command(
        name,
        connection=connection,
        create=create,
        delete=delete,
        stdin=stdin,
        triggers=list(triggers) if triggers else None,
        logging=command.remote.Logging.NONE if secret_output else command.remote.Logging.STDOUT_AND_STDERR,
        add_previous_output_in_env=False,
        opts=pulumi.ResourceOptions.merge(opts, extra),
    )
