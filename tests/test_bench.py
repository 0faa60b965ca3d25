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


@pytest.mark.slow
def test_bench_metrics_prints_both_kinds_of_job_with_metrics_off_and_on() -> None:
    sizes = "--rounds 1 --noop-jobs 200 --io-jobs 100"
    result = subprocess.run(
        [sys.executable, "bench/compare.py", "--metrics", *sizes.split()],
        cwd=TEMPLATE_ROOT,
        env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    rows = [line.split("|")[1:3] for line in table[1:]]  # after the header
    assert [(kind.strip(), figure.strip()) for kind, figure in rows] == [
        ("no-op", "jobs/s"),
        ("no-op", "worker CPU µs per job"),
        ("10 ms I/O", "jobs/s"),
        ("10 ms I/O", "worker CPU µs per job"),
    ]
    for line in table[1:]:
        figures = [float(line.split("|")[cell].split()[0]) for cell in (3, 4, 5)]
        assert min(figures) > 0, line  # metrics off, on, and their ratio
        assert "≥ 0.97" in line


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


@pytest.mark.slow
def test_bench_wake_paths_prints_a_row_per_way_of_queueing() -> None:
    result = subprocess.run(
        [sys.executable, "bench/wake_paths.py", "--jobs", "3"],
        cwd=TEMPLATE_ROOT,
        env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line.split(" | ")[0] for line in result.stdout.splitlines() if line.startswith("| ")]
    assert rows[1:] == [
        "| enqueue_task()",
        "| get_task_pool().enqueue_job()",
        '| ctx["redis"].enqueue_job() in a job',
        "| arq's own create_pool (foreign client)",
    ]


@pytest.mark.slow
def test_bench_tracing_prints_both_modes_before_and_the_cost_of_the_check() -> None:
    # --before HEAD: the path that bakes an older template, on any clone (a shallow one too).
    result = subprocess.run(
        [sys.executable, "bench/tracing.py", "--rounds", "1", "--jobs", "50", "--before", "HEAD"],
        cwd=TEMPLATE_ROOT,
        env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line.split(" | ")[0] for line in result.stdout.splitlines() if line.startswith("| ")]
    assert rows == ["| tracing", "| before (HEAD)", "| off", "| on"]
    assert "the `tracing.enabled` check takes" in result.stdout
    assert "off against before (median of rounds): " in result.stdout


# The rows bench/queues.py prints (their first cells, up to the sizes), and the goals it judges.
QUEUES_ROWS = (
    ("critical enqueue→start p50 ms, strict priority", "≤ 5"),
    ("critical enqueue→start p99 ms, strict priority", "≤ 20"),
    ("critical enqueue→start p50 ms, weights 6/3/1 (reference)", ""),
    ("critical enqueue→start p99 ms, weights 6/3/1 (reference)", ""),
    *(
        row
        for kind in ("no-op", "10 ms")
        for row in (
            (f"{kind} jobs/s, 1 queue", ""),
            (f"{kind} jobs/s, 3 queues, jobs in the first", ""),
            (f"{kind} jobs/s, 3 queues, jobs in the last", ""),
            (f"{kind} ratio 3 queues, jobs in the first / 1 queue", "≥ 0.95"),
            (f"{kind} ratio 3 queues, jobs in the last / 1 queue", "≥ 0.95"),
        )
    ),
    ("idle worker, Redis commands/s, 3 empty queues", "≤ 5"),
    ("idle worker, Redis commands/s, 1 empty queue", ""),
)


@pytest.mark.slow
def test_bench_queues_prints_every_figure_and_its_goal() -> None:
    sizes = "--rounds 1 --bulk-jobs 300 --critical-jobs 5 --jobs 100 --io-jobs 50 --idle-seconds 1"
    result = subprocess.run(
        [sys.executable, "bench/queues.py", *sizes.split()],
        cwd=TEMPLATE_ROOT,
        env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "CPUs" in result.stdout.splitlines()[0]
    table = [line.split(" | ") for line in result.stdout.splitlines() if line.startswith("| ")]
    rows = table[1:]  # after the header
    assert len(rows) == len(QUEUES_ROWS)
    for (figure, measured, goal, verdict), (label, expected_goal) in zip(
        rows, QUEUES_ROWS, strict=True
    ):
        assert figure.removeprefix("| ").startswith(label), figure
        assert float(measured) > 0 or label.startswith("idle"), figure
        assert goal.strip() == expected_goal, figure
        assert verdict.strip(" |") in (("met", "NOT met") if expected_goal else ("",)), figure


# The tables `--workers` prints (their first cells), and the goals judged for the generated worker.
WORKER_TABLES = (
    "| queue | 10 ms I/O jobs/s | enqueue-to-start p50 / p99 ms | idle worker, Redis commands/s "
    "| how it waits |",
    "| queue (no-op jobs/s) | 1 worker | 2 workers | 2 against 1 |",
    "| queue (Redis commands per job) | 10 ms I/O, 1 worker | no-op, 1 worker | no-op, 2 workers",
    "| queue (Redis per no-op job: enqueue + worker) | commands, 1 worker "
    "| commandstats µs, 1 worker",
    "| job kind | workers | generated worker jobs/s | plain arq, same tuning jobs/s | ratio",
    "| goal | measured | target | verdict |",
)
WORKER_GOALS = (
    "10 ms I/O jobs/s, generated worker, 1 worker (max_jobs 10)",
    "10 ms I/O jobs/s, the event loop alone (10 slots, no queue)",
    "10 ms I/O jobs/s, generated worker / the event loop alone",
    "enqueue-to-start p50 ms, generated worker",
    "enqueue-to-start p99 ms, generated worker",
    "idle worker Redis commands/s, generated worker",
    "no-op jobs/s, generated worker / plain arq, same tuning, 1 worker",
    "Redis commands per no-op job, enqueue + worker, generated worker, 1 worker",
    "Redis CPU per no-op job (enqueue + worker), generated worker / SAQ, 1 worker",
    "no-op jobs/s, generated worker / taskiq, list broker, 1 worker",
    "no-op jobs/s, generated worker, 4 workers / 1 worker",
)
WORKER_SIZES = (
    "--rounds 1 --workers 1,2 --workers-only --noop-jobs 200 --io-jobs 100 --idle-seconds 1 "
    "--latency-jobs 10"
)


def run_workers_bench(*options: str) -> str:
    result = subprocess.run(
        [sys.executable, "bench/compare.py", *WORKER_SIZES.split(), *options],
        cwd=TEMPLATE_ROOT,
        env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def rows_after(output: str, header: str) -> list[list[str]]:
    """The cells of each row of the table under `header`."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("| "):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


@pytest.mark.slow
def test_bench_workers_prints_the_worker_tables() -> None:
    output = run_workers_bench()
    assert "CPU cores usable" in output
    for header in WORKER_TABLES:
        assert any(line.startswith(header) for line in output.splitlines()), f"no {header!r}"
    one_worker = {row[0]: row for row in rows_after(output, WORKER_TABLES[0])}
    assert set(one_worker) == {"generated worker", "plain arq, same tuning"}
    for label, io_rate, waits, idle, _ in one_worker.values():
        p50, p99 = (float(part) for part in waits.split(" / "))
        assert float(io_rate) > 0 and 0 < p50 <= p99 and float(idle) >= 0, label
    for row in rows_after(output, WORKER_TABLES[1]):
        assert all(float(cell) > 0 for cell in row[1:]), row
    for row in rows_after(output, WORKER_TABLES[3]):  # "enqueue + worker = total" per cell
        for cell in row[1:]:
            enqueue, worker, total = (float(part) for part in cell.replace("=", "+").split("+"))
            assert enqueue > 0 and worker > 0 and abs(enqueue + worker - total) < 0.2, row
    goals = {row[0]: row for row in rows_after(output, WORKER_TABLES[-1])}
    for goal in WORKER_GOALS:
        assert goal in goals, f"no goal {goal!r}"
    # Only 1 and 2 workers measured: the 4-worker goals say so instead of a verdict.
    assert goals[WORKER_GOALS[-1]][3] == "not measured: needs 4 in --workers"
    assert goals[WORKER_GOALS[0]][3] in ("meets", "misses")
    # The ceiling the 10 ms figure is read against: measured, no verdict of its own.
    assert float(goals[WORKER_GOALS[1]][1]) > 0 and goals[WORKER_GOALS[1]][3] == "-"
    assert float(goals[WORKER_GOALS[2]][1]) > 0 and goals[WORKER_GOALS[2]][3] == "-"


@pytest.mark.slow
def test_bench_peers_adds_a_row_per_peer() -> None:
    output = run_workers_bench("--peers", "taskiq")
    assert "taskiq, list broker (taskiq " in output  # its versions, on the line above the tables
    for header in WORKER_TABLES[:3]:
        labels = [row[0] for row in rows_after(output, header)]
        assert labels == ["generated worker", "plain arq, same tuning", "taskiq, list broker"]
    taskiq = rows_after(output, WORKER_TABLES[0])[-1]
    assert "BRPOP blocked" in taskiq[4]  # how it waits, from CLIENT LIST


def test_keda_sizing_prints_its_inputs_the_queue_over_time_and_a_summary() -> None:
    result = subprocess.run(
        [sys.executable, "bench/keda_sizing.py", "--duration", "300", "--burst-rate", "2000"],
        cwd=TEMPLATE_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("inputs: throughput=800, target=200, min_replicas=1")
    rows = [line.split() for line in lines if line.strip()[:1].isdigit()]
    assert [int(row[0]) for row in rows] == list(range(0, 300, 15))  # one row per KEDA poll
    workers = [int(row[3]) for row in rows]
    assert workers[0] == 1  # the minimum before the burst at 60 s
    assert max(workers) == 10  # 2,000 jobs/s need more than the 800/s one worker drains
    assert lines[-1].startswith("wait at each poll: p50 ")


def assert_goal_table(
    result: "subprocess.CompletedProcess[str]", expected: tuple[tuple[str, str], ...]
) -> None:
    """A bench script ran, said what it ran on, and printed one row per `expected` (label,
    goal): a figure above 0 (maybe followed by more words), its goal, and a verdict where
    there is a goal."""
    assert result.returncode == 0, result.stderr[-3000:]
    assert "CPUs" in result.stdout.splitlines()[0]
    table = [line.split(" | ") for line in result.stdout.splitlines() if line.startswith("| ")]
    rows = table[1:]  # after the header
    assert len(rows) == len(expected)
    for (figure, measured, goal, verdict), (label, expected_goal) in zip(
        rows, expected, strict=True
    ):
        assert figure.removeprefix("| ") == label, figure
        assert float(measured.split()[0]) > 0, figure
        assert goal.strip() == expected_goal, figure
        assert verdict.strip(" |") in (("met", "NOT met") if expected_goal else ("",)), figure


# The rows bench/limits.py prints (their first cells, up to the sizes), and the goals it judges.
LIMITS_ROWS = (
    ('rate_limit="50/s", 2 workers, 100 jobs queued: jobs started in the first 1 s', "50 ± 2 %"),
    ('rate_limit="50/s": most starts in any 1 s window', "≤ 55"),
    ('rate_limit="50/s": gap between starts p50 ms', ""),
    ('rate_limit="50/s": gap between starts p99 ms', ""),
    ("max_concurrency=3, 2 workers, 12 jobs of 50 ms: most running at once", "≤ 3"),
    ("max_concurrency=3: jobs/s", ""),
    ("max_concurrency=3: jobs/s / 3 slots' ideal (60/s)", "≥ 0.95"),
)


@pytest.mark.slow
def test_bench_limits_prints_every_figure_and_its_goal() -> None:
    sizes = "--seconds 1 --workers 2 --job-seconds 0.05 --concurrency-jobs 12"
    result = subprocess.run(
        [sys.executable, "bench/limits.py", *sizes.split()],
        cwd=TEMPLATE_ROOT,
        env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert_goal_table(result, LIMITS_ROWS)


# The rows bench/workflows.py prints (their first cells, up to the sizes), and the goals it judges.
WORKFLOWS_ROWS = (
    ("200 no-op jobs: enqueue_many, jobs/s", ""),
    ("200 no-op jobs: enqueue_task one after another, jobs/s", ""),
    ("200 no-op jobs: enqueue_task gathered, jobs/s", ""),
    ("enqueue_many / one after another (each round's, median; rounds' range)", "≥ 10"),
    ("5,000 progress reports in a tight loop: writes", ""),
    ("progress: writes per second of the job's run", "≤ 20"),
    ("a chain of 100 no-op steps, steps/s (max_jobs 1)", ""),
    ("100 independent no-op jobs, jobs/s (max_jobs 1)", ""),
    ("chain steps / independent jobs, rate (each round's, median; rounds' range)", "≥ 0.8"),
    ("a Redis round trip (PING, the project's client), µs, median", ""),
    ("Redis commands per chain step", ""),
    ("Redis commands per independent job", ""),
    ("chain step / independent job, commands", "≤ 1.5"),
    (
        "a group of 100 members and a callback on 4 worker processes, 2 runs: runs with the "
        "callback once, with every result",
        "= 2",
    ),
)


@pytest.mark.slow
def test_bench_workflows_prints_every_figure_and_its_goal() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "bench/workflows.py",
            "--rounds",
            "1",
            "--jobs",
            "200",
            "--reports",
            "5000",
            "--steps",
            "100",
            "--members",
            "100",
            "--group-runs",
            "2",
        ],
        cwd=TEMPLATE_ROOT,
        env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert_goal_table(result, WORKFLOWS_ROWS)


@pytest.mark.slow
def test_bench_dashboard_prints_every_figure_and_its_goal() -> None:
    result = subprocess.run(
        [sys.executable, "bench/dashboard.py", "--jobs", "300", "--requests", "2"],
        cwd=TEMPLATE_ROOT,
        env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert_goal_table(
        result,
        (
            ("GET /dashboard p50 ms", "< 300"),
            ("GET /dashboard p95 ms", ""),
            ("GET /dashboard/live p50 ms", ""),
            ("GET /dashboard/live bytes", "< 51200"),
            ("GET /dashboard bytes", ""),
        ),
    )
