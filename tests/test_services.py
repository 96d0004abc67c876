"""The rack's services: generated configs (golden), promtool on prometheus.yml and the rules,
and each component's defaults and custom settings as the program declares them.

Set UPDATE_GOLDEN=1 to rewrite the golden files after an intended change."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from components.router_backup import SCRIPT as BACKUP_SCRIPT
from tests import golden
from tests.ci import cannot_run

PROMTOOL = shutil.which("promtool")
SHELLCHECK = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or shutil.which("shellcheck")


def objects(run, kind: str) -> dict[str, dict]:
    return {r.inputs["metadata"]["name"]: r.inputs for r in run.resources if r.type.endswith(f":{kind}") and r.custom}


def container(obj: dict) -> dict:
    spec = obj["spec"]
    template = spec["jobTemplate"]["spec"]["template"] if "jobTemplate" in spec else spec["template"]
    return template["spec"]["containers"][0]


def generated_files(run) -> dict[str, str]:
    maps = objects(run, "ConfigMap")
    return {
        "prometheus.yml": maps["prometheus"]["data"]["prometheus.yml"],
        "alerts.yml": maps["prometheus"]["data"]["alerts.yml"],
        "powercycle.json5": maps["power-cycle"]["data"]["powercycle.json5"],
        "power-cycle-ssh_config": maps["power-cycle"]["data"]["ssh_config"],
        "oauth2_access_token_config.json": maps["swarming-oauth"]["data"]["oauth2_access_token_config.json"],
        "router-backup-devices": maps["router-backup"]["data"]["devices"],
    }


def test_golden_generated_configs(run_stack):
    golden.compare("rack1-services", generated_files(run_stack("rack1")))


def _need_promtool():
    if PROMTOOL is None:
        cannot_run("promtool not installed (apt-get install prometheus; .ci/run does)")


def _static_sd(config: dict, folder: Path) -> dict:
    """Stand-ins at the edge: Debian's promtool is built without Kubernetes service discovery, so
    each kubernetes_sd_configs becomes a static target; and promtool opens the in-cluster token
    and CA files, which exist only in a pod, so they point at stand-in files here. Everything
    else (relabelling, TLS, auth, alerting, globals) reaches promtool exactly as generated."""
    for stand_in in ("token", "ca.crt"):
        (folder / stand_in).write_text("stand-in\n")
    for job in config["scrape_configs"]:
        if "authorization" in job:
            job["authorization"]["credentials_file"] = str(folder / "token")
            job["tls_config"]["ca_file"] = str(folder / "ca.crt")
        sd = job.pop("kubernetes_sd_configs", None)
        if sd is not None:
            assert [c["role"] for c in sd][0] in ("node", "pod", "endpoints", "service", "ingress"), job["job_name"]
            job["static_configs"] = [{"targets": ["stand-in-target:80"]}]
    return config


def test_promtool_checks_config_and_rules(run_stack, tmp_path):
    _need_promtool()
    files = generated_files(run_stack("rack1"))
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(_static_sd(yaml.safe_load(files["prometheus.yml"]), tmp_path)))
    (tmp_path / "alerts.yml").write_text(files["alerts.yml"])
    for args in (["check", "config", "prometheus.yml"], ["check", "rules", "alerts.yml"]):
        result = subprocess.run([PROMTOOL, *args], cwd=tmp_path, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 11 rules found" in result.stdout


RULE_TESTS = """
rule_files: [alerts.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    # The rack's name is an external label (prometheus.yml's global), not a label of any series.
    external_labels: {cluster: rack1}
    input_series:
      - series: 'up{job="pods", instance="10.44.0.5:20000"}'
        values: '0x10'
      - series: 'kube_cronjob_status_last_successful_time{namespace="backup", cronjob="router-backup"}'
        values: '0x1700'
      - series: 'kube_node_status_condition{node="skia-rpi2-rack1-shelf1-007", condition="Ready", status="true"}'
        values: '1 1 0x15'
      - series: 'container_memory_working_set_bytes{namespace="monitoring", pod="prometheus-0", container="prometheus"}'
        values: '1000000000x10 1300000000x30'
      - series: 'kube_pod_container_resource_limits{namespace="monitoring", pod="prometheus-0", container="prometheus", resource="memory", unit="byte"}'
        values: '1476395008x40'
    alert_rule_test:
      - eval_time: 20m
        alertname: PrometheusMemoryNearLimit
        exp_alerts: []
      - eval_time: 27m
        alertname: PrometheusMemoryNearLimit
        exp_alerts:
          - exp_labels: {namespace: monitoring, pod: prometheus-0, container: prometheus, category: infra, severity: warning}
            exp_annotations:
              description: "Prometheus on rack1 uses over 80% of its memory limit: the rack has more series than components/prometheus.py estimates (see prometheus_tsdb_head_series)."
      - eval_time: 6m
        alertname: TargetDown
        exp_alerts:
          - exp_labels: {job: pods, instance: "10.44.0.5:20000", category: infra, severity: warning}
            exp_annotations:
              description: "pods target 10.44.0.5:20000 on rack1 has been down for 5 minutes."
      - eval_time: 10m
        alertname: NodeNotReady
        exp_alerts: []
      - eval_time: 14m
        alertname: NodeNotReady
        exp_alerts:
          - exp_labels: {node: skia-rpi2-rack1-shelf1-007, condition: Ready, status: "true", category: infra, severity: warning}
            exp_annotations:
              description: "Node skia-rpi2-rack1-shelf1-007 on rack1 has not been Ready for 10 minutes."
      - eval_time: 25h
        alertname: BackupStale
        exp_alerts: []
      - eval_time: 27h
        alertname: BackupStale
        exp_alerts:
          - exp_labels: {namespace: backup, cronjob: router-backup, category: infra, severity: warning}
            exp_annotations:
              description: "The last good router-backup run on rack1 is older than 26 hours."
"""


def test_promtool_rule_unit_tests_fire_the_rack_alerts(run_stack, tmp_path):
    _need_promtool()
    (tmp_path / "alerts.yml").write_text(generated_files(run_stack("rack1"))["alerts.yml"])
    (tmp_path / "tests.yml").write_text(RULE_TESTS)
    result = subprocess.run([PROMTOOL, "test", "rules", "tests.yml"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_sends_alerts_to_alert_to_pubsub_over_api_v1(run_stack):
    config = yaml.safe_load(generated_files(run_stack("rack2"))["prometheus.yml"])
    assert config["alerting"] == {"alertmanagers": [{"api_version": "v1", "static_configs": [
        {"targets": ["alert-to-pubsub.alerting.svc.cluster.local:8000"]}]}]}
    assert config["global"] == {"scrape_interval": "15s", "evaluation_interval": "15s",
                                "external_labels": {"cluster": "rack2"}}
    assert [j["job_name"] for j in config["scrape_configs"]] == [
        "apiservers", "nodes", "cadvisor", "node-exporter", "kube-state-metrics", "pods"]


def test_prometheus_custom_settings_reach_its_args_and_volume(run_stack):
    run = run_stack("rack2")
    args = container(objects(run, "Deployment")["prometheus"])["args"]
    assert "--storage.tsdb.retention.time=7d" in args
    assert objects(run, "PersistentVolumeClaim")["prometheus-data-5gi"]["spec"]["resources"] == {"requests": {"storage": "5Gi"}}
    assert objects(run, "PersistentVolumeClaim")["prometheus-data-5gi"]["spec"]["storageClassName"] == "local-path"


def test_prometheus_probes_follow_its_own_semantics_and_its_memory_the_racks_size(run_stack):
    """prom/prometheus v2.55.1: /-/ready is 503 until the TSDB (the WAL replay) is loaded, /-/healthy
    answers as soon as the process serves (web/web.go). Liveness on /-/ready would kill a long
    replay over and over; readiness on /-/healthy would send queries to an empty head."""
    from components.prometheus import BASE_MIB, BYTES_PER_SERIES, SERIES_JUMPHOST, SERIES_PER_PI, memory_for

    for stack, pis in (("rack1", 80), ("rack2", len(run_stack("rack2").of_type("skolo:rack:RpiAgent")))):
        c = container(objects(run_stack(stack), "Deployment")["prometheus"])
        assert c["readinessProbe"]["httpGet"] == {"path": "/-/ready", "port": 9090}
        assert c["livenessProbe"]["httpGet"] == {"path": "/-/healthy", "port": 9090}
        resources = c["resources"]
        assert resources["requests"]["memory"] == resources["limits"]["memory"] == memory_for(pis)
    # rack1: 80 Pis and the jumphost, 145,000 series at 8 KiB over the base: 1,389 MiB, in 64 MiB steps.
    assert (SERIES_JUMPHOST + 80 * SERIES_PER_PI) * BYTES_PER_SERIES / 2**20 + BASE_MIB == pytest.approx(1388.8, 0.01)
    assert memory_for(80) == "1408Mi" and memory_for(0) == "512Mi" and memory_for(1000) == "12224Mi"


def test_prometheus_identity_is_read_only(run_stack):
    role = objects(run_stack("rack2"), "ClusterRole")["skolo:monitoring:prometheus"]
    verbs = {v for rule in role["rules"] for v in rule["verbs"]}
    assert verbs == {"get", "list", "watch"}


def test_metadata_ingress_answers_metadata_and_jumphost_on_traefik(run_stack):
    ingress = objects(run_stack("rack2"), "Ingress")["metadata"]
    assert ingress["spec"]["ingressClassName"] == "traefik"
    assert [r["host"] for r in ingress["spec"]["rules"]] == ["metadata", "jumphost"]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "metadata", "port": {"number": 8000}}


def test_metadata_waits_for_the_legacy_cutover_through_the_provider(run_stack):
    run = run_stack("rack2")
    provider = run.of_type("pulumi:providers:kubernetes")[0]
    # Depending on the server component means depending on each of its steps, which come after
    # the legacy metadata unit's cut-over.
    assert run.named("metadata-legacy-unit-cutover").urn in run.named("rack2-sshd").dependencies
    assert run.named("rack2-install").urn in provider.dependencies
    deployment = next(r for r in run.of_type("kubernetes:apps/v1:Deployment") if r.name.endswith("metadata"))
    assert deployment.provider.startswith(provider.urn)


def test_alert_to_pubsub_flags_default_and_custom(run_stack):
    default = container(objects(run_stack("rack2"), "Deployment")["alert-to-pubsub"])["args"]
    assert default == ["--port=:8000", "--prom_port=:20000", "--location=rack2", "--project=skia-public"]
    custom = run_stack("rack2", overrides={"services": {
        "alertToPubsub": {"project": "skia-lab", "extraArgs": ["--period=30s"]}, "powerCycle": {"enabled": False}}})
    assert container(objects(custom, "Deployment")["alert-to-pubsub"])["args"][-2:] == [
        "--project=skia-lab", "--period=30s"]


def test_router_backup_cronjob_devices_and_schedule(run_stack):
    run = run_stack("rack1")
    cron = objects(run, "CronJob")["router-backup"]
    assert cron["spec"]["schedule"] == "0 3 * * *" and cron["spec"]["concurrencyPolicy"] == "Forbid"
    env = {e["name"]: e.get("value") for e in container(cron)["env"]}
    assert {k: env[k] for k in ("BUCKET", "FOLDER", "DEVICES", "KNOWN_HOSTS", "SSH_KEY", "SWITCH_PASSWORD_FILE")} == {
        "BUCKET": "skia-backups", "FOLDER": "router_config", "DEVICES": "/etc/router-backup/devices",
        "KNOWN_HOSTS": "/etc/router-backup/known_hosts", "SSH_KEY": "/var/secrets/ssh/id",
        "SWITCH_PASSWORD_FILE": "/var/secrets/switch/password"}
    data = objects(run, "ConfigMap")["router-backup"]["data"]
    assert data["backup.sh"] == BACKUP_SCRIPT.read_text()
    assert data["devices"].splitlines() == ["router 192.168.1.1 admin edgerouter /config/config.boot",
                                            "rack1-shelf1-poe-switch 192.168.1.2 ubnt edgeswitch -",
                                            "rack1-shelf2-poe-switch 192.168.1.3 ubnt edgeswitch -"]
    assert objects(run, "Secret")["router-backup-switch"]["stringData"] == {"password": "planted-powercycle-pw-4e4e"}
    default = run_stack("rack2")
    assert objects(default, "ConfigMap")["router-backup"]["data"]["devices"] == (
        "router 192.168.1.1 admin edgerouter /config/config.boot\n")
    assert "router-backup-switch" not in objects(default, "Secret")  # no EdgeSwitch: no password


def test_router_backup_script_is_shellcheck_clean():
    result = subprocess.run([SHELLCHECK, "--shell=sh", "--severity=style", str(BACKUP_SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_power_cycle_config_maps_shelf_ports_and_never_holds_the_password(run_stack):
    run = run_stack("rack1")
    data = objects(run, "ConfigMap")["power-cycle"]["data"]
    config = json.loads(data["powercycle.json5"])
    ports = config["edgeswitch"]["rack1-shelf2-poe-switch"]["ports"]
    assert len(ports) == 40 and ports["skia-rpi2-rack1-shelf2-001"] == 1 and ports["skia-rpi2-rack1-shelf2-040"] == 40
    assert "password" not in data["powercycle.json5"]
    c = container(objects(run, "Deployment")["podwatcher"])
    assert {"name": "POWERCYCLE_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "power-cycle", "key": "password"}}} in c["env"]
    assert c["args"] == ["--config=/usr/local/share/podwatcher/prod.json",
                         "--powercycle_config=/etc/powercycle/powercycle.json5", "--prom_port=:20000"]
    # Soft cycles reach each bot by its name, at its address, as the Pis' user.
    assert "Host skia-rpi2-rack1-shelf2-040\n    HostName 192.168.1.189\n    User chrome-bot\n" in data["ssh_config"]
    assert "    StrictHostKeyChecking yes\n" in data["ssh_config"]


def test_power_cycle_pins_every_host_it_reaches(run_stack):
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    pis = [{"name": f"skia-rpi2-rack2-shelf1-00{i}", "address": f"192.168.1.10{i}", "hostKey": key} for i in range(1, 5)]
    run = run_stack("rack2", overrides={"rpis": pis, "services": {"powerCycle": {"mpower": [
        {"name": "rack2-mpower", "address": "192.168.1.20", "user": "ubnt", "hostKey": key,
         "ports": {p["name"]: i + 1 for i, p in enumerate(pis)}}]}}})
    known = objects(run, "ConfigMap")["power-cycle"]["data"]["known_hosts"].splitlines()
    assert known == [f"192.168.1.20 {key}"] + [f"192.168.1.10{i} {key}" for i in range(1, 5)]
    assert "power-cycle" not in objects(run, "Secret")  # mPower only: no EdgeSwitch password


def test_swarming_daemonset_as_the_rpi_design_describes(run_stack):
    run = run_stack("rack1")
    ds = objects(run, "DaemonSet")["swarming"]
    c = container(ds)
    spec = ds["spec"]["template"]["spec"]
    assert {"name": "SWARMING_BOT_ID", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}} in c["env"]
    assert {m["mountPath"] for m in c["volumeMounts"]} == {"/b", "/dev/bus", "/dev/ttyAMA0", "/root/.android",
                                                          "/var/secrets/google", "/etc/swarming_config"}
    assert {"name": "work", "hostPath": {"path": "/var/swarming", "type": "DirectoryOrCreate"}} in spec["volumes"]
    assert ds["spec"]["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 4}}
    assert spec["terminationGracePeriodSeconds"] == 3600
    assert c["command"] == ["/usr/bin/test_machine_monitor"]
    assert c["args"] == [
        "--start_swarming", "--config=prod.json",
        "--metadata_url=http://metadata.metadata.svc.cluster.local:8000/computeMetadata/v1/instance/service-accounts/"
        "default/token", "--python_exe=/usr/bin/python3", "--port=:11000", "--prom_port=:20000"]
    assert set(objects(run, "Secret")["swarming-adb"]["stringData"]) == {"adbkey", "adbkey.pub"}
    oauth = json.loads(objects(run, "ConfigMap")["swarming-oauth"]["data"]["oauth2_access_token_config.json"])
    assert oauth["url"] == ("http://metadata.metadata.svc.cluster.local:8000"
                            "/computeMetadata/v1/instance/service-accounts/default/token")
    default = objects(run_stack("rack2"), "DaemonSet")["swarming"]
    assert default["spec"]["updateStrategy"]["rollingUpdate"] == {"maxUnavailable": 1}


def test_every_service_can_be_switched_off(run_stack):
    from components import settings

    off = {s: {"enabled": False} for s in settings.SERVICES}
    run = run_stack("rack2", overrides={"services": off, "guardrails": {"enabled": False}})
    assert not [r for r in run.resources if r.type.startswith(("skolo:services:", "skolo:policy:Guardrails"))]
    # Only the read-only access objects and the jumphost's admin-only label remain.
    kept = {run.named("access").urn, run.named("rack2-node-roles").urn}
    for r in run.resources:
        if r.type.startswith("kubernetes:"):
            assert r.parent in kept, r.name


def test_swarming_without_metadata_falls_back_to_the_legacy_server(run_stack):
    run = run_stack("rack2", overrides={"services": {"metadata": {"enabled": False}}})
    oauth = json.loads(objects(run, "ConfigMap")["swarming-oauth"]["data"]["oauth2_access_token_config.json"])
    assert oauth["url"] == "http://metadata/computeMetadata/v1/instance/service-accounts/default/token"


def test_image_override_is_used(run_stack):
    run = run_stack("rack2", overrides={"images": {
        "metadata": "gcr.io/skia-public/metadata:2021-01-02T03_04_05Z-ops-abcdef0-clean",
        "alertToPubsub": "gcr.io/skia-public/alert-to-pubsub:x", "powerCycle": "gcr.io/skia-public/podwatcher:x",
        "swarming": "gcr.io/skia-public/rpi-swarming-client:x", "prometheus": "prom/prometheus:v2.53.2"}})
    deployments = objects(run, "Deployment")
    assert container(deployments["metadata"])["image"] == "gcr.io/skia-public/metadata:2021-01-02T03_04_05Z-ops-abcdef0-clean"
    assert container(deployments["prometheus"])["image"] == "prom/prometheus:v2.53.2"
