"""`just demo` (scripts/demo.py): it runs whatever else listens on the usual ports, says at once
why `just dev` stopped, and leaves nothing running behind it, however it ends.

The end-to-end tests are slow: each bakes the default project and runs `uv sync` in it.
"""

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from .conftest import TEMPLATE_ROOT, tool_environment

DEMO = TEMPLATE_ROOT / "scripts" / "demo.py"
DEMO_SECONDS = 300  # a bake, a `uv sync` on a warm cache, a job: well under a minute unloaded
# How long `just dev` gets to start its worker and API; how long what it started gets to end.
START_SECONDS = 5
END_SECONDS = 60


def load_demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("demo", DEMO)
    assert spec is not None and spec.loader is not None
    demo = importlib.util.module_from_spec(spec)
    sys.modules["demo"] = demo  # dataclasses look their module up
    spec.loader.exec_module(demo)
    return demo


def descendants(pid: int) -> list[int]:
    """The processes `pid` started, and theirs (`ps`, as on Linux and macOS)."""
    table = subprocess.run(
        ["ps", "-A", "-o", "pid=,ppid="], capture_output=True, text=True, check=True
    ).stdout
    children: dict[int, list[int]] = {}
    for row in table.splitlines():
        child, parent = map(int, row.split())
        children.setdefault(parent, []).append(child)
    found: list[int] = []
    waiting = [pid]
    while waiting:
        for child in children.get(waiting.pop(), []):
            found.append(child)
            waiting.append(child)
    return found


def alive(pid: int) -> bool:
    """Whether `pid` runs: a zombie (ended, not yet reaped by whoever adopted it) does not."""
    ps = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True)
    state = ps.stdout.strip()
    return state != "" and not state.startswith("Z")


@pytest.fixture
def port_8000_taken() -> Iterator[None]:
    """Something listens on 127.0.0.1:8000, uvicorn's and `just dev`'s usual API port."""
    with socket.socket() as holder:
        with contextlib.suppress(OSError):  # already taken: as good
            holder.bind(("127.0.0.1", 8000))
            holder.listen()
        yield


def test_the_demo_says_at_once_why_just_dev_stopped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    demo = load_demo()
    refusal = "error: port 8000 on 127.0.0.1 is in use (another API?), so nothing was started"
    command = [sys.executable, "-c", f"import sys; sys.exit({refusal!r})"]
    started = time.monotonic()

    dev = demo.start_dev(command, tmp_path, dict(os.environ))

    assert not demo.wait_until_ready(dev, timeout=demo.READY_TIMEOUT_SECONDS)
    assert time.monotonic() - started < 10  # not the ready timeout
    assert refusal in capsys.readouterr().out  # its line is shown before the demo gives up


@pytest.mark.slow
@pytest.mark.usefixtures("port_8000_taken")
def test_the_demo_runs_with_port_8000_taken() -> None:
    run = subprocess.run(
        [sys.executable, str(DEMO)],
        env=tool_environment(),
        capture_output=True,
        text=True,
        timeout=DEMO_SECONDS,
    )

    assert run.returncode == 0, run.stdout + run.stderr
    assert "result: 'Processed: Hello from the demo!'" in run.stdout
    assert "are closed" in run.stdout


@pytest.mark.slow
def test_nothing_the_demo_started_outlives_it() -> None:
    command = [sys.executable, str(DEMO)]
    output: list[str] = []
    with subprocess.Popen(
        command, env=tool_environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as demo:
        try:
            assert demo.stdout is not None
            for line in demo.stdout:
                output.append(line)
                if "Redis is ready" in line:
                    break
            else:
                raise AssertionError("the demo ended before Redis was ready:\n" + "".join(output))
            # Held where it is (as Ctrl-Z would), so it cannot finish and stop `just dev` itself;
            # `just dev` goes on to start the worker and the API.
            demo.send_signal(signal.SIGSTOP)
            time.sleep(START_SECONDS)
            started = descendants(demo.pid)
        finally:
            demo.kill()  # SIGKILL: the demo's own clean-up never runs

    [baked] = [line for line in output if line.startswith("demo: baked ")]
    scratch = Path(baked.split()[2]).parent
    deadline = time.monotonic() + END_SECONDS
    while [pid for pid in started if alive(pid)] and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [pid for pid in started if alive(pid)]
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert left == [], "".join(output)
    assert not scratch.exists()
