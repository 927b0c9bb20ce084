"""The names the service emits and the template's alarms and dashboard read: one place for both.

``tests/infra/test_observability_template.py`` checks that every alarm and dashboard metric is one the
code emits, with the same namespace, metric name and dimension names.
"""

from __future__ import annotations

from typing import Final

# The metrics' version outside Lambda (core.aws.LAMBDA_FUNCTION_VERSION_ENV is "7" or "$LATEST" there).
LOCAL_VERSION: Final = "local"

# Dimension names. A request-level metric carries (service, version); a pipeline metric adds pipeline.
DIM_SERVICE: Final = "service"
DIM_VERSION: Final = "version"
DIM_PIPELINE: Final = "pipeline"
REQUEST_DIMENSIONS: Final = (DIM_SERVICE, DIM_VERSION)
PIPELINE_DIMENSIONS: Final = (DIM_SERVICE, DIM_VERSION, DIM_PIPELINE)

# Request-level metrics: one EMF document per request, dimensions REQUEST_DIMENSIONS.
REQUESTS: Final = "Requests"
LATENCY: Final = "Latency"
ERRORS_4XX: Final = "Errors4xx"
ERRORS_5XX: Final = "Errors5xx"
CACHE_HITS: Final = "CacheHits"
CACHE_MISSES: Final = "CacheMisses"
CACHE_ERRORS: Final = "CacheErrors"

# How the cache served a request (the X-Cache header; CacheHits/CacheMisses count them).
HIT_L1: Final = "HIT-L1"
HIT_L2: Final = "HIT-L2"
MISS: Final = "MISS"
BYPASS: Final = "BYPASS"

# Pipeline metrics: one EMF document per pipeline run (not for cache hits), dimensions PIPELINE_DIMENSIONS.
PIPELINE_LATENCY: Final = "PipelineLatency"
GENERATOR_LATENCY: Final = "GeneratorLatency"
GENERATOR_INPUT_TOKENS: Final = "GeneratorInputTokens"
GENERATOR_OUTPUT_TOKENS: Final = "GeneratorOutputTokens"

# Powertools' cold start metric (``log_metrics(capture_cold_start_metric=True)``): its own document,
# dimensions (function_name, service).
COLD_START: Final = "ColdStart"
COLD_START_DIMENSIONS: Final = ("function_name", DIM_SERVICE)

# Indexer metrics (core.ingestion.telemetry): one EMF document per invocation, dimensions INDEXER_DIMENSIONS.
DIM_FUNCTION: Final = "function"
INDEXER_FUNCTION: Final = "indexer"
INDEXER_DIMENSIONS: Final = (DIM_SERVICE, DIM_FUNCTION)
DOCUMENTS_INDEXED: Final = "DocumentsIndexed"  # source objects (re)indexed
CHUNKS_WRITTEN: Final = "ChunksWritten"
OBJECTS_DELETED: Final = "ObjectsDeleted"  # removals applied (their chunks deleted)
OBJECTS_SKIPPED: Final = "ObjectsSkipped"  # duplicates, superseded events, unsupported types, S3 test events
OBJECTS_FAILED: Final = "ObjectsFailed"  # records reported in batchItemFailures (retried, then the DLQ)
SNAPSHOT_CONFLICTS: Final = "SnapshotConflicts"  # conditional snapshot writes lost to another writer
SNAPSHOT_COMMIT_LATENCY: Final = "SnapshotCommitLatency"

# Query-side snapshot refresh (core.store.refresh): its own document when it happens, dimensions REQUEST_DIMENSIONS.
SNAPSHOT_REFRESHES: Final = "SnapshotRefreshes"
SNAPSHOT_REFRESH_FAILURES: Final = "SnapshotRefreshFailures"

# Rate limiting (request document, REQUEST_DIMENSIONS), on requests that consulted the limiter.
RATE_LIMITED: Final = "RateLimited"  # answered 429 by the bucket (or fail-closed)
RATE_LIMIT_FAIL_OPEN: Final = "RateLimitFailOpen"  # let through because Redis could not be asked
