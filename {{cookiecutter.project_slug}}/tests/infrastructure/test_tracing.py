# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Traces from a request to a job's tries (tracing.py): the API in process, with its spans in the
SDK's in-memory exporter, and a real worker process exporting over OTLP/HTTP to a receiver on
127.0.0.1 that decodes them with the exporter's own protobuf classes."""

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis
from arq.constants import job_key_prefix
from fastapi import APIRouter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from {{ cookiecutter.package_name }} import tracing
from {{ cookiecutter.package_name }}.api.app import create_app
from {{ cookiecutter.package_name }}.queue import enqueue_chain, enqueue_group, enqueue_task, get_job

from . import tracing_jobs
from .conftest import WorkerProcesses

# arq's own fields of a job's payload: the try, function, arguments, keywords, enqueue time.
ARQ_FIELDS = {"t", "f", "a", "k", "et"}


@dataclass(frozen=True)
class SeenSpan:
    """A span as the test sees it, from either exporter: ids in hex, kind in lower case."""

    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_id: str | None
    attributes: dict[str, Any]
    links: list[str] = field(default_factory=list)


def seen_in_memory(span: ReadableSpan) -> SeenSpan:
    assert span.context is not None
    return SeenSpan(
        name=span.name,
        kind=span.kind.name.lower(),
        trace_id=f"{span.context.trace_id:032x}",
        span_id=f"{span.context.span_id:016x}",
        parent_id=None if span.parent is None else f"{span.parent.span_id:016x}",
        attributes=dict(span.attributes or {}),
        links=[f"{link.context.span_id:016x}" for link in span.links],
    )


