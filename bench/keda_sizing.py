"""Size the workers' autoscaling on paper: replay a bursty workload through KEDA's scaling rule.

    uv run python bench/keda_sizing.py [--throughput 800] [--target 200] [--min 1] [--max 20]
                                       [--base-rate 50] [--burst-rate 4000] [--burst-seconds 120]
                                       [--burst-every 600] [--duration 1500] [--startup 20]

The baked project's KEDA ScaledObject (deploy/kubernetes/components/keda/) has two triggers and
asks for the larger answer, between `--min` and `--max`: `ceil(waiting / target)` workers, where
`waiting` is the gauge `arq_queue_jobs_waiting` (jobs due and not started), and as many workers
as are busy (`arq_queue_jobs_running` over WORKER_MAX_JOBS; here, the workers needed to carry
the jobs finished in the last second). This script replays a workload second by second through
that rule and prints the queue over time, so that a user can choose `targetValue`,
`minReplicaCount` and `maxReplicaCount` before deploying. Its defaults are the ScaledObject's
settings as the template writes them; it does not read the manifest, so pass yours if you
changed them.

The model, with the ScaledObject's defaults:
- jobs arrive at `--base-rate` per second, and at `--burst-rate` for `--burst-seconds` every
  `--burst-every` seconds (the first burst at 60 s);
- every ready worker finishes up to `--throughput` jobs per second. The default, 800, is a
  little under what one worker process drained of 10 ms I/O-bound jobs in bench/compare.py on
  2 cores (935/s, docs/benchmarks.md), for headroom; no-op jobs reach about 2,000/s; give your
  own job's figure;
- KEDA reads the gauge every `--polling` seconds (15); the HPA then scales up at once, by
  100% or 4 pods per 15 s, whichever is more, and scales down only to the highest
  recommendation of the last `--stabilization` seconds (300), by at most 2 pods a minute;
- a new worker takes `--startup` seconds (20) from being asked for to taking jobs: scheduling,
  container start, Python start, the first heartbeat;
- with `--min 0`, KEDA itself starts the first worker (0 to 1) and the HPA takes over from there;
- the columns, one row per KEDA poll: `arrive/s`, jobs arriving per second; `waiting`, the backlog
  KEDA reads; `workers`, requested; `ready`, taking jobs; `wait s`, a job's estimated wait, the
  backlog over the ready workers' capacity (Little's law; `inf` with none ready);
  "worker-minutes" counts requested workers, which is what a cluster bills.

It models the rule, not a cluster: no node autoscaling delay, no image pull, no fallback (KEDA
holds 4 workers when it cannot read the gauges), and the throughput of every worker is the
same. The table goes to stdout; bad inputs end it with one line and exit status 2.
"""

import argparse
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Inputs:
    throughput: float
    target: int
    min_replicas: int
    max_replicas: int
    base_rate: float
    burst_rate: float
    burst_seconds: int
    burst_every: int
    duration: int
    polling: int
    startup: int
    stabilization: int


@dataclass
class Sample:
    second: int
    arrivals_per_second: float
    waiting: float
    requested: int
    ready: int
    wait_seconds: float


def arrival_rate(inputs: Inputs, second: int) -> float:
    """Jobs per second arriving at `second`: the base rate, or the burst rate during a burst."""
    since_first_burst = second - 60
    in_burst = (
        since_first_burst >= 0 and since_first_burst % inputs.burst_every < inputs.burst_seconds
    )
    return inputs.burst_rate if in_burst else inputs.base_rate


def desired_replicas(inputs: Inputs, waiting: float, finished_per_second: float) -> int:
    """KEDA's AverageValue rule on each trigger, the larger answer, within the bounds: one worker
    per `target` waiting jobs; and the workers the jobs finished in the last second kept busy."""
    for_backlog = math.ceil(waiting / inputs.target)
    busy = math.ceil(finished_per_second / inputs.throughput - 1e-9)
    return max(inputs.min_replicas, min(inputs.max_replicas, max(for_backlog, busy)))


