# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Operator commands for the queue, behind `just worker-check`, `just dead-letters`,
`just requeue <id>`, `just purge-dead-letters`, `just metrics`, `just queue-stats`,
`just pause <queue>`, `just resume <queue>` and `just queue-migrate` (and `ping`, which
`just worker` runs first):

    uv run python -m {{ cookiecutter.package_name }}.infrastructure.ops.cli ping
    uv run python -m {{ cookiecutter.package_name }}.infrastructure.ops.cli worker-check [--this-host] [--queue NAME]
    uv run python -m {{ cookiecutter.package_name }}.infrastructure.ops.cli dead-letters [--queue NAME]
    uv run python -m {{ cookiecutter.package_name }}.infrastructure.ops.cli requeue JOB_ID
    uv run python -m {{ cookiecutter.package_name }}.infrastructure.ops.cli purge-dead-letters [--queue NAME] [--yes]
    uv run python -m {{ cookiecutter.package_name }}.infrastructure.ops.cli metrics
    uv run python -m {{ cookiecutter.package_name }}.infrastructure.ops.cli queue-stats [--queue NAME] [--watch [--interval SECONDS]]
    uv run python -m {{ cookiecutter.package_name }}.infrastructure.ops.cli pause NAME
    uv run python -m {{ cookiecutter.package_name }}.infrastructure.ops.cli resume NAME
    uv run python -m {{ cookiecutter.package_name }}.infrastructure.ops.cli queue-migrate [OLD_QUEUE_NAME] [--force]

Exit codes: 0 done (worker-check: at least one worker alive), 1 the answer is "no" (no worker
alive, no such dead letter, purge not confirmed, queue-migrate refused or left jobs behind,
the queue was paused or not paused already), 2 Redis cannot be reached or refuses the command
(out of memory, a read-only replica, ...: one line says which), a setting is invalid, or
`--queue` names a queue QUEUES lacks.

Every queue of QUEUES by default: `dead-letters` lists each queue's, `purge-dead-letters` deletes
each queue's (its question names each queue and its count), `queue-stats` draws a table per queue
and `metrics` prints each queue's gauges, labelled with its key; `--queue NAME` narrows the first
three to one queue. `requeue` finds a letter's queue from its id. `pause` and `resume` take a
queue's name (one of QUEUES) and act as the dashboard's buttons do (store/pause.py), on behalf
of `<user>@<host>`, which they print and the pause keeps. `queue-stats --watch` redraws in place on a terminal; written to a file or a
pipe, it prints a new set of tables each interval instead, each headed by the time.
"""

import argparse
import asyncio
import getpass
import socket
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from ...config import get_settings
from ...logs import one_line
from ..client.enqueue import (
    JobArgumentError,
    RequeueRefused,
    UnknownTaskError,
    close_task_pool,
    requeue_blocker,
    requeue_dead_letter,
)
from ..settings import describe_invalid_settings
from ..store import dead_letters
from ..store.connection import (
    RedisUnavailableError,
    close_pool,
    connect,
    redis_location,
    unavailable,
    write_refusal,
)
from ..store.depth import queue_stats_of
from ..store.heartbeat import MARGIN_SECONDS, live_workers
from ..store.pause import pause_queue, resume_queue
from .activity import OUTCOMES, QueueCounts, queue_counts
from .migrate import move_queue, queue_type

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.table import Table


async def ping(redis: Redis, args: argparse.Namespace) -> int:
    server = await redis.info("server")
    print(f"Redis {server['redis_version']} answers at {redis_location()}")
    refusal = await write_refusal(redis)
    if refusal is not None:  # a worker still starts, and waits until Redis takes its writes
        print(f"but it would refuse writes now: {refusal.message}", file=sys.stderr)
    return 0


async def worker_check(redis: Redis, args: argparse.Namespace) -> int:
    settings = get_settings()
    queue_names = chosen_queues(args.queue or settings.served_queues[0])
    if queue_names is None:
        return 2
    [queue_name] = queue_names
    host = socket.gethostname() if args.this_host else None
    workers = await live_workers(redis, queue_name, host=host)
    where = f" on host {host}" if host else ""
    if not workers:
        window = settings.worker_health_check_interval + MARGIN_SECONDS
        print(
            f"no worker alive on queue {queue_name}{where} "
            f"(none sent a heartbeat in the last {window:g} s)",
            file=sys.stderr,
        )
        return 1
    print(f"{len(workers)} worker(s) alive on queue {queue_name}{where}")
    for worker in workers:
        print(f"  {worker.host} pid {worker.pid}, up since {worker.started_at}")
    return 0


def chosen_queues(queue: str | None) -> list[str] | None:
    """The keys of the queues a command looks at: `queue`'s (a name of QUEUES), or every queue's
    in QUEUES' order for None. An unknown name is refused in one line (None: exit 2)."""
    settings = get_settings()
    if queue is None:
        return list(settings.queue_keys.values())
    queue_name = settings.queue_keys.get(queue)
    if queue_name is None:
        known = ", ".join(settings.queues)
        print(one_line(f"no queue named {queue!r}: QUEUES lists {known}"), file=sys.stderr)
        return None
    return [queue_name]


