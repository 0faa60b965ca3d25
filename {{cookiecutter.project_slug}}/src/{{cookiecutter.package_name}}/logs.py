# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Logging for every entry point{% if cookiecutter.cache_backend != "none" %} (the worker, the `arq` command{% if cookiecutter.api_framework == "fastapi" %}, the API{% endif %}){% elif cookiecutter.api_framework == "fastapi" %} (the API, the command line){% endif %}: text for people, JSON for machines.

`LOG_FORMAT=text` (the default) writes `12:00:01: message`. `LOG_FORMAT=json` writes one
JSON object per line, for a log shipper (Loki, CloudWatch, Datadog, ...):

    {"time": "2026-11-30T12:00:01.123Z", "level": "INFO", "logger": "...", "message": "..."}
{%- if cookiecutter.cache_backend != "none" %}

with `job_id`, `function`, `try` and `duration_ms` added where they are known: every line a job
logs (its own, and the retry and dead-letter lines) carries the job's id, function and try, and
each try ends with one "job finished" line that also has its outcome and `duration_ms`. arq's own
lines about a job (`→`, `←`) carry its id and function.
{%- endif %}
With tracing on (tracing.py), a JSON line logged inside a span also has its `trace_id` and
`span_id`, as the trace store shows them.
`LOG_LEVEL` is the level of the project's own loggers{% if cookiecutter.cache_backend != "none" %}; arq logs at INFO (DEBUG with `--verbose`){% endif %}.

Every record comes out as one line in either format, so that nothing sent from outside (a
request's path, an error message{% if cookiecutter.cache_backend != "none" %}, a job's arguments{% endif %}) can forge a log line: text lines
write line breaks and other control characters as escapes (`\\n`, `\\r`, `\\x1b`, `\\u2028`),
tracebacks included; JSON escapes them in its strings. The servers' own loggers (uvicorn's access
lines, ...) write through the same handler, in either format.

Both formats redact what they write (redaction.py: no URL credentials, no secret setting's
value) and cut a message or a traceback at LOG_TEXT_LIMIT characters, saying so.

A formatter of a few lines is enough for a fixed set of fields: no dependency for it.
"""

import json
import logging
{%- if cookiecutter.cache_backend != "none" %}
from contextvars import ContextVar
{%- endif %}
from datetime import UTC, datetime
from typing import Any, Literal

from . import tracing
from .redaction import LOG_TEXT_LIMIT, cap, redact

LogFormat = Literal["text", "json"]
{%- if cookiecutter.cache_backend != "none" %}

# The job the current task runs, set by `retrying()` (infrastructure/worker/retries.py) for each try:
# {"job_id": ..., "function": ..., "try": ...}.
job_fields: ContextVar[dict[str, Any] | None] = ContextVar("job_fields", default=None)

# arq's lines about one job, and which argument is "<job id>:<function>".
ARQ_JOB_LINES = {
    "%6.2fs → %s(%s)%s": 1,
    "%6.2fs ← %s ● %s": 1,
    "%6.2fs ↻ %s retrying job in %0.2fs": 1,
    "%6.2fs ⊘ %s aborted": 1,
    "%6.2fs ↻ %s cancelled, will be run again": 1,
    "%6.2fs ! %s max retries %d exceeded": 1,
}
{%- endif %}
# The fields a record may carry besides the four every line has, in the order they are written.
EXTRA_FIELDS = ("job_id", "function", "try", "duration_ms", "outcome")
# Loggers a server configures for itself (uvicorn, with its own handlers and format): they write
# through the project's handler instead, so that every line is in LOG_FORMAT and on one line.
SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
# The root logger's handler that `configure_logging` installs (and replaces when called again).
HANDLER_NAME = "{{ cookiecutter.package_name }}"
TEXT_FORMAT = "%(asctime)s: %(message)s"
_configured = False

# What would end a line or steer a terminal, as text lines write it: the C0 controls but tab,
# DEL, the C1 controls (NEL among them), and Unicode's line and paragraph separators.
_CONTROLS = [*range(0x09), *range(0x0A, 0x20), *range(0x7F, 0xA0), 0x2028, 0x2029]
TEXT_ESCAPES = {code: f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" for code in _CONTROLS}
TEXT_ESCAPES |= {0x0A: "\\n", 0x0D: "\\r"}
# JSON escapes C0 itself; these it writes as they are, and some readers take them as line ends.
JSON_ESCAPES = {code: f"\\u{code:04x}" for code in _CONTROLS if code >= 0x7F}


def one_line(text: str) -> str:
    """`text` with line breaks and other control characters (but tab) written as escapes."""
    return text.translate(TEXT_ESCAPES)


class TextFormatter(logging.Formatter):
    """`12:00:01: message`, on one line whatever the message, its arguments or its traceback."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT, "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        return one_line(cap(redact(super().format(record)), LOG_TEXT_LIMIT))


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601, ms), level, logger, message, the known
    job fields, `trace_id` and `span_id` with tracing on, and `exception` (the traceback) when
    there is one."""

    def format(self, record: logging.LogRecord) -> str:
        created = datetime.fromtimestamp(record.created, UTC)
        line: dict[str, Any] = {
            "time": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": cap(redact(record.getMessage()), LOG_TEXT_LIMIT),
        }
        for field in EXTRA_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                line[field] = value
        if tracing.enabled:  # the span the line was logged in, if any (tracing.py)
            line.update(tracing.log_fields())
        if record.exc_info:
            line["exception"] = cap(redact(self.formatException(record.exc_info)), LOG_TEXT_LIMIT)
        return json.dumps(line, ensure_ascii=False, default=str).translate(JSON_ESCAPES)
{%- if cookiecutter.cache_backend != "none" %}


class JobFieldsFilter(logging.Filter):
    """Adds the job's fields to a record: from the running try (`job_fields`), or from the
    "<job id>:<function>" in one of arq's job lines. Never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = job_fields.get()
        if fields is None and record.name == "arq.worker":
            fields = _fields_of_arq_line(record)
        if fields:
            for name, value in fields.items():
                if getattr(record, name, None) is None:
                    setattr(record, name, value)
        return True


