"""Print how long a bake takes (render + both hooks), per backend, in-process and from the CLI.

    uv run python bench/bake_time.py [runs]

In-process times `cookiecutter.main.cookiecutter(...)`; the CLI figure adds interpreter start-up
and imports, which is what a user waits for with `cookiecutter --no-input ...`.
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cookiecutter.main import cookiecutter

TEMPLATE_ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ["redis", "falkordb", "none"]


@contextmanager
def silenced_stdout() -> Iterator[None]:
    """Hide the hooks' "next steps": they run as subprocesses, so redirect the file descriptor."""
    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def time_in_process(backend: str) -> float:
    with tempfile.TemporaryDirectory() as output, silenced_stdout():
        started = time.perf_counter()
        cookiecutter(
            str(TEMPLATE_ROOT),
            no_input=True,
            output_dir=output,
            extra_context={"cache_backend": backend},
        )
        return time.perf_counter() - started


def time_cli(backend: str) -> float:
    with tempfile.TemporaryDirectory() as output:
        command = [sys.executable, "-m", "cookiecutter", "--no-input", str(TEMPLATE_ROOT)]
        started = time.perf_counter()
        subprocess.run(
            [*command, "-o", output, f"cache_backend={backend}"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        return time.perf_counter() - started


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    print(f"bake time over {runs} runs (median / max, seconds)")
    for backend in BACKENDS:
        in_process = [time_in_process(backend) for _ in range(runs)]
        cli = [time_cli(backend) for _ in range(runs)]
        print(
            f"  {backend:9} in-process {statistics.median(in_process):.3f} / {max(in_process):.3f}"
            f"   cli {statistics.median(cli):.3f} / {max(cli):.3f}"
        )


if __name__ == "__main__":
    main()
