"""`just demo`: bake the default project, run it on embedded Redis, enqueue a job, print its result.

Steps: bake into a scratch folder (default answers, except a free Redis port so an existing
server on 6379 is left alone; the hooks' "Next steps" are held back, since the folder goes when
the demo ends), `uv sync`, start the project's own `just dev` (local Redis, a worker and the
API, the API on a free port too, so nothing already on 8000 is in the way; no worker metrics
port), enqueue `example_task` from a separate client process, print the result, then stop
everything with Ctrl-C's signal and check that the ports are closed again.

If `just dev` exits before Redis is ready (a port taken after all: it says which, in one line),
the demo stops at once with its code. Nothing the demo starts outlives it: a watcher process
(as the project's own `redis_server.Watcher`) waits on a pipe only the demo holds open, and
when the demo ends without stopping `just dev` itself (SIGKILL, a closed terminal) it stops
`just dev` as Ctrl-C does, kills it if it takes longer than STOP_SECONDS, and deletes the
scratch folder.
"""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

TEMPLATE_ROOT = Path(__file__).resolve().parents[1]
READY_TIMEOUT_SECONDS = 60
# How long `just dev` gets to stop on Ctrl-C's signal before it is killed.
STOP_SECONDS = 30
# Settings from the caller's environment that would point the demo's project elsewhere or open
# another port: the demo starts its own server, and runs no metrics endpoint.
FOREIGN_SETTINGS = ("REDIS_URL", "WORKER_METRICS_PORT")

# The watcher (`python -c WATCHER GROUP SECONDS FOLDER`): once the pipe on its stdin ends, SIGINT
# to `just dev`'s process group, SIGKILL after SECONDS, then delete the scratch folder.
WATCHER = """
import os, shutil, signal, sys, time
group, grace, folder = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
signal.signal(signal.SIGINT, signal.SIG_IGN)
sys.stdin.buffer.read()
def send(signum):
    try:
        os.killpg(group, signum)
        return True
    except OSError:
        return False
deadline = time.monotonic() + grace
if send(signal.SIGINT):
    while send(0) and time.monotonic() < deadline:
        time.sleep(0.1)
    send(signal.SIGKILL)
shutil.rmtree(folder, ignore_errors=True)
"""

CLIENT = """
import asyncio
from {package}.queue import close_task_pool, enqueue_task

async def main() -> None:
    job = await enqueue_task("example_task", message="Hello from the demo!")
    print(f"job {{job.job_id}} result: {{await job.result(timeout=30)!r}}")
    await close_task_pool()

asyncio.run(main())
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_is_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def tool_environment() -> dict[str, str]:
    """uv must use installed interpreters; pyenv's shims need every version listed to show them."""
    environment = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    environment.pop("VIRTUAL_ENV", None)
    versions = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    if versions.is_dir():
        environment["PYENV_VERSION"] = ":".join(sorted(p.name for p in versions.iterdir()))
    return environment


def say(message: str) -> None:
    print(f"demo: {message}", flush=True)


def bake_quietly(output_dir: str, answers: dict[str, str]) -> Path:
    """Bake as `cookiecutter --no-input` does, showing its output only if the bake fails.

    The post-generation hook prints "Next steps: cd <project> ..." for a folder this demo deletes
    when it ends, so that output is held back.
    """
    command = [sys.executable, "-m", "cookiecutter", "--no-input", str(TEMPLATE_ROOT)]
    arguments = ["-o", output_dir, *(f"{option}={value}" for option, value in answers.items())]
    baked = subprocess.run([*command, *arguments], capture_output=True, text=True)
    if baked.returncode != 0:
        raise SystemExit(f"demo: the bake failed:\n{baked.stdout}{baked.stderr}")
    (project,) = Path(output_dir).iterdir()
    return project


