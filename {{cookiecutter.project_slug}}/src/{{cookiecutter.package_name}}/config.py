"""Settings, read once from the environment (and a local `.env` file).

Every field maps to the upper-case environment variable of the same name, e.g. `LOG_LEVEL`.
`.env.example` lists them with their defaults.
"""

from functools import lru_cache
from typing import {% if cookiecutter.cache_backend != "none" %}Annotated, {% endif %}Literal

{% if cookiecutter.cache_backend != "none" -%}
from pydantic import Field, FilePath, RedisDsn, SecretStr, ValidationError, field_validator
{% else -%}
from pydantic import Field, SecretStr, ValidationError
{% endif -%}
from pydantic_settings import BaseSettings, {% if cookiecutter.cache_backend != "none" %}NoDecode, {% endif %}SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    app_name: str = "{{ cookiecutter.project_name }}"
    environment: Literal["development", "test", "production"] = "development"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # "text" for people (the default), "json" for a log shipper: one object per line (logs.py).
    log_format: Literal["text", "json"] = "text"
    # Error tracking (error_tracking.py): on when a DSN is set. The traces sample rate is the
    # share of {% if cookiecutter.cache_backend != "none" %}jobs{% if cookiecutter.api_framework == "fastapi" %} and requests{% endif %}{% else %}requests{% endif %} traced for performance, 0 (errors only) to 1.
    sentry_dsn: SecretStr | None = None
    sentry_traces_sample_rate: float = Field(default=0, ge=0, le=1)
{%- if cookiecutter.api_framework == "fastapi" %}

    # The web API (api/). The largest request body it reads, in bytes: a larger one is refused
    # with 413 before any route runs.{% if cookiecutter.cache_backend != "none" %} POST /examples needs at most a few KB.{% endif %}
    api_max_body_bytes: int = Field(default=65_536, ge=1)
{%- if cookiecutter.cache_backend != "none" %}
    # Seconds /health/ready gives Redis to answer before it reports "not ready".
    api_ready_timeout: float = Field(default=1, gt=0)
    # Seconds DELETE /jobs/{id} waits for a running job to be cancelled by its worker; a job still
    # running then gets 202 (the abort stands, the worker cancels it on its next poll).
    api_abort_wait: float = Field(default=1, ge=0)
    # The dashboard at /dashboard (api/dashboard/) is served only when this is set; it asks for
    # it with HTTP Basic (any user name). Its forms are signed with a key derived from it.
    dashboard_password: SecretStr | None = Field(default=None, min_length=1)
{%- endif %}
{%- endif %}
{%- if cookiecutter.cache_backend != "none" %}

    # Redis: the job queue lives here. redis://[user:password@]host:port/db; rediss:// for TLS.
    redis_url: RedisDsn = RedisDsn("redis://localhost:{{ cookiecutter.redis_port }}/0")
    # A CA bundle to verify the server's certificate with, for rediss:// (else the system's).
    redis_ssl_ca_certs: FilePath | None = None
    # Connecting: seconds per attempt, then how many more attempts, how many seconds apart.
    redis_connect_timeout: int = Field(default=5, ge=1)
    redis_connect_retries: int = Field(default=5, ge=0)
    redis_connect_retry_delay: int = Field(default=1, ge=0)
    # Redis Sentinel: "host:port,host:port". When set, the master named below is found through
    # these sentinels; REDIS_URL then only gives the user, password, database and TLS on/off.
    redis_sentinels: Annotated[list[tuple[str, int]], NoDecode] = []
    redis_sentinel_master: str = "mymaster"
    # Per-project queue name, so several projects can share one Redis.
    queue_name: str = Field(default="{{ cookiecutter.project_slug }}:queue", min_length=1)

    # Worker knobs (arq.worker.Worker arguments). Times are in seconds.
    worker_max_jobs: int = Field(default=10, ge=1)
    worker_job_timeout: float = Field(default=300, gt=0)
    worker_keep_result: float = Field(default=3600, ge=0)
    # How often an idle worker asks Redis for new jobs. arq's 0.5 s caps a worker near 200 jobs/s
    # and makes a job wait ~240 ms to start; 0.05 s measured ~1,950 jobs/s and a median wait under
    # 30 ms, for ~100 Redis commands/s per idle worker (docs/background-tasks.md, "Settings").
    worker_poll_delay: float = Field(default=0.05, gt=0)
    worker_max_tries: int = Field(default=3, ge=1)
    # Backoff between tries: doubles from `base`, never above `cap`, with jitter (retries.py).
    worker_retry_base: float = Field(default=1, gt=0)
    worker_retry_cap: float = Field(default=300, gt=0)
    # On SIGTERM/SIGINT a worker takes no new job and gives running ones this long to finish,
    # then cancels them (they are retried). Keep compose's stop_grace_period above it.
    worker_shutdown_grace: int = Field(default=20, ge=0)
    # How long a worker keeps trying to reach Redis, at start or after losing it (a restart, a
    # failover), before it exits non-zero for its supervisor to restart it.
    worker_reconnect_seconds: float = Field(default=60, ge=0)
    # Each worker's heartbeat period; `just worker-check` notices a dead worker within it + 2 s.
    worker_health_check_interval: float = Field(default=10, gt=0)
    # Prometheus metrics of each worker at http://HOST:PORT/metrics (metrics.py); off when the
    # port is unset. 0.0.0.0 in a container, so that Prometheus can reach it (compose.yaml).
    worker_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    worker_metrics_host: str = "127.0.0.1"
    # The largest job (its arguments as JSON) `enqueue_task` accepts: Redis holds every queued job
    # in memory, so a runaway argument is refused, not queued.
    job_max_bytes: int = Field(default=1_048_576, ge=1)
    # Jobs that failed for good are kept for inspection, newest first, up to this many.
    dead_letter_limit: int = Field(default=1000, ge=1)

    @field_validator("redis_sentinels", mode="before")
    @classmethod
    def _split_host_ports(cls, value: object) -> object:
        # "a:26379, b:26379" -> [("a", "26379"), ("b", "26379")]; pydantic checks each pair.
        if not isinstance(value, str):
            return value
        return [tuple(item.strip().rsplit(":", 1)) for item in value.split(",") if item.strip()]
{%- endif %}


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings; tests call `get_settings.cache_clear()` after changing the env."""
    return Settings()


def settings_or_exit() -> Settings:
    """The settings, for a process's entry point: invalid ones end the process with one line
    naming each bad variable (exit status 1), not a traceback."""
    try:
        return get_settings()
    except ValidationError as error:
        raise SystemExit(describe_invalid_settings(error)) from None


def describe_invalid_settings(error: ValidationError) -> str:
    """One line naming each bad variable and what is wrong, without its value (it may be secret)."""
    problems = [f"{str(problem['loc'][0]).upper()}: {problem['msg']}" for problem in error.errors()]
    return "invalid settings (environment or .env): " + "; ".join(problems)
