"""The k3s datastore backup: its CronJob as declared, and its script run for real against a
live SQLite database in WAL mode (as k3s keeps it), to a directory and, through stand-in
gcloud/gsutil commands that map gs:// onto a directory, to "GCS", with retention."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from tests.test_hostscripts import SHELLCHECK

STAND_IN_GCLOUD = """#!/bin/sh
# STAND-IN gcloud: records the auth call.
echo "gcloud $*" >> "$STANDIN_LOG"
"""
STAND_IN_GSUTIL = """#!/bin/sh
# STAND-IN gsutil: gs://BUCKET/PATH is $STANDIN_GCS/BUCKET/PATH.
echo "gsutil $*" >> "$STANDIN_LOG"
[ "$1" = -q ] && shift
local_path() { echo "$STANDIN_GCS/${1#gs://}"; }
case "$1" in
  cp) mkdir -p "$(dirname "$(local_path "$3")")"; cp "$2" "$(local_path "$3")" ;;
  rm) rm "$(local_path "$2")" ;;
  ls) for f in $(local_path "$2"); do [ -e "$f" ] && echo "gs://${f#"$STANDIN_GCS"/}"; done ;;
esac
"""


def cron(run):
    return next(r for r in run.of_type("kubernetes:batch/v1:CronJob") if r.name.endswith("datastore-backup"))


def script_of(run) -> str:
    maps = [r for r in run.of_type("kubernetes:core/v1:ConfigMap") if r.inputs["metadata"]["name"] == "datastore-backup"]
    return maps[0].inputs["data"]["backup.sh"]


def test_cronjob_reads_the_server_directory_as_root_on_the_jumphost(run_stack):
    run = run_stack("rack2")
    spec = cron(run).inputs["spec"]
    assert spec["schedule"] == "17 */6 * * *" and spec["concurrencyPolicy"] == "Forbid"
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert {"name": "server", "hostPath": {"path": "/var/lib/rancher/k3s/server", "type": "Directory"}} in pod["volumes"]
    assert {"name": "server", "mountPath": "/server", "readOnly": True} in c["volumeMounts"]
    assert {"name": "node", "hostPath": {"path": "/etc/rancher/node", "type": "Directory"}} in pod["volumes"]
    assert {"name": "destination", "hostPath": {"path": "/var/backups/skolo-k3s", "type": "DirectoryOrCreate"}} in pod["volumes"]
    assert c["securityContext"]["runAsUser"] == 0
    assert pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0][
        "matchExpressions"] == [{"key": "node-restriction.kubernetes.io/skolo-role", "operator": "In", "values": ["jumphost"]}]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert (env["RACK"], env["DESTINATION"], env["KEEP"]) == ("rack2", "/var/backups/skolo-k3s", "28")


def test_a_gcs_destination_gets_the_key_and_no_local_volume(run_stack):
    run = run_stack("rack1")
    pod = cron(run).inputs["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["DESTINATION"] == "gs://skia-backups/k3s/rack1"
    assert env["GOOGLE_APPLICATION_CREDENTIALS"] == "/var/secrets/google/key.json"
    assert not [v for v in pod["volumes"] if v["name"] == "destination"]


def test_the_script_is_shellcheck_clean(run_stack, tmp_path):
    path = tmp_path / "backup.sh"
    path.write_text(script_of(run_stack("rack2")))
    result = subprocess.run([SHELLCHECK, "--shell=sh", "--severity=style", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


@pytest.fixture
def live_server(tmp_path):
    """A k3s-like server directory: state.db in WAL mode with a writer still connected, and the token."""
    server = tmp_path / "server"
    (server / "db").mkdir(parents=True)
    (server / "token").write_text("K10stand-in-ca-hash::server:stand-in-token\n")
    (tmp_path / "node").mkdir()
    (tmp_path / "node" / "password").write_text("stand-in-node-password\n")
    db = sqlite3.connect(server / "db" / "state.db")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE kine (id INTEGER PRIMARY KEY, name TEXT, value BLOB)")
    db.executemany("INSERT INTO kine (name, value) VALUES (?, ?)",
                   [(f"/registry/minions/skia-rpi2-rack2-shelf1-00{i}", b"node") for i in range(1, 5)])
    db.commit()
    yield server
    db.close()


def _run(script: Path, server: Path, destination: str, tmp_path: Path) -> subprocess.CompletedProcess:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, text in (("gcloud", STAND_IN_GCLOUD), ("gsutil", STAND_IN_GSUTIL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    env = dict(os.environ, RACK="rack2", DESTINATION=destination, KEEP="2", SERVER_DIR=str(server),
               NODE_DIR=str(server.parent / "node"),
               GOOGLE_APPLICATION_CREDENTIALS="/dev/null", STANDIN_GCS=str(tmp_path / "gcs"),
               STANDIN_LOG=str(tmp_path / "standin.log"),
               PATH=f"{bin_dir}:{Path(sys.executable).parent}:{os.environ['PATH']}")
    return subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True)


def _restore(archive: Path, tmp_path: Path) -> tuple[list[str], str, str]:
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "restore", filter="data")
    (folder,) = (tmp_path / "restore").iterdir()
    rows = [r[0] for r in sqlite3.connect(folder / "state.db").execute("SELECT name FROM kine ORDER BY id")]
    return rows, (folder / "token").read_text(), (folder / "node-password").read_text()


@pytest.mark.parametrize("where", ["directory", "gcs"])
def test_backups_restore_and_only_the_newest_are_kept(run_stack, live_server, tmp_path, where):
    script = tmp_path / "backup.sh"
    script.write_text(script_of(run_stack("rack2")))
    destination = str(tmp_path / "backups") if where == "directory" else "gs://skia-backups/k3s/rack2"
    stored = tmp_path / "backups" if where == "directory" else tmp_path / "gcs" / "skia-backups" / "k3s" / "rack2"
    for _ in range(3):
        result = _run(script, live_server, destination, tmp_path)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"backed up the k3s datastore of rack2 to {destination}/rack2-k3s-")
        time.sleep(1.1)  # names carry the time to the second
    archives = sorted(stored.glob("rack2-k3s-*.tar.gz"))
    assert len(archives) == 2
    assert oct(archives[-1].stat().st_mode & 0o777) == "0o600" or where == "gcs"
    rows, token, node_password = _restore(archives[-1], tmp_path)
    assert rows == [f"/registry/minions/skia-rpi2-rack2-shelf1-00{i}" for i in range(1, 5)]
    assert token == "K10stand-in-ca-hash::server:stand-in-token\n"
    assert node_password == "stand-in-node-password\n"
    if where == "gcs":
        log = (tmp_path / "standin.log").read_text()
        assert "gcloud auth activate-service-account --key-file=/dev/null --quiet" in log
        assert log.count("gsutil -q rm gs://skia-backups/k3s/rack2/rack2-k3s-") == 1
