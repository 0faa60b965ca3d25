"""What the benchmarks share: baking the project, running a script inside it, stopping worker
processes, counting Redis commands, interleaving rounds, and the worker and result helpers the
measuring halves use.

`poll_delay.py`, `compare.py` and `api.py` run in two halves: outside (the template's
environment) they bake the default project and `uv sync` it, then `run_script_inside` copies the
script and this module into the project and runs the script there with `--inside`, in the
project's own venv.
`celery_drain.py` imports it in a venv of Celery's, so its top level imports the standard
library only.
"""

import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

TEMPLATE_ROOT = Path(__file__).resolve().parents[1]


def tool_environment() -> dict[str, str]:
    """uv must use installed interpreters; pyenv's shims need every version listed to show them.

    Settings the project would read from the environment are dropped: the run sets its own.
    """
    environment = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    environment.pop("VIRTUAL_ENV", None)
    # Start-up times should be those of an installed project, which reads cached bytecode.
    environment.pop("PYTHONDONTWRITEBYTECODE", None)
    for name in list(environment):
        if name in ("REDIS_URL", "QUEUE_NAME", "LOG_LEVEL") or name.startswith("WORKER_"):
            del environment[name]
    versions = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    if versions.is_dir():
        environment["PYENV_VERSION"] = ":".join(sorted(p.name for p in versions.iterdir()))
    return environment


@contextlib.contextmanager
def stdout_redirected(target_fd: int) -> Iterator[None]:
    """Point file descriptor 1 at `target_fd` for a while: the hooks print "next steps" from
    subprocesses, which `sys.stdout` alone would not catch."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(target_fd, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def bake(output_dir: str) -> Path:
    """The default project, baked into `output_dir`; the hooks' output goes to stderr."""
    from cookiecutter.main import cookiecutter

    with stdout_redirected(sys.stderr.fileno()):
        return Path(cookiecutter(str(TEMPLATE_ROOT), no_input=True, output_dir=output_dir))


def sync(project: Path, environment: dict[str, str]) -> None:
    """Install the project's venv with its bytecode compiled, as the Dockerfile does
    (UV_COMPILE_BYTECODE): worker start-up is then what a deployment sees, not a compile."""
    command = ["uv", "sync", "--quiet", "--compile-bytecode"]
    subprocess.run(command, cwd=project, env=environment, check=True)


def run_script_inside(
    project: Path, script: str, arguments: list[str], environment: dict[str, str], timeout: float
) -> Any:
    """Copy `script` and this module into `project`, run the script there with
    `--inside <package> *arguments` in the project's venv, and return the JSON on its last line."""
    package = json.loads((project / ".cookiecutter.json").read_text())["package_name"]
    copy = project / f"bench_{Path(script).name}"
    shutil.copyfile(script, copy)
    shutil.copyfile(__file__, project / Path(__file__).name)
    run = subprocess.run(
        ["uv", "run", "python", copy.name, "--inside", package, *arguments],
        cwd=project,
        env=environment,
        stdout=subprocess.PIPE,
        text=True,
        timeout=timeout,
        check=True,
    )
    return json.loads(run.stdout.splitlines()[-1])


def stop_process(process: "subprocess.Popen[bytes]", grace: float) -> None:
    """SIGTERM, then SIGKILL if `process` is still running after `grace` seconds."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def commands_so_far(commandstats: dict[str, Any]) -> int:
    """The command calls in an `INFO commandstats` reply, less INFO's own (the measuring ones)."""
    return sum(
        int(stats["calls"])
        for name, stats in commandstats.items()
        if name.startswith("cmdstat_") and name != "cmdstat_info"
    )


def percentile(values: list[float], pct: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


def rotated(items: tuple[str, ...], by: int) -> tuple[str, ...]:
    """`items` rotated left by `by`: round `by`'s order in interleaved rounds."""
    by %= len(items)
    return items[by:] + items[:by]


def paired_ratios(tops: list[float], bottoms: list[float]) -> list[float]:
    """Each round's ratio of two figures measured in that round: a drift across rounds, which
    weighs on both, cancels out. Report their median."""
    return [top / bottom for top, bottom in zip(tops, bottoms, strict=True)]


@contextlib.asynccontextmanager
async def polling(worker: Any, pool: Any) -> AsyncIterator[Any]:
    """Run a non-burst `worker` in a task; yield it once it has polled (its health key is set)."""
    run = asyncio.create_task(worker.async_run())
    try:
        deadline = time.monotonic() + 10
        while not await pool.exists(worker.health_check_key):
            if run.done():
                run.result()  # raises what stopped the worker
            if run.done() or time.monotonic() > deadline:
                raise RuntimeError("the worker did not start polling")
            await asyncio.sleep(0.005)
        yield worker
    finally:
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run
        await worker.close()


async def wait_for_results(jobs: list[Any], timeout: float = 30) -> list[Any]:
    """arq's result info of every job, once all have one."""
    deadline = time.monotonic() + timeout
    while True:
        infos = await asyncio.gather(*(job.result_info() for job in jobs))
        if all(info is not None for info in infos):
            return infos
        if time.monotonic() > deadline:
            raise RuntimeError(f"{sum(i is None for i in infos)} jobs have no result")
        await asyncio.sleep(0.05)
