"""The per-container telemetry: metrics, tracing, log level sampling and the audit line of each request.

``build_telemetry`` runs inside ``core.runtime.container.build_runtime``; ``core.runtime.boot`` adds the Powertools
logger (``configure_logging``) first, so that init itself logs JSON. The middleware calls
``start``/``finish`` around each request; ``lambda_handler`` wraps the Lambda entry point with
Powertools' decorators (context keys, cold start, metric flush) and the tracing backend's.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from haystack import tracing as haystack_tracing

from core.observability.context import RequestRecord
from core.observability.logs import AUDIT_LOGGER, LevelSampler, fingerprint
from core.observability.metrics import ServiceMetrics
from core.observability.names import HIT_L1, HIT_L2
from core.observability.tracing import Tracing, build_tracing
from core.settings import Settings

audit_logger = logging.getLogger(AUDIT_LOGGER)  # at INFO whatever LOG_LEVEL says (core.observability.logs)
request_logger = logging.getLogger("core.request")
AUDIT_MESSAGE = "request"


@dataclass
class Telemetry:
    """What observes the container's requests."""

    settings: Settings
    metrics: ServiceMetrics
    tracing: Tracing
    sampler: LevelSampler
    logger: Any = None  # the Powertools Logger, once core.runtime.boot configured logging
    muted: bool = False  # no audit line, no metrics (SnapStart priming is not traffic)

    def start(self, record: RequestRecord) -> None:
        """Begin a request: its log level (sampling), and its correlation id and version on every line."""
        sampled = self.sampler.draw()
        if self.logger is not None:
            self.logger.append_keys(correlation_id=record.request_id, function_version=self.metrics.version)
        request_logger.debug(
            "request started", extra={"method": record.method, "path": record.path, "sampled": sampled}
        )

    def query_facts(self, text: Any) -> dict[str, Any]:
        """What the logs may say about a query (hash and length; the text only with ``LOG_QUERY_TEXT``)."""
        return fingerprint(text, clear=self.settings.log_query_text)

    def pipeline_ran(self, record: RequestRecord) -> None:
        """A pipeline run ended (not a cache hit): its metrics document."""
        if not self.muted:
            self.metrics.record_pipeline(record)

    def finish(self, record: RequestRecord, status: int, *, in_lambda: bool) -> None:
        """End a request: its audit line, its metrics (flushed here outside Lambda) and trace annotations."""
        if self.muted:
            return
        latency_ms = record.elapsed_ms()
        audit = {
            "audit": True,
            "method": record.method,
            "path": record.path,
            "status": status,
            "latency_ms": latency_ms,
            "tenant": record.tenant,
            "pipeline": record.pipeline,
            "pipeline_version": record.pipeline_version,
            "version": self.metrics.version,
            "cache": record.cache,
            "cached": record.cache in (HIT_L1, HIT_L2),
            "error_code": record.error_code,
            **record.query,
        }
        if record.pipeline_ms is not None:
            audit["pipeline_ms"] = record.pipeline_ms
        if record.generator_calls:
            audit.update(
                generator_ms=round(record.generator_ms, 2),
                input_tokens=record.input_tokens,
                output_tokens=record.output_tokens,
            )
        audit_logger.info(AUDIT_MESSAGE, extra=audit)
        self.metrics.record_request(record, status)
        self.tracing.annotate(
            {k: v for k, v in {"status": status, "pipeline": record.pipeline, "cache": record.cache}.items() if v}
        )
        if not in_lambda:
            self.metrics.flush()
            if self.logger is not None:  # on Lambda, inject_lambda_context(clear_state=True) resets the keys
                self.logger.remove_keys(["correlation_id"])

    @contextlib.contextmanager
    def mute(self) -> Iterator[None]:
        """Serve requests that are not traffic (SnapStart priming): no audit line, no metric, no Haystack span."""
        tracer = haystack_tracing.tracer.actual_tracer
        haystack_tracing.disable_tracing()
        self.muted = True
        try:
            yield
        finally:
            self.muted = False
            haystack_tracing.enable_tracing(tracer)
            self.metrics.discard()

    def lambda_handler(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap the Lambda entry point: Powertools context keys, tracing, and the metric flush with cold start."""
        from aws_lambda_powertools.logging import correlation_paths  # noqa: PLC0415 - jmespath paths, Lambda only

        def handler_entry(event: Any, context: Any) -> Any:
            # A plain function: the decorators read __name__/__module__, which a Mangum instance lacks.
            return handler(event, context)

        handler_entry.__name__ = "handler"  # the X-Ray subsegment is "## handler", as in any Powertools function
        wrapped = self.tracing.lambda_handler(handler_entry)
        if self.metrics.enabled:
            wrapped = self.metrics.metrics.log_metrics(wrapped, capture_cold_start_metric=True)
        if self.logger is not None:
            wrapped = self.logger.inject_lambda_context(
                wrapped, correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True
            )
        return wrapped


def build_telemetry(settings: Settings) -> Telemetry:
    """Metrics and the tracing backend for ``settings``; the logger is attached by ``core.runtime.boot``.

    Raises:
        core.observability.tracing.TracingError: The tracing backend cannot run here.
    """
    return Telemetry(settings, ServiceMetrics(settings), build_tracing(settings), LevelSampler(settings))
