# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Error tracking with Sentry, on when `SENTRY_DSN` is set.

sentry-sdk is imported only then, so a process without a DSN starts as fast as before. With a
DSN, `init_error_tracking()` turns on sentry-sdk with these integrations:
- logging (sentry-sdk's default): an ERROR line logged with its exception becomes an event{% if cookiecutter.api_framework == "fastapi" %} (as
  api/problems.py's `UnexpectedErrors` logs an unexpected error in a route){% endif %}; lower lines
  become breadcrumbs.
{%- if cookiecutter.cache_backend != "none" %}
- arq: each job a transaction, enqueues traced.
{%- endif %}
{%- if cookiecutter.api_framework == "fastapi" %}
- FastAPI: each request a transaction.
{%- endif %}
{%- if cookiecutter.cache_backend != "none" %}

A job that fails for good is one event, with its exception and the job's id, function and try as
tags: `retrying()` reports it (`capture_job_failure`). sentry-sdk's arq integration would do that
only for workers built by arq's own `create_worker`, and it ignores arq's log lines, so the
project's worker (worker.py) would report nothing. retries.py's own lines (a try to be retried,
the dead-letter line) are left out: the event says it.
{%- endif %}

Every event and breadcrumb is redacted before it is sent (redaction.py): no URL credentials, no
secret setting's value, whatever text or local variable holds them.

`SENTRY_TRACES_SAMPLE_RATE` (0 to 1, default 0: errors only) samples performance traces; the
environment is `ENVIRONMENT`.
"""

import functools

from .config import get_settings
from .redaction import redacted
{%- if cookiecutter.cache_backend != "none" %}

# The logger of retries.py, whose lines repeat what `capture_job_failure` reports.
DEAD_LETTER_LOGGER = f"{__package__}.infrastructure.worker.retries"
{%- endif %}


@functools.cache
def init_error_tracking() -> bool:
    """Start sentry-sdk once per process if `SENTRY_DSN` is set; True if it is on."""
    settings = get_settings()
    if settings.sentry_dsn is None or not settings.sentry_dsn.get_secret_value():
        return False  # unset, or set empty (`SENTRY_DSN=` in .env)
    import sentry_sdk  # here, not at the top: only processes that report errors pay for it
{%- if cookiecutter.cache_backend != "none" %}
    from sentry_sdk.integrations.arq import ArqIntegration
{%- endif %}
{%- if cookiecutter.api_framework == "fastapi" %}
    from sentry_sdk.integrations.fastapi import FastApiIntegration
{%- endif %}
{%- if cookiecutter.cache_backend != "none" %}
    from sentry_sdk.integrations.logging import ignore_logger
{%- endif %}
{%- if cookiecutter.api_framework == "fastapi" %}
    from sentry_sdk.integrations.starlette import StarletteIntegration
{%- endif %}

    sentry_sdk.init(
        dsn=settings.sentry_dsn.get_secret_value(),
        environment=settings.environment,
        traces_sample_rate=settings.sentry_traces_sample_rate,
{%- if cookiecutter.cache_backend != "none" or cookiecutter.api_framework == "fastapi" %}
        integrations=[
{%- if cookiecutter.cache_backend != "none" %}
            ArqIntegration(),
{%- endif %}
{%- if cookiecutter.api_framework == "fastapi" %}
            StarletteIntegration(),
            FastApiIntegration(),
{%- endif %}
        ],
{%- endif %}
        # Job arguments, request bodies and headers may hold personal data: not sent.
        send_default_pii=False,
        # Credentials and secret settings out of every text an event carries (redaction.py).
        before_send=lambda event, hint: redacted(event),
        before_breadcrumb=lambda crumb, hint: redacted(crumb),
    )
{%- if cookiecutter.cache_backend != "none" %}
    ignore_logger(DEAD_LETTER_LOGGER)  # capture_job_failure() reports those jobs
{%- endif %}
    return True
{%- if cookiecutter.cache_backend != "none" %}


def capture_job_failure(error: BaseException, job_id: str, function: str, job_try: int) -> None:
    """Report a job that failed for good to Sentry (when it is on), tagged with the job."""
    if not init_error_tracking():
        return
    import sentry_sdk

    with sentry_sdk.new_scope() as scope:
        scope.set_tag("job_id", job_id)
        scope.set_tag("function", function)
        scope.set_tag("try", job_try)
        scope.capture_exception(error)
{%- endif %}
