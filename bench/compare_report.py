"""What compare.py prints: the machine line and the Markdown tables, with targets and verdicts,
from the inside half's JSON report.

Kept apart from the measuring so that the tables can change without touching what is measured,
and so that the outside half (the template's environment, no arq) can print them: standard
library and benchkit only. Rates are medians over rounds; a ratio is the median of the
per-round ratios (both figures of a ratio come from the same round, so a drift across rounds
cancels out). The goals for the generated worker under --workers and --metrics are here, next
to the verdicts they give.
"""

import statistics
from typing import Any

from benchkit import IO, NOOP, how_it_waits, paired_ratios, percentile
from compare_arq import (
    ARQ_DEFAULTS,
    ARQ_TUNED,
    ARQ_TUNED_UNCAPPED,
    CONFIGURATIONS,
    GENERATED,
    GENERATED_PROCESSES,
    GENERATED_TWO,
    GENERATED_UNCAPPED,
    LOOP_ALONE,
    PLAIN_ARQ,
    WORKER,
    WORKER_METRICS,
)
from compare_peers import PEER_LABELS, celery_label

# The issues' goals for the generated worker (--workers): #14's, with #25's stricter figures
# (10 ms jobs, enqueue→start) and its goals against the peers and per job.
IO_GOAL = 970.0  # 10 ms jobs/s, one worker, max_jobs 10 (10 slots of 10 ms allow 1,000)
P50_GOAL, P99_GOAL = 1.3, 3.0  # enqueue→start ms
IDLE_GOAL = 5.0  # Redis commands/s
COMMANDS_PER_JOB_GOAL = 10.0  # Redis commands per no-op job, enqueue + worker, one worker
CPU_AGAINST_SAQ_GOAL = 1.0  # Redis CPU per no-op job (enqueue + worker) against SAQ's
NOOP_AGAINST_TASKIQ_GOAL = 1.0  # no-op jobs/s against taskiq's list broker, one worker each
NOOP_RATIO_GOAL = 1.0  # no-op jobs/s against plain arq, same tuning, one worker each
COMMANDS_GROWTH_GOAL = 1.2  # commands per no-op job, 4 workers against 1
SCALE_GOAL = 3.7  # no-op jobs/s, 4 workers against 1
SCALE_CORES = 8  # the scale goals need this many cores
# --metrics: jobs/s with metrics on / off.
METRICS_RATIO_GOAL = 0.97


def waits_summary(values: list[float]) -> dict[str, float]:
    """Enqueue→start percentiles in ms over all rounds' jobs, and how many jobs they cover."""
    return {
        "count": len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
    }


def verdict(value: float, target: float | None, at_least: bool) -> tuple[str, str]:
    """The target as text and "meets"/"misses" ("-" twice without a target)."""
    if target is None:
        return "-", "-"
    meets = value >= target if at_least else value <= target
    return f"{'≥' if at_least else '≤'} {target:g}", "meets" if meets else "misses"


def paired_ratio(tops: list[float], bottoms: list[float]) -> float:
    """The median over rounds of each round's ratio: a drift across rounds cancels out."""
    return statistics.median(top / bottom for top, bottom in zip(tops, bottoms, strict=True))


def print_table(report: dict[str, Any], bakes: dict[str, float], elapsed: float) -> None:
    meta, r = report["meta"], report["results"]
    print(
        f"arq {meta['arq']}, redis-server {meta['redis']}, Python {meta['python']}, "
        f"{meta['cpus']} CPUs, {meta['machine']}; {meta['rounds']} rounds, medians"
    )
    print()
    if "drain" in r:
        print_default_table(meta, r, bakes)
        print()
    if "queues" in r:
        print_worker_tables(meta, r["queues"])
        print()
    if "metrics" in r:
        print_metrics_table(meta, r["metrics"])
        print()
    print(f"total run time {elapsed:.0f} s")