async def list_dead_letters(redis: Redis, args: argparse.Namespace) -> int:
    queue_names = chosen_queues(args.queue)
    if queue_names is None:
        return 2
    for queue_name in queue_names:
        print_dead_letters(queue_name, await dead_letters.all_letters(redis, queue_name))
    return 0


def print_dead_letters(queue_name: str, letters: Sequence[dead_letters.DeadLetter]) -> None:
    print(f"{len(letters)} dead letter(s) on queue {queue_name}")
    for letter in letters:
        blocker = requeue_blocker(letter)
        # Each field on its line, control characters escaped: what a job was given or raised
        # cannot forge a line of this listing or steer the terminal (logs.one_line).
        print(
            one_line(
                f"  {letter.job_id}  {letter.function}  tries={letter.tries}  "
                f"failed={letter.failed_at:%Y-%m-%d %H:%M:%S}  {letter.error_type}: {letter.error}"
            ),
            one_line(f"      args={letter.args!r} kwargs={letter.kwargs!r}"),
            one_line(f"      {requeue_hint(letter.job_id, blocker)}"),
            sep="\n",
        )


def requeue_hint(job_id: str, blocker: str | None) -> str:
    if blocker is None:
        return f"requeue: just requeue {job_id}"
    return f"cannot be requeued: {blocker}"


async def requeue(redis: Redis, args: argparse.Namespace) -> int:
    try:
        job = await requeue_dead_letter(args.job_id)
    except (LookupError, RequeueRefused, UnknownTaskError, JobArgumentError) as error:
        # The record stays (or is put back) when it cannot be queued.
        print(str(error).strip("'\""), file=sys.stderr)
        return 1
    finally:
        await close_task_pool()
    print(f"requeued {args.job_id} as job {job.job_id}")
    return 0


async def purge_dead_letters(redis: Redis, args: argparse.Namespace) -> int:
    """Delete the dead letters of the queue named, or of every queue: the question (skipped by
    --yes) names each queue that has some, and how many."""
    queue_names = chosen_queues(args.queue)
    if queue_names is None:
        return 2
    counts = {name: await dead_letters.count(redis, name) for name in queue_names}
    counts = {name: count for name, count in counts.items() if count}
    if not counts:
        print(f"no dead letters on queue {', '.join(queue_names)}")
        return 0
    if not args.yes and not _confirm(f"Delete {dead_letters_on(counts)}?"):
        print("nothing deleted (confirm at the prompt, or pass --yes)", file=sys.stderr)
        return 1
    deleted = {name: await dead_letters.purge(redis, name) for name in counts}
    if len(deleted) == 1:
        print(f"deleted {sum(deleted.values())} dead letter(s)")
    else:
        print(f"deleted {dead_letters_on(deleted)}")
    return 0


def dead_letters_on(counts: dict[str, int]) -> str:
    """The counts in words: `3 dead letter(s) on queue {p:bulk}`, or for several queues
    `3 dead letter(s): 1 on queue {p:critical}, 2 on queue {p:bulk}`."""
    total = sum(counts.values())
    if len(counts) == 1:
        return f"{total} dead letter(s) on queue {next(iter(counts))}"
    return f"{total} dead letter(s): " + ", ".join(
        f"{count} on queue {name}" for name, count in counts.items()
    )


async def print_metrics(redis: Redis, args: argparse.Namespace) -> int:
    # Imported here: prometheus-client is for this command only, the others start without it.
    from .metrics import render_queue_gauges

    queue_names = list(get_settings().queue_keys.values())
    stats = await queue_stats_of(redis, queue_names)
    sys.stdout.write(render_queue_gauges(stats).decode())
    return 0


