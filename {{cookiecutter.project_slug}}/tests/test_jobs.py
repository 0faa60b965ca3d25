"""Tests of your jobs: a job run inline (`run_job`), and one run by a real worker (`burst_worker`).

Both fixtures come from the template's plugin, which tests/conftest.py loads; docs/testing.md
says how they work. Add a test here for each job you write.
"""

from {{ cookiecutter.package_name }}.infrastructure.testing import BurstWorker, RunJob
from {{ cookiecutter.package_name }}.jobs import example_task{% if cookiecutter.cache_backend == "falkordb" %}, record_visit{% endif %}


async def test_example_task_echoes_its_message(run_job: RunJob) -> None:
    # The function itself, with the ctx a worker gives it: what it returns, or what it raises.
    assert await run_job(example_task, "hi") == "Processed: hi"


async def test_a_worker_runs_an_enqueued_example_task(burst_worker: BurstWorker) -> None:
    queued = await example_task.enqueue(message="hi")

    await burst_worker()  # runs the queued jobs, then stops; raises if one failed

    assert await queued.result() == "Processed: hi"
{%- if cookiecutter.cache_backend == "falkordb" %}


async def test_record_visit_counts_each_visitor_once(run_job: RunJob) -> None:
    assert await run_job(record_visit, "ada", "/home") == 1
    assert await run_job(record_visit, "ada", "/home") == 1
    assert await run_job(record_visit, "bob", "/home") == 2
{%- endif %}
