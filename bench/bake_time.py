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

from benchkit import TEMPLATE_ROOT, stdout_redirected
from cookiecutter.main import cookiecutter

BACKENDS = ["redis", "falkordb", "none"]


def time_in_process(backend: str) -> float:
    # The hooks' "next steps" would fill the screen: send them nowhere.
    with (
        tempfile.TemporaryDirectory() as output,
        open(os.devnull, "w") as devnull,
        stdout_redirected(devnull.fileno()),
    ):
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