def _fields_of_arq_line(record: logging.LogRecord) -> dict[str, Any] | None:
    position = ARQ_JOB_LINES.get(str(record.msg))
    if position is None or not isinstance(record.args, tuple) or len(record.args) <= position:
        return None
    job_id, _, function = str(record.args[position]).rpartition(":")
    return {"job_id": job_id, "function": function} if job_id else None
{%- endif %}


def configure_logging(level: str, log_format: LogFormat{% if cookiecutter.cache_backend != "none" %}, *, verbose: bool | None = None{% endif %}) -> None:
    """Send this process's log lines to stderr in `log_format`, through one handler on the root
    logger; calling it again replaces that handler.

    The project's loggers log at `level`{% if cookiecutter.cache_backend != "none" %}, arq's at INFO (DEBUG when `verbose`; when None, at
    the level it has: the `arq` command's, or WARNING for a worker built in-process){% endif %}, anything
    else at WARNING and up.
    Text is `12:00:01: message`{% if cookiecutter.cache_backend != "none" %} (arq's format){% endif %}. {% if cookiecutter.cache_backend != "none" %}arq's own handler is removed, so that its lines
    come out once, in this format. {% endif %}The servers' own loggers (uvicorn's access lines, ...)
    also write through this handler, so every line is in `log_format`. Every record is one line:
    text escapes line breaks and control characters (`one_line`). Other handlers on the root
    logger (pytest's, yours) are left alone.
    """
    global _configured
    handler = logging.StreamHandler()
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
{%- if cookiecutter.cache_backend != "none" %}
    handler.addFilter(JobFieldsFilter())
{%- endif %}
    root = logging.getLogger()
    for previous in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(previous)
    root.addHandler(handler)
    logging.getLogger(__name__.partition(".")[0]).setLevel(level)
{%- if cookiecutter.cache_backend != "none" %}
    arq_logger = logging.getLogger("arq")
    if verbose is not None:
        arq_logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    _write_through_root(arq_logger)
{%- endif %}
    for name in SERVER_LOGGERS:
        _write_through_root(logging.getLogger(name))
    _configured = True


def logging_configured() -> bool:
    """Whether `configure_logging` has run in this process."""
    return _configured


def _write_through_root(logger: logging.Logger) -> None:
    for own in list(logger.handlers):
        logger.removeHandler(own)
    logger.propagate = True
