"""Ingestion: documents from S3 (through SQS) or a folder into the configured store.

- ``target``: the contract every store's writer meets (``IndexTarget``) and what identifies a source object.
"""
