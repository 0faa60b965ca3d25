"""compare.py's --workers and --metrics rounds: whole worker processes, the same way for every
queue (figures 8 to 13 of compare.py's docstring).

The method (start K worker processes, "go" together, a drain's end seen from the jobs' shared
file, then the idle window and the latency series) is benchkit's, so that the generated worker,
plain arq and the peers (peer_drain.py, in their venvs) are measured by the same code. This
module decides what each round runs, in which order (rotated by one per round, so no queue is
always first), and collects the figures per queue for compare_report.py. Which workers run is
compare_arq.py's (`queue_drivers`) and compare_peers.py's.
"""

import argparse
import socket
from typing import Any

from benchkit import (
    IO,
    NOOP,
    QueueDriver,
    drain_in_processes,
    idle_and_latency,
    latency_gaps,
    rotated,
)
from compare_arq import LOOP_ALONE, WORKER, WORKER_METRICS
from compare_harness import PEER_TIMEOUT_SECONDS, say, share
from compare_peers import PEER_LABELS, run_peer


async def workers_round(
    args: argparse.Namespace,
    index: int,
    redis_url: str,
    drivers: dict[str, QueueDriver],
    loop_alone: QueueDriver,
    found: dict[str, dict[str, Any]],
) -> None:
    """Round `index` of --workers' figures, added to `found` (per queue: "drains" by
    "kind:processes", each a list over rounds; "idle", a list over rounds; "waits_ms"; for the
    generated worker also "loop_alone": the 10 ms drain of `loop_alone`'s process, jobs/s, a
    list over rounds, run right after the queues' 10 ms drains)."""
    for label in (*drivers, *(PEER_LABELS[q.partition("=")[0]] for q in args.peer_python)):
        found.setdefault(label, {"drains": {}, "idle": [], "waits_ms": []})
    for kind, jobs in ((IO, args.io_jobs), (NOOP, args.noop_jobs)):
        for processes in args.workers:
            for label in rotated(tuple(drivers), index):
                drained = await drain_in_processes(
                    redis_url, drivers[label], kind, jobs, processes, PEER_TIMEOUT_SECONDS
                )
                rate = drained["jobs_per_s"]
                say(f"  {label}, {jobs} {kind} jobs, {processes} processes: {rate:.0f} jobs/s")
                found[label]["drains"].setdefault(f"{kind}:{processes}", []).append(drained)
        if kind == IO:
            drained = await drain_in_processes(
                redis_url, loop_alone, IO, jobs, 1, PEER_TIMEOUT_SECONDS
            )
            say(f"  {LOOP_ALONE}, {jobs} {kind} jobs: {drained['jobs_per_s']:.0f} jobs/s")
            found[WORKER].setdefault("loop_alone", []).append(drained["jobs_per_s"])
    count = share(args.latency_jobs, args.rounds, index)
    gaps = latency_gaps(count, args.latency_rate, args.seed + index)
    for label in rotated(tuple(drivers), index):
        served = await idle_and_latency(
            redis_url, drivers[label], args.idle_seconds, gaps, PEER_TIMEOUT_SECONDS
        )
        say(f"  {label}, idle: {served['idle_commands_per_s']:.1f} Redis commands/s")
        add_served(found[label], served)
    for peer in rotated(tuple(args.peer_python), index):
        queue, _, python = peer.partition("=")
        report = await run_peer(args, queue, python, redis_url, count, args.seed + index)
        entry = found[PEER_LABELS[queue]]
        entry["versions"] = report["versions"]
        for key, drained in report["drains"].items():
            entry["drains"].setdefault(key, []).append(drained)
        add_served(entry, report)


async def metrics_round(
    args: argparse.Namespace,
    index: int,
    redis_url: str,
    drivers: dict[str, QueueDriver],
    found: dict[str, dict[str, Any]],
) -> None:
    """Round `index` of --metrics: the generated worker with metrics off and on, one process
    each, no-op and 10 ms jobs; added to `found` as workers_round adds its drains."""
    plain = drivers[WORKER]
    port = free_port()
    with_metrics = [*plain.worker_command, "--metrics-port", str(port)]
    both = {
        WORKER: plain,
        WORKER_METRICS: QueueDriver(with_metrics, plain.enqueue, plain.enqueue_stamp),
    }
    for kind, jobs in ((NOOP, args.noop_jobs), (IO, args.io_jobs)):
        for label in rotated(tuple(both), index):
            drained = await drain_in_processes(
                redis_url, both[label], kind, jobs, 1, PEER_TIMEOUT_SECONDS
            )
            say(f"  {label}, {jobs} {kind} jobs: {drained['jobs_per_s']:.0f} jobs/s")
            entry = found.setdefault(label, {"drains": {}})
            entry["drains"].setdefault(f"{kind}:1", []).append(drained)


def free_port() -> int:
    """A TCP port free on the loopback now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def add_served(entry: dict[str, Any], served: dict[str, Any]) -> None:
    """One idle_and_latency() run into a queue's figures."""
    entry["waits_ms"] += served["waits_ms"]
    entry["idle"].append({key: value for key, value in served.items() if key != "waits_ms"})
