"""The NFS export against its real client: the line every Pi boots with.

Skia's Pis boot their root filesystem over NFS. Their cmdline.txt is written by
skolo/raspberry-pi/format_new_card.yml (google/skia-buildbot at 99922d5a94^, line 74), with
nfs_mount_point=/opt/prod (line 10); the jumphost's legacy /etc/exports line came from
start_serving_image.yml:48 with fsid 1 for prod (line 24). Both are quoted below as they stand
in that source. The export the pod builds is then read by Debian's real nfs-utils `exportfs`
(the parser the image's nfs-utils shares; .ci/run unpacks it into build/nfs-utils), in a mount
namespace of its own.

What cannot run here: this kernel has no nfsd and no NFS client (no `nfsd` in
/proc/filesystems), so no real mount is made. The image's entrypoint is not in this repository
(nothing fetched is committed); its contract is stated in components/nfs_server.py with lines.
"""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess
from pathlib import Path


from components import nfs_server
from tests.ci import cannot_run
from tests.conftest import ROOT
from tests.test_services import container, objects

# format_new_card.yml:74, the Pi's kernel command line (Jinja as in the source).
PI_CMDLINE = ("smsc95xx.turbo_mode=N dwc_otg.lpm_enable=0 console=ttyAMA0,115200 console=tty1 root=/dev/nfs "
              "nfsroot={{nfs_ip}}:{{nfs_mount_point}}/root,nfsvers=3 ip=192.168.{{static_ip}}:{{nfs_ip}}:"
              "192.168.1.1:255.255.255.0:skia-rpi-{{hostname}}:eth0:off:8.8.8.8:8.8.4.4 elevator=deadline "
              "fsck.repair=yes rootwait")
NFS_MOUNT_POINT = "/opt/prod"  # format_new_card.yml:10
# start_serving_image.yml:48, with fsid "1" (line 24) for prod.
LEGACY_EXPORT = "{{nfs_mount_point}}/root {{net}}/24(ro,sync,no_root_squash,no_subtree_check,fsid={{fsid}})"
LEGACY_FSID = "1"

EXPORTFS = Path(os.environ.get("NFS_UTILS", ROOT / "build" / "nfs-utils")) / "usr" / "sbin" / "exportfs"


def client_mount() -> tuple[str, dict[str, str]]:
    """(path, options) the Pi's kernel mounts: nfsroot=<server>:<path>[,<options>]."""
    nfsroot = next(w for w in PI_CMDLINE.split() if w.startswith("nfsroot="))[len("nfsroot="):]
    nfsroot = nfsroot.replace("{{nfs_mount_point}}", NFS_MOUNT_POINT)
    target, *options = nfsroot.split(",")
    _server, path = target.split(":", 1)
    return path, dict(o.split("=", 1) if "=" in o else (o, "") for o in options)


def legacy_options() -> list[str]:
    return re.search(r"\((.*)\)", LEGACY_EXPORT).group(1).replace("{{fsid}}", LEGACY_FSID).split(",")


def nfs_pod(run) -> tuple[dict, dict]:
    deployment = objects(run, "Deployment")["nfs-server"]
    return deployment["spec"]["template"]["spec"], container(deployment)


def exported(run) -> tuple[str, str, list[str]]:
    """(path, client network, options) of the pod's one export."""
    _spec, c = nfs_pod(run)
    env = {e["name"]: e["value"] for e in c["env"]}
    assert [k for k in env if k.startswith("NFS_EXPORT_")] == ["NFS_EXPORT_0"]
    path, rest = env["NFS_EXPORT_0"].split(" ", 1)
    client, options = re.fullmatch(r"(\S+)\((\S+)\)", rest).groups()
    return path, client, options.split(",")


def test_the_pod_exports_the_path_the_pis_boot_from_with_the_legacy_options(run_stack):
    run = run_stack("rack1")
    spec, c = nfs_pod(run)
    path, client, options = exported(run)
    want_path, want_options = client_mount()
    assert path == want_path == "/opt/prod/root"
    assert options == legacy_options()  # ro,sync,no_root_squash,no_subtree_check,fsid=1
    # The path is the same inside the pod as on the jumphost: rpc.mountd answers the Pi's MOUNT of
    # /opt/prod/root in the pod's mount namespace, and the entrypoint skips an export whose
    # directory the container lacks (entrypoint.sh:466-469).
    mount = next(m for m in c["volumeMounts"] if m["mountPath"] == path)
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    assert volume["hostPath"] == {"path": path, "type": "Directory"} and mount["readOnly"] is True
    assert mount["mountPropagation"] == "HostToContainer"  # the image is loop-mounted there, and remounted by cron
    # NFSv3, as the Pis ask (nfsvers=3); v3 is not switched off.
    env = {e["name"]: e["value"] for e in c["env"]}
    assert want_options == {"nfsvers": "3"} and env["NFS_VERSION"] == "3" and "NFS_DISABLE_VERSION_3" not in env
    # Read-only, to the rack LAN only, and every Pi of the rack is in it.
    network = ipaddress.IPv4Network(client)
    assert network == ipaddress.IPv4Network("192.168.1.0/24")
    pis = [r for r in run.resources if r.name.endswith("-node") and r.type == "command:remote:Command"]
    assert pis and all(ipaddress.IPv4Address(p.inputs["create"].split("ADDRESS=")[1].split()[0]) in network
                       for p in pis)
    # rpcbind (111), nfsd (2049), statd (32765), mountd (32767) on the jumphost's own network.
    assert spec["hostNetwork"] is True
    assert {p["containerPort"] for p in c["ports"]} == {111, 2049, 32765, 32767}


