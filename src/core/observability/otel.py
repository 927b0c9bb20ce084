"""``TRACING_BACKEND=otel``: Haystack's spans through OpenTelemetry, on the provider the ADOT layer sets up.

The ADOT Lambda layer (``AWS_LAMBDA_EXEC_WRAPPER=/opt/otel-instrument``) configures the global tracer
provider and its exporter before the handler is imported, and opens the invocation span itself; this
module adds a request span and hands Haystack an ``OpenTelemetryTracer`` (``opentelemetry-haystack``)
on that provider. Without a configured provider (no SDK), spans would vanish: init stops instead.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from haystack_integrations.tracing.opentelemetry import OpenTelemetryTracer
from opentelemetry import trace

from core.observability.exceptions import TracingError
from core.settings import Settings


class OtelTracing:
    """The ``otel`` backend.

    Args:
        settings: The service name names the instrumentation scope.
        provider: A tracer provider (tests pass an SDK one); default: the global one.

    Raises:
        TracingError: No OpenTelemetry SDK has configured the global provider.
    """

    backend = "otel"

    def __init__(self, settings: Settings, provider: Any = None) -> None:
        provider = provider or trace.get_tracer_provider()
        if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
            raise TracingError(
                "TRACING_BACKEND=otel needs a configured OpenTelemetry tracer provider: add the ADOT Lambda "
                "layer (AdotLayerArn) or set TRACING_BACKEND=xray|off"
            )
        self.tracer = provider.get_tracer(settings.powertools_service_name)
        self.haystack_tracer = OpenTelemetryTracer(self.tracer)
        self._invocation_span: trace.Span | None = None  # one invocation at a time per container

    def lambda_handler(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        """One server span per invocation (under ADOT's invocation span when the layer opened one)."""

        @functools.wraps(handler)
        def traced(event: Any, context: Any) -> Any:
            with self.tracer.start_as_current_span("handler", kind=trace.SpanKind.SERVER) as span:
                self._invocation_span = span
                try:
                    return handler(event, context)
                finally:
                    self._invocation_span = None

        return traced

    def annotate(self, values: dict[str, str | int | float | bool]) -> None:
        """Set the values as attributes of the invocation's span (else the current one, if still recording).

        The middleware annotates when the response is sent, after any inner span has ended.
        """
        span = self._invocation_span or trace.get_current_span()
        if not span.is_recording():
            return
        for key, value in values.items():
            span.set_attribute(key, value)
