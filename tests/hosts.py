"""Sandboxed hosts for running the program's host scripts over real SSH.

Each host (the jumphost, each Pi) is a real OpenSSH server in its own network namespace and
mount namespace. In the mount namespace /etc, /var/lib, /usr/local, /boot and /run are
overlays whose writes land in the host's own temporary directory, so a script can install
"k3s", write /etc/rancher or edit cmdline.txt without touching the machine the tests run on.

The network is a small rack: the workstation (where the test's ssh client runs) reaches only
the jumphost; every Pi sits on its own link behind the jumphost, so reaching a Pi takes a real
ProxyJump, as pulumi-command's `proxy` does. The stand-in k3s installer is served over HTTP
from the jumphost's namespace.

Stand-ins at the very edge (tests/standins/, each says so in its header): the k3s install
script, systemctl (no systemd here), shutdown, and `k3s kubectl`. They sit in the sandbox's
/usr/local/bin, which comes first on sudo's secure_path, and record what they were asked. The
"cluster" they share is one directory bind-mounted into every host (CLUSTER): the Nodes the
stand-in installer registers on the Pis are the ones the stand-in kubectl on the jumphost sees,
and its events.log is the timestamped record the upgrade tests read.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from tests.processes import SETPRIV, spawn

# strace following every process, recording each execve with its arguments whole: the leak
# detector. Unlike sampling /proc, it sees a process that lives a microsecond.
TRACE = ("strace", "-f", "-qq", "-e", "trace=execve", "-s", "1048576")

STANDINS = Path(__file__).parent / "standins"
OVERLAID = ("etc", "var/lib", "usr/local", "boot", "run")
HTTP_PORT = 8080
STATE = "/var/lib/rancher/standin"
CLUSTER = "/var/lib/rancher/standin-cluster"


# STAND-IN for the jumphost's Kubernetes API server, behind rackctl attach's tunnel: it listens on
# the jumphost's own 127.0.0.1:6443 and answers every connection with one line (no HTTP).
STAND_IN_API = """
import socket
server = socket.create_server(("127.0.0.1", 6443))
print("listening", flush=True)
while True:
    conn, _ = server.accept()
    conn.sendall(b"stand-in API server\\n")
    conn.close()
"""


def read_line(proc: subprocess.Popen, seconds: float) -> str:
    """The next line a process prints, waiting at most `seconds` (then the test fails, not hangs)."""
    import select

    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], seconds)
    assert ready, f"no line within {seconds}s"
    return proc.stdout.readline().strip()


def serve_stand_in_api(rack: "Rack") -> subprocess.Popen:
    """STAND_IN_API on the rack's jumphost, listening before this returns; stopped with the rack."""
    api = spawn(["ip", "netns", "exec", rack.jumphost.netns, sys.executable, "-c", STAND_IN_API],
                stdout=subprocess.PIPE, text=True)
    rack.processes.append(api)
    assert read_line(api, 30) == "listening"
    return api