class Watcher:
    """Stops `process`'s group (and deletes `folder`) once this process ends without `release`."""

    def __init__(self, process: subprocess.Popen[str], folder: Path) -> None:
        read_end, self._write_end = os.pipe()  # not inherited by any other child
        try:
            command = [sys.executable, "-I", "-S", "-c", WATCHER, str(process.pid)]
            self._process: subprocess.Popen[bytes] | None = subprocess.Popen(
                [*command, str(STOP_SECONDS), str(folder)],
                stdin=read_end,
                stdout=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            os.close(read_end)

    def release(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            os.close(self._write_end)
            self._process = None


@dataclass
class Dev:
    """A running `just dev`: its process, set `ready` once Redis is, and the thread that copies
    its output here (it ends with the output)."""

    process: subprocess.Popen[str]
    ready: threading.Event
    relay: threading.Thread


def start_dev(command: list[str], project: Path, environment: dict[str, str]) -> Dev:
    """Start `command` (`just dev ...`) in its own process group, its output shown here."""
    process = subprocess.Popen(
        command,
        cwd=project,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    ready = threading.Event()

    def relay_output() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            print(f"  | {line}", end="", flush=True)
            if "Redis is ready" in line:
                ready.set()

    relay = threading.Thread(target=relay_output, daemon=True)
    relay.start()
    return Dev(process, ready, relay)


def wait_until_ready(dev: Dev, timeout: float = READY_TIMEOUT_SECONDS) -> bool:
    """Whether Redis became ready within `timeout` seconds; False as soon as `dev` exits
    without, once its last lines (which say why) are shown."""
    deadline = time.monotonic() + timeout
    while not dev.ready.wait(0.1):
        if dev.process.poll() is not None:
            dev.relay.join(timeout=5)
            return dev.ready.is_set()
        if time.monotonic() > deadline:
            return False
    return True


def stop(dev: subprocess.Popen[str]) -> None:
    """Send SIGINT to the whole group, as Ctrl-C in a terminal does."""
    if dev.poll() is None:
        os.killpg(dev.pid, signal.SIGINT)
    try:
        dev.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(dev.pid, signal.SIGKILL)
        dev.wait()


def main() -> int:
    redis_port, api_port = free_port(), free_port()
    while api_port == redis_port:
        api_port = free_port()
    environment = tool_environment()
    for name in FOREIGN_SETTINGS:
        environment.pop(name, None)
    with tempfile.TemporaryDirectory(prefix="cookiecutter-arq-demo-") as scratch:
        started = time.perf_counter()
        project = bake_quietly(scratch, {"redis_port": str(redis_port)})
        elapsed = time.perf_counter() - started
        say(f"baked {project} in {elapsed:.2f} s (Redis port {redis_port}, API port {api_port})")

        subprocess.run(["uv", "sync", "--quiet"], cwd=project, env=environment, check=True)
        say("uv sync done; starting `just dev` (local Redis, a worker and the API)")

        command = ["uv", "run", "just", "dev", "--api", str(api_port)]
        dev = start_dev(command, project, environment)
        watcher = Watcher(dev.process, Path(scratch))
        try:
            if not wait_until_ready(dev):
                code = dev.process.poll()
                if code is None:
                    say(f"Redis did not become ready in {READY_TIMEOUT_SECONDS} s")
                else:
                    say(f"`just dev` exited (code {code}) before Redis was ready")
                return 1
            package = project.name.replace("-", "_")
            client = subprocess.run(
                ["uv", "run", "python", "-c", CLIENT.format(package=package)],
                cwd=project,
                env=environment,
                capture_output=True,
                text=True,
                timeout=60,
            )
            if client.returncode != 0:
                say(f"the client failed:\n{client.stderr}")
                return 1
            print(client.stdout, end="", flush=True)
        finally:
            watcher.release()
            stop(dev.process)

        still_open = [port for port in (redis_port, api_port) if port_is_open(port)]
        if still_open:
            say(f"something still listens on port {still_open[0]}")
            return 1
        code = dev.process.returncode
        say(f"stopped all three (exit code {code}); ports {redis_port} and {api_port} are closed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
