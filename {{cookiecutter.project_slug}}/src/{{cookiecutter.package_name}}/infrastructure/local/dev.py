# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""`just dev`: the local server (redis_server.py), a worker that restarts when the code changes{% if cookiecutter.api_framework == "fastapi" %}, and the web API{% endif %}.

A module of its own, apart from the server: it supervises processes (when to start, stop, kill
and restart them), which the tests and `just redis` never need.
{%- if cookiecutter.api_framework == "fastapi" %}

    uv run python -m {{ cookiecutter.package_name }}.infrastructure.local.dev --worker --reload --api  # just dev
{%- else %}

    uv run python -m {{ cookiecutter.package_name }}.infrastructure.local.dev --worker --reload  # just dev
{%- endif %}

Without `--worker` it runs the server alone, as `just redis` does. Each child gets a `Watcher`
(redis_server.py): none outlives this process, however it ends.

How `just dev` stops: the worker runs in a session of its own, so a terminal's Ctrl-C reaches this
process (and `uv` and `just`, which wait for it), never the worker. The first Ctrl-C (or SIGTERM,
or SIGHUP) prints one line and sends the worker one SIGTERM: arq takes no new job and gives the
running ones WORKER_SHUTDOWN_GRACE seconds. Another one, a second or more later, stops the worker
at once (`DevWorker.kill` says how its jobs run again). A clean stop exits 0, a forced one 130.
The recipes `exec` this command under just's `[continue]`: no shell dies of the Ctrl-C, and just
accepts it when the command exits 0.

`--reload` starts a new worker process when a file under the package changes (watchfiles, a dev
dependency). arq's own `--watch` restarts the worker inside the same process, which never imports
the changed code again.

