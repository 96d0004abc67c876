"""`rackctl attach STACK [-- COMMAND...]`: a shell (or one command) whose kubectl, and whose
`pulumi`, reach one rack, as attach.sh did. Every CI job that runs pulumi or rackctl against a
rack runs it inside this (tests/test_workflows.py holds them to it).

Opens an SSH port-forward to the jumphost's API server (checked against the jumphost's pinned
host key when the stack pins one). Where the stack's `skolo:apiServer` is a loopback address
(rack2's `https://127.0.0.1:6442`, "through a tunnel"), the forward listens exactly there, so
the program's own Kubernetes provider reaches the rack through it; otherwise on a free local
port. Takes the rack's kubeconfig from the stack's secret output (or a file; none with
--no-kubeconfig, for a first `pulumi up`), points a private 0600 copy at the forward (cluster,
context and user named after the rack), and runs COMMAND, or an interactive shell, with
KUBECONFIG set. --key-from-stack takes the jumphost's SSH key from the stack's secret config
into a private 0600 file. The tunnel and the files go away when it ends, also on Ctrl-C.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO, Optional, Sequence, Union
from urllib.parse import urlsplit

from components.k3s_server import rewrite_kubeconfig
from rackctl import stackfiles

API_PORT = 6443


class AttachError(Exception):
    pass


def _pulumi(args: list[str], shown: str, without_cli: str, stdout: Union[int, IO[str]] = subprocess.PIPE) -> str:
    """Run the Pulumi CLI; refused, in one line, when it is missing (`without_cli` says what to do
    instead) or fails (`shown` names the command, its last line of stderr says why)."""
    try:
        result = subprocess.run(["pulumi", *args], stdout=stdout, stderr=subprocess.PIPE, text=True)
    except FileNotFoundError:
        raise AttachError(f"the Pulumi CLI is not installed; {without_cli}") from None
    if result.returncode != 0:
        raise AttachError(f"{shown} failed: {(result.stderr.strip().splitlines() or ['no output'])[-1]}")
    return result.stdout or ""


def kubeconfig_from_stack(stack: str) -> str:
    return _pulumi(["stack", "output", "--show-secrets", "kubeconfig", "-s", stack],
                   f"pulumi stack output kubeconfig -s {stack}", "pass the kubeconfig with --kubeconfig FILE")


def tunnel_address(api_server: str) -> Optional[tuple[str, int]]:
    """Where the program's Kubernetes provider dials the rack, when that is this machine's loopback
    (a tunnel is expected there); None when it reaches the rack directly."""
    url = urlsplit(api_server)
    host = url.hostname or ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    return (host, url.port or 443) if loopback else None


def port_is_free(host: str, port: int) -> bool:
    """Whether ssh could listen there: bound as ssh binds (SO_REUSEADDR), so a connection of the
    last tunnel still in TIME_WAIT does not count, and only a live listener does."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def key_from_stack(stack: str, path: Path) -> None:
    """The jumphost's SSH key, `pulumi config get skolo:sshPrivateKey`, into `path` (0600), never
    through a command line or the terminal."""
    key = f"{stackfiles.NAMESPACE}:sshPrivateKey"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        _pulumi(["config", "get", key, "--stack", stack], f"pulumi config get {key} --stack {stack}",
                "--key-from-stack reads the key with it", stdout=f)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, tunnel: subprocess.Popen, seconds: float, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if tunnel.poll() is not None:
            err = tunnel.stderr.read().strip() if tunnel.stderr else ""
            raise AttachError(f"the SSH tunnel to the jumphost closed: {err or 'no error from ssh'}")
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex((host, port)) == 0:
                return
        time.sleep(0.1)
    raise AttachError(f"the SSH tunnel did not open {host}:{port} within {seconds:.0f}s")


def tunnel_command(jumphost, port: int, ssh_options: Sequence[str], known_hosts: Optional[Path] = None,
                   host: str = "127.0.0.1") -> list[str]:
    """The port-forward. With `known_hosts` (the stack pins the jumphost's key) it comes first, so
    it wins over any UserKnownHostsFile or StrictHostKeyChecking in `ssh_options` (ssh takes the
    first value it is given)."""
    pinned = ["-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes"] if known_hosts else []
    return ["ssh", "-N", *pinned, "-o", "ExitOnForwardFailure=yes", "-o", "BatchMode=yes", *ssh_options,
            "-L", f"{host}:{port}:127.0.0.1:{API_PORT}", "-p", str(jumphost.port),
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
           ssh_options: Sequence[str] = (), wait_seconds: float = 20, kubeconfig: bool = True,
           stack_key: bool = False) -> int:
    parsed = stackfiles.settings_for(stack, config_dir)  # an unknown stack stops here
    jumphost = parsed.jumphost
    fixed = tunnel_address(parsed.api_server)
    host, port = fixed or ("127.0.0.1", free_port())
    if fixed and not port_is_free(host, port):
        raise AttachError(f"{host}:{port} ({stackfiles.NAMESPACE}:apiServer of {stack}, where its tunnel listens) is "
                          f"in use: another rackctl attach {stack} is open, or something else listens there")
    text = ""
    if kubeconfig:
        raw, source = read_kubeconfig(stack, kubeconfig_file)
        try:
            text = rewrite_kubeconfig(raw, server=f"https://{host}:{port}", name=stack)
        except ValueError:
            raise AttachError(f"{source} is not a kubeconfig (expected clusters, contexts and users); "
                              f"contents not shown") from None
    private = Path(tempfile.mkdtemp(prefix=f"rackctl-{stack}-"))
    path = private / "kubeconfig"
    key = private / "jumphost-key"
    pinned = private / "known_hosts" if jumphost.host_key else None
    tunnel = None
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}

    def stop(signum, frame):
        raise KeyboardInterrupt

    try:
        for sig in previous:
            signal.signal(sig, stop)
        env = dict(os.environ, SKOLO_RACK=stack)
        if kubeconfig:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(text)
            env["KUBECONFIG"] = str(path)
        options = list(ssh_options)
        if stack_key:
            key_from_stack(stack, key)
            options = ["-i", str(key), "-o", "IdentitiesOnly=yes", *options]
        if pinned:
            pinned.write_text(known_hosts_line(jumphost))
        tunnel = subprocess.Popen(tunnel_command(jumphost, port, options, pinned, host),
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True, start_new_session=True)
        wait_for_port(port, tunnel, wait_seconds, host)
        argv = list(command) or [os.environ.get("SHELL", "/bin/sh"), "-i"]
        if not command:
            print(f"rackctl: attached to {stack} ({host}:{port}" + (f", KUBECONFIG={path}" if kubeconfig else "")
                  + "); exit the shell to detach")
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
        for leftover in (path, key, pinned):
            if leftover is not None:
                leftover.unlink(missing_ok=True)
        private.rmdir()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