def test_a_rack_whose_pis_boot_from_elsewhere_names_it_once(run_stack):
    custom = run_stack("rack2", overrides={"services": {
        "nfs": {"exportPath": "/opt/stage/root", "subnet": "192.168.1.128/25"}, "powerCycle": {"enabled": False}}})
    path, client, options = exported(custom)
    spec, c = nfs_pod(custom)
    assert (path, client) == ("/opt/stage/root", "192.168.1.128/25") and options == legacy_options()
    assert any(m["mountPath"] == path for m in c["volumeMounts"])
    assert any(v.get("hostPath", {}).get("path") == path for v in spec["volumes"])


def test_the_cutover_stops_the_jumphosts_rpcbind_after_nfs_kernel_server(run_stack):
    """The image starts its own rpcbind on port 111 (entrypoint.sh:626-641, and a daemon that fails
    ends the container): the jumphost's rpcbind, which outlives nfs-kernel-server, must stop."""
    from tests.test_program import params, script_of

    run = run_stack("rack2")
    cutover = run.named("nfs-legacy-unit-cutover")
    assert params(script_of(cutover)) == {"UNIT": "nfs-kernel-server rpcbind.socket rpcbind.service"}
    assert nfs_server.HOST_UNITS_IN_THE_WAY == ("rpcbind.socket", "rpcbind.service")
    # With no legacy unit configured, rpcbind is still in the way.
    bare = run_stack("rack2", overrides={"services": {"nfs": {"legacyUnit": ""}}})
    assert params(script_of(bare.named("nfs-legacy-unit-cutover"))) == {"UNIT": "rpcbind.socket rpcbind.service"}


def _exportfs(tmp_path: Path, line: str, make: str) -> str:
    """/var/lib/nfs/etab as the real exportfs writes it for `line` as /etc/exports, in a mount
    namespace whose /etc, /var/lib and /opt are overlays in tmp_path (nothing of this host changes)."""
    script = "\n".join([
        "set -eu",
        *(f"mkdir -p {tmp_path}/{d}-up {tmp_path}/{d}-work && mount -t overlay overlay "
          f"-o lowerdir=/{d.replace('_', '/')},upperdir={tmp_path}/{d}-up,workdir={tmp_path}/{d}-work "
          f"/{d.replace('_', '/')}" for d in ("etc", "var_lib")),
        f"mkdir -p {tmp_path}/opt && mount --bind {tmp_path}/opt /opt",
        "mkdir -p /var/lib/nfs",
        f"mkdir -p {make}",
        'printf "%s\\n" "$LINE" > /etc/exports',
        f"{EXPORTFS} -ar",
        "cat /var/lib/nfs/etab",
    ])
    result = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                            capture_output=True, text=True, timeout=60, env={**os.environ, "LINE": line})
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_real_exportfs_reads_the_export_as_the_legacy_one(run_stack, tmp_path):
    if not EXPORTFS.exists():
        cannot_run(f"{EXPORTFS} missing: apt-get download nfs-kernel-server && dpkg -x nfs-kernel-server_*.deb "
                   f"build/nfs-utils (.ci/run does)")
    if os.geteuid() != 0:
        cannot_run("the exportfs test needs root for a mount namespace")
    path, client, options = exported(run_stack("rack1"))
    ours = _exportfs(tmp_path, f"{path} {client}({','.join(options)})", make=path)
    legacy = LEGACY_EXPORT.replace("{{nfs_mount_point}}", NFS_MOUNT_POINT).replace("{{net}}", "192.168.1.0") \
        .replace("{{fsid}}", LEGACY_FSID)
    assert ours == _exportfs(tmp_path / "legacy", legacy, make=path)  # what nfs-kernel-server served, exactly
    etab_path, rest = ours.strip().split("\t")
    resolved = re.fullmatch(r"(\S+)\((\S+)\)", rest).groups()
    assert etab_path == client_mount()[0] and resolved[0] == "192.168.1.0/24"
    assert {"ro", "sync", "no_root_squash", "no_subtree_check", "fsid=1"} <= set(resolved[1].split(","))
    assert "rw" not in resolved[1].split(",") and "root_squash" not in resolved[1].split(",")