def print_default_table(meta: dict[str, Any], r: dict[str, Any], bakes: dict[str, float]) -> None:
    rows: list[tuple[str, str, float | None, bool]] = []  # figure, value, target, at least?
    drain = r["drain"]
    for label in CONFIGURATIONS:
        row = drain[label]
        value = f"{row['jobs_per_s']:.0f} ({row['min']:.0f}-{row['max']:.0f})"
        figure = (
            f"drain {meta['jobs']} jobs, {label}: jobs/s (min-max; poll ceiling "
            f"{row['ceiling']:.0f})"
        )
        rows.append((figure, value, None, True))
    ratios = (
        (GENERATED, ARQ_DEFAULTS, 6.0),
        (GENERATED, ARQ_TUNED, 0.95),
        (GENERATED_UNCAPPED, ARQ_TUNED_UNCAPPED, None),
        (GENERATED_TWO, GENERATED, None),
        (GENERATED_PROCESSES, GENERATED, None),
    )
    for top, bottom, target in ratios:
        ratio = paired_ratio(drain[top]["rounds"], drain[bottom]["rounds"])
        rows.append((f"drain ratio {top} / {bottom}", f"{ratio:.2f}", target, True))
    celery = r.get("celery", {})
    for pool, runs in celery.items():
        rates = [run["drain_jobs_per_s"] for run in runs]
        value = f"{statistics.median(rates):.0f} ({min(rates):.0f}-{max(rates):.0f})"
        rows.append(
            (f"drain {meta['jobs']} jobs, {celery_label(pool, runs)}: jobs/s", value, None, True)
        )
        ratio = paired_ratio(drain[GENERATED]["rounds"], rates)
        rows.append((f"drain ratio {GENERATED} / Celery {pool}", f"{ratio:.2f}", None, True))
    latencies = dict(r["latency"])
    for pool, runs in celery.items():
        latencies[celery_label(pool, runs)] = waits_summary(
            [w for run in runs for w in run["waits_ms"]]
        )
    for label, waits in latencies.items():
        for pct, target in (("p50", 30.0), ("p95", None), ("p99", 60.0)):
            rows.append(
                (
                    f"enqueue→start {pct} ms, {label} ({waits['count']} jobs, average "
                    f"{meta['latency_rate']:g}/s)",
                    f"{waits[pct]:.0f}",
                    target if label == GENERATED else None,
                    False,
                )
            )
    enqueue = r["enqueue"]
    rows.append(("pool.enqueue_job: enqueues/s", f"{enqueue['enqueue_job']:.0f}", None, True))
    rows.append(("enqueue_task: enqueues/s", f"{enqueue['enqueue_task']:.0f}", None, True))
    ratio = paired_ratio(r["enqueue_rounds"]["enqueue_task"], r["enqueue_rounds"]["enqueue_job"])
    rows.append(("enqueue ratio enqueue_task / enqueue_job", f"{ratio:.3f}", 0.95, True))
    for label in CONFIGURATIONS:
        per_job = drain[label]["commands_per_job"]
        rows.append((f"Redis commands per job, {label}", f"{per_job:.2f}", None, False))
    for pool, runs in celery.items():
        per_job = statistics.median(run["commands_per_job"] for run in runs)
        label = celery_label(pool, runs)
        rows.append((f"Redis commands per job, {label}", f"{per_job:.2f}", None, False))
    cold = r["cold_start"]
    rows.append(("worker cold start s (Popen → first job start)", f"{cold:.3f}", 0.5, False))
    rows.append(("worker-check wall time s", f"{r['worker_check']:.3f}", 1.0, False))
    for backend, seconds in bakes.items():
        rows.append((f"bake time s, cache_backend={backend}", f"{seconds:.3f}", 1.0, False))

    print("| figure | value | target | verdict |")
    print("|---|---:|---:|---|")
    for figure, value, target, at_least in rows:
        number = float(value.split()[0])
        target_text, outcome = verdict(number, target, at_least)
        print(f"| {figure} | {value} | {target_text} | {outcome} |")


def drain_rate(queues: dict[str, Any], label: str, key: str, figure: str = "jobs_per_s") -> float:
    """A queue's median over rounds of a drain figure; `key` is "kind:processes"."""
    return statistics.median(run[figure] for run in queues[label]["drains"][key])


def loop_alone_rate(queues: dict[str, Any]) -> float:
    """The median over rounds of the event loop alone's 10 ms drain (compare_arq.loop_alone)."""
    return statistics.median(queues[WORKER]["loop_alone"])


def drain_ratio(
    queues: dict[str, Any],
    top: tuple[str, str],
    bottom: tuple[str, str],
    figure: str = "jobs_per_s",
) -> float:
    """The median of per-round ratios of two drains' figures, each (queue, "kind:processes")."""
    tops = [run[figure] for run in queues[top[0]]["drains"][top[1]]]
    bottoms = [run[figure] for run in queues[bottom[0]]["drains"][bottom[1]]]
    return statistics.median(paired_ratios(tops, bottoms))


def idle_rate(queues: dict[str, Any], label: str) -> float:
    return statistics.median(run["idle_commands_per_s"] for run in queues[label]["idle"])


