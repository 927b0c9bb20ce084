"""The tracing seam: one setting (``TRACING_BACKEND``) picks who receives the request and Haystack spans.

- ``off`` (default outside the template): nothing is imported, Haystack keeps its no-op tracer.
- ``xray``: Powertools ``Tracer`` around the handler, Haystack spans as X-Ray subsegments
  (``core.observability.xray``). The X-Ray SDK is in maintenance mode: hence this seam.
- ``otel``: Haystack spans through ``opentelemetry-haystack`` on the global OpenTelemetry tracer
  provider, which the ADOT Lambda layer configures (``core.observability.otel``).

Every backend offers the same two things to the rest of the code: ``lambda_handler`` (wrap the entry
point) and ``annotate`` (indexed request facts on the current span), plus ``haystack_tracer`` for
Haystack's spans. Content reaches a trace only with ``HAYSTACK_CONTENT_TRACING_ENABLED``: Haystack
itself sends ``haystack.pipeline.input_data`` (the caller's query) as a plain tag, so ``ContentGuard``
drops every content tag unless the setting is on, whichever backend receives the spans.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from haystack import tracing as haystack_tracing

from core.observability.exceptions import TracingError
from core.settings import Settings

__all__ = ["ContentGuard", "NoTracing", "Tracing", "TracingError", "build_tracing", "enable_haystack_tracing"]

# Tags that carry user content: queries, documents, answers.
CONTENT_TAGS = frozenset(
    {
        "haystack.pipeline.input_data",
        "haystack.pipeline.output_data",
        "haystack.component.input",
        "haystack.component.output",
    }
)


def _content_allowed() -> bool:
    return haystack_tracing.tracer.is_content_tracing_enabled


class GuardedSpan(haystack_tracing.Span):
    """A span that drops content tags unless content tracing is on."""

    def __init__(self, span: haystack_tracing.Span) -> None:
        self.inner = span

    def set_tag(self, key: str, value: Any) -> None:
        """Forward the tag, unless it is content and content tracing is off."""
        if key not in CONTENT_TAGS or _content_allowed():
            self.inner.set_tag(key, value)

    def raw_span(self) -> Any:
        """The backend's span."""
        return self.inner.raw_span()

    def get_correlation_data_for_logs(self) -> dict[str, Any]:
        """The backend's correlation data."""
        return self.inner.get_correlation_data_for_logs()


class ContentGuard(haystack_tracing.Tracer):
    """Wraps a backend's Haystack tracer so that no content tag reaches it unless allowed."""

    def __init__(self, inner: haystack_tracing.Tracer) -> None:
        self.inner = inner

    @contextlib.contextmanager
    def trace(
        self,
        operation_name: str,
        tags: dict[str, Any] | None = None,
        parent_span: haystack_tracing.Span | None = None,
    ) -> Iterator[haystack_tracing.Span]:
        """Open the backend's span with the content tags removed (unless allowed)."""
        if tags and not _content_allowed():
            tags = {k: v for k, v in tags.items() if k not in CONTENT_TAGS}
        parent = parent_span.inner if isinstance(parent_span, GuardedSpan) else parent_span
        with self.inner.trace(operation_name, tags=tags, parent_span=parent) as span:
            yield GuardedSpan(span)

    def current_span(self) -> haystack_tracing.Span | None:
        """The backend's current span, guarded."""
        span = self.inner.current_span()
        return GuardedSpan(span) if span is not None else None


class Tracing(Protocol):
    """What the handler and the middleware need from a tracing backend."""

    backend: str
    haystack_tracer: haystack_tracing.Tracer | None

    def lambda_handler(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap the Lambda entry point (one span per invocation)."""
        ...

    def annotate(self, values: dict[str, str | int | float | bool]) -> None:
        """Attach indexed, non-content facts of the request to the current span."""
        ...


class NoTracing:
    """``TRACING_BACKEND=off``: no span, no import."""

    backend = "off"
    haystack_tracer = None

    def lambda_handler(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        """Return the handler unchanged."""
        return handler

    def annotate(self, values: dict[str, str | int | float | bool]) -> None:
        """Do nothing."""


def build_tracing(settings: Settings) -> Tracing:
    """Enable the backend ``settings.tracing_backend`` names, for Haystack's spans as well.

    Raises:
        TracingError: The backend's requirements are missing.
    """
    haystack_tracing.tracer.is_content_tracing_enabled = settings.haystack_content_tracing_enabled
    backend: Tracing
    if settings.tracing_backend == "xray":
        from core.observability.xray import XRayTracing  # noqa: PLC0415 - the X-Ray SDK only when chosen

        backend = XRayTracing(settings)
    elif settings.tracing_backend == "otel":
        from core.observability.otel import OtelTracing  # noqa: PLC0415 - OpenTelemetry only when chosen

        backend = OtelTracing(settings)
    else:
        backend = NoTracing()
    enable_haystack_tracing(backend)
    return backend


def enable_haystack_tracing(backend: Tracing) -> None:
    """Send Haystack's spans to ``backend`` (through ``ContentGuard``), or nowhere for ``off``."""
    if backend.haystack_tracer is None:
        haystack_tracing.disable_tracing()
    else:
        haystack_tracing.enable_tracing(ContentGuard(backend.haystack_tracer))
