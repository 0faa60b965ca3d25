"""`just demo`: bake the default project, run it on embedded Redis, enqueue a job, print its result.

Steps: bake into a scratch folder (default answers, except a free Redis port so an existing
server on 6379 is left alone; the hooks' "Next steps" are held back, since the folder goes when
the demo ends), `uv sync`, start the project's own `just dev` (local Redis + worker), enqueue
`example_task` from a separate client process, print the result, then stop everything with
Ctrl-C's signal and check that the server's port is closed again.
"""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

TEMPLATE_ROOT = Path(__file__).resolve().parents[1]
READY_TIMEOUT_SECONDS = 60

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


def start_dev(
    project: Path, environment: dict[str, str]
) -> tuple[subprocess.Popen[str], threading.Event]:
    """Start `just dev` in its own process group; the event is set once Redis is ready."""
    dev = subprocess.Popen(
        ["uv", "run", "just", "dev"],
        cwd=project,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    ready = threading.Event()

    def relay_output() -> None:
        assert dev.stdout is not None
        for line in dev.stdout:
            print(f"  | {line}", end="", flush=True)
            if "Redis is ready" in line:
                ready.set()

    threading.Thread(target=relay_output, daemon=True).start()
    return dev, ready


def stop(dev: subprocess.Popen[str]) -> None:
    """Send SIGINT to the whole group, as Ctrl-C in a terminal does."""
    if dev.poll() is None:
        os.killpg(dev.pid, signal.SIGINT)
    try:
        dev.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(dev.pid, signal.SIGKILL)
        dev.wait()


def main() -> int:
    port = free_port()
    environment = tool_environment()
    environment.pop("REDIS_URL", None)  # the demo starts its own server
    with tempfile.TemporaryDirectory(prefix="cookiecutter-arq-demo-") as scratch:
        started = time.perf_counter()
        project = bake_quietly(scratch, {"redis_port": str(port)})
        say(f"baked {project} in {time.perf_counter() - started:.2f} s (Redis port {port})")

        subprocess.run(["uv", "sync", "--quiet"], cwd=project, env=environment, check=True)
        say("uv sync done; starting `just dev` (local Redis + worker)")

        dev, ready = start_dev(project, environment)
        try:
            if not ready.wait(READY_TIMEOUT_SECONDS):
                say("Redis did not become ready in time")
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
            stop(dev)

        if port_is_open(port):
            say(f"something still listens on port {port}")
            return 1
        say(f"stopped the worker and Redis (exit code {dev.returncode}); port {port} is closed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