def prerequisites() -> Optional[str]:
    """Why the SSH host tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (network and mount namespaces)"
    for tool in ("sshd", "ssh", "ssh-keygen", "sudo", "ip", "unshare", "curl"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            return f"needs {tool} (apt-get install openssh-server sudo iproute2 util-linux curl)"
    return None


def require(what: str) -> None:
    """Skip the calling test module, saying why, when the hosts cannot run here; in CI (where
    they must run) fail instead."""
    from tests.ci import cannot_run

    why = prerequisites()
    if why:
        cannot_run(f"{what}: {why}", module=True)


def _run(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), check=True, capture_output=True, text=True, **kw)


@dataclass
class Host:
    name: str
    netns: str
    address: str
    root: Path
    host_key_pub: str = ""
    process: Optional[subprocess.Popen] = None
    traced: bool = False
    """Its sshd runs under strace (start_rack(trace=True)): every execve below it is recorded."""

    @property
    def trace(self) -> Path:
        """Every execve under this host's sshd, with its arguments (strace's log)."""
        return self.root / "execve.trace"
    memory_cgroup: Optional[bool] = None
    """Pis only: what the stand-in /proc/cgroups says of the memory controller."""
    passwords: bool = False
    """Whether its sshd accepts passwords (a stand-in EdgeSwitch); keys only otherwise."""
    cluster: Optional[Path] = None
    """The shared stand-in cluster directory, mounted at CLUSTER."""

    def file(self, path: str) -> Path:
        """Where a file the sandbox wrote lives on the real machine (the overlay's upper layer)."""
        return self.root / "upper" / path.lstrip("/")

    def read(self, path: str) -> str:
        f = self.file(path)
        return f.read_text() if f.exists() else ""

    def log(self, name: str) -> list[str]:
        return self.read(f"{STATE}/{name}.log").splitlines()


@dataclass(frozen=True)
class Event:
    """One line of the stand-in cluster's events.log: when, which Node (or "server"), what."""

    at: float
    node: str
    what: str


@dataclass
class Rack:
    tmp: Path
    user_key: Path
    known_hosts: Path
    workstation: str
    jumphost: Host
    pis: list[Host]
    processes: list[subprocess.Popen] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    installer: Optional[Path] = None
    """The stand-in install script the jumphost serves over http (its checksum is pinned)."""

    @property
    def installer_sha256(self) -> str:
        import hashlib

        return hashlib.sha256(self.installer.read_bytes()).hexdigest()

    @property
    def cluster(self) -> Path:
        return self.tmp / "cluster"

    def events(self) -> list[Event]:
        """What the stand-ins did to the cluster, in time order."""
        log = self.cluster / "events.log"
        lines = log.read_text().splitlines() if log.exists() else []
        events = [Event(float(at), node, what) for at, node, what in (line.split(" ", 2) for line in lines)]
        return sorted(events, key=lambda e: e.at)

    def calls(self) -> list[Event]:
        """Every stand-in kubectl call, in time order: when, which Pi's step made it ("-" for
        none), and its arguments."""
        log = self.cluster / "calls.log"
        lines = log.read_text().splitlines() if log.exists() else []
        return sorted((Event(float(at), node, what) for at, node, what in (line.split(" ", 2) for line in lines)),
                      key=lambda e: e.at)

    def node(self, name: str, what: str, key: str = "") -> Optional[str]:
        """What the stand-in cluster holds of a Node: `ready`, `version`, `unschedulable` (None when
        absent), or a label or annotation (`labels`/`annotations` and its key)."""
        f = self.cluster / "nodes" / name / what
        if key:
            f = f / key.replace("/", "%")
        return f.read_text().strip() if f.exists() else None

    # --- what pulumi-command does: one SSH session running the command, stdin fed ---------

    def ssh_args(self, host: str, port: int, user: str, proxy: Optional[dict]) -> list[str]:
        opts = ["-i", str(self.user_key), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "ConnectTimeout=5",
                "-o", "LogLevel=ERROR"]
        args = ["ip", "netns", "exec", self.workstation, "ssh", *opts, "-p", str(port)]
        if proxy:
            jump = " ".join(["ssh", *opts, "-p", str(int(proxy["port"])), "-W", "%h:%p",
                             f"{proxy['user']}@{proxy['host']}"])
            args += ["-o", f"ProxyCommand={jump}"]
        return args + [f"{user}@{host}"]

    def run(self, resource, phase: str = "create", timeout: float = 120,
            watch_for: tuple[str, ...] = ()) -> "Result":
        """Run a declared command resource's `phase` command on its host, as pulumi-command
        would, while sampling every process's command line for the `watch_for` strings."""
        conn = resource.inputs["connection"]
        command = resource.inputs[phase]
        stdin = resource.inputs.get("stdin") or ""
        args = self.ssh_args(conn["host"], int(conn.get("port") or 22), conn["user"], conn.get("proxy"))
        return self.exec(args + [command], stdin, timeout, watch_for)

    def exec(self, args: list[str], stdin: str, timeout: float, watch_for: tuple[str, ...]) -> "Result":
        """Run `args` (an ssh client's), and say which `watch_for` strings stood in the arguments of
        any process it started, here or on any sandboxed host: the client runs under strace, every
        host's sshd does too (_start_sshd), and what their traces gained meanwhile is searched."""
        hosts = [self.jumphost, *self.pis]
        assert not watch_for or all(h.traced for h in hosts), "watch_for needs a rack started with trace=True"
        before = {h.name: h.trace.stat().st_size if h.trace.exists() else 0 for h in hosts}
        client = self.tmp / "client.trace"
        client.unlink(missing_ok=True)
        start = time.monotonic()
        proc = subprocess.run([*(TRACE + ("-o", str(client)) if watch_for else ()), *args], input=stdin,
                              capture_output=True, text=True, timeout=timeout)
        traced = client.read_bytes() if client.exists() else b""
        for h in hosts:
            if h.trace.exists():
                with h.trace.open("rb") as f:
                    f.seek(before[h.name])
                    traced += f.read()
        text = traced.decode(errors="replace")
        return Result(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start,
                      sorted({w for w in watch_for if w in text}))

    def on(self, host: Host, command: str, stdin: str = "") -> subprocess.CompletedProcess:
        """A test's own setup step on a host (not one of the program's scripts)."""
        proxy = None
        if host is not self.jumphost:
            proxy = {"host": self.jumphost.address, "port": 22, "user": "root"}
        args = self.ssh_args(host.address, 22, "root", proxy)
        return subprocess.run(args + [command], input=stdin, capture_output=True, text=True, timeout=60, check=True)

    def accept_passwords(self, host: Host) -> None:
        """Restart a host's sshd so that it also takes passwords, as an EdgeSwitch's does."""
        self.stop(host)
        host.passwords = True
        self.restart(host)

    # --- lifecycle --------------------------------------------------------------------------

    def stop(self, host: Host) -> None:
        """Take a host off the network: its sshd stops answering."""
        if host.process and host.process.poll() is None:
            host.process.terminate()
            host.process.wait(timeout=10)

    def restart(self, host: Host) -> None:
        """Bring a stopped host back, its files as it left them (a reboot, as far as SSH can tell)."""
        _start_sshd(host, self.tmp / "authorized_keys", keep_key=True)
        _wait_for_sshd(self, host)

    def close(self) -> None:
        for host in [self.jumphost, *self.pis]:
            self.stop(host)
        for proc in self.processes:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=10)
        for ns in self.namespaces:
            _del_netns(ns)


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    cmdline_hits: list[str]


