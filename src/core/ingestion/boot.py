"""Container init of the indexer function: settings, JSON logging, the runtime, one init line."""

from __future__ import annotations

import logging
import time

from core.ingestion.runtime import IndexerRuntime, build_indexer
from core.observability.logs import configure_logging
from core.pipelines.loader import PipelineLoadError
from core.settings import SettingsError, load_settings

logger = logging.getLogger("core.init")


def boot_indexer(started: float) -> IndexerRuntime:
    """Build the indexer from the environment and log its init timings once.

    Raises:
        SystemExit: With one line (``init failed: …``) for a bad setting or indexing pipeline.
    """
    imports_ms = round((time.perf_counter() - started) * 1000, 1)
    try:
        settings = load_settings()
        powertools_logger = configure_logging(settings)
        runtime = build_indexer(settings)
    except (SettingsError, PipelineLoadError) as exc:
        raise SystemExit(f"init failed: {exc}") from None
    runtime.logger = powertools_logger
    if settings.log_level != "DEBUG":
        logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs each re-index at DEBUG on its own
    runtime.init_timings_ms = {"imports_ms": imports_ms, **runtime.init_timings_ms}
    logger.info(
        "init",
        extra={
            "function": "indexer",
            "timings_ms": runtime.init_timings_ms,
            "pipeline": str(settings.indexing_pipeline.name),
            "types": list(runtime.ingestor.pipeline.mime_types),
            "store": settings.document_store,
            "snapshot": settings.store_snapshot_uri if settings.document_store == "memory" else None,
            "idempotency_table": settings.idempotency_table,
        },
    )
    return runtime
