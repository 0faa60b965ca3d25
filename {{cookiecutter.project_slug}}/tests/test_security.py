"""Security defaults a test can see: no pickle anywhere, and no password in logs or errors."""

import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

from arq.connections import ArqRedis

from {{ cookiecutter.package_name }}.infrastructure import tasks
from {{ cookiecutter.package_name }}.infrastructure.redis_server import LocalRedisServer, free_port
from {{ cookiecutter.package_name }}.infrastructure.serialization import deserialize, serialize
from {{ cookiecutter.package_name }}.infrastructure.unreadable import deserialize_job

from .conftest import PASSWORD

PACKAGE = Path(tasks.__file__).parents[1]


def test_no_pickle_anywhere() -> None:
    sources = {path.name: path.read_text() for path in PACKAGE.rglob("*.py")}

    assert [name for name, text in sources.items() if "import pickle" in text] == []
    assert tasks.WorkerSettings.job_serializer is serialize
    assert tasks.WorkerSettings.job_deserializer is deserialize_job


async def test_the_client_pool_reads_and_writes_json(task_pool: ArqRedis) -> None:
    pool = await tasks.get_task_pool()

    assert pool.job_deserializer is deserialize
    assert pool.job_serializer is not None
    assert pool.job_serializer({"a": 1}) == b'{"a":1}'


def run_worker_briefly(redis_url: str, seconds: float) -> str:
    """A real worker process for `seconds`, then SIGTERM; returns what it logged."""
    worker = subprocess.Popen(
        [sys.executable, "-m", "arq", f"{tasks.__name__}.WorkerSettings"],
        env={"PATH": "", "REDIS_URL": redis_url, "WORKER_RECONNECT_SECONDS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = worker.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        worker.terminate()
        output, _ = worker.communicate(timeout=30)
    return output


def test_a_worker_never_logs_the_password(password_server: LocalRedisServer) -> None:
    encoded = quote(PASSWORD, safe="")
    reachable = run_worker_briefly(f"redis://:{encoded}@127.0.0.1:{password_server.port}/0", 3)
    unreachable = run_worker_briefly(f"redis://:{encoded}@127.0.0.1:{free_port()}/0", 20)

    assert "worker started on queue" in reachable
    assert "Error 111" in unreachable or "Connect call failed" in unreachable
    for output in (reachable, unreachable):
        assert PASSWORD not in output
        assert encoded not in output
