"""The tracing seam: one setting (``TRACING_BACKEND``) picks who receives the request and Haystack spans.

- ``off`` (default outside the template): nothing is imported, Haystack keeps its no-op tracer.
- ``xray``: Powertools ``Tracer`` around the handler, Haystack spans as X-Ray subsegments
  (``core.observability.xray``). The X-Ray SDK is in maintenance mode: hence this seam.
- ``otel``: Haystack spans through ``opentelemetry-haystack`` on the global OpenTelemetry tracer
  provider, which the ADOT Lambda layer configures (``core.observability.otel``).

Every backend offers the same two things to the rest of the code: ``lambda_handler`` (wrap the entry
point) and ``annotate`` (indexed request facts on the current span). Content (pipeline and component
inputs/outputs) reaches a trace only with ``HAYSTACK_CONTENT_TRACING_ENABLED``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from haystack import tracing as haystack_tracing

from core.settings import Settings


class TracingError(RuntimeError):
    """The chosen backend cannot run here (e.g. ``otel`` without a configured tracer provider)."""


class Tracing(Protocol):
    """What the handler and the middleware need from a tracing backend."""

    backend: str

    def lambda_handler(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap the Lambda entry point (one span per invocation)."""
        ...

    def annotate(self, values: dict[str, str | int | float | bool]) -> None:
        """Attach indexed, non-content facts of the request to the current span."""
        ...


class NoTracing:
    """``TRACING_BACKEND=off``: no span, no import."""

    backend = "off"

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
    if settings.tracing_backend == "xray":
        from core.observability.xray import XRayTracing  # noqa: PLC0415 - the X-Ray SDK only when chosen

        return XRayTracing(settings)
    if settings.tracing_backend == "otel":
        from core.observability.otel import OtelTracing  # noqa: PLC0415 - OpenTelemetry only when chosen

        return OtelTracing(settings)
    haystack_tracing.disable_tracing()
    return NoTracing()
