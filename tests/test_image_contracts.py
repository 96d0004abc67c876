"""Each container held to what its image's own source says (README: "What each container relies
on"): where the program listens, what its health endpoints are, what it writes, and who it must
run as. The facts are quoted from the source read (Dockerfiles, main.go, entrypoint.sh at the tag
or commit named); a pod that stops matching them fails here. Era facts of Skia's images (which
program, which --config, which python, which podwatcher images ship their config) are in
test_skia.py; the NFS export against its client in test_nfs_export.py."""

from __future__ import annotations

import pytest

from tests.test_services import objects

# container -> what its image's source says.
# listens: ports the program serves, from its defaults and the flags the pod passes.
# health: (readiness path, liveness path) the program answers; None where it serves no HTTP health.
# writes: paths the image's program writes outside /tmp (a read-only root needs a volume there).
# root: the program needs uid 0 (and why).
FACTS = {
    # sk8s/go/metadata/main.go: --port (:8000), --prom_port (:20000); httputils.Healthz answers /healthz.
    "metadata": {"listens": {8000, 20000}, "health": ("/healthz", "/healthz"), "writes": (), "root": None},
    # am/go/alert-to-pubsub/main.go: --port, --prom_port; httputils.HealthzAndHTTPS answers /healthz.
    "alert-to-pubsub": {"listens": {8000, 20000}, "health": ("/healthz", "/healthz"), "writes": (), "root": None},
    # sk8s/go/podwatcher/main.go: only --prom_port (:20000); no HTTP server of its own.
    "podwatcher": {"listens": {20000}, "health": None, "writes": (), "root": None},
    # machine/go/test_machine_monitor: --port (hooks), --prom_port; no health endpoint; writes /b.
    "swarming": {"listens": {11000, 20000}, "health": None, "writes": ("/b",),
                 "root": "adb over USB, as the RPi design runs it (privileged)"},
    # prometheus v2.55.1 Dockerfile: USER nobody; web/web.go: /-/ready 503 until the TSDB is loaded,
    # /-/healthy as soon as it serves; the TSDB under --storage.tsdb.path.
    "prometheus": {"listens": {9090}, "health": ("/-/ready", "/-/healthy"), "writes": ("/prometheus",),
                   "root": None},
    # node-exporter v1.8.2: USER nobody, --web.listen-address; / is its landing page.
    "node-exporter": {"listens": {9100}, "health": ("/", "/"), "writes": (), "root": None},
    # kube-state-metrics v2.13.0: USER nobody; --port (metrics and /healthz), --telemetry-port.
    "kube-state-metrics": {"listens": {8080, 8081}, "health": ("/healthz", "/healthz"), "writes": (), "root": None},
    # google-cloud-cli slim: gcloud and gsutil write their config under $CLOUDSDK_CONFIG and $HOME.
    "router-backup": {"listens": set(), "health": None, "writes": (), "root": None},
    # Where it writes is config (a directory or gs://): test_datastore_backup.py.
    "datastore-backup": {"listens": set(), "health": None, "writes": (),
                         "root": "reads k3s's root-only datastore and token"},
    # erichough/nfs-server 2.2.1 entrypoint.sh: writes /etc/exports and /var/lib/nfs, mounts
    # /proc/fs/nfsd, starts rpcbind (111), rpc.statd (32765), rpc.mountd (32767), rpc.nfsd (2049);
    # bails without CAP_SYS_ADMIN.
    "nfs-server": {"listens": {111, 2049, 32765, 32767}, "health": None, "writes": ("/etc/exports", "/var/lib/nfs"),
                   "root": "CAP_SYS_ADMIN to start nfsd (entrypoint.sh: init_runtime_assertions)"},
}


def containers(run) -> dict[str, tuple[dict, dict]]:
    """container name -> (its pod spec, the container), for every workload the stack declares."""
    found = {}
    for kind in ("Deployment", "DaemonSet", "CronJob"):
        for obj in objects(run, kind).values():
            spec = obj["spec"]
            pod = (spec["jobTemplate"]["spec"]["template"] if kind == "CronJob" else spec["template"])["spec"]
            for c in pod["containers"]:
                found[c["name"]] = (pod, c)
    return found


@pytest.fixture(scope="module")
def rack1(run_stack):
    return run_stack("rack1")


def test_every_container_is_one_whose_image_was_read(rack1):
    assert set(containers(rack1)) == set(FACTS)


@pytest.mark.parametrize("name", sorted(FACTS))
def test_a_pod_matches_what_its_image_does(rack1, name):
    facts = FACTS[name]
    pod, c = containers(rack1)[name]
    # It declares exactly the ports the program listens on.
    assert {p["containerPort"] for p in c.get("ports") or ()} == facts["listens"]
    # Its probes hit what the program serves, on a port it listens on.
    probes = (c.get("readinessProbe"), c.get("livenessProbe"))
    if facts["health"] is None:
        assert probes == (None, None)
    else:
        assert tuple(p["httpGet"]["path"] for p in probes) == facts["health"]
        assert all(p["httpGet"]["port"] in facts["listens"] for p in probes)
    # What it writes is writable: a volume there, or a writable root.
    security = c.get("securityContext") or {}
    read_only_root = security.get("readOnlyRootFilesystem") is True
    mounts = {m["mountPath"]: m for m in c.get("volumeMounts") or ()}
    for path in facts["writes"]:
        mounted = next((m for p, m in mounts.items() if path == p or path.startswith(p.rstrip("/") + "/")), None)
        assert (mounted is not None and not mounted.get("readOnly")) or not read_only_root, path
    env = {e["name"]: e.get("value") for e in c.get("env") or ()}
    for var in ("HOME", "CLOUDSDK_CONFIG"):
        if read_only_root and var in env:
            assert any(env[var].startswith(p) and not m.get("readOnly") for p, m in mounts.items()), var
    # Root only where the program needs it.
    user = security.get("runAsUser", (pod.get("securityContext") or {}).get("runAsUser"))
    assert (user == 0) == (facts["root"] is not None), (user, facts["root"])
