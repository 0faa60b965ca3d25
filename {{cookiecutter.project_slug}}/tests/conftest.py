{%- if cookiecutter.cache_backend != "none" -%}
"""Fixtures shared by your tests: add your own here, every test module under tests/ sees them.

The line below loads the template's test fixtures (`infrastructure/testing.py`): `run_job` runs
one job inline, `burst_worker` runs the worker until the queue is empty, `task_pool` is the
pool on a throwaway Redis, emptied for each test. docs/testing.md shows them at work. Keep it:
pytest reads `pytest_plugins` only from this file, and the template's tests use them too.
"""

pytest_plugins = ["{{ cookiecutter.package_name }}.infrastructure.testing"]
{%- else -%}
"""Fixtures shared by your tests: add your own here, every test module under tests/ sees them."""

import os

import pytest

from {{ cookiecutter.package_name }}.infrastructure.settings import IGNORE_DOTENV


def pytest_configure(config: pytest.Config) -> None:
    """Tests read settings from the environment alone, not `.env` (settings.py): what a
    developer keeps there would change what the tests test."""
    os.environ[IGNORE_DOTENV] = "1"
{%- endif %}
