"""The indexer's container: built once at init (settings → logging → pipeline → S3, ledger, target).

``handlers/indexer.py`` builds one ``IndexerRuntime`` at module scope and hands each invocation to
``handle``; tests build their own with moto clients, another target, or a ledger of their choice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from core.ingestion.batch import IndexerBatchProcessor
from core.ingestion.ledger import IdempotencyLedger, Ledger, NoLedger
from core.ingestion.objects import ObjectReader
from core.ingestion.pipeline import IndexingPipeline
from core.ingestion.service import Ingestor
from core.ingestion.store_target import build_target
from core.ingestion.telemetry import IndexerTelemetry
from core.settings import Settings
from core.store.base import IndexTarget


@dataclass
class IndexerRuntime:
    """Process-wide objects of the indexer function."""

    settings: Settings
    ingestor: Ingestor
    telemetry: IndexerTelemetry
    init_timings_ms: dict[str, float]
    logger: Any = None  # the Powertools Logger, once logging is configured (core.ingestion.boot)

    def handle(self, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        """One SQS batch → ``{"batchItemFailures": [...]}``; the invocation's EMF document is written after it."""
        try:
            return process_partial_response(
                event=event,
                record_handler=self._record,
                processor=IndexerBatchProcessor(self.ingestor),
                context=context,
            )
        finally:
            self.telemetry.flush()

    def _record(self, record: SQSRecord, lambda_context: Any = None) -> Any:
        remaining = lambda_context.get_remaining_time_in_millis() if lambda_context is not None else None
        return self.ingestor.prepare(record.message_id, record.body, remaining)

    def lambda_handler(self) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
        """The Lambda entry point: ``handle`` with Powertools' Lambda context keys on every log line."""

        def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
            return self.handle(event, context)

        if self.logger is not None:
            return self.logger.inject_lambda_context(handler, clear_state=True)
        return handler


def build_ledger(settings: Settings) -> Ledger:
    """The Powertools DynamoDB ledger when ``IDEMPOTENCY_TABLE`` is set, else none."""
    if not settings.idempotency_table:
        return NoLedger()
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer  # noqa: PLC0415 - when set

    return IdempotencyLedger(
        DynamoDBPersistenceLayer(table_name=settings.idempotency_table), settings.idempotency_ttl_s
    )


def build_indexer(
    settings: Settings,
    *,
    s3: Any = None,
    target: IndexTarget | None = None,
    ledger: Ledger | None = None,
) -> IndexerRuntime:
    """Build the indexer; ``s3``, ``target`` and ``ledger`` let tests supply their own.

    Raises:
        core.pipelines.loader.PipelineLoadError: The indexing pipeline is invalid or cannot warm up.
    """
    timings: dict[str, float] = {}
    started = time.perf_counter()
    pipeline = IndexingPipeline.load(settings.indexing_pipeline)
    timings["pipeline_ms"] = round((time.perf_counter() - started) * 1000, 1)
    if s3 is None:
        import boto3  # noqa: PLC0415 - kept out of the import of this module (tests, tools)

        s3 = boto3.client("s3")
    telemetry = IndexerTelemetry(settings)
    ingestor = Ingestor(
        pipeline,
        ObjectReader(s3),
        target or build_target(settings, pipeline.embedding_model),
        ledger or build_ledger(settings),
        telemetry,
        key_prefix=settings.ingest_key_prefix,
        max_object_bytes=settings.ingest_max_object_bytes,
    )
    timings["total_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return IndexerRuntime(settings, ingestor, telemetry, timings)