def scale(
    inputs: Inputs, current: int, history: list[tuple[int, int]], now: int, last_down: int
) -> int:
    """The HPA's behaviour from the ScaledObject: up at once by 100% or 4 pods, whichever is
    more; down only to the highest recommendation of the stabilization window, by at most 2
    pods a minute. `history` holds (second, recommendation) pairs, the newest last."""
    wanted = history[-1][1]
    if wanted > current:
        if current == 0:
            return 1  # KEDA's activation; the HPA cannot scale from zero
        return min(wanted, current + max(current, 4))
    stabilized = max(count for second, count in history if now - second < inputs.stabilization)
    if stabilized < current and now - last_down >= 60:
        return max(stabilized, current - 2)
    return current


def simulate(inputs: Inputs) -> list[Sample]:
    """One sample per KEDA poll."""
    waiting = 0.0
    requested = inputs.min_replicas
    starts = [-inputs.startup] * requested  # when each requested worker was asked for
    history: list[tuple[int, int]] = []
    last_down = -60
    samples = []
    for second in range(inputs.duration):
        ready = sum(1 for started in starts if second - started >= inputs.startup)
        capacity = ready * inputs.throughput
        rate = arrival_rate(inputs, second)
        waiting += rate
        finished = min(waiting, capacity)
        waiting -= finished
        if second % inputs.polling:
            continue
        history.append((second, desired_replicas(inputs, waiting, finished)))
        new = scale(inputs, requested, history, second, last_down)
        if new < requested:
            last_down = second
            starts = sorted(starts)[:new]  # the newest workers stop first
        starts += [second] * (new - requested)
        requested = new
        wait = waiting / capacity if capacity else math.inf
        samples.append(Sample(second, rate, waiting, requested, ready, wait))
    return samples


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--throughput", type=float, default=800, help="jobs/s one worker drains")
    parser.add_argument(
        "--target", type=int, default=200, help="targetValue: waiting jobs per worker"
    )
    parser.add_argument("--min", dest="min_replicas", type=int, default=1)
    parser.add_argument("--max", dest="max_replicas", type=int, default=20)
    parser.add_argument("--base-rate", type=float, default=50, help="jobs/s between bursts")
    parser.add_argument("--burst-rate", type=float, default=4000, help="jobs/s during a burst")
    parser.add_argument("--burst-seconds", type=int, default=120)
    parser.add_argument("--burst-every", type=int, default=600)
    parser.add_argument("--duration", type=int, default=1500, help="seconds replayed")
    parser.add_argument("--polling", type=int, default=15, help="KEDA's pollingInterval, s")
    parser.add_argument("--startup", type=int, default=20, help="s from asked for to ready")
    parser.add_argument("--stabilization", type=int, default=300, help="scale-down window, s")
    inputs = Inputs(**vars(parser.parse_args()))
    problems = [
        f"--{name.replace('_', '-')} must be at least {least}"
        for name, least in (
            ("throughput", 1),
            ("target", 1),
            ("polling", 1),
            ("burst_every", 1),
            ("duration", 1),
            ("max", 1),
        )
        if getattr(inputs, "max_replicas" if name == "max" else name) < least
    ]
    if inputs.min_replicas < 0 or inputs.min_replicas > inputs.max_replicas:
        problems.append("--min must be between 0 and --max")
    if problems:
        parser.error("; ".join(problems))

    print("inputs: " + ", ".join(f"{key}={value}" for key, value in vars(inputs).items()))
    samples = simulate(inputs)
    print(f"\n{'t s':>6} {'arrive/s':>9} {'waiting':>9} {'workers':>8} {'ready':>6} {'wait s':>8}")
    for sample in samples:
        wait = "inf" if math.isinf(sample.wait_seconds) else f"{sample.wait_seconds:.1f}"
        print(
            f"{sample.second:>6} {sample.arrivals_per_second:>9.0f} {sample.waiting:>9.0f} "
            f"{sample.requested:>8} {sample.ready:>6} {wait:>8}"
        )
    waits = [s.wait_seconds for s in samples]
    worker_minutes = sum(s.requested for s in samples) * inputs.polling / 60
    print(
        f"\nwait at each poll: p50 {percentile(waits, 0.5):.1f} s,"
        f" p95 {percentile(waits, 0.95):.1f} s, max {max(waits):.1f} s;"
        f" peak workers {max(s.requested for s in samples)};"
        f" {worker_minutes:.0f} worker-minutes over {inputs.duration / 60:.0f} minutes"
    )


if __name__ == "__main__":
    main()
