# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Command-line entry point: `uv run {{ cookiecutter.project_slug }}` or `python -m {{ cookiecutter.package_name }}`."""

{% if cookiecutter.cache_backend != "none" -%}
import asyncio
{% endif -%}
import sys

from pydantic import ValidationError

from .config import get_settings
from .error_tracking import init_error_tracking
from .infrastructure.settings import describe_invalid_settings
{%- if cookiecutter.cache_backend != "none" %}
from .infrastructure.store.connection import (
    RedisUnavailableError,
    close_pool,
    connect,
    redis_location,
)
{%- endif %}
from .logs import configure_logging
{%- if cookiecutter.cache_backend != "none" %}


async def check_queue() -> None:
    """Fail fast at start-up when the queue's Redis cannot be reached (after REDIS_CONNECT_RETRIES)."""
    await close_pool(await connect())
{%- endif %}


def main() -> None:
    try:
        settings = get_settings()
    except ValidationError as error:
        sys.exit(describe_invalid_settings(error))
    configure_logging(settings.log_level, settings.log_format)
    init_error_tracking()
{%- if cookiecutter.cache_backend != "none" %}
    try:
        asyncio.run(check_queue())
    except RedisUnavailableError as error:
        sys.exit(str(error))  # one line, password masked: not a traceback
    where = f"Redis answers at {redis_location()}"
    print(f"{settings.app_name} is configured for {settings.environment}; {where}.")
{%- else %}
    print(f"{settings.app_name} is configured for {settings.environment}.")
{%- endif %}


if __name__ == "__main__":
    main()
