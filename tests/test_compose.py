"""The baked compose.yaml is the production path: check the properties it must keep."""

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import QUEUE_COMBINATIONS

pytestmark = pytest.mark.parametrize("combination", QUEUE_COMBINATIONS, ids=lambda c: c.id)


def services_of(project: Path) -> dict[str, Any]:
    return yaml.safe_load((project / "compose.yaml").read_text())["services"]


def seconds(duration: str) -> int:
    match = re.fullmatch(r"(\d+)s", duration)
    assert match, f"expected a duration in seconds, got {duration!r}"
    return int(match.group(1))


def env_example_default(project: Path, name: str) -> str:
    match = re.search(rf"^{name}=(.*)$", (project / ".env.example").read_text(), re.MULTILINE)
    assert match, f"{name} is not in .env.example"
    return match.group(1)


def test_cache_keeps_jobs_safe_and_private(project: Path) -> None:
    cache = services_of(project)["cache"]
    server_options = " ".join(
        [*cache.get("command", []), cache.get("environment", {}).get("REDIS_ARGS", "")]
    )

    assert "--maxmemory-policy noeviction" in server_options  # a queue must never be evicted
    assert "--maxmemory " in server_options  # without a limit, noeviction never applies
    assert "--appendonly yes" in server_options
    assert "--requirepass" in server_options
    assert [volume.split(":")[0] for volume in cache["volumes"]] == ["cache-data"]
    assert all(str(port).startswith("127.0.0.1:") for port in cache["ports"])
    assert "redis-cli ping" in " ".join(cache["healthcheck"]["test"])
    assert cache["restart"] == "unless-stopped"


def test_worker_scales_waits_for_the_cache_and_checks_itself(project: Path) -> None:
    worker = services_of(project)["worker"]

    assert "container_name" not in worker  # `--scale worker=3` needs compose to name replicas
    assert worker["build"] == "."
    assert worker["depends_on"] == {"cache": {"condition": "service_healthy"}}
    assert "@cache:6379/0" in worker["environment"]["REDIS_URL"]
    assert worker["healthcheck"]["test"][-2:] == ["worker-check", "--this-host"]
    assert worker["restart"] == "unless-stopped"
    grace = int(env_example_default(project, "WORKER_SHUTDOWN_GRACE"))
    assert seconds(worker["stop_grace_period"]) > grace


def test_compose_refuses_to_start_without_the_password(project: Path) -> None:
    text = (project / "compose.yaml").read_text()
    uses = re.findall(r"\$\{REDIS_PASSWORD(:\?[^}]*)?\}", text)

    assert uses
    assert ":?" in uses[0]  # the first use stops compose with a message when it is unset
    assert "${REDIS_PASSWORD:?" in text.split("worker:")[1]  # the worker's URL needs it too


def test_api_waits_for_the_cache_checks_readiness_and_stays_private(
    project: Path, combination
) -> None:
    services = services_of(project)
    if combination.context.get("api_framework", "fastapi") == "none":
        assert "api" not in services
        return
    api = services["api"]

    assert api["build"] == "."  # the worker's image, running uvicorn instead
    assert api["command"][:2] == [
        "uvicorn",
        f"{api['command'][1].split('.')[0]}.api.app:create_app",
    ]
    assert "--factory" in api["command"]
    assert api["depends_on"] == {"cache": {"condition": "service_healthy"}}
    assert "@cache:6379/0" in api["environment"]["REDIS_URL"]
    assert all(str(port).startswith("127.0.0.1:") for port in api["ports"])
    assert "/health/ready" in " ".join(api["healthcheck"]["test"])
    assert api["restart"] == "unless-stopped"


def test_a_second_worker_group_is_off_until_asked_for_and_checks_its_own_queue(
    project: Path,
) -> None:
    services = services_of(project)
    worker, bulk = services["worker"], services["worker-bulk"]

    # `docker compose up` alone runs the main group only: the project has just `default` until
    # .env lists more queues (QUEUES=default in .env.example).
    assert "profiles" not in worker
    assert bulk["profiles"] == ["bulk"]
    assert env_example_default(project, "QUEUES") == "default"
    # The main group's pod, serving its own queue and checking its own heartbeat on it.
    for key in ("build", "command", "env_file", "depends_on", "ports", "stop_grace_period"):
        assert bulk[key] == worker[key], key
    assert "container_name" not in bulk
    assert bulk["restart"] == "unless-stopped"
    assert bulk["environment"] == {**worker["environment"], "WORKER_QUEUES": "bulk"}
    assert "WORKER_QUEUES" not in worker["environment"]  # from .env: every queue by default
    assert bulk["healthcheck"]["test"][-4:] == ["worker-check", "--this-host", "--queue", "bulk"]
    assert {k: v for k, v in bulk["healthcheck"].items() if k != "test"} == {
        k: v for k, v in worker["healthcheck"].items() if k != "test"
    }
    # Prometheus finds its replicas by the name it finds the main group's by.
    assert bulk["networks"]["default"]["aliases"] == ["worker"]
