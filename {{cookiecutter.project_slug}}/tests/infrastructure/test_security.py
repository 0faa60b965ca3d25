# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Security defaults a test can see: no pickle anywhere, and no password in logs or errors."""

import time
from pathlib import Path
from urllib.parse import quote

from arq.connections import ArqRedis

from {{ cookiecutter.package_name }}.infrastructure import tasks
from {{ cookiecutter.package_name }}.infrastructure.local.redis_server import LocalRedisServer, free_port
from {{ cookiecutter.package_name }}.infrastructure.store.serialization import deserialize, serialize
from {{ cookiecutter.package_name }}.infrastructure.worker.unreadable import deserialize_job

from .conftest import PASSWORD, WorkerProcesses

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


def test_a_worker_never_logs_the_password(
    password_server: LocalRedisServer, worker_processes: WorkerProcesses
) -> None:
    encoded = quote(PASSWORD, safe="")
    reachable = worker_processes.start(
        REDIS_URL=f"redis://:{encoded}@127.0.0.1:{password_server.port}/0"
    )
    closed_port = free_port()
    unreachable = worker_processes.start(
        REDIS_URL=f"redis://:{encoded}@127.0.0.1:{closed_port}/0", WORKER_RECONNECT_SECONDS="1"
    )
    unreachable.wait(timeout=30)  # it gives up after trying for a second
    for _ in range(100):  # until the reachable one has started
        if "worker started on queue" in worker_processes.log(0):
            break
        time.sleep(0.05)
    reachable.terminate()
    reachable.wait(timeout=30)

    assert "worker started on queue" in worker_processes.log(0)
    # redis-py's error names the host and port, whichever event loop the worker runs on.
    assert f"connecting to 127.0.0.1:{closed_port}." in worker_processes.log(1)
    for log in (worker_processes.log(0), worker_processes.log(1)):
        assert PASSWORD not in log
        assert encoded not in log
