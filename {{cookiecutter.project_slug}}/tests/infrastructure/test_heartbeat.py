# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""The running-jobs list that crash recovery reads (heartbeat.py), on a real Redis."""

import logging

import pytest
from arq.connections import ArqRedis

from {{ cookiecutter.package_name }}.infrastructure.store.heartbeat import RunningJobs

KEY = "test:running"


async def listed(pool: ArqRedis) -> set[str]:
    return {member.decode() for member in await pool.smembers(KEY)}  # type: ignore[misc]


async def test_a_busy_moment_costs_one_write_and_lands_exactly(task_pool: ArqRedis) -> None:
    running = RunningJobs(task_pool, KEY)
    running.add("listed-before")
    await running.written()
    calls_before = await command_calls(task_pool)
    running.remove("listed-before")
    for number in range(100):
        running.add(f"job-{number}")
    for number in range(0, 100, 2):
        running.remove(f"job-{number}")  # ended before any write: Redis never hears of it
    await running.written()
    # One SADD and one SREM, however many jobs: not a round trip per job.
    assert await command_calls(task_pool) - calls_before == 2
    assert await listed(task_pool) == {f"job-{number}" for number in range(1, 100, 2)}


async def test_jobs_that_start_and_end_between_writes_send_nothing(task_pool: ArqRedis) -> None:
    running = RunningJobs(task_pool, KEY)
    calls_before = await command_calls(task_pool)
    for number in range(100):
        running.add(f"job-{number}")
        running.remove(f"job-{number}")
    await running.written()
    assert await command_calls(task_pool) - calls_before == 0


async def test_a_removal_never_overtakes_the_listing(task_pool: ArqRedis) -> None:
    running = RunningJobs(task_pool, KEY)
    running.add("first")
    running.add("again")
    await running.written()
    running.remove("first")
    running.add("second")
    running.remove("second")
    running.add("second")  # the newest change to a job wins
    running.remove("again")
    running.add("again")  # a retry run on this worker, before the removal was written
    running.remove("again")
    await running.written()
    assert await listed(task_pool) == {"second"}


async def test_a_failed_write_is_sent_again_with_the_next_change(
    task_pool: ArqRedis, caplog: pytest.LogCaptureFixture
) -> None:
    running = RunningJobs(task_pool, KEY)
    await task_pool.set(KEY, "not a set")  # SADD on it fails with WRONGTYPE
    running.add("during-the-failure")
    with caplog.at_level(logging.WARNING):
        await running.written()
    assert "could not update the running-jobs list" in caplog.text
    await task_pool.delete(KEY)
    running.add("after-the-failure")
    await running.written()
    assert await listed(task_pool) == {"during-the-failure", "after-the-failure"}


async def test_changes_a_failed_write_left_behind_are_sent_without_a_new_change(
    task_pool: ArqRedis,
) -> None:
    running = RunningJobs(task_pool, KEY)
    running.add("ended-during-the-failure")
    await running.written()
    await task_pool.rename(KEY, "test:elsewhere")
    await task_pool.set(KEY, "not a set")  # SREM on it fails with WRONGTYPE
    running.remove("ended-during-the-failure")
    await running.written()
    await task_pool.delete(KEY)
    await task_pool.rename("test:elsewhere", KEY)

    running.send_pending()  # what the heartbeat does once per interval
    await running.written()

    assert await listed(task_pool) == set()


async def command_calls(pool: ArqRedis) -> int:
    """Commands the server has run so far, less INFO itself."""
    stats = await pool.info("commandstats")
    return sum(
        int(value["calls"])
        for name, value in stats.items()
        if name.startswith("cmdstat_") and name != "cmdstat_info"
    )