def _keygen(path: Path) -> str:
    _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path))
    return Path(f"{path}.pub").read_text().strip()


def _start_sshd(host: Host, authorized: Path, keep_key: bool = False) -> None:
    host_key = host.root / "ssh_host_ed25519_key"
    if not keep_key:
        host.host_key_pub = " ".join(_keygen(host_key).split()[:2])
    config = host.root / "sshd_config"
    config.write_text("\n".join([
        "Port 22", f"ListenAddress {host.address}", f"HostKey {host_key}", f"PidFile {host.root}/sshd.pid",
        f"AuthorizedKeysFile {authorized}", "PermitRootLogin prohibit-password",
        f"PasswordAuthentication {'yes' if host.passwords else 'no'}",
        "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no", "AllowTcpForwarding yes",
        "LogLevel ERROR", ""]))
    mounts = []
    for d in OVERLAID:
        upper, work = host.root / "upper" / d, host.root / "work" / d
        upper.mkdir(parents=True, exist_ok=True)
        work.mkdir(parents=True, exist_ok=True)
        mounts.append(f"mount -t overlay overlay -o lowerdir=/{d},upperdir={upper},workdir={work} /{d}")
    if host.memory_cgroup is not None:
        cgroups = host.root / "proc-cgroups"
        cgroups.write_text("#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpuset\t0\t1\t1\n"
                           f"memory\t0\t1\t{1 if host.memory_cgroup else 0}\n")
        mounts.append(f"mount --bind {cgroups} /proc/cgroups")
    mounts.append(f"mkdir -p {CLUSTER} && mount --bind {host.cluster} {CLUSTER}")
    mounts.append("mkdir -p /run/sshd")
    # Every execve below sshd (each session, script and child), with its arguments, goes to the
    # host's trace (Rack.exec reads it for secrets); sshd dies with strace (setpriv), as strace does
    # with the test (tests/processes.py). -I1: strace exits on SIGTERM (Rack.stop), which by default
    # it blocks when it starts the program itself.
    tracer = f"{' '.join(TRACE)} -I1 -A -o {host.trace} {SETPRIV} --pdeathsig KILL -- " if host.traced else ""
    script = " && ".join(mounts) + f" && exec {tracer}/usr/sbin/sshd -D -e -f {config}"
    host.process = spawn(
        ["ip", "netns", "exec", host.netns, "unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _seed(host: Host) -> None:
    """What every sandboxed host starts with: the stand-ins on its /usr/local/bin."""
    bin_dir = host.root / "upper" / "usr/local/bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in ("systemctl", "shutdown", "standin-kubectl", "edgeswitch-cli"):
        shutil.copy2(STANDINS / name, bin_dir / name)


def _wait_for_sshd(rack: Rack, host: Host) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if host.process.poll() is not None:
            raise RuntimeError(f"sshd for {host.name} exited: {host.process.stderr.read()}")
        probe = subprocess.run(["ip", "netns", "exec", host.netns if host is rack.jumphost else rack.jumphost.netns,
                                "ssh-keyscan", "-T", "1", host.address], capture_output=True, text=True)
        if probe.stdout.strip():
            return
        time.sleep(0.1)
    raise RuntimeError(f"sshd for {host.name} did not start")


# Network namespaces outlive the processes in them. Each one a rack makes is recorded here with
# the PID of the test process that made it (before it exists), so a later run deletes those of a
# run that was killed before it could (sweep_orphaned_namespaces).
OWNERS = Path("/run/skolo-test-netns")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _add_netns(ns: str) -> None:
    OWNERS.mkdir(exist_ok=True)
    (OWNERS / ns).write_text(f"{os.getpid()}\n")
    _run("ip", "netns", "add", ns)


def _del_netns(ns: str) -> None:
    subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    (OWNERS / ns).unlink(missing_ok=True)


def sweep_orphaned_namespaces() -> list[str]:
    """Delete the namespaces whose test process is gone; their names."""
    swept = []
    for owner in sorted(OWNERS.glob("*")) if OWNERS.is_dir() else []:
        pid = owner.read_text().strip()
        if not pid.isdigit() or _pid_alive(int(pid)):  # being written, or its run goes on
            continue
        _del_netns(owner.name)
        swept.append(owner.name)
    return swept


def start_rack(tmp: Path, pis: int = 2, memory_cgroup: tuple[bool, ...] = (False, True), trace: bool = False) -> Rack:
    """A sandboxed rack. `trace`: every sshd runs under strace, so Rack.exec can look for secrets in
    the arguments of every process (`watch_for`); it costs every traced process a stop per system
    call, which a rack that rolls five Pis at once under load cannot afford, and is refused
    where it is not asked for."""
    sweep_orphaned_namespaces()
    tag = uuid.uuid4().hex[:6]
    ws, jh = f"skws-{tag}", f"skjh-{tag}"
    user_key = tmp / "id_ed25519"
    user_pub = _keygen(user_key)
    authorized = tmp / "authorized_keys"
    authorized.write_text(user_pub + "\n")
    cluster = tmp / "cluster"
    cluster.mkdir()
    jumphost = Host("jumphost", jh, "10.231.0.2", tmp / "jumphost", cluster=cluster, traced=trace)
    rack = Rack(tmp=tmp, user_key=user_key, known_hosts=tmp / "known_hosts", workstation=ws, jumphost=jumphost,
                pis=[], namespaces=[ws, jh])
    try:
        for ns in (ws, jh):
            _add_netns(ns)
            _run("ip", "-n", ns, "link", "set", "lo", "up")
        _run("ip", "link", "add", f"ws{tag}", "netns", ws, "type", "veth", "peer", "name", f"jh{tag}", "netns", jh)
        _run("ip", "-n", ws, "addr", "add", "10.231.0.1/30", "dev", f"ws{tag}")
        _run("ip", "-n", jh, "addr", "add", "10.231.0.2/30", "dev", f"jh{tag}")
        _run("ip", "-n", ws, "link", "set", f"ws{tag}", "up")
        _run("ip", "-n", jh, "link", "set", f"jh{tag}", "up")
        for i in range(pis):
            ns = f"skpi{i}-{tag}"
            rack.namespaces.append(ns)
            _add_netns(ns)
            _run("ip", "-n", ns, "link", "set", "lo", "up")
            _run("ip", "link", "add", f"j{i}{tag}", "netns", jh, "type", "veth", "peer", "name", f"p{i}{tag}",
                 "netns", ns)
            _run("ip", "-n", jh, "addr", "add", f"10.232.{i}.1/30", "dev", f"j{i}{tag}")
            _run("ip", "-n", ns, "addr", "add", f"10.232.{i}.2/30", "dev", f"p{i}{tag}")
            _run("ip", "-n", jh, "link", "set", f"j{i}{tag}", "up")
            _run("ip", "-n", ns, "link", "set", f"p{i}{tag}", "up")
            _run("ip", "-n", ns, "route", "add", "default", "via", f"10.232.{i}.1")
            rack.pis.append(Host(f"pi{i}", ns, f"10.232.{i}.2", tmp / f"pi{i}", traced=trace,
                                 memory_cgroup=memory_cgroup[i % len(memory_cgroup)], cluster=cluster))
        served = tmp / "served"
        served.mkdir()
        # The same stand-in kubeconfig the mock runtime hands the program (rackctl/program.py).
        from rackctl.program import STAND_IN_KUBECONFIG

        installer = (STANDINS / "install.sh").read_text()
        rack.installer = served / "install.sh"
        rack.installer.write_text(installer.replace("__STAND_IN_KUBECONFIG__\n", STAND_IN_KUBECONFIG))
        rack.processes.append(spawn(
            ["ip", "netns", "exec", jh, sys.executable, "-m", "http.server", "--bind", jumphost.address,
             "--directory", str(served), str(HTTP_PORT)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for host in [jumphost, *rack.pis]:
            host.root.mkdir()
            _seed(host)
            _start_sshd(host, authorized)
        for host in [jumphost, *rack.pis]:
            _wait_for_sshd(rack, host)
        rack.known_hosts.write_text("".join(f"{h.address} {h.host_key_pub}\n" for h in [jumphost, *rack.pis]))
        return rack
    except BaseException:
        rack.close()
        raise


SERVICES = ("metadata", "prometheus", "alertToPubsub", "routerBackup", "powerCycle", "nfs", "swarming")


def stack_config(rack: Rack, names: list[str], **overrides) -> dict:
    """rack2's stack aimed at the sandboxed rack: its jumphost, its Pis (named `names`, each with
    its pinned host key), the served stand-in installer and its checksum; services off."""
    config = {
        # The sandbox's rack LAN: the jumphost's links to the Pis (10.232.<i>.1 - .2).
        "jumphost": {"name": "skolo-test-jumphost", "address": rack.jumphost.address, "user": "root",
                     "lanAddress": "10.232.0.1", "lanCidr": "10.232.0.0/16", "hostKey": rack.jumphost.host_key_pub},
        "rpis": [{"name": name, "address": pi.address, "hostKey": pi.host_key_pub} for name, pi in zip(names, rack.pis, strict=True)],
        "k3sVersion": "v1.31.6+k3s1",
        "k3sInstallScriptUrl": f"http://{rack.jumphost.address}:{HTTP_PORT}/install.sh",
        "k3sInstallScriptSha256": rack.installer_sha256,
        "services": {s: {"enabled": False} for s in SERVICES},
    }
    config.update(overrides)
    return config


# A Raspberry Pi OS kernel command line, as flashed.
CMDLINE = "console=serial0,115200 console=tty1 root=PARTUUID=1234-02 rootfstype=ext4 fsck.repair=yes rootwait"


def prepare(rack: Rack, run, watch_for: tuple[str, ...] = ()) -> list[Result]:
    """What every Pi's step depends on, done as `pulumi up` does it first: the server, then on the
    jumphost the bundle and the Pis' key (rack2's steps). Each Pi is flashed (its cmdline.txt)."""
    for pi in rack.pis:
        rack.on(pi, f"mkdir -p /boot/firmware && echo '{CMDLINE}' > /boot/firmware/cmdline.txt")
    return [rack.run(run.named(step), watch_for=watch_for)
            for step in ("rack2-install", "rack2-fleet-bundle", "rack2-fleet-pi-key")]
