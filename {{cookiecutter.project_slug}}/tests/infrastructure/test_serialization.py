# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Jobs and results travel as JSON: no pickle, clear refusals, readable failures."""

import copy
import pickle
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from arq.connections import ArqRedis
from arq.constants import job_key_prefix
from arq.utils import timestamp_ms

from {{ cookiecutter.package_name }}.infrastructure.store import dead_letters
from {{ cookiecutter.package_name }}.infrastructure.store.connection import RedisUnavailableError
from {{ cookiecutter.package_name }}.infrastructure.store.job_handle import UnreadableResult
from {{ cookiecutter.package_name }}.infrastructure.store.serialization import (
    JobAborted,
    JobFailed,
    deserialize,
    json_view,
    serialize,
)
from {{ cookiecutter.package_name }}.infrastructure.tasks import (
    JobArgumentError,
    WorkerSettings,
    enqueue_task,
    get_job,
)
from {{ cookiecutter.package_name }}.infrastructure.worker.functions import arq_function

from .conftest import RunWorker, full_id


def test_json_like_values_and_tagged_types_round_trip() -> None:
    value = {
        "text": "héllo",
        "numbers": [1, 2.5, None, True],
        "when": datetime(2026, 11, 24, 12, 30, tzinfo=UTC),
        "day": date(2026, 11, 24),
        "id": UUID("12345678-1234-5678-1234-567812345678"),
        "amount": Decimal("10.05"),
        "nested": {"tuple": (1, 2)},
    }

    assert deserialize(serialize(value)) == {**value, "nested": {"tuple": [1, 2]}}


async def test_unserializable_argument_is_refused_and_nothing_is_queued(
    task_pool: ArqRedis,
) -> None:
    with pytest.raises(JobArgumentError, match=r"example_task.*object is not JSON-serializable"):
        await enqueue_task("example_task", message=object())

    assert await task_pool.zcard(WorkerSettings.queue_name) == 0


async def broken(ctx: dict[str, Any]) -> None:
    raise ValueError("the input file is empty")


async def test_failed_job_result_carries_the_error_type_and_message(
    task_pool: ArqRedis, run_burst_worker: RunWorker
) -> None:
    queued = await task_pool.enqueue_job("broken")
    assert queued is not None

    await run_burst_worker(functions=[arq_function(broken, max_tries=1)])

    with pytest.raises(JobFailed, match="ValueError: the input file is empty") as failure:
        await queued.result(timeout=5)
    assert failure.value.error_type == "ValueError"


class WritesAFile:
    """A pickle payload that, if unpickled, would create a file: the attack a JSON reader stops."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.target,))


async def plant(pool: ArqRedis, job_id: str, payload: bytes) -> None:
    """Write a job into the queue the way someone else with access to Redis could, under the id
    the project gives `job_id` (`full_id`)."""
    await pool.set(job_key_prefix + full_id(job_id), payload)
    # Scored like a real job: arq skips a queue entry whose score is 0.
    await pool.zadd(WorkerSettings.queue_name, {full_id(job_id): timestamp_ms()})


async def test_pickled_payload_written_into_redis_runs_nothing_and_is_a_dead_letter(
    task_pool: ArqRedis, run_burst_worker: RunWorker, tmp_path: Path
) -> None:
    target = tmp_path / "pwned"
    await plant(
        task_pool,
        "planted",
        pickle.dumps({"t": 1, "f": "example_task", "a": [WritesAFile(target)], "k": {}}),
    )

    worker = await run_burst_worker()

    assert not target.exists()
    assert worker.jobs_failed == 1
    with pytest.raises(JobFailed, match="PermanentError: unreadable job payload"):
        await (await get_job("planted")).result(timeout=5)
    [letter] = await dead_letters.all_letters(task_pool, WorkerSettings.queue_name)
    assert (letter.job_id, letter.function, letter.tries) == (
        full_id("planted"),
        "reject_unreadable_job",
        1,
    )
    assert "UnicodeDecodeError" in letter.error


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"f": "example_task"', "JSONDecodeError"),
        (b'{"f": 1, "a": [], "k": {}, "et": 0}', "ValueError: not an arq job"),
        (b"\xff\xfe not even UTF-8", "UnicodeDecodeError"),
    ],
    ids=["broken JSON", "not a job", "not UTF-8"],
)
async def test_malformed_payload_is_a_dead_letter_with_the_reason(
    task_pool: ArqRedis, run_burst_worker: RunWorker, payload: bytes, reason: str
) -> None:
    await plant(task_pool, "malformed", payload)
    good = await enqueue_task("example_task", message="still fine")
    assert good is not None

    await run_burst_worker()

    [letter] = await dead_letters.all_letters(task_pool, WorkerSettings.queue_name)
    assert letter.error_type == "PermanentError"
    assert reason in letter.error
    assert await good.result(timeout=5) == "Processed: still fine"  # no other job lost


@pytest.mark.parametrize(
    "error",
    [
        JobFailed("ValueError", "boom"),
        JobFailed("TimeoutError", ""),
        JobAborted("aborted before it started"),
        UnreadableResult("not JSON", success=False),
        RedisUnavailableError("Redis at 127.0.0.1:6379 is out of memory", "out_of_memory"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_the_project_s_errors_survive_a_copy_and_a_pickle(error: Exception) -> None:
    """A group's callback gets members' errors (JobFailed) among its arguments, and a dead
    letter's record deep-copies a job's arguments: an error that cannot be copied would turn
    the job's own failure into a TypeError from the copy."""
    for again in (copy.deepcopy(error), pickle.loads(pickle.dumps(error))):
        assert type(again) is type(error)
        assert str(again) == str(error)
        assert vars(again) == vars(error)


def test_a_job_s_error_inside_a_value_reads_in_json_as_a_failed_job_s_error() -> None:
    value = {"results": (2, JobFailed("ValueError", "boom"), [JobAborted("the job was aborted")])}

    assert json_view(value) == {
        "results": [
            2,
            {"type": "ValueError", "message": "boom"},
            [{"type": "JobAborted", "message": "the job was aborted"}],
        ]
    }
    assert json_view([1, "a", None, {"k": 2.5}]) == [1, "a", None, {"k": 2.5}]


def test_a_dead_letter_of_a_job_given_an_error_can_be_written() -> None:
    letter = dead_letters.DeadLetter(
        job_id="{q}:wf-1.then", function="total", args=[[2, JobFailed("ValueError", "boom")]],
        kwargs={}, error_type="TypeError", error="unsupported operand", tries=3,
        enqueued_at=datetime.now(UTC), failed_at=datetime.now(UTC),
    )  # fmt: skip

    read = dead_letters.DeadLetter.from_bytes(letter.to_bytes())

    assert str(read.args[0][1]) == "ValueError: boom"
