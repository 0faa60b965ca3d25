"""A job that takes its time, for the image's stop check (tests/test_image.py).

This folder is mounted read-only into the container at /image-test, with PYTHONPATH pointing
there, and the image's worker runs these settings instead of the project's:

    python -m PACKAGE.infrastructure.worker image_jobs.WorkerSettings

They are the project's WorkerSettings plus `sleep_then_answer`. IMAGE_TEST_PACKAGE names the
project's package (the module is the same for every bake).
"""

import asyncio
import importlib
import os
from typing import Any

PACKAGE = os.environ["IMAGE_TEST_PACKAGE"]
tasks = importlib.import_module(f"{PACKAGE}.infrastructure.tasks")
functions = importlib.import_module(f"{PACKAGE}.infrastructure.worker.functions")


async def sleep_then_answer(ctx: dict[str, Any], seconds: float) -> str:
    """Sleep `seconds`, then answer: still running when the container is told to stop."""
    await asyncio.sleep(seconds)
    return f"slept {seconds:g} s"


WorkerSettings = {
    **vars(tasks.WorkerSettings),
    "functions": (*tasks.WorkerSettings.functions, functions.arq_function(sleep_then_answer)),
}
