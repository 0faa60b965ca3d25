# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""OpenTelemetry traces, on when the standard `OTEL_*` variables ask for them (docs/tracing.md).

Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, or
`OTEL_TRACES_EXPORTER` names an exporter (`otlp`, `console`); `OTEL_SDK_DISABLED=true` or
`OTEL_TRACES_EXPORTER=none` keeps it off. The variables are read from the process environment,
as the SDK reads them, not from `.env`. The SDK is imported only then, as sentry-sdk is
(error_tracking.py): a process with tracing off imports none of it, and pays one check of the
module-level boolean `enabled` where a span would start{% if cookiecutter.cache_backend != "none" %} (per enqueue, per try){% endif %}. Everything else
(`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_BSP_*`,
sampling with `OTEL_TRACES_SAMPLER`) is the SDK's own reading. Spans go out over OTLP/HTTP
(protobuf), the lighter of the two OTLP exporters: no gRPC.
{%- if cookiecutter.api_framework == "fastapi" %}

The API's requests are spans (opentelemetry-instrumentation-fastapi), but for the probes and
the metrics (`/health/...`, `/metrics`), which would fill a trace store with nothing.
{%- endif %}
{%- if cookiecutter.cache_backend != "none" %}

A job's trace, one per request:

    POST /examples                     the request (server span)
      enqueue example_task             the enqueue (producer span): its W3C context goes in the job
        run example_task  try 1        a try (consumer span), job.outcome = retried
        run example_task  try 2        a try, job.outcome = complete

