"""Ingestion: documents from S3 (through SQS) or a folder into the configured store.

- ``target``: the contract every store's writer meets (``IndexTarget``) and what identifies a source object.
- ``events``: S3 event notifications in an SQS body; the tenant rule.
- ``objects``: the current state of a source object in S3 (what an event is reconciled with).
- ``pipeline``: the indexing pipeline (YAML): bytes → chunks with embeddings, stable ids, source meta.
- ``embedded_target``: the snapshot as a target (conditional read-modify-write, retried on conflict).
- ``store_target``: the configured store's target; a generic one for any Haystack document store.
- ``ledger``: idempotency records (Powertools persistence), completed only after the commit.
- ``service``: prepare each record, commit the batch; the failure policy.
- ``batch``: Powertools' SQS ``BatchProcessor`` with that commit; ``runtime``/``boot``: the function's init.
- ``telemetry``: one log line per object event, one EMF document per invocation.
"""