# Redis's cost of one no-op job: (column, the drain figure of the enqueue, of the worker).
REDIS_COST_FIGURES = (
    ("commands", "enqueue_commands_per_job", "commands_per_job"),
    ("commandstats µs", "enqueue_redis_us_per_job", "redis_us_per_job"),
    ("Redis CPU µs", "enqueue_redis_cpu_us_per_job", "redis_cpu_us_per_job"),
)


def print_redis_cost_per_job(queues: dict[str, dict[str, Any]], counts: list[int]) -> None:
    """Per no-op job, what Redis does for its enqueue and for the workers that run it: each
    cell `enqueue + worker = total` (medians over rounds, each half on its own). Drains of an
    older report, without these figures, are left out."""
    columns = [(name, k, queued, ran) for k in counts for name, queued, ran in REDIS_COST_FIGURES]
    print(
        "| queue (Redis per no-op job: enqueue + worker) | "
        + " | ".join(f"{name}, {k} worker{'s' * (k > 1)}" for name, k, _, _ in columns)
        + " |"
    )
    print("|---|" + "---:|" * len(columns))
    for label in queues:
        cells = []
        for name, k, queued, ran in columns:
            runs = queues[label]["drains"][f"noop:{k}"]
            if not all(queued in run for run in runs):
                cells.append("")
                continue
            enqueue = drain_rate(queues, label, f"noop:{k}", queued)
            worker = drain_rate(queues, label, f"noop:{k}", ran)
            digits = 2 if name == "commands" else 1
            cells.append(
                f"{enqueue:.{digits}f} + {worker:.{digits}f} = {enqueue + worker:.{digits}f}"
            )
        print(f"| {label} | " + " | ".join(cells) + " |")


def redis_cpu_ratio(queues: dict[str, Any], top: str, bottom: str) -> float:
    """Redis CPU per no-op job, enqueue and one worker's run, of queue `top` over `bottom`."""

    def per_job(label: str) -> float:
        return sum(
            drain_rate(queues, label, "noop:1", figure)
            for figure in ("enqueue_redis_cpu_us_per_job", "redis_cpu_us_per_job")
        )

    return per_job(top) / per_job(bottom)