The enqueue writes its span's W3C trace context (`traceparent`, `tracestate`) into the job's
payload under `"tc"` (TRACE_FIELD; arq's `"t"` is the try), beside a workflow's membership
(`"w"`); only when tracing is on, so a payload is byte for byte what it was when it is off. Each try is a new span whose parent
is that context, and which is also linked to it: "linked to the enqueue's span" and "in the same
trace" at once, so a trace viewer draws the job under its request, and a backend that follows
links (or a try whose enqueue was sampled out of a tail sampler's store) still finds the enqueue.
A retry queues the same payload again, so every try of a job is a child of its one enqueue,
never of the try before it; so is an abort. A chain's later steps and a group's members and
callback are written when the workflow is enqueued, with the same context: they are in the same
trace. A job enqueued by a running job is a child of that try's span. Attributes of a try:
`job.id`, `job.function`, `job.queue` (the queue's key), `job.try`, `job.outcome` (job_events.py's
outcome: complete, retried, failed, aborted); a failed try records its exception.
{%- endif %}

Why main dependencies, imported lazily, and not an optional group: tracing is turned on where
the service is deployed, by environment variables alone, as Sentry is; an optional group would
need a different image for it. The cost is the install (the SDK, the OTLP/HTTP exporter with
protobuf and requests{% if cookiecutter.api_framework == "fastapi" %}, the FastAPI instrumentation{% endif %}), never start-up time or memory while tracing is off.
"""

import functools
{%- if cookiecutter.cache_backend != "none" %}
import json
{%- endif %}
import os
{%- if cookiecutter.cache_backend != "none" %}
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
{%- else %}
from collections.abc import Mapping
{%- endif %}
from typing import TYPE_CHECKING

if TYPE_CHECKING:
{%- if cookiecutter.api_framework == "fastapi" %}
    from fastapi import FastAPI
{%- endif %}
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.trace import {% if cookiecutter.cache_backend != "none" %}Span, {% endif %}Tracer

# Whether spans are made in this process: read (not called) where a span would start, so that
# the cost with tracing off is one global lookup. Set by `start_tracing`, cleared by `stop_tracing`.
enabled = False
{%- if cookiecutter.cache_backend != "none" %}
# A job's trace context in its payload: {"traceparent": "00-...", "tracestate": "..."}.
TRACE_FIELD = "tc"
_MARK = b'"tc":{'
{%- endif %}
# Spans of the project's own code are named by this instrumentation scope.
SCOPE = "{{ cookiecutter.package_name }}"
# Exporters `OTEL_TRACES_EXPORTER` may name (a comma-separated list).
EXPORTERS = ("otlp", "console")
{%- if cookiecutter.api_framework == "fastapi" %}
# Requests that get no span: health probes and metrics scrapes (regular expressions).
UNTRACED_URLS = "/health/,/metrics$"
{%- endif %}

_provider: "TracerProvider | None" = None
_tracer: "Tracer | None" = None
_global_provider_set = False


def tracing_requested(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the `OTEL_*` variables in `environ` ask for traces (see the module's docstring)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


@functools.cache
def init_tracing() -> bool:
    """Start tracing once per process if the `OTEL_*` variables ask for it; True if it is on.

    Raises ValueError, with one line naming the variable, for an exporter or a protocol this
    project cannot send with.
    """
    if enabled:  # started already (`start_tracing`, as tests and benchmarks do)
        return True
    if not tracing_requested():
        return False
    # Here, not at the top: only processes that trace pay for the SDK.
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

    names = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() or "otlp"
    exporters: list[SpanExporter] = []
    for name in (part.strip() for part in names.split(",")):
        if name == "otlp":
            protocol = os.environ.get(
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            )
            if protocol != "http/protobuf":
                raise ValueError(
                    f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: this project sends traces over "
                    "OTLP/HTTP only; set it to 'http/protobuf' (or leave it unset)"
                )
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporters.append(OTLPSpanExporter())  # endpoint, headers, timeout: the OTEL_* variables
        elif name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            exporters.append(ConsoleSpanExporter())
        else:
            raise ValueError(
                f"OTEL_TRACES_EXPORTER={names!r}: {name!r} is not one of {', '.join(EXPORTERS)}, none"
            )
    start_tracing(*(BatchSpanProcessor(exporter) for exporter in exporters))
    return True


def start_tracing(*processors: "SpanProcessor") -> None:
    """Make spans from now on, handed to `processors` (a `BatchSpanProcessor` around an exporter).

    `init_tracing` calls it with what the `OTEL_*` variables name; tests and benchmarks call it
    with an in-memory or a no-op exporter. The first provider started in a process is also
    OpenTelemetry's global one, so your own `trace.get_tracer(...)` spans join the same traces.
    """
    global enabled, _provider, _tracer, _global_provider_set
    from opentelemetry import trace
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider

    named = "OTEL_SERVICE_NAME" in os.environ or "service.name" in os.environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    attributes = {} if named else {SERVICE_NAME: "{{ cookiecutter.project_slug }}"}
    provider = TracerProvider(resource=Resource.create(attributes))
    for processor in processors:
        provider.add_span_processor(processor)
    if not _global_provider_set:  # OpenTelemetry refuses a second one (with a warning)
        trace.set_tracer_provider(provider)
        _global_provider_set = True
    _provider, _tracer = provider, provider.get_tracer(SCOPE)
    enabled = True


def stop_tracing() -> None:
    """Send the buffered spans and stop making new ones (a process's shutdown, a test's end)."""
    global enabled, _provider, _tracer
    enabled = False
    if _provider is not None:
        _provider.shutdown()  # flushes every processor first
    _provider = _tracer = None
    init_tracing.cache_clear()


def tracer() -> "Tracer":
    """The project's tracer; only while tracing is on (`enabled`)."""
    if _tracer is None:
        raise RuntimeError("tracing is off: check `tracing.enabled` first")
    return _tracer


def log_fields() -> dict[str, str]:
    """The current span's `trace_id` and `span_id` (hex, as trace stores show them) for a log
    line; empty outside a span or with tracing off."""
    if not enabled:
        return {}
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {
        "trace_id": trace.format_trace_id(context.trace_id),
        "span_id": trace.format_span_id(context.span_id),
    }
{%- if cookiecutter.api_framework == "fastapi" %}


def instrument_app(app: "FastAPI") -> None:
    """Make each request to `app` a span (but UNTRACED_URLS'), if tracing is on."""
    if not init_tracing():
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=_provider,
        excluded_urls=UNTRACED_URLS,
        # No span per ASGI message sent or received: the request's own span says it all.
        exclude_spans=["receive", "send"],
    )
{%- endif %}
{%- if cookiecutter.cache_backend != "none" %}


@contextmanager
def enqueue_span(function: str, queue: str) -> "Iterator[Span]":
    """A span around one enqueue of `function` to `queue` (the queue's key, as each try's span
    names it), current while it is open: `trace_context()` inside it is what the job carries."""
    from opentelemetry.trace import SpanKind

    attributes = {"job.function": function, "job.queue": queue, "messaging.system": "arq"}
    with tracer().start_as_current_span(
        f"enqueue {function}", kind=SpanKind.PRODUCER, attributes=attributes
    ) as span:
        yield span


def trace_context() -> dict[str, str]:
    """The current span's W3C trace context, for a job's payload: {"traceparent": ...} (and
    "tracestate" when there is one); empty outside a span."""
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier


def payload_trace_context(payload: bytes) -> dict[str, str] | None:
    """The trace context a job's payload carries (TRACE_FIELD), or None (none, or unreadable:
    the try then starts a trace of its own)."""
    if _MARK not in payload:
        return None
    try:
        value = json.loads(payload).get(TRACE_FIELD)
    except (ValueError, AttributeError):
        return None
    if not isinstance(value, dict):
        return None
    return {key: text for key, text in value.items() if isinstance(text, str)}


@contextmanager
def try_span(
    carrier: Mapping[str, str] | None, job_id: str, function: str, queue: str, job_try: int
) -> "Iterator[Span]":
    """A span for one try of a job, current while it runs: a child of the enqueue's context
    (`carrier`, from the payload) and linked to it. Set its outcome with `set_outcome`."""
    from opentelemetry import trace
    from opentelemetry.trace import Link, SpanKind
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    parent = TraceContextTextMapPropagator().extract(carrier) if carrier else None
    enqueued = trace.get_current_span(parent).get_span_context() if parent else None
    links = [Link(enqueued)] if enqueued is not None and enqueued.is_valid else []
    attributes: dict[str, str | int] = {
        "job.id": job_id,
        "job.function": function,
        "job.queue": queue,
        "job.try": job_try,
        "messaging.system": "arq",
    }
    with tracer().start_as_current_span(
        f"run {function}",
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes=attributes,
        links=links,
        # The outcome decides the status (`set_outcome`): a retried try's exception is not an
        # error of the job's.
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        yield span


def set_outcome(span: "Span", outcome: str, error: BaseException | None) -> None:
    """Record a try's outcome (job_events.py's Outcome) on its span: a failed try's status is an
    error; a retried or failed try records its exception as an event."""
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("job.outcome", outcome)
    if error is not None:
        span.record_exception(error)
    if outcome == "failed":
        span.set_status(Status(StatusCode.ERROR, None if error is None else type(error).__name__))
{%- endif %}
