"""Errors of the observability package (a leaf: the tracing seam and its backends both import it)."""


class TracingError(RuntimeError):
    """The chosen tracing backend cannot run here (e.g. ``otel`` without a configured tracer provider)."""
