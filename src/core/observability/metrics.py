"""EMF metrics of requests and pipeline runs, through Powertools ``Metrics``, with a ``version`` dimension.

Mangum answers an exception with a 500 and the Lambda ``Errors`` metric never rises, so the canary
alarms watch ``Errors5xx`` and ``Latency`` of one ``version`` (``AWS_LAMBDA_FUNCTION_VERSION``).
Two dimension sets only: (service, version) per request, (service, version, pipeline) per pipeline run.
Names: ``core.observability.names``.

On Lambda, the request document is flushed by ``log_metrics`` around the handler (with the cold start
metric); elsewhere (``make run``, tests) the middleware calls ``flush``. Pipeline documents are printed
when the run ends.
"""

from __future__ import annotations

import json
import os
from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from core.aws import LAMBDA_FUNCTION_VERSION_ENV
from core.observability import names
from core.observability.context import RequestRecord
from core.observability.names import HIT_L1, HIT_L2, MISS
from core.settings import Settings


def function_version() -> str:
    """The Lambda version serving this container (``"7"``, ``"$LATEST"``), or ``local`` outside Lambda."""
    return os.environ.get(LAMBDA_FUNCTION_VERSION_ENV) or names.LOCAL_VERSION


class ServiceMetrics:
    """Request and pipeline metrics of one container.

    Example:
        >>> metrics = ServiceMetrics(load_settings(), version="7")
        >>> metrics.record_request(record, status=200)
        >>> metrics.flush()   # {"_aws": {... "Dimensions": [["version", "service"]] ...}, "Requests": [1.0], ...}
    """

    def __init__(self, settings: Settings, *, version: str | None = None) -> None:
        self.version = version or function_version()
        self.namespace = settings.powertools_metrics_namespace
        self.service = settings.powertools_service_name
        self.pretty = settings.powertools_dev
        self.enabled = settings.metrics_enabled
        # Powertools' Metrics share one document per process: a new container-level instance starts it afresh.
        self.metrics = Metrics(namespace=self.namespace, service=self.service)
        self.metrics.clear_default_dimensions()
        self.metrics.clear_metrics()
        self.metrics.set_default_dimensions(**{names.DIM_VERSION: self.version})

    def record_request(self, record: RequestRecord, status: int) -> None:
        """Add one request's metrics to the document ``log_metrics`` (or ``flush``) writes."""
        if not self.enabled:
            return
        add = self.metrics.add_metric
        add(name=names.REQUESTS, unit=MetricUnit.Count, value=1)
        add(name=names.LATENCY, unit=MetricUnit.Milliseconds, value=record.elapsed_ms())
        # Zeros on purpose: a rate needs its denominator's datapoints, and an alarm needs data to judge.
        add(name=names.ERRORS_4XX, unit=MetricUnit.Count, value=int(400 <= status < 500))
        add(name=names.ERRORS_5XX, unit=MetricUnit.Count, value=int(status >= 500))
        if record.cache in (HIT_L1, HIT_L2, MISS):
            add(name=names.CACHE_HITS, unit=MetricUnit.Count, value=int(record.cache != MISS))
            add(name=names.CACHE_MISSES, unit=MetricUnit.Count, value=int(record.cache == MISS))
        if record.cache is not None:
            add(name=names.CACHE_ERRORS, unit=MetricUnit.Count, value=record.cache_errors)
        if record.rate_limit is not None:
            add(name=names.RATE_LIMITED, unit=MetricUnit.Count, value=int(status == 429))
            add(name=names.RATE_LIMIT_FAIL_OPEN, unit=MetricUnit.Count, value=int(record.rate_limit == "fail_open"))
        self.metrics.add_metadata(key="request_id", value=record.request_id)

    def record_pipeline(self, record: RequestRecord) -> None:
        """Write one pipeline run's document (latency; generator latency and tokens when it called one)."""
        if not self.enabled or record.pipeline is None or record.pipeline_ms is None:
            return
        document = EphemeralMetrics(namespace=self.namespace, service=self.service)
        document.add_dimension(names.DIM_VERSION, self.version)
        document.add_dimension(names.DIM_PIPELINE, record.pipeline)
        document.add_metric(name=names.PIPELINE_LATENCY, unit=MetricUnit.Milliseconds, value=record.pipeline_ms)
        if record.generator_calls:
            document.add_metric(
                name=names.GENERATOR_LATENCY, unit=MetricUnit.Milliseconds, value=round(record.generator_ms, 2)
            )
            for name, value in (
                (names.GENERATOR_INPUT_TOKENS, record.input_tokens),
                (names.GENERATOR_OUTPUT_TOKENS, record.output_tokens),
            ):
                if value is not None:
                    document.add_metric(name=name, unit=MetricUnit.Count, value=value)
        document.add_metadata(key="request_id", value=record.request_id)
        self._print(document.serialize_metric_set())
        document.clear_metrics()

    def flush(self) -> None:
        """Write the request document now (outside Lambda, where no ``log_metrics`` wraps the call)."""
        if not self.enabled or not self.metrics.metric_set:
            return
        self._print(self.metrics.serialize_metric_set())
        self.metrics.clear_metrics()

    def discard(self) -> None:
        """Drop the request document without writing it (SnapStart priming is not traffic)."""
        self.metrics.clear_metrics()

    def _print(self, document: dict[str, Any]) -> None:
        # EMF goes to stdout, like Powertools' own flush: the Lambda log agent parses it from there.
        print(json.dumps(document, indent=2 if self.pretty else None, separators=None if self.pretty else (",", ":")))
