"""`just bench` runs from a clean clone and prints every figure it promises.

A smoke test, not a timed one: tiny sizes, one round, and no figure is compared with its target
(that is the benchmark's job, on a quiet machine; see docs/benchmarks.md).
"""

import os
import subprocess
import sys

import pytest

from .conftest import TEMPLATE_ROOT

# Every row the table must have, whatever the figures.
EXPECTED_ROWS = (
    "drain ratio generated defaults / arq defaults",
    "drain ratio generated defaults / arq, same tuning",
    "drain ratio generated defaults, queue_read_limit 1000 / arq, same tuning, queue_read_limit",
    "enqueue→start p99 ms, generated defaults",
    "enqueue ratio enqueue_task / enqueue_job",
    "Redis commands per job, generated defaults",
    "worker cold start s",
    "worker-check wall time s",
    "bake time s, cache_backend=none",
    "drain ratio generated defaults / Celery solo",
    "Redis commands per job, Celery",
    "enqueue→start p50 ms, Celery",
)


@pytest.mark.slow
def test_bench_prints_every_figure_with_celery() -> None:
    sizes = (
        "--rounds 1 --jobs 200 --latency-jobs 10 --enqueue-jobs 200 --check-runs 1 --bake-runs 1"
    )
    result = subprocess.run(
        [sys.executable, "bench/compare.py", "--celery", *sizes.split()],
        cwd=TEMPLATE_ROOT,
        env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    for row in EXPECTED_ROWS:
        assert any(line.startswith(f"| {row}") for line in table), f"no row {row!r}"
    for line in table[2:]:
        value = line.split("|")[2].split()[0]
        assert float(value) > 0, line


# Every row bench/api.py prints, whatever the figures.
API_ROWS = (
    "POST /examples |",
    "POST /bare |",
    "enqueue_task in process |",
    "POST /examples / POST /bare |",
    "POST /examples / enqueue_task in process |",
)


@pytest.mark.slow
def test_bench_api_prints_every_row() -> None:
    result = subprocess.run(
        [sys.executable, "bench/api.py", "--rounds", "1", "--requests", "100", "--seconds", "5"],
        cwd=TEMPLATE_ROOT,
        env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    for row in API_ROWS:
        assert any(line.startswith(f"| {row}") for line in table), f"no row {row!r}"
    machine = result.stdout.splitlines()[0]
    assert "CPUs" in machine and "shared by the server, Redis and the load generator" in machine
