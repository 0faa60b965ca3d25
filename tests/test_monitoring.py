"""The baked deploy/monitoring/: promtool checks the alert rules and runs their unit tests, and
checks the scrape config; every metric the rules and the Grafana dashboard query is one the
project defines; compose mounts files that exist. promtool comes from Debian's `prometheus`
package (`.ci/run` installs it)."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from .conftest import COMBINATIONS, QUEUE_COMBINATIONS, Combination

MONITORING = "deploy/monitoring"
# A metric name in a PromQL expression: the project's all start with arq_ (or process_).
METRIC = re.compile(r"\b(?:arq|process)_[a-z_]+\b")
# What Prometheus adds to a counter's or a histogram's name.
SUFFIXES = ("_total", "_bucket", "_sum", "_count")
# prometheus-client's process collector, which the worker registers too.
PROCESS_METRICS = {"process_resident_memory_bytes", "process_cpu_seconds_total"}
# Redis's own series, as redis_exporter (oliver006/redis_exporter) names them: the Redis alerts
# read these (the project's metrics do not read Redis's memory; docs/monitoring.md).
REDIS_EXPORTER = re.compile(r"\bredis_[a-z_]+\b")
REDIS_EXPORTER_METRICS = {"redis_memory_used_bytes", "redis_memory_max_bytes", "redis_errors_total"}

queue_projects = pytest.mark.parametrize("combination", QUEUE_COMBINATIONS, ids=lambda c: c.id)


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("promtool")
    assert executable, "promtool is not installed: `apt-get install prometheus` (.ci/run does)"
    return subprocess.run([executable, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def defined_metrics(project: Path) -> set[str]:
    """The metric names the project's metrics.py defines, and the alert rules' recorded ones."""
    package = json.loads((project / ".cookiecutter.json").read_text())["package_name"]
    source = (project / "src" / package / "infrastructure" / "ops" / "metrics.py").read_text()
    names = set(re.findall(r'"(arq_[a-z_]+)"', source))
    rules = yaml.safe_load((project / MONITORING / "alerts.yml").read_text())
    recorded = {
        rule["record"] for group in rules["groups"] for rule in group["rules"] if "record" in rule
    }
    return names | recorded


def queried_metrics(expression: str) -> set[str]:
    """The metric names in a PromQL expression, without the suffixes Prometheus adds."""
    names = set()
    for name in METRIC.findall(expression):
        for suffix in SUFFIXES:
            if name.endswith(suffix) and name not in PROCESS_METRICS:
                name = name.removesuffix(suffix)
                break
        names.add(name)
    return names


@queue_projects
def test_promtool_checks_the_alert_rules_and_runs_their_tests(project: Path) -> None:
    monitoring = project / MONITORING

    checked = promtool("check", "rules", "alerts.yml", cwd=monitoring)
    tested = promtool("test", "rules", "alerts.test.yml", cwd=monitoring)

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 9 rules found" in checked.stdout
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


@queue_projects
def test_the_rules_cover_what_the_issue_asks_for_and_each_has_a_test(project: Path) -> None:
    rules = yaml.safe_load((project / MONITORING / "alerts.yml").read_text())
    tests = yaml.safe_load((project / MONITORING / "alerts.test.yml").read_text())
    alerts = {
        rule["alert"] for group in rules["groups"] for rule in group["rules"] if "alert" in rule
    }
    tested = {check["alertname"] for case in tests["tests"] for check in case["alert_rule_test"]}
    firing = {
        check["alertname"]
        for case in tests["tests"]
        for check in case["alert_rule_test"]
        if check["exp_alerts"]
    }

    assert alerts == {
        "QueueBacklogGrowing",
        "NoLiveWorker",
        "DeadLettersRising",
        "JobFailureRatioHigh",
        # Redis out of memory refuses writes: enqueue fails, outcomes wait to be written.
        "RedisMemoryNearlyFull",
        "RedisOutOfMemory",
    }
    assert tested == alerts
    assert firing == alerts  # each rule is shown to fire, not only to stay quiet


@queue_projects
def test_promtool_accepts_the_scrape_config(project: Path, combination: Combination) -> None:
    checked = promtool("check", "config", "prometheus.yml", cwd=project / MONITORING)
    config = yaml.safe_load((project / MONITORING / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert config["rule_files"] == ["alerts.yml"]
    # Every worker replica, found by the compose service's name, on WORKER_METRICS_PORT.
    assert jobs["worker"]["dns_sd_configs"] == [
        {"names": ["worker"], "type": "A", "port": 9100, "refresh_interval": "15s"}
    ]
    if combination.context.get("api_framework", "fastapi") == "fastapi":
        assert jobs["api"]["static_configs"] == [{"targets": ["api:8000"]}]
    else:
        assert set(jobs) == {"worker"}


@queue_projects
def test_the_rules_and_the_dashboard_query_only_metrics_the_project_defines(
    project: Path,
) -> None:
    defined = defined_metrics(project) | PROCESS_METRICS
    rules = yaml.safe_load((project / MONITORING / "alerts.yml").read_text())
    dashboard = json.loads((project / MONITORING / "grafana/queue-dashboard.json").read_text())
    rule_queries = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    panel_queries = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]

    used = set().union(*map(queried_metrics, [*rule_queries, *panel_queries]))

    assert {"arq_jobs_started", "arq_job_duration_seconds", "arq_queue_jobs_waiting"} <= defined
    assert used - defined == set()
    redis_series = {name for query in rule_queries for name in REDIS_EXPORTER.findall(query)}
    assert redis_series == REDIS_EXPORTER_METRICS
    # Every series the project defines is on the dashboard.
    on_dashboard = set().union(*map(queried_metrics, panel_queries))
    assert {name for name in defined if name.startswith("arq_")} - on_dashboard == set()


@queue_projects
def test_the_dashboard_uses_the_provisioned_data_source(project: Path) -> None:
    grafana = project / MONITORING / "grafana"
    dashboard = json.loads((grafana / "queue-dashboard.json").read_text())
    [source] = yaml.safe_load((grafana / "datasource.yml").read_text())["datasources"]
    ids = [panel["id"] for panel in dashboard["panels"]]

    assert source["url"] == "http://prometheus:9090"
    assert {panel["datasource"]["uid"] for panel in dashboard["panels"]} == {source["uid"]}
    assert len(ids) == len(set(ids))


@queue_projects
def test_compose_runs_the_monitoring_profile_on_loopback_with_files_that_exist(
    project: Path,
) -> None:
    services = yaml.safe_load((project / "compose.yaml").read_text())["services"]
    worker = services["worker"]
    monitoring = {name: services[name] for name in ("prometheus", "grafana")}

    assert worker["environment"]["WORKER_METRICS_PORT"] == "9100"
    # One loopback port per replica, chosen by Docker: `--scale worker=N` does not collide.
    assert worker["ports"] == ["127.0.0.1::9100"]
    for service in monitoring.values():
        assert service["profiles"] == ["monitoring"]  # `docker compose up` alone leaves them out
        assert all(port.startswith("127.0.0.1:") for port in service["ports"])
        for volume in service["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (project / source).is_file(), source


@pytest.mark.parametrize(
    "combination",
    [c for c in COMBINATIONS if c.cache_backend == "none"],
    ids=lambda c: c.id,
)
def test_a_project_without_a_queue_has_no_metrics(project: Path) -> None:
    assert not (project / "deploy" / "monitoring").exists()
    assert not (project / "docs" / "monitoring.md").exists()
    # The project's own files: not what running its checks left behind (.venv, caches).
    files = [
        path
        for path in project.rglob("*")
        if path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(project).parts[:-1])
    ]
    assert not [path for path in files if b"prometheus" in path.read_bytes().lower()]
