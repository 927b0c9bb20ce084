"""The indexer's logs and metrics: one JSON line per object event, one EMF document per invocation.

Log lines go through the Powertools logger (``core.observability.logs.configure_logging``), with the
Lambda context keys added by ``inject_lambda_context``. Each object event ends in one line
``{"message": "object <outcome>", "outcome", "reason", "bucket", "key", "version", "tenant", "event",
"chunks", "message_id", "ms"}``; outcomes: ``indexed``, ``deleted``, ``skipped`` (reason ``duplicate``,
``superseded``, ``gone``, ``unsupported``, ``test_event``), ``failed`` (reason: the error).

Metrics (names in ``core.observability.names``), dimensions (``service``, ``function=indexer``):
``DocumentsIndexed``, ``ChunksWritten``, ``ObjectsDeleted``, ``ObjectsSkipped``, ``ObjectsFailed``,
``SnapshotConflicts``, ``SnapshotCommitLatency``. Zeros are written too, so alarms always have data.
An ``EphemeralMetrics`` document, not the process-wide ``Metrics`` one, so it never mixes with another
entry point's dimensions in the same process (tests, ``make run``).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from core.observability import names
from core.settings import Settings

logger = logging.getLogger("core.ingestion")

INDEXED, DELETED, SKIPPED, FAILED = "indexed", "deleted", "skipped", "failed"


@dataclass
class ObjectOutcome:
    """How one object event ended."""

    outcome: str
    bucket: str
    key: str
    event: str
    message_id: str
    tenant: str | None = None
    version: str | None = None
    chunks: int = 0
    reason: str | None = None
    ms: float = 0.0

    def as_log(self) -> dict[str, Any]:
        """The log line's keys (empty values left out)."""
        return {k: v for k, v in self.__dict__.items() if v not in (None, "") and k != "outcome"} | {
            "outcome": self.outcome
        }


class IndexerTelemetry:
    """Counts outcomes and commit facts of one invocation; ``flush`` writes the EMF document."""

    def __init__(self, settings: Settings) -> None:
        self.namespace = settings.powertools_metrics_namespace
        self.service = settings.powertools_service_name
        self.enabled = settings.metrics_enabled
        self.pretty = settings.powertools_dev
        self.counts: Counter[str] = Counter()
        self.commit_ms: list[float] = []

    def object_done(self, outcome: ObjectOutcome) -> None:
        """Log the object's line and count it."""
        level = logging.WARNING if outcome.outcome == FAILED else logging.INFO
        logger.log(level, "object %s", outcome.outcome, extra=outcome.as_log())
        self.counts[outcome.outcome] += 1

    def chunks_written(self, count: int) -> None:
        """Chunks that landed in the store."""
        self.counts["chunks"] += count

    def committed(self, conflicts: int, elapsed_ms: float, wrote: bool) -> None:
        """A store commit's conflicts and latency (latency only for a commit that wrote)."""
        self.counts["conflicts"] += conflicts
        if wrote:
            self.commit_ms.append(elapsed_ms)

    def document(self) -> dict[str, Any] | None:
        """This invocation's EMF document (``None`` when metrics are off)."""
        if not self.enabled:
            return None
        doc = EphemeralMetrics(namespace=self.namespace, service=self.service)
        doc.add_dimension(names.DIM_FUNCTION, names.INDEXER_FUNCTION)
        count = MetricUnit.Count
        doc.add_metric(name=names.DOCUMENTS_INDEXED, unit=count, value=self.counts[INDEXED])
        doc.add_metric(name=names.CHUNKS_WRITTEN, unit=count, value=self.counts["chunks"])
        doc.add_metric(name=names.OBJECTS_DELETED, unit=count, value=self.counts[DELETED])
        doc.add_metric(name=names.OBJECTS_SKIPPED, unit=count, value=self.counts[SKIPPED])
        doc.add_metric(name=names.OBJECTS_FAILED, unit=count, value=self.counts[FAILED])
        doc.add_metric(name=names.SNAPSHOT_CONFLICTS, unit=count, value=self.counts["conflicts"])
        for ms in self.commit_ms:
            doc.add_metric(name=names.SNAPSHOT_COMMIT_LATENCY, unit=MetricUnit.Milliseconds, value=ms)
        serialized = doc.serialize_metric_set()
        doc.clear_metrics()
        return serialized

    def flush(self) -> None:
        """Print the EMF document (stdout: the Lambda log agent parses it there) and start afresh."""
        document = self.document()
        if document is not None:
            print(
                json.dumps(document, indent=2 if self.pretty else None, separators=None if self.pretty else (",", ":"))
            )
        self.counts.clear()
        self.commit_ms.clear()