Why not honcho/watchfiles: measured on 2 cores against a Procfile of three lines (redis-server,
`watchfiles --filter python 'python -m ...worker'`, `uvicorn --reload`) under honcho 2.0. Both
leave no process and no port behind, and exit 1 when the worker fails to start. But on one
Ctrl-C honcho exits 130 (this module 0, which just's `[continue]` needs to stay quiet), and
it sends SIGTERM to every process then SIGKILL after a fixed 5 s (KILL_WAIT): a running job never
gets WORKER_SHUTDOWN_GRACE, and a killed job keeps its in-progress mark until it expires, where a
second Ctrl-C here releases it to run again at once (exit 130 1.3 s after it; honcho 3.2 s, at
its 5 s kill). watchfiles' own restart (`run_process`) is faster (1.4 to 2.4 s from a write to the
new worker's first line, against 2.4 to 3.3 s here, both with a test run beside them) because
it SIGINTs the worker without waiting for its jobs; here the restart waits as a Ctrl-C does,
and watchfiles is still what sees the change. Neither checks the ports before starting, or
stops the worker when Redis dies. This module is 506 lines; it stays, by the exit code and the
grace measurements, and the template's tests of them (test_dev.py).
"""

import argparse
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, cast

import redis
from arq.logs import default_log_config

from ...config import Settings, get_settings
from ..store.heartbeat import (
    GATHER_SECONDS,
    escape_glob,
    key_prefix,
    release_jobs_of_dead_worker,
    running_prefix,
)
from .redis_server import (
    DEV_DATA_DIR,
    TICK_SECONDS,
    Listener,
    LocalRedisServer,
    StopRequests,
    Watcher,
{%- if cookiecutter.api_framework == "fastapi" %}
    free_port,
    kill_group,
{%- endif %}
    run_with_redis,
    say,
    shown,
{%- if cookiecutter.api_framework == "fastapi" %}
    stop_process,
{%- endif %}
)

# By dotted path: the dev runner starts the worker as a process of its own, never importing it.
INFRASTRUCTURE = f"{__package__}".rpartition(".")[0]
WORKER_MODULE = f"{INFRASTRUCTURE}.worker"
WORKER_SETTINGS = f"{INFRASTRUCTURE}.tasks.WorkerSettings"
# What `--reload` watches: this package's source folder (this file is in infrastructure/local/).
PACKAGE_DIR = Path(__file__).resolve().parents[2]
# How long past its grace period a stopping worker may take before it is killed.
SHUTDOWN_MARGIN_SECONDS = 10.0
# 128 + SIGINT, as a shell reports an interrupted command: the exit code of a forced stop.
FORCED_STOP_EXIT_CODE = 130
{%- if cookiecutter.api_framework == "fastapi" %}
# What `just dev --api` serves beside the worker: the web API, on 127.0.0.1.
API_APP = f"{PACKAGE_DIR.name}.api.app:create_app"
API_PORT = 8000
# How long the API gets to finish its requests on a stop before it is killed.
API_STOP_SECONDS = 5.0
{%- endif %}


class QuietShutdown(logging.Filter):
    """Drops arq's own shutdown announcements: `just dev` has already said it in one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        announcement = ("Setting allow_pick_jobs", "shutdown on")
        return not (record.name == "arq.worker" and str(record.msg).startswith(announcement))


def _dev_log_config() -> dict[str, Any]:
    """arq's log settings, less its shutdown announcements; applied on top of the project's
    (logs.py), so arq's lines go through this handler only."""
    config = default_log_config(verbose=False)
    config["filters"] = {"quiet_shutdown": {"()": QuietShutdown}}
    config["handlers"]["arq.standard"]["filters"] = ["quiet_shutdown"]
    config["loggers"]["arq"]["propagate"] = False
    return config


# What the dev worker's `arq --custom-log-dict` loads.
DEV_LOG_CONFIG = _dev_log_config()


class DevWorker:
    """The worker of `just dev` (worker.py), a child process in a session of its own.

    Its own session keeps the terminal's Ctrl-C from reaching it: it gets exactly one signal,
    from `stop`, not the terminal's and then ours (arq would announce each).
    """

    def __init__(self, redis_url: str, settings_path: str) -> None:
        self.redis_url = redis_url
        self.settings_path = settings_path
        settings = get_settings()
        # The queues it serves: its heartbeats and running-lists are per queue (heartbeat.py).
        self.queue_names = [settings.queue_keys[queue] for queue in settings.served_queues]
        self.stop_seconds = settings.worker_shutdown_grace + SHUTDOWN_MARGIN_SECONDS
        self.process: subprocess.Popen[bytes] | None = None
        self._watcher: Watcher | None = None

    def start(self) -> None:
        log_config = f"{__package__}.dev.DEV_LOG_CONFIG"
        command = [sys.executable, "-m", WORKER_MODULE, "--custom-log-dict", log_config]
        self.process = subprocess.Popen(
            [*command, self.settings_path],
            env={**os.environ, "REDIS_URL": self.redis_url},
            start_new_session=True,
        )
        self._watcher = Watcher(self.process, self.stop_seconds)

    @property
    def running(self) -> bool:
        if self.process is None:
            return False
        if self.process.poll() is None:
            return True
        if self._watcher is not None:  # reaped: its process id is free for another process
            self._watcher.release()
        return False

    def running_jobs(self) -> int | None:
        """How many jobs the worker is running, or None if Redis can't say."""
        # The worker lists a job in Redis at most GATHER_SECONDS after starting it.
        time.sleep(5 * GATHER_SECONDS)
        try:
            with self._redis() as client:
                keys = self._keys(client, running_prefix)
                return sum(cast(int, client.scard(key)) for _, key in keys)
        except (redis.RedisError, OSError):
            return None

    def stop(self) -> None:
        """Ask the worker to stop: arq takes no new job and gives the running ones
        WORKER_SHUTDOWN_GRACE seconds before it cancels them (they run again)."""
        assert self.process is not None
        # SIGTERM, as compose and Kubernetes send; a worker still importing the code dies of it
        # quietly, where SIGINT would print a KeyboardInterrupt traceback.
        self.process.send_signal(signal.SIGTERM)

    def kill(self) -> int | None:
        """Stop the worker at once and let its running jobs run again; returns how many jobs
        were let go, or None if Redis can't be reached (they then wait out their marks).

        arq has no "stop now" once it waits for running jobs (another signal only starts another
        wait), so the worker is killed. Its running jobs stay on the queue, each held by arq's
        in-progress mark, a key that lives the job's time limit plus 10 s (arq #343). But the
        worker listed them next to its heartbeat (heartbeat.py), so this does at once what any
        live worker does for a dead one: delete the killed worker's heartbeat key, then run
        heartbeat.py's RELEASE_JOBS_OF_DEAD_WORKER, which deletes those in-progress marks. The
        next worker to look, in this run or the next (the data is kept), runs them again; the
        lost run counts as a try. A job started in the last GATHER_SECONDS is not listed yet:
        it waits out its mark.
        """
        assert self.process is not None
        if self._watcher is not None:
            self._watcher.release()
        self.process.kill()
        self.process.wait()
        released = 0
        try:
            with self._redis() as client:
                for _, heartbeat in self._keys(client, key_prefix):
                    client.delete(heartbeat)
                for queue_name, running in self._keys(client, running_prefix):
                    identity = running.removeprefix(running_prefix(queue_name))
                    heartbeat = key_prefix(queue_name) + identity
                    call = release_jobs_of_dead_worker(queue_name, heartbeat, running)
                    count = client.eval(*call)
                    released += cast(int, count)
        except (redis.RedisError, OSError):
            return None
        return released

    def _redis(self) -> redis.Redis:
        return redis.Redis.from_url(
            self.redis_url, decode_responses=True, socket_timeout=2, socket_connect_timeout=2
        )

    def _keys(self, client: redis.Redis, prefix: Callable[[str], str]) -> list[tuple[str, str]]:
        """This worker's keys under `prefix(queue)` of each queue it serves, with the queue:
        `<prefix><host>:<pid>:<random>`."""
        assert self.process is not None
        found = []
        for queue_name in self.queue_names:
            mine = f"{prefix(queue_name)}{socket.gethostname()}:{self.process.pid}:"
            for key in client.scan_iter(match=escape_glob(mine) + "*", count=500):
                found.append((queue_name, str(key)))
        return found


{%- if cookiecutter.api_framework == "fastapi" %}


class DevApi:
    """The web API of `just dev --api`: uvicorn in a session of its own, reloading on changes
    under `reload_dir` itself (uvicorn's --reload), stopped with the worker."""

    def __init__(self, redis_url: str, port: int, reload_dir: Path | None) -> None:
        command = [sys.executable, "-m", "uvicorn", API_APP, "--factory"]
        command += ["--host", "127.0.0.1", "--port", str(port)]
        if reload_dir is not None:
            command += ["--reload", "--reload-dir", str(reload_dir)]
        self.process = subprocess.Popen(
            command, env={**os.environ, "REDIS_URL": redis_url}, start_new_session=True
        )
        self._watcher = Watcher(self.process, API_STOP_SECONDS)

    def exited(self) -> int | None:
        return self.process.poll()

    def stop(self, *, at_once: bool = False) -> None:
        """SIGTERM (uvicorn finishes the requests in flight), then SIGKILL after
        API_STOP_SECONDS; at once with `at_once`."""
        self._watcher.release()
        # uvicorn --reload serves from a child process: kill its whole group, or the child
        # lives on, still holding the port.
        if at_once:
            kill_group(self.process)
        stop_process(self.process, signal.SIGTERM, timeout=API_STOP_SECONDS)
        kill_group(self.process)  # whatever of the group outlived its leader


def run_dev(
    redis_url: str,
    stop_requests: StopRequests,
    *,
    settings_path: str,
    reload_dir: Path | None,
    server: LocalRedisServer | None = None,
    api_port: int | None = None,
) -> int:
    """Run the worker, and with `api_port` the web API, until stopped (see the module
    docstring); returns the exit code."""
    api = None if api_port is None else DevApi(redis_url, api_port, reload_dir)
    if api is not None:
        say(f"the API is at http://127.0.0.1:{api_port} (docs at /docs)")
    try:
        code = _run_worker(
            redis_url,
            stop_requests,
            settings_path=settings_path,
            reload_dir=reload_dir,
            server=server,
        )
    finally:
        if api is not None:
            api.stop(at_once=stop_requests.count > 1)
    return code


def _run_worker(
{%- else %}


def run_dev(
{%- endif %}
    redis_url: str,
    stop_requests: StopRequests,
    *,
    settings_path: str,
    reload_dir: Path | None,
    server: LocalRedisServer | None = None,
) -> int:
    """Run the worker until stopped (see the module docstring); returns the exit code.

    With `reload_dir`, a change under it starts a new worker once the old one has stopped as on
    a first Ctrl-C; a worker that exits by itself starts again on the next change.
    """
    grace = get_settings().worker_shutdown_grace
    worker = DevWorker(redis_url, settings_path)
    if reload_dir is not None:
        say(f"the worker restarts when a file under {shown(reload_dir)}/ changes")
    ticks = _quiet_ticks() if reload_dir is None else _file_changes(reload_dir)
    handled = 0  # stop requests acted on
    goal: Literal["exit", "reload"] | None = None
    deadline = math.inf  # for a stopping worker
    worker.start()
    for changes in ticks:
        if server is not None and server.poll() is not None:
            say(f"error: redis-server exited (code {server.poll()}); stopping the worker")
            if worker.running:
                worker.kill()
            return 1
        while handled < stop_requests.count:
            handled += 1
            if goal == "exit":  # a second Ctrl-C
                released = worker.kill() if worker.running else 0
                say(f"stopped now: {_left_to_run_again(released)}")
                return FORCED_STOP_EXIT_CODE
            goal = "exit"
            if not worker.running:
                return 0
            say(f"stopping: {_waiting(worker.running_jobs(), grace)}; Ctrl-C again to stop now")
            worker.stop()
            deadline = time.monotonic() + grace + SHUTDOWN_MARGIN_SECONDS
        if changes and goal is None:
            changed = ", ".join(sorted(shown(Path(path)) for path in changes)[:3])
            if worker.running:
                goal = "reload"
                jobs = worker.running_jobs()
                waiting = f"; {_waiting(jobs, grace)}" if jobs else ""
                say(f"reloading: {changed} changed{waiting}")
                worker.stop()
                deadline = time.monotonic() + grace + SHUTDOWN_MARGIN_SECONDS
            else:
                say(f"reloading: {changed} changed")
                worker.start()
        if worker.running and time.monotonic() > deadline:
            waited = grace + SHUTDOWN_MARGIN_SECONDS
            released = worker.kill()
            say(f"killed the worker after {waited} s: {_left_to_run_again(released)}")
            if goal == "exit":
                return 1
        if worker.process is None or worker.running:
            continue
        code = worker.process.returncode
        if goal == "exit":
            return 0 if code in (0, -signal.SIGTERM) else 1
        if goal == "reload":
            goal, deadline = None, math.inf
            worker.start()
        elif reload_dir is None:
            return code if code >= 0 else 128 - code
        else:
            say(f"the worker exited (code {code}); it starts again when a file changes")
            worker.process = None
    return 0


def _quiet_ticks() -> Iterator[set[str]]:
    """Every TICK_SECONDS: no changed file."""
    while True:
        time.sleep(TICK_SECONDS)
        yield set()


def _file_changes(folder: Path) -> Iterator[set[str]]:
    """Every TICK_SECONDS or sooner: the paths changed under `folder` (often none).

    Only `.py` files count (watchfiles' PythonFilter, which also skips __pycache__ and .git).
    """
    from watchfiles import PythonFilter, watch

    timeout_ms = int(TICK_SECONDS * 1000)
    # Python files only: an editor's or sed's temporary files must not restart the worker.
    python_files = PythonFilter()
    for changes in watch(
        folder, watch_filter=python_files, rust_timeout=timeout_ms, yield_on_timeout=True
    ):
        yield {path for _, path in changes}


def _waiting(running_jobs: int | None, grace: int) -> str:
    if running_jobs == 0:
        return "no job is running"
    jobs = "the running jobs" if running_jobs is None else _count(running_jobs, "running job")
    return f"waiting up to {grace} s for {jobs}"


def _left_to_run_again(released: int | None) -> str:
    if released is None:
        return "its running jobs run again once their in-progress marks expire"
    return f"{_count(released, 'running job')} left to run again"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def listeners(args: argparse.Namespace) -> Callable[[Settings], list[Listener]]:
    """The ports besides Redis's that `just dev` listens on, with the line for each one taken."""

    def wanted(settings: Settings) -> list[Listener]:
        found: list[Listener] = []
{%- if cookiecutter.api_framework == "fastapi" %}
        if args.api is not None:
            in_use = (
                f"port {args.api} on 127.0.0.1 is in use (another API?), so nothing was started: "
                f"stop it, or pass another port with --api: uv run just dev --api {free_port()}"
            )
            found.append(Listener(args.api, "127.0.0.1", "the API", "--api", in_use))
{%- endif %}
        port, host = settings.worker_metrics_port, settings.worker_metrics_host
        if args.worker and port is not None:
            in_use = (
                f"port {port} on {host} is in use, so nothing was started: the worker serves its "
                "metrics there; stop what holds it, or set WORKER_METRICS_PORT to another port "
                "(or unset it) in .env"
            )
            found.append(
                Listener(port, host, "the worker's metrics", "WORKER_METRICS_PORT", in_use)
            )
        return found

    return wanted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--worker", action="store_true", help="also run an arq worker (just dev)")
    parser.add_argument(
        "--reload",
        action="store_true",
        help="with --worker: start a new worker when a file under --reload-dir changes",
    )
    parser.add_argument(
        "--reload-dir",
        type=Path,
        default=PACKAGE_DIR,
        help="the folder --reload watches (default: this package's)",
    )
    parser.add_argument(
        "--worker-settings",
        default=WORKER_SETTINGS,
        help="the settings the worker runs, as `arq` takes them (default: %(default)s)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEV_DATA_DIR,
        help="where the local server keeps its data (default: %(default)s)",
    )
{%- if cookiecutter.api_framework == "fastapi" %}
    parser.add_argument(
        "--api",
        type=int,
        nargs="?",
        const=API_PORT,
        metavar="PORT",
        help=f"with --worker: also run the web API on 127.0.0.1:PORT (default {API_PORT})",
    )
{%- endif %}
    args = parser.parse_args(argv)
    if args.reload and not args.worker:
        parser.error("--reload needs --worker")
{%- if cookiecutter.api_framework == "fastapi" %}
    if args.api is not None and not args.worker:
        parser.error("--api needs --worker")
{%- endif %}
    if args.reload:
        try:
            import watchfiles  # noqa: F401
        except ImportError:
            print("error: --reload needs watchfiles (a dev dependency): uv sync", file=sys.stderr)
            return 2
    command = "just dev" if args.worker else "just redis"
    if not args.worker:
        return run_with_redis(command, args.data_dir, listeners(args))
    reload_dir = args.reload_dir if args.reload else None

    def run(redis_url: str, stop_requests: StopRequests, server: LocalRedisServer | None) -> int:
        return run_dev(
            redis_url,
            stop_requests,
            settings_path=args.worker_settings,
            reload_dir=reload_dir,
            server=server,
{%- if cookiecutter.api_framework == "fastapi" %}
            api_port=args.api,
{%- endif %}
        )

    return run_with_redis(command, args.data_dir, listeners(args), run)


if __name__ == "__main__":
    sys.exit(main())