def print_worker_tables(meta: dict[str, Any], queues: dict[str, dict[str, Any]]) -> None:
    """--workers' tables: one worker of each queue; K workers on no-op jobs; Redis commands per
    job; the generated worker against plain arq for both kinds of job; the issue's goals."""
    counts, scaled = meta["workers"], meta["workers"][1:]
    peers = ", ".join(
        f"{label} ({', '.join(f'{name} {version}' for name, version in entry['versions'].items())})"
        for label, entry in queues.items()
        if "versions" in entry
    )
    print(
        f"--workers: {meta['usable_cpus']} CPU cores usable ({meta['cpus']} in the machine); "
        f"generated worker: {meta['worker_loop']}; plain arq with the project's tuning; "
        f"{meta['noop_jobs']} no-op and {meta['io_jobs']} 10 ms jobs per drain, "
        f"concurrency 10 per worker process" + (f"; peers: {peers}" if peers else "")
    )
    print()
    print(
        "| queue | 10 ms I/O jobs/s | enqueue-to-start p50 / p99 ms "
        "| idle worker, Redis commands/s | how it waits |"
    )
    print("|---|---:|---:|---:|---|")
    for label, entry in queues.items():
        waits = waits_summary(entry["waits_ms"])
        print(
            f"| {label} | {drain_rate(queues, label, 'io:1'):.0f} "
            f"| {waits['p50']:.1f} / {waits['p99']:.1f} | {idle_rate(queues, label):.1f} "
            f"| {how_it_waits(entry['idle'])} |"
        )
    print()
    print(
        f"The 10 ms job with no queue around it ({LOOP_ALONE}: as many coroutines as the "
        f"generated worker has slots, each running the job again as it ends, on the same loop): "
        f"{loop_alone_rate(queues):.0f} jobs/s, the most a worker of 10 slots drains here."
    )
    print()
    workers = [f"{k} worker{'s' * (k > 1)}" for k in counts]
    print(
        "| queue (no-op jobs/s) | "
        + " | ".join([*workers, *(f"{k} against 1" for k in scaled)])
        + " |"
    )
    print("|---|" + "---:|" * (len(counts) + len(scaled)))
    for label in queues:
        cells = [f"{drain_rate(queues, label, f'noop:{k}'):.0f}" for k in counts]
        cells += [
            f"{drain_ratio(queues, (label, f'noop:{k}'), (label, 'noop:1')):.2f}" for k in scaled
        ]
        print(f"| {label} | " + " | ".join(cells) + " |")
    print()
    print(
        "| queue (Redis commands per job) | 10 ms I/O, 1 worker | "
        + " | ".join(
            [*(f"no-op, {w}" for w in workers), *(f"no-op, {k} against 1" for k in scaled)]
        )
        + " |"
    )
    print("|---|---:|" + "---:|" * (len(counts) + len(scaled)))
    per_job = "commands_per_job"
    for label in queues:
        cells = [f"{drain_rate(queues, label, 'io:1', per_job):.2f}"]
        cells += [f"{drain_rate(queues, label, f'noop:{k}', per_job):.2f}" for k in counts]
        cells += [
            f"{drain_ratio(queues, (label, f'noop:{k}'), (label, 'noop:1'), per_job):.2f}"
            for k in scaled
        ]
        print(f"| {label} | " + " | ".join(cells) + " |")
    print()
    print_redis_cost_per_job(queues, [1, counts[-1]] if counts[-1] > 1 else [1])
    print()
    print(
        f"| job kind | workers | {WORKER} jobs/s | {PLAIN_ARQ} jobs/s | ratio "
        f"| {WORKER} against 1 | {PLAIN_ARQ} against 1 "
        f"| {WORKER} commands/job | {PLAIN_ARQ} commands/job |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for kind, name in ((NOOP, "no-op"), (IO, "10 ms I/O")):
        for k in counts:
            key = f"{kind}:{k}"
            cells = [f"{drain_rate(queues, label, key):.0f}" for label in (WORKER, PLAIN_ARQ)]
            cells.append(f"{drain_ratio(queues, (WORKER, key), (PLAIN_ARQ, key)):.2f}")
            cells += [
                f"{drain_ratio(queues, (label, key), (label, f'{kind}:1')):.2f}"
                for label in (WORKER, PLAIN_ARQ)
            ]
            cells += [
                f"{drain_rate(queues, label, key, per_job):.2f}" for label in (WORKER, PLAIN_ARQ)
            ]
            print(f"| {name} | {k} | " + " | ".join(cells) + " |")
    print()
    print("| goal | measured | target | verdict |")
    print("|---|---:|---:|---|")
    for goal, value, target, outcome in worker_goals(meta, queues):
        print(f"| {goal} | {value} | {target} | {outcome} |")


def print_metrics_table(meta: dict[str, Any], queues: dict[str, Any]) -> None:
    """--metrics' table: the generated worker with metrics off and on, and the goal, in jobs/s;
    then in the worker's CPU time per job, which other load on the machine moves far less than
    it moves wall-clock rates (its ratio is off / on: the jobs/s of a worker held by its CPU)."""
    print(
        f"--metrics: {meta['usable_cpus']} CPU cores usable ({meta['cpus']} in the machine); "
        f"generated worker: {meta['worker_loop']}; one worker process, max_jobs 10; "
        f"{meta['noop_jobs']} no-op and {meta['io_jobs']} 10 ms jobs per drain"
    )
    print()
    print(
        f"| job kind | figure | {WORKER} (min-max) | {WORKER_METRICS} (min-max) "
        "| ratio, metrics on against off (each round) | target | verdict |"
    )
    print("|---|---|---:|---:|---:|---:|---|")
    for kind, name in ((NOOP, "no-op"), (IO, "10 ms I/O")):
        key = f"{kind}:1"
        off, on = (queues[label]["drains"][key] for label in (WORKER, WORKER_METRICS))
        for figure, field in (
            ("jobs/s", "jobs_per_s"),
            ("worker CPU µs per job", "cpu_us_per_job"),
        ):
            cells = []
            for runs in (off, on):
                values = [run[field] for run in runs]
                cells.append(
                    f"{statistics.median(values):.0f} ({min(values):.0f}-{max(values):.0f})"
                )
            tops, bottoms = [run[field] for run in on], [run[field] for run in off]
            if field == "cpu_us_per_job":  # less CPU is more jobs: off / on
                tops, bottoms = bottoms, tops
            ratios = paired_ratios(tops, bottoms)
            ratio = statistics.median(ratios)
            target, outcome = verdict(ratio, METRICS_RATIO_GOAL, True)
            rounds = ", ".join(f"{each:.3f}" for each in ratios)
            print(
                f"| {name} | {figure} | {' | '.join(cells)} | {ratio:.3f} ({rounds}) "
                f"| {target} | {outcome} |"
            )


def worker_goals(meta: dict[str, Any], queues: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """The issue's goals for the generated worker: (goal, value, target, verdict), as text."""
    goals: list[tuple[str, str, str, str]] = []

    def judge(goal: str, value: float, target: float, at_least: bool, digits: int = 2) -> None:
        target_text, outcome = verdict(value, target, at_least)
        goals.append((goal, f"{value:.{digits}f}", target_text, outcome))

    io_rate = drain_rate(queues, WORKER, "io:1")
    judge(f"10 ms I/O jobs/s, {WORKER}, 1 worker (max_jobs 10)", io_rate, IO_GOAL, True, 0)
    # No goal of its own: what the figure above is read against.
    ceiling = loop_alone_rate(queues)
    goals.append(
        (f"10 ms I/O jobs/s, {LOOP_ALONE} (10 slots, no queue)", f"{ceiling:.0f}", "-", "-")
    )
    goals.append(
        (f"10 ms I/O jobs/s, {WORKER} / {LOOP_ALONE}", f"{io_rate / ceiling:.3f}", "-", "-")
    )
    waits = waits_summary(queues[WORKER]["waits_ms"])
    judge(f"enqueue-to-start p50 ms, {WORKER}", waits["p50"], P50_GOAL, False, 1)
    judge(f"enqueue-to-start p99 ms, {WORKER}", waits["p99"], P99_GOAL, False, 1)
    idle = idle_rate(queues, WORKER)
    judge(f"idle worker Redis commands/s, {WORKER}", idle, IDLE_GOAL, False, 1)
    noop_ratio = drain_ratio(queues, (WORKER, "noop:1"), (PLAIN_ARQ, "noop:1"))
    judge(f"no-op jobs/s, {WORKER} / {PLAIN_ARQ}, 1 worker", noop_ratio, NOOP_RATIO_GOAL, True)
    one_worker = (WORKER, "noop:1")
    per_job = sum(
        drain_rate(queues, WORKER, "noop:1", figure)
        for figure in ("enqueue_commands_per_job", "commands_per_job")
    )
    judge(
        f"Redis commands per no-op job, enqueue + worker, {WORKER}, 1 worker",
        per_job,
        COMMANDS_PER_JOB_GOAL,
        False,
        1,
    )
    cpu_goal = f"Redis CPU per no-op job (enqueue + worker), {WORKER} / SAQ, 1 worker"
    noop_goal = f"no-op jobs/s, {WORKER} / taskiq, list broker, 1 worker"
    saq, taskiq = PEER_LABELS["saq"], PEER_LABELS["taskiq"]
    if saq in queues:
        judge(cpu_goal, redis_cpu_ratio(queues, WORKER, saq), CPU_AGAINST_SAQ_GOAL, False)
    else:
        goals.append((cpu_goal, "-", "-", "not measured: needs --peers with saq"))
    if taskiq in queues:
        against = drain_ratio(queues, one_worker, (taskiq, "noop:1"))
        judge(noop_goal, against, NOOP_AGAINST_TASKIQ_GOAL, True)
    else:
        goals.append((noop_goal, "-", "-", "not measured: needs --peers with taskiq"))
    growth_goal = f"Redis commands per no-op job, {WORKER}, 4 workers / 1 worker"
    scale_goal = f"no-op jobs/s, {WORKER}, 4 workers / 1 worker"
    saq_goal = f"no-op jobs/s with 4 workers, {WORKER} / SAQ"
    if 4 not in meta["workers"]:
        for goal in (growth_goal, scale_goal, saq_goal):
            goals.append((goal, "-", "-", "not measured: needs 4 in --workers"))
        return goals
    four, one = (WORKER, "noop:4"), (WORKER, "noop:1")
    judge(
        growth_goal, drain_ratio(queues, four, one, "commands_per_job"), COMMANDS_GROWTH_GOAL, False
    )
    cores = meta["usable_cpus"]
    few_cores = f"skipped: needs ≥ {SCALE_CORES} cores (this machine has {cores})"
    scale = drain_ratio(queues, four, one)
    if cores < SCALE_CORES:
        goals.append((scale_goal, f"{scale:.2f}", f"≥ {SCALE_GOAL:g}", few_cores))
    else:
        judge(scale_goal, scale, SCALE_GOAL, True)
    if "SAQ" not in queues:
        goals.append((saq_goal, "-", "> 1", "not measured: needs --peers with saq"))
    else:
        against = drain_ratio(queues, four, ("SAQ", "noop:4"))
        outcome = few_cores if cores < SCALE_CORES else "meets" if against > 1 else "misses"
        goals.append((saq_goal, f"{against:.2f}", "> 1", outcome))
    return goals
