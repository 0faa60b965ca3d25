# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""mypy checks a job's arguments and result through its handle (`JobHandle[P, R]`).

Snippets are written into a folder inside the project, so that they import the package as the
project's code does, and checked by the project's own mypy with the project's configuration
(pyproject.toml: strict). One mypy run checks every snippet; each snippet's errors are read
from its own file's lines.
"""

import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import {{ cookiecutter.package_name }} as package

PROJECT = Path(__file__).parents[2]
PACKAGE = package.__name__

HEADER = f"""\
from {PACKAGE}.jobs import example_task
from {PACKAGE}.queue import Job, JobContext, job


@job
async def ship(ctx: JobContext, order: str, *, express: bool = False) -> int:
    return len(order)


"""

# Each snippet's body runs inside `async def check() -> None:`.
ACCEPTED = {
    "typed_enqueue": """
        queued: Job[str] = await example_task.enqueue("Hello!", seconds=0.5)
        text: str = await queued.result(timeout=5)
        """,
    "defaults_only": "await example_task.enqueue()",
    "keywords": "await example_task.enqueue(message='x', seconds=1)",
    "required_positional": "count: int = await (await ship.enqueue('A-17', express=True)).result()",
    "bulk": """
        many: list[Job[int] | None] = await ship.enqueue_many(ship.call(o) for o in ['A-1', 'A-2'])
        unique = await ship.enqueue_many([ship.options(job_id='s-1').call('A-1', express=True)])
        """,
    "options": """
        later: Job[int] = await ship.options(defer_by=60).enqueue('A-1')
        once = await ship.options(job_id='ship-A-1').enqueue('A-1')
        if once is not None:
            count: int = await once.result()
        """,
}

# Each rejected snippet, and a pattern its first error must match (code in brackets).
REJECTED = {
    "wrong_argument_type": (
        "await example_task.enqueue(message=1)",
        r'Argument "message" to "enqueue" of "JobHandle" has incompatible type "int"; '
        r'expected "str"  \[arg-type\]',
    ),
    "bulk_call_argument_type": (
        "ship.call(17)",
        r'Argument 1 to "call" of "JobHandle" has incompatible type "int"; expected "str"  '
        r"\[arg-type\]",
    ),
    "bulk_calls_of_another_job": (
        "await ship.enqueue_many([example_task.call('x')])",
        r'List item 0 has incompatible type "JobCall\[\[str, .*\], str\]"; '
        r'expected "JobCall\[\[str, .*\], int\]"  \[list-item\]',
    ),
    "unknown_keyword": (
        "await example_task.enqueue(wrong=1)",
        r'Unexpected keyword argument "wrong" for "enqueue" of "JobHandle"  \[call-arg\]',
    ),
    "missing_required": (
        "await ship.enqueue()",
        r'Missing positional argument "order" in call to "enqueue" of "JobHandle"  \[call-arg\]',
    ),
    "too_many": (
        "await ship.enqueue('A-1', 'B-2')",
        r'Too many positional arguments for "enqueue" of "JobHandle"  \[call-arg\]',
    ),
    "wrong_result_type": (
        "x: int = await (await example_task.enqueue()).result()",
        r'Incompatible types in assignment \(expression has type "str", variable has type "int"\)'
        r"  \[assignment\]",
    ),
    "unique_may_be_none": (
        "await (await ship.options(job_id='x').enqueue('A-1')).result()",
        r'Item "None" of "Job\[int\] \| None" has no attribute "result"  \[union-attr\]',
    ),
    "option_as_argument": (
        "await ship.enqueue('A-1', _defer_by=60)",
        r'Unexpected keyword argument "_defer_by" for "enqueue" of "JobHandle"  \[call-arg\]',
    ),
}


def snippet(body: str) -> str:
    return (
        HEADER
        + "async def check() -> None:\n"
        + textwrap.indent(textwrap.dedent(body).strip(), "    ")
        + "\n"
    )


@pytest.fixture(scope="module")
def mypy_errors() -> Iterator[dict[str, list[str]]]:
    """Each snippet's mypy errors (file name without .py -> messages), from one mypy run."""
    folder = PROJECT / f".typing-check-{os.getpid()}"
    folder.mkdir()
    try:
        cases = {**ACCEPTED, **{name: body for name, (body, _) in REJECTED.items()}}
        for name, body in cases.items():
            (folder / f"{name}.py").write_text(snippet(body))
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "mypy",
                "--no-error-summary",
                "--show-error-codes",
                "--no-pretty",
                folder.name,
            ],
            cwd=PROJECT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode in (0, 1), run.stdout + run.stderr  # 2: mypy itself failed
        errors: dict[str, list[str]] = {name: [] for name in cases}
        for line in run.stdout.splitlines():
            if ": note: " in line:  # where a callee is defined, ...: the error says enough
                continue
            path, _, kind, message = line.split(":", 3)
            assert kind == " error", f"mypy said something else: {line}"
            errors[Path(path).stem].append(message.strip())
        yield errors
    finally:
        for written in folder.iterdir():
            written.unlink()
        folder.rmdir()


@pytest.mark.parametrize("name", ACCEPTED)
def test_mypy_accepts_the_right_calls(mypy_errors: dict[str, list[str]], name: str) -> None:
    assert mypy_errors[name] == []


@pytest.mark.parametrize("name", REJECTED)
def test_mypy_rejects_what_does_not_fit(mypy_errors: dict[str, list[str]], name: str) -> None:
    _, expected = REJECTED[name]
    assert mypy_errors[name], f"mypy accepted {REJECTED[name][0]!r}"
    assert re.fullmatch(expected, mypy_errors[name][0]), mypy_errors[name]