def value_of(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return None if kind is None else getattr(value, kind)


def seen_over_otlp(span: ProtoSpan) -> SeenSpan:
    return SeenSpan(
        name=span.name,
        kind=ProtoSpan.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_").lower(),
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_id=span.parent_span_id.hex() or None,
        attributes={item.key: value_of(item.value) for item in span.attributes},
        links=[link.span_id.hex() for link in span.links],
    )


class OtlpReceiver:
    """An OTLP/HTTP trace receiver on 127.0.0.1 (a free port): what a collector would get."""

    def __init__(self) -> None:
        self.spans: list[SeenSpan] = []
        spans = self.spans

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest.FromString(body)
                for resource in request.resource_spans:
                    for scope in resource.scope_spans:
                        spans.extend(seen_over_otlp(span) for span in scope.spans)
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # not on the test's output

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    async def wait_for(self, name: str, count: int, seconds: float = 15) -> list[SeenSpan]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            found = [span for span in self.spans if span.name == name]
            if len(found) >= count:
                return found
            await asyncio.sleep(0.05)
        raise AssertionError(
            f"{count} spans named {name!r} not received in {seconds} s: {self.spans}"
        )


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


@pytest.fixture
def in_memory_spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on in this process, every span kept in memory; off again afterwards."""
    exporter = InMemorySpanExporter()
    tracing.start_tracing(SimpleSpanProcessor(exporter))
    yield exporter
    tracing.stop_tracing()


traced = APIRouter()


@traced.post("/traced", status_code=202)
async def enqueue_traced_job() -> dict[str, str]:
    job = await enqueue_task("traced_flaky", "hello")
    assert job is not None
    return {"job_id": job.job_id}


@pytest.fixture
async def client(task_pool: ArqRedis) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app()
    app.include_router(traced)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        yield client


def tree(spans: list[SeenSpan]) -> list[str]:
    """The spans as an indented tree, children in start order: `name (kind) key=value ...`.
    The FastAPI instrumentation's own inner spans (`fastapi.endpoint`, ..., which its newer
    releases add) are left out, their children shown under their parent."""
    by_id = {span.span_id: span for span in spans}

    def parent_of(span: SeenSpan) -> str | None:
        parent = span.parent_id
        while parent in by_id and by_id[parent].name.startswith("fastapi."):
            parent = by_id[parent].parent_id
        return parent

    shown = [span for span in spans if not span.name.startswith("fastapi.")]
    lines: list[str] = []

    def add(parent: str | None, depth: int) -> None:
        for span in [span for span in shown if parent_of(span) == parent]:
            keys = ("job.try", "job.outcome")
            values = " ".join(
                f"{key}={span.attributes[key]}" for key in keys if key in span.attributes
            )
            lines.append(f"{'  ' * depth}{span.name} ({span.kind}) {values}".rstrip())
            add(span.span_id, depth + 1)

    roots = {parent_of(span) for span in shown if parent_of(span) not in by_id}
    for root in roots:
        add(root, 0)
    return lines


async def test_a_request_its_job_and_both_tries_are_one_trace(
    in_memory_spans: InMemorySpanExporter,
    receiver: OtlpReceiver,
    client: httpx.AsyncClient,
    worker_processes: WorkerProcesses,
) -> None:
    worker_processes.start(
        f"{tracing_jobs.__name__}.WorkerSettings",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_BSP_SCHEDULE_DELAY="50",  # ms: the spans arrive while the test waits
        WORKER_RETRY_BASE="0.05",
        LOG_FORMAT="json",
    )
    accepted = await client.post("/traced")
    job = await get_job(accepted.json()["job_id"])
    assert await job.result(timeout=30) == "hello"
    tries = sorted(
        await receiver.wait_for("run traced_flaky", 2), key=lambda s: s.attributes["job.try"]
    )
    spans = [seen_in_memory(span) for span in in_memory_spans.get_finished_spans()]
    print("\n".join(tree([*spans, *tries])))  # the trace as the test sees it (pytest -s)

    assert tree([*spans, *tries]) == [
        "POST /traced (server)",
        "  enqueue traced_flaky (producer)",
        "    run traced_flaky (consumer) job.try=1 job.outcome=retried",
        "    run traced_flaky (consumer) job.try=2 job.outcome=complete",
    ]
    (request,) = [span for span in spans if span.kind == "server"]
    (enqueue,) = [span for span in spans if span.kind == "producer"]
    assert enqueue.attributes["job.id"] == job.job_id
    for number, each in enumerate(tries, start=1):
        assert each.trace_id == request.trace_id == enqueue.trace_id
        assert each.parent_id == enqueue.span_id
        assert each.links == [enqueue.span_id]
        assert each.attributes == {
            "job.id": job.job_id,
            "job.function": "traced_flaky",
            "job.queue": job.queue_name,
            "job.try": number,
            "job.outcome": ["retried", "complete"][number - 1],
            "messaging.system": "arq",
        }
    # The job's own line, in JSON, names the span of the try that logged it.
    lines = [
        json.loads(line) for line in worker_processes.log(0).splitlines() if line.startswith("{")
    ]
    (ran,) = [line for line in lines if line["message"] == "traced_flaky ran: hello"]
    assert (ran["trace_id"], ran["span_id"]) == (request.trace_id, tries[1].span_id)


async def test_a_chain_s_steps_and_a_group_s_members_and_callback_join_the_trace_that_queued_them(
    in_memory_spans: InMemorySpanExporter,
    receiver: OtlpReceiver,
    worker_processes: WorkerProcesses,
) -> None:
    worker_processes.start(
        f"{tracing_jobs.__name__}.WorkerSettings",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_BSP_SCHEDULE_DELAY="50",
    )
    step, total = tracing_jobs.traced_step, tracing_jobs.traced_total
    with tracing.tracer().start_as_current_span("queue a chain") as chain_root:
        chain = await enqueue_chain(step.call(1), step.step(), step.step())
    with tracing.tracer().start_as_current_span("queue a group") as group_root:
        group = await enqueue_group([step.call(10), step.call(20)], then=total.step())
    assert chain is not None
    assert group is not None
    assert await chain.result(timeout=30) == 4
    assert await group.result(timeout=30) == 32

    steps = await receiver.wait_for("run traced_step", 5)
    (callback,) = await receiver.wait_for("run traced_total", 1)
    chain_trace = format(chain_root.get_span_context().trace_id, "032x")
    group_trace = format(group_root.get_span_context().trace_id, "032x")
    # Each job's try is in the trace of the code that queued its workflow, chain steps handed
    # over from one try to the next included.
    assert sorted(span.trace_id for span in steps) == sorted([chain_trace] * 3 + [group_trace] * 2)
    assert callback.trace_id == group_trace
    assert {span.attributes["job.outcome"] for span in [*steps, callback]} == {"complete"}


async def payload_fields(task_pool: ArqRedis, job_id: str) -> set[str]:
    payload = await task_pool.get(job_key_prefix + job_id)
    assert payload is not None
    fields: set[str] = set(json.loads(payload))
    return fields


async def test_a_payload_carries_a_trace_context_only_with_tracing_on(task_pool: ArqRedis) -> None:
    off = await enqueue_task("traced_flaky", "off")
    exporter = InMemorySpanExporter()
    tracing.start_tracing(SimpleSpanProcessor(exporter))
    try:
        on = await enqueue_task("traced_flaky", "on")
    finally:
        tracing.stop_tracing()
    assert off is not None
    assert on is not None

    assert await payload_fields(task_pool, off.job_id) == ARQ_FIELDS
    assert await payload_fields(task_pool, on.job_id) == {*ARQ_FIELDS, tracing.TRACE_FIELD}
    (enqueue,) = exporter.get_finished_spans()
    context = enqueue.context
    assert context is not None
    payload = await task_pool.get(job_key_prefix + on.job_id)
    assert tracing.payload_trace_context(payload) == {
        "traceparent": "-".join(
            (
                "00",
                f"{context.trace_id:032x}",
                f"{context.span_id:016x}",
                f"{context.trace_flags:02x}",
            )
        )
    }


@pytest.mark.parametrize(
    ("variables", "on"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
                "OTEL_TRACES_EXPORTER": "none",
            },
            False,
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"},
            False,
        ),
    ],
)
def test_the_otel_variables_turn_tracing_on(variables: dict[str, str], on: bool) -> None:
    assert tracing.tracing_requested(variables) is on


def test_a_protocol_it_cannot_send_with_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    tracing.init_tracing.cache_clear()
    with pytest.raises(ValueError, match=r"OTEL_EXPORTER_OTLP_PROTOCOL='grpc'.*http/protobuf"):
        tracing.init_tracing()
    assert not tracing.enabled
