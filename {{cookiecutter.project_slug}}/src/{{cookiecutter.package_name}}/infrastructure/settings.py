# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""The template's settings: `TemplateSettings`, which `config.Settings` (yours) extends.

Every field maps to the upper-case environment variable of the same name, e.g. `LOG_LEVEL`.
`.env.example` lists them with their defaults.
"""

import os
{% if cookiecutter.cache_backend != "none" -%}
import re
{% endif -%}
from collections.abc import Callable
{%- if cookiecutter.cache_backend != "none" %}
from functools import cached_property
{%- endif %}
from typing import {% if cookiecutter.cache_backend != "none" %}Annotated, {% endif %}Literal, {% if cookiecutter.cache_backend != "none" %}Self, {% endif %}TypeVar

{% if cookiecutter.cache_backend != "none" -%}
from pydantic import (
    Field,
    FilePath,
    RedisDsn,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
{% else -%}
from pydantic import Field, SecretStr, ValidationError
{% endif -%}
from pydantic_settings import (
    BaseSettings,
{%- if cookiecutter.cache_backend != "none" %}
    NoDecode,
{%- endif %}
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
{%- if cookiecutter.cache_backend != "none" %}

from .keys import DEFAULT_QUEUE, QUEUE_NAME_PATTERN, queue_key
{%- endif %}

# Whatever settings class the project reads (config.Settings).
S = TypeVar("S", bound=BaseSettings)

{%- if cookiecutter.cache_backend != "none" %}

# The parts of a Redis URL as written, before any URL parser splits it where it likes: a raw
# "@", "/", "?" or "#" in the password moves the host, port and path to inside it.
_URL_PARTS = re.compile(
    r"^[A-Za-z][A-Za-z0-9+.-]*://(?P<authority>[^/?#]*)(?P<path>[^?#]*)(?P<rest>.*)$", re.DOTALL
)
_HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[^:\[\]]*)(:(?P<port>.*))?$", re.DOTALL)
_ENCODED = re.compile(r"^([^%]|%[0-9A-Fa-f]{2})*$", re.DOTALL)
# A QUEUE_PREFIX: no brace (one would end the queue's hash tag early, keys.py), no space.
QUEUE_PREFIX = r"^[^{}\s]+$"
_ENCODE_IT = (
    "percent-encode special characters in the user and password "
    "(@ as %40, / as %2F, ? as %3F, # as %23, : as %3A, % as %25)"
)


def redis_url_problem(url: str) -> str | None:
    """Why `url`, as written, is not a Redis URL that means what it says, or None if it is.

    Catches what a URL parser reads without complaint but wrongly (a raw "@" or "/" in the
    password makes a part of the password the host, port or database): a second "@", an "@"
    after the host, a port that is not a number, a path other than /<database number>, a query
    other than ?db=<number>, a "%" that encodes nothing. The answer shows no part of the URL: any
    part of it may be the password.
    """
    parts = _URL_PARTS.match(url)
    if parts is None:
        return None  # no "scheme://": pydantic's own check refuses it
    authority, path, rest = parts["authority"], parts["path"], parts["rest"]
    if "@" in path + rest or authority.count("@") > 1:
        return f"its password (or user) holds a raw @, /, ? or #: {_ENCODE_IT}"
    user_info, _, host_port = authority.rpartition("@")
    if not _ENCODED.match(user_info):
        return f"its password (or user) holds a % that encodes nothing: {_ENCODE_IT}"
    host = _HOST_PORT.match(host_port)
    if host is None or (host["port"] is not None and not host["port"].isdigit()):
        return f"the port is not a number (if the password holds a raw : or @, {_ENCODE_IT})"
    if path not in ("", "/") and not re.fullmatch(r"/\d+", path):
        return f"the path must be /<database number> (if the password holds a raw /, {_ENCODE_IT})"
    if rest and not re.fullmatch(r"\?db=\d+", rest):
        return "only ?db=<database number> may follow the path (arq reads nothing else)"
    return None
{%- endif %}


# Set (to anything) to read settings from the environment alone, not `.env` too (tests).
IGNORE_DOTENV = "IGNORE_DOTENV"


class TemplateSettings(BaseSettings):
    """The template's settings; `config.Settings` extends it with the project's own."""

    # Values are never shown in validation errors, not even in a traceback: {% if cookiecutter.cache_backend != "none" %}REDIS_URL, {% endif %}SENTRY_DSN
    # and the passwords are secrets.
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", hide_input_in_errors=True
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """pydantic-settings' sources, less `.env` when IGNORE_DOTENV is set: the test session
        sets it (tests/conftest.py), so that tests, and the processes they start, do not read
        the developer's `.env` (what is kept there for development changed what they test)."""
        if os.environ.get(IGNORE_DOTENV):
            return init_settings, env_settings, file_secret_settings
        return init_settings, env_settings, dotenv_settings, file_secret_settings

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
    # This project's namespace on Redis: every key of its queues and jobs starts with
    # `{<QUEUE_PREFIX>:<queue>}` (keys.py), so projects sharing one Redis need different
    # prefixes (two deployments of one project too: staging and production).
    queue_prefix: str = Field(default="{{ cookiecutter.project_slug }}", pattern=QUEUE_PREFIX)
    # Replaced by QUEUE_PREFIX: refused with the step to take (docs/updates.md, "Queue namespaces").
    retired_queue_name: str | None = Field(default=None, validation_alias="queue_name")
    # The project's queues, highest priority first: "critical,default,bulk". A job goes to
    # `default` unless it names another (`@job(queue=...)`, `_queue_name=`); docs/queues.md.
    queues: Annotated[list[str], NoDecode] = [DEFAULT_QUEUE]
    # The queues a worker serves, in the order it takes jobs from them (strict priority: a job
    # of a later queue starts only while no earlier one has a job due). Empty: all of QUEUES.
    worker_queues: Annotated[list[str], NoDecode] = []
    # Opt-in weighted order instead: "critical=6,default=3,bulk=1". Each time the worker takes
    # jobs it visits its queues in a random order drawn by these weights, so a queue with
    # weight w comes first in w / (sum of weights) of the visits and is never starved.
    worker_queue_weights: Annotated[dict[str, int], NoDecode] = {}

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
    # A job for a function this worker lacks (a newer client, mid-deploy) is given back, without
    # using a try, for a worker that has it; after this long it becomes a dead letter.
    worker_missing_function_wait: float = Field(default=3600, ge=0)
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

    @field_validator("redis_url", mode="before")
    @classmethod
    def _refuse_a_misread_url(cls, value: object) -> object:
        problem = redis_url_problem(value) if isinstance(value, str) else None
        if problem is not None:
            raise ValueError(f"not usable as written, {problem}")
        return value

    @property
    def queue_name(self) -> str:
        """The Redis key of the default queue (arq's `queue_name`): `{<QUEUE_PREFIX>:default}`."""
        return queue_key(self.queue_prefix, DEFAULT_QUEUE)

    @cached_property
    def queue_keys(self) -> dict[str, str]:
        """Each queue's name -> its Redis key (keys.py), in QUEUES' order."""
        return {queue: queue_key(self.queue_prefix, queue) for queue in self.queues}

    @property
    def served_queues(self) -> list[str]:
        """The names of the queues a worker serves, highest priority first."""
        return self.worker_queues or self.queues

    @field_validator("queues", "worker_queues", mode="before")
    @classmethod
    def _split_queue_names(cls, value: object) -> object:
        # "critical, default,bulk" -> ["critical", "default", "bulk"]
        if not isinstance(value, str):
            return value
        return [name.strip() for name in value.split(",") if name.strip()]

    @field_validator("worker_queue_weights", mode="before")
    @classmethod
    def _split_weights(cls, value: object) -> object:
        # "critical=6,bulk=1" -> {"critical": "6", "bulk": "1"}; pydantic checks the numbers.
        if not isinstance(value, str):
            return value
        pairs = [item.split("=", 1) for item in value.split(",") if item.strip()]
        if any(len(pair) != 2 for pair in pairs):
            raise ValueError("write each queue's weight as name=number, e.g. critical=6,bulk=1")
        return {name.strip(): weight.strip() for name, weight in pairs}

    @model_validator(mode="after")
    def _check_queues(self) -> Self:
        problems = []
        bad = [name for name in self.queues if not QUEUE_NAME_PATTERN.fullmatch(name)]
        if bad:
            problems.append(f"QUEUES: not a queue name (A-Z a-z 0-9 . _ -): {', '.join(bad)}")
        twice = sorted({name for name in self.queues if self.queues.count(name) > 1})
        if twice:
            problems.append(f"QUEUES: listed twice: {', '.join(twice)}")
        if DEFAULT_QUEUE not in self.queues:
            problems.append(f"QUEUES must list {DEFAULT_QUEUE!r}, where jobs that name none go")
        for setting, names in (
            ("WORKER_QUEUES", self.worker_queues),
            ("WORKER_QUEUE_WEIGHTS", list(self.worker_queue_weights)),
        ):
            unknown = [name for name in names if name not in self.queues]
            if unknown:
                problems.append(f"{setting} names queues QUEUES lacks: {', '.join(unknown)}")
        weights = self.worker_queue_weights
        if weights and set(weights) != set(self.served_queues):
            problems.append("WORKER_QUEUE_WEIGHTS must give a weight to each queue served")
        if any(weight < 1 for weight in weights.values()):
            problems.append("WORKER_QUEUE_WEIGHTS: each weight is a whole number from 1")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @field_validator("retired_queue_name")
    @classmethod
    def _refuse_queue_name(cls, value: str | None) -> str | None:
        if value is not None:
            raise ValueError(
                "QUEUE_NAME is replaced by QUEUE_PREFIX: remove QUEUE_NAME (from .env and the "
                "environment), set QUEUE_PREFIX if several projects share this Redis, then move "
                "the queued jobs over with `just queue-migrate <the old QUEUE_NAME>` "
                '(docs/updates.md, "Queue namespaces")'
            )
        return value

    @field_validator("redis_sentinels", mode="before")
    @classmethod
    def _split_host_ports(cls, value: object) -> object:
        # "a:26379, b:26379" -> [("a", "26379"), ("b", "26379")]; pydantic checks each pair.
        if not isinstance(value, str):
            return value
        return [tuple(item.strip().rsplit(":", 1)) for item in value.split(",") if item.strip()]
{%- endif %}


def settings_or_exit(read: Callable[[], S]) -> S:
    """The settings `read` returns (`config.get_settings`), for a process's entry point: invalid
    ones end the process with one line naming each bad variable (exit status 1), not a traceback."""
    try:
        return read()
    except ValidationError as error:
        raise SystemExit(describe_invalid_settings(error)) from None


def describe_invalid_settings(error: ValidationError) -> str:
    """One line naming each bad variable and what is wrong, without its value (it may be secret)."""
    problems = [
        # A check of several settings together names them in its message.
        f"{str(problem['loc'][0]).upper()}: {problem['msg']}" if problem["loc"] else problem["msg"]
        for problem in error.errors()
    ]
    return "invalid settings (environment or .env): " + "; ".join(problems)
