"""`rackctl attach STACK [-- COMMAND...]`: a shell (or one command) whose kubectl talks to one
rack, as attach.sh did.

Takes the rack's kubeconfig from the stack's secret output (or a file), opens an SSH
port-forward to the jumphost's API server on a free local port (checked against the jumphost's
pinned host key when the stack pins one), points a private 0600 copy of
the kubeconfig at it (cluster, context and user named after the rack), and runs COMMAND, or
an interactive shell, with KUBECONFIG set. The tunnel and the file go away when it ends, also
on Ctrl-C. Each attach has its own port and file, so several racks can be open at once.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

from components.k3s_server import rewrite_kubeconfig
from rackctl import stackfiles

API_PORT = 6443


class AttachError(Exception):
    pass


def kubeconfig_from_stack(stack: str) -> str:
    try:
        result = subprocess.run(["pulumi", "stack", "output", "--show-secrets", "kubeconfig", "-s", stack],
                                capture_output=True, text=True)
    except FileNotFoundError:
        raise AttachError("the Pulumi CLI is not installed; pass the kubeconfig with --kubeconfig FILE") from None
    if result.returncode != 0:
        raise AttachError(f"pulumi stack output kubeconfig -s {stack} failed: "
                          f"{(result.stderr.strip().splitlines() or ['no output'])[-1]}")
    return result.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, tunnel: subprocess.Popen, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if tunnel.poll() is not None:
            err = tunnel.stderr.read().strip() if tunnel.stderr else ""
            raise AttachError(f"the SSH tunnel to the jumphost closed: {err or 'no error from ssh'}")
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AttachError(f"the SSH tunnel did not open 127.0.0.1:{port} within {seconds:.0f}s")


def tunnel_command(jumphost, port: int, ssh_options: Sequence[str], known_hosts: Optional[Path] = None) -> list[str]:
    """The port-forward. With `known_hosts` (the stack pins the jumphost's key) it comes first, so
    it wins over any UserKnownHostsFile or StrictHostKeyChecking in `ssh_options` (ssh takes the
    first value it is given)."""
    pinned = ["-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes"] if known_hosts else []
    return ["ssh", "-N", *pinned, "-o", "ExitOnForwardFailure=yes", "-o", "BatchMode=yes", *ssh_options,
            "-L", f"127.0.0.1:{port}:127.0.0.1:{API_PORT}", "-p", str(jumphost.port),
            f"{jumphost.user}@{jumphost.address}"]


def known_hosts_line(jumphost) -> str:
    host = jumphost.address if jumphost.port == 22 else f"[{jumphost.address}]:{jumphost.port}"
    return f"{host} {jumphost.host_key}\n"


def read_kubeconfig(stack: str, kubeconfig_file: Optional[str]) -> tuple[str, str]:
    """The kubeconfig's text and where it came from, refused with a clear line when it is missing
    or is not a kubeconfig (never quoting it: it holds client keys)."""
    if not kubeconfig_file:
        return kubeconfig_from_stack(stack), f"the kubeconfig output of stack {stack}"
    try:
        raw = Path(kubeconfig_file).read_text()
    except FileNotFoundError:
        raise AttachError(f"--kubeconfig {kubeconfig_file}: no such file") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as e:
        raise AttachError(f"--kubeconfig {kubeconfig_file}: cannot read it ({type(e).__name__})") from None
    return raw, kubeconfig_file


def attach(stack: str, command: Sequence[str], config_dir: Path, kubeconfig_file: Optional[str] = None,
           ssh_options: Sequence[str] = (), wait_seconds: float = 20) -> int:
    jumphost = stackfiles.settings_for(stack, config_dir).jumphost  # an unknown stack stops here
    raw, source = read_kubeconfig(stack, kubeconfig_file)
    port = free_port()
    try:
        kubeconfig = rewrite_kubeconfig(raw, server=f"https://127.0.0.1:{port}", name=stack)
    except ValueError:
        raise AttachError(f"{source} is not a kubeconfig (expected clusters, contexts and users); "
                          f"contents not shown") from None
    private = Path(tempfile.mkdtemp(prefix=f"rackctl-{stack}-"))
    path = private / "kubeconfig"
    pinned = private / "known_hosts" if jumphost.host_key else None
    tunnel = None
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}

    def stop(signum, frame):
        raise KeyboardInterrupt

    try:
        for sig in previous:
            signal.signal(sig, stop)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(kubeconfig)
        if pinned:
            pinned.write_text(known_hosts_line(jumphost))
        tunnel = subprocess.Popen(tunnel_command(jumphost, port, ssh_options, pinned),
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True, start_new_session=True)
        wait_for_port(port, tunnel, wait_seconds)
        env = dict(os.environ, KUBECONFIG=str(path), SKOLO_RACK=stack)
        argv = list(command) or [os.environ.get("SHELL", "/bin/sh"), "-i"]
        if not command:
            print(f"rackctl: attached to {stack} (KUBECONFIG={path}); exit the shell to detach")
        child = subprocess.Popen(argv, env=env)
        try:
            return child.wait()
        except KeyboardInterrupt:
            child.terminate()
            child.wait()
            return 130
    except KeyboardInterrupt:
        return 130
    finally:
        if tunnel is not None and tunnel.poll() is None:
            tunnel.terminate()
            try:
                tunnel.wait(timeout=5)
            except subprocess.TimeoutExpired:
                tunnel.kill()
        path.unlink(missing_ok=True)
        if pinned:
            pinned.unlink(missing_ok=True)
        private.rmdir()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
