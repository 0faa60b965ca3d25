"""The other queues compare.py compares arq with: Celery (`--celery`) and SAQ, streaq and taskiq
(`--peers`), each run by a script of its own in a venv of its own.

They cannot share the project's venv (Celery wants a newer redis-py than arq allows, and the
peers bring their own dependencies), so the outside half makes a venv per queue with uv and the
inside half runs celery_drain.py or peer_drain.py there, once per round, and reads the JSON on
their last line. What each script measures, and how, is in its own docstring; this module only
makes their venvs, starts them with the run's sizes, and names their rows. Standard library at
the top level (celery_drain.py and peer_drain.py are imported only for their venv helpers).
"""

import argparse
import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

from compare_harness import PEER_TIMEOUT_SECONDS, RUN_TIMEOUT_SECONDS, say

CELERY_POOLS = ("solo", "prefork")
CELERY_SCRIPT = Path(__file__).resolve().with_name("celery_drain.py")
PEER_SCRIPT = Path(__file__).resolve().with_name("peer_drain.py")
PEERS = ("saq", "streaq", "taskiq")
PEER_LABELS = {
    "saq": "SAQ",
    "streaq": "streaq",
    "taskiq": "taskiq, list broker",
    "celery": "Celery, threads pool",
}


def peer_names(text: str) -> list[str]:
    """ "saq,taskiq" as ["saq", "taskiq"]: peers known to peer_drain.py, in PEERS' order."""
    names = {part.strip() for part in text.split(",") if part.strip()}
    if not names or names - set(PEERS):
        raise argparse.ArgumentTypeError(f"{text!r}: peers are among {', '.join(PEERS)}")
    return [name for name in PEERS if name in names]


# --- outside: the venvs ------------------------------------------------------------------------


def celery_venv(scratch: Path, environment: dict[str, str]) -> Path:
    """The Python of a venv with Celery, for the default figures' Celery rows (`--celery`)."""
    from celery_drain import celery_python  # beside this file, standard library only

    say("a venv for Celery")
    return celery_python(scratch, environment)


def peer_venvs(
    args: argparse.Namespace, scratch: Path, project: Path, environment: dict[str, str]
) -> dict[str, Path]:
    """For --workers with --peers (and --celery), each peer's venv Python, made with uv with the
    project's own Python version, so that every queue runs on the same interpreter."""
    if not args.workers:
        return {}
    from peer_drain import peer_python  # beside this file, standard library only

    queues = [*args.peers, *(("celery",) if args.celery else ())]
    python = project / ".venv" / "bin" / "python"
    version = subprocess.run(
        [str(python), "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    pythons = {}
    for queue in queues:
        say(f"a venv for {PEER_LABELS[queue]} (Python {version})")
        pythons[queue] = peer_python(scratch, environment, queue, version)
    return pythons


# --- inside: one run per round -----------------------------------------------------------------


async def run_celery(redis_url: str, pool: str, options: dict[str, Any]) -> dict:
    """One run of celery_drain.py (a drain and a latency series) with Celery's `pool`."""
    command = [options["celery_python"], options["celery_script"]]
    command += ["--redis-url", redis_url, "--pool", pool]
    for name in ("jobs", "latency_jobs", "latency_rate", "seed"):
        command += [f"--{name.replace('_', '-')}", str(options[name])]
    run = await asyncio.create_subprocess_exec(*command, stdout=subprocess.PIPE)
    output, _ = await asyncio.wait_for(run.communicate(), RUN_TIMEOUT_SECONDS)
    if run.returncode != 0:
        raise RuntimeError(f"celery_drain.py --pool {pool} exited {run.returncode}")
    return json.loads(output.decode().splitlines()[-1])


async def run_peer(
    args: argparse.Namespace, queue: str, python: str, redis_url: str, latency_jobs: int, seed: int
) -> dict[str, Any]:
    """One round of peer_drain.py for `queue`, in its venv: 10 ms jobs with one worker process,
    no-op jobs with each of --workers, then the idle window and the latency series."""
    command = [python, args.peer_script, "--queue", queue, "--redis-url", redis_url]
    command += ["--workers", ",".join(map(str, args.workers)), "--io-workers", "1"]
    command += ["--noop-jobs", str(args.noop_jobs), "--io-jobs", str(args.io_jobs)]
    command += ["--idle-seconds", str(args.idle_seconds), "--latency-jobs", str(latency_jobs)]
    command += ["--latency-rate", str(args.latency_rate), "--seed", str(seed)]
    run = await asyncio.create_subprocess_exec(*command, stdout=subprocess.PIPE)
    output, _ = await asyncio.wait_for(run.communicate(), PEER_TIMEOUT_SECONDS)
    if run.returncode != 0:
        raise RuntimeError(f"peer_drain.py --queue {queue} exited {run.returncode}")
    return json.loads(output.decode().splitlines()[-1])


def celery_label(pool: str, runs: list[dict]) -> str:
    """ "Celery 5.7.0, solo pool (1 process)" from a celery_drain.py report."""
    processes = runs[0]["concurrency"]
    return f"Celery {runs[0]['celery']}, {pool} pool ({processes} process{'es' * (processes > 1)})"
