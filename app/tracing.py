"""OpenTelemetry traces (`[tracing] enabled`, off by default): a span per MCP request, a child span
per upstream request, and W3C trace context (`traceparent`) sent to the upstream.

- `build(settings)` makes this app's `Traces`: its own `TracerProvider` (never the global one, so
  that apps in one process, tests among them, do not share spans), exporting to OTLP over HTTP
  (the standard `OTEL_EXPORTER_OTLP_*` variables say where), to the console, or nowhere
  (`exporter = "none"`: for programs that add their own span processor, as the tests do with the
  SDK's in-memory exporter). It returns None when tracing is off.
- `TracedRequests` is the ASGI middleware around `/mcp/{upstream}`: one SERVER span per request,
  continuing the agent's own `traceparent` when it sends one, named `POST /mcp/{upstream}`, with
  the request's correlation fields (`app/logs.py`) as attributes when it ends: `airlock.upstream`,
  `airlock.agent`, `airlock.tool`, `airlock.decision`, `airlock.approval_id`.
- `upstream_span(upstream, method)` wraps one upstream HTTP request in a CLIENT span, child of the
  current one, and gives the headers that carry it (`traceparent`) to the upstream.

Zero cost when off: the middleware is not installed, nothing imports `opentelemetry`, and
`upstream_span` reads one context variable and hands back one shared, empty context manager
(no generator per upstream request; issue 12). The `opentelemetry-sdk` and OTLP exporter packages
are the optional `tracing` extra (`pip install 'airlock[tracing]'`).

- The approval lifecycle, which outlives the request that parked the call by minutes or hours:
  `current_traceparent()` is the parking request's span context, stored with the approval (as the
  `traceparent` of the headers the approved call is forwarded with); `lifecycle_span(...)` opens
  the spans of the decision (`approval decide`) and of the execution (`approval execute`, whose
  upstream request is its child CLIENT span) in their own traces, each with an OpenTelemetry
  **link** to the parking span, so a trace viewer goes from the held call to what became of it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from app.config import TracingSettings
from app.errors import ConfigError
from app.logs import current_fields
from app.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

_FIELD_ATTRIBUTES: Final = ("upstream", "agent", "tool", "decision", "approval_id")
_current_tracer: ContextVar[Tracer | None] = ContextVar("airlock_tracer", default=None)


class Traces:
    """One app's tracer provider and tracer."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("airlock")


def build(settings: TracingSettings) -> Traces | None:
    """This app's `Traces`, or None when tracing is off.

    Raises:
        ConfigError: tracing is on but the OpenTelemetry SDK (or the OTLP exporter) is not installed.
    """
    if not settings.enabled:
        return None
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
    except ImportError:
        raise ConfigError("[tracing] enabled needs the OpenTelemetry SDK: pip install 'airlock[tracing]'") from None
    provider = TracerProvider(resource=Resource.create({"service.name": settings.service_name}))
    exporter: SpanExporter | None = None
    if settings.exporter == "console":
        exporter = ConsoleSpanExporter()
    elif settings.exporter == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise ConfigError(
                "[tracing] exporter = \"otlp\" needs the OTLP exporter: pip install 'airlock[tracing]'"
            ) from None
        exporter = OTLPSpanExporter()
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return Traces(provider)


def wrap(app: ASGIApp, traces: Traces | None) -> ASGIApp:
    """`app` inside `TracedRequests` when tracing is on, else `app` itself."""
    return app if traces is None else TracedRequests(app, traces)


class TracedRequests:
    """One SERVER span per HTTP request; must run inside `AccessLog`, whose fields it reads."""

    def __init__(self, app: ASGIApp, traces: Traces) -> None:
        from opentelemetry.trace import SpanKind, StatusCode
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.app = app
        self._tracer = traces.tracer
        self._propagator = TraceContextTextMapPropagator()
        self._server_kind = SpanKind.SERVER
        self._error = StatusCode.ERROR

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        carrier = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        parent = self._propagator.extract(carrier)
        status: list[int] = []

        async def send_noting_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        name = f"{scope['method']} /mcp/{{upstream}}"
        with self._tracer.start_as_current_span(name, context=parent, kind=self._server_kind) as span:
            token = _current_tracer.set(self._tracer)
            try:
                await self.app(scope, receive, send_noting_status)
            finally:
                _current_tracer.reset(token)
                span.set_attributes(_request_attributes(scope, status[0] if status else 500))
                if not status or status[0] >= 500:
                    span.set_status(self._error)


def _request_attributes(scope: Scope, status: int) -> dict[str, Any]:
    fields = current_fields()
    attributes: dict[str, Any] = {
        "http.request.method": scope["method"],
        "http.route": "/mcp/{upstream}",
        "url.path": scope["path"],
        "http.response.status_code": status,
    }
    attributes.update({f"airlock.{key}": str(fields[key]) for key in _FIELD_ATTRIBUTES if key in fields})
    return attributes


_NO_SPAN: Final[AbstractContextManager[Mapping[str, str]]] = nullcontext(MappingProxyType({}))
"""What `upstream_span` gives when tracing is off: reusable, and its headers cannot be changed."""


def upstream_span(upstream: str, method: str) -> AbstractContextManager[Mapping[str, str]]:
    """A CLIENT span around one upstream request; yields the headers that propagate it (empty when off)."""
    tracer = _current_tracer.get()
    return _NO_SPAN if tracer is None else _client_span(tracer, upstream, method)


@contextmanager
def _client_span(tracer: Tracer, upstream: str, method: str) -> Iterator[Mapping[str, str]]:
    from opentelemetry.propagate import inject
    from opentelemetry.trace import SpanKind

    fields = current_fields()
    attributes = {"http.request.method": method, "airlock.upstream": upstream}
    if "tool" in fields:
        attributes["airlock.tool"] = str(fields["tool"])
    with tracer.start_as_current_span(f"upstream {method}", kind=SpanKind.CLIENT, attributes=attributes):
        headers: dict[str, str] = {}
        inject(headers)
        yield headers


def current_traceparent() -> str | None:
    """The W3C `traceparent` of the span being served, or None when tracing is off (or no span is)."""
    if _current_tracer.get() is None:
        return None
    from opentelemetry.propagate import inject

    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier.get("traceparent")


@contextmanager
def lifecycle_span(
    traces: Traces | None, name: str, *, parked_by: str | None, attributes: Mapping[str, str]
) -> Iterator[None]:
    """A span for one step of an approval's lifecycle, linked to the span that parked the call.

    `parked_by` is that span's `traceparent` (from `current_traceparent()` at park time). Upstream
    requests made inside get their CLIENT span as children of this one. Nothing happens when off.
    """
    if traces is None:
        yield
        return
    from opentelemetry.context import Context
    from opentelemetry.trace import Link, SpanKind, get_current_span
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    links = []
    if parked_by:
        parked = get_current_span(TraceContextTextMapPropagator().extract({"traceparent": parked_by}))
        if parked.get_span_context().is_valid:
            links.append(Link(parked.get_span_context()))
    # A new root (the empty Context): the step belongs to the approval, not to whichever request
    # happens to run it (a reviewer's API call, or a held stream that resumed).
    with traces.tracer.start_as_current_span(
        name, context=Context(), kind=SpanKind.INTERNAL, links=links, attributes=dict(attributes)
    ):
        token = _current_tracer.set(traces.tracer)
        try:
            yield
        finally:
            _current_tracer.reset(token)
