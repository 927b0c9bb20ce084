"""Indexer Lambda entry point: SQS messages carrying S3 event notifications → ``core.ingestion``.

Built once at init (settings, JSON logging, the indexing pipeline warmed up, S3 client, idempotency
ledger, index target); each invocation handles one SQS batch and answers ``batchItemFailures`` (the event
source mapping needs ``FunctionResponseTypes: [ReportBatchItemFailures]``). What is done, skipped or
failed, and why: ``core.ingestion.service``.
"""

from core.runtime.boot import STARTED  # first: the init clock starts before the heavy imports

# isort: split
from core.ingestion.boot import boot_indexer

indexer = boot_indexer(STARTED)
handler = indexer.lambda_handler()