async def print_queue_stats(redis: Redis, args: argparse.Namespace) -> int:
    """The dashboard's counts as a table per queue; with --watch, redrawn in place until Ctrl-C."""
    # Imported here: rich is for this command only, the others start without it.
    from rich.console import Console
    from rich.live import Live

    queue_names = chosen_queues(args.queue)
    if queue_names is None:
        return 2
    console = Console()
    if not args.watch:
        console.print(await queue_stats_tables(redis, queue_names))
        return 0
    if not console.is_terminal:
        # rich's Live draws only on a terminal: elsewhere (a file, a pipe, `watch`-less logs)
        # it would print nothing until the end, which never comes. A full print each time.
        while True:
            console.print(await queue_stats_tables(redis, queue_names))
            console.file.flush()
            await asyncio.sleep(args.interval)
    with Live(console=console, auto_refresh=False) as live:
        while True:
            live.update(await queue_stats_tables(redis, queue_names), refresh=True)
            await asyncio.sleep(args.interval)


def operator() -> str:
    """Who runs this command, kept with a pause and printed: `user@host`."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container's)
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


async def pause(redis: Redis, args: argparse.Namespace) -> int:
    queue_names = chosen_queues(args.queue)
    if queue_names is None:
        return 2
    [queue_name] = queue_names
    who = operator()
    earlier = await pause_queue(redis, queue_name, who)
    if earlier is not None:
        since = f"{datetime.fromtimestamp(earlier.at):%Y-%m-%d %H:%M:%S}" if earlier.at else "?"
        print(f"queue {queue_name} is already paused (by {earlier.by} since {since})")
        return 1
    print(f"queue {queue_name} paused by {who}: workers take no new jobs from it within a second")
    return 0


async def resume(redis: Redis, args: argparse.Namespace) -> int:
    queue_names = chosen_queues(args.queue)
    if queue_names is None:
        return 2
    [queue_name] = queue_names
    if not await resume_queue(redis, queue_name):
        print(f"queue {queue_name} is not paused")
        return 1
    print(f"queue {queue_name} resumed by {operator()}")
    return 0


async def queue_migrate(redis: Redis, args: argparse.Namespace) -> int:
    """Move the jobs, results and dead letters of the queue before namespaces (migrate.py)."""
    old_queue, new_queue = args.old_queue_name, get_settings().queue_name
    if old_queue == new_queue:
        print(
            f"{old_queue} is the new queue: name the old one (QUEUE_NAME's value)", file=sys.stderr
        )
        return 1
    kind = await queue_type(redis, old_queue)
    if kind not in {"zset", "none"}:
        print(f"{old_queue} is not a queue: its key holds a {kind}", file=sys.stderr)
        return 1
    workers = await live_workers(redis, old_queue)
    if workers and not args.force:
        print(
            f"{len(workers)} worker(s) still alive on the old queue {old_queue} "
            f"({', '.join(f'{worker.host} pid {worker.pid}' for worker in workers)}): "
            "stop them first (or pass --force)",
            file=sys.stderr,
        )
        return 1
    moved = await move_queue(redis, old_queue, new_queue)
    if moved.jobs or moved.results or moved.dead_letters:
        print(
            f"moved {moved.jobs} job(s), {moved.results} result(s) and {moved.dead_letters} "
            f"dead letter(s) from {old_queue} to {new_queue}"
        )
    else:
        print(f"nothing to move from {old_queue} to {new_queue}: no jobs, results or dead letters")
    if moved.jobs_left or moved.results_left:
        print(
            f"left {moved.jobs_left} job(s) and {moved.results_left} result(s) under {old_queue}: "
            f"their ids are taken in {new_queue}",
            file=sys.stderr,
        )
        return 1
    return 0


async def queue_stats_tables(redis: Redis, queue_names: Sequence[str]) -> "RenderableType":
    """A table per queue, in QUEUES' order, each titled with the queue's key."""
    from rich.console import Group

    counts = await asyncio.gather(*(queue_counts(redis, name) for name in queue_names))
    tables = [queue_stats_table(name, each) for name, each in zip(queue_names, counts, strict=True)]
    return Group(*tables)


def queue_stats_table(queue_name: str, counts: QueueCounts) -> "Table":
    from rich.table import Table

    stats = counts.stats
    title = f"queue {queue_name} at {datetime.now():%H:%M:%S}"
    table = Table(title=title, title_justify="left")
    table.add_column("")
    table.add_column("now", justify="right")
    table.add_column("", justify="right")
    table.add_row("waiting", str(stats.waiting), "")
    table.add_row("deferred", str(stats.deferred), "")
    table.add_row("running", str(stats.running), "")
    table.add_row(
        "dead letters", str(stats.dead_letters), "", style="red" if stats.dead_letters else ""
    )
    table.add_row(
        "live workers", str(stats.live_workers), "", style="" if stats.live_workers else "red"
    )
    if stats.paused is None:
        table.add_row("paused", "no", "")
    else:
        at = datetime.fromtimestamp(stats.paused.at) if stats.paused.at else None
        since = f" since {at:%Y-%m-%d %H:%M:%S}" if at else ""
        table.add_row("paused", "yes", f"by {stats.paused.by}{since}", style="red")
    table.add_section()
    table.add_row("tries ended", "last minute", "last 15 minutes", style="bold")
    for outcome in OUTCOMES:
        table.add_row(outcome, str(counts.last_minute[outcome]), str(counts.last_window[outcome]))
    return table


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        return False
    return input(f"{question} [y/N] ").strip().lower() in {"y", "yes"}


Command = Callable[[Redis, argparse.Namespace], Awaitable[int]]


def positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"not a number of seconds above 0: {text!r}")
    return seconds


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m {__name__}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    answer = commands.add_parser("ping", help="exit 0 if Redis answers at REDIS_URL")
    answer.set_defaults(run=ping)

    check = commands.add_parser("worker-check", help="exit 0 if a worker on the queue is alive")
    check.add_argument("--this-host", action="store_true", help="count only this host's workers")
    check.add_argument(
        "--queue",
        metavar="NAME",
        help="the queue to look at (default: the first that WORKER_QUEUES serves)",
    )
    check.set_defaults(run=worker_check)

    listing = commands.add_parser("dead-letters", help="list the jobs that failed for good")
    listing.add_argument(
        "--queue", metavar="NAME", help="only this queue's (default: each queue of QUEUES)"
    )
    listing.set_defaults(run=list_dead_letters)

    again = commands.add_parser("requeue", help="put a dead-lettered job back on the queue")
    again.add_argument("job_id")
    again.set_defaults(run=requeue)

    purge = commands.add_parser(
        "purge-dead-letters",
        help="delete the dead letters of every queue (or --queue's), after confirmation",
    )
    purge.add_argument(
        "--queue",
        metavar="NAME",
        help="only this queue's (default: every queue of QUEUES; the question names each)",
    )
    purge.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    purge.set_defaults(run=purge_dead_letters)

    metrics = commands.add_parser(
        "metrics", help="print every queue's gauges in Prometheus's text format"
    )
    metrics.set_defaults(run=print_metrics)

    stats = commands.add_parser(
        "queue-stats", help="each queue's counts, as the dashboard shows, a table per queue"
    )
    stats.add_argument(
        "--queue", metavar="NAME", help="only this queue (default: each queue of QUEUES)"
    )
    stats.add_argument("--watch", action="store_true", help="redraw until Ctrl-C")
    stats.add_argument(
        "--interval", type=positive_seconds, default=2.0, help="seconds between redraws (2)"
    )
    stats.set_defaults(run=print_queue_stats)

    for name, run_it, help_text in (
        ("pause", pause, "workers take no new jobs from the queue until it is resumed"),
        ("resume", resume, "workers take jobs from a paused queue again"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("queue", metavar="NAME", help="the queue's name, one of QUEUES")
        command.set_defaults(run=run_it)

    migrate = commands.add_parser(
        "queue-migrate", help="move the jobs of the queue before namespaces into this one"
    )
    migrate.add_argument(
        "old_queue_name",
        nargs="?",
        default="{{ cookiecutter.project_slug }}:queue",
        metavar="OLD_QUEUE_NAME",
        help="QUEUE_NAME's value before the update ({{ cookiecutter.project_slug }}:queue)",
    )
    migrate.add_argument(
        "--force", action="store_true", help="even while a worker on the old queue is alive"
    )
    migrate.set_defaults(run=queue_migrate)
    return parser.parse_args(argv)


async def run(command: Command, args: argparse.Namespace) -> int:
    try:
        # One attempt: an operator (or a healthcheck) wants the answer now, not after retries.
        redis = await connect(retries=0)
    except RedisUnavailableError as error:
        print(error, file=sys.stderr)
        return 2
    try:
        return await command(redis, args)
    except (RedisError, OSError) as error:  # RedisUnavailableError too (requeue's enqueue)
        # connection.py's line: the cause (out of reach, out of memory, read-only, ...) and
        # what to check, never the password.
        print(unavailable(error), file=sys.stderr)
        return 2
    finally:
        await close_pool(redis)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        get_settings()
    except ValidationError as error:
        print(describe_invalid_settings(error), file=sys.stderr)
        return 2
    try:
        return asyncio.run(run(args.run, args))
    except KeyboardInterrupt:  # Ctrl-C: how `queue-stats --watch` ends
        return 0 if getattr(args, "watch", False) else 130


if __name__ == "__main__":
    sys.exit(main())
