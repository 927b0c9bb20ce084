"""Powertools' SQS ``BatchProcessor`` with a commit after the records: one bad record fails alone.

``BatchProcessor`` runs the record handler on every record and reports the ones that raised in
``batchItemFailures``. This subclass then commits what the records that succeeded staged
(``Ingestor.commit``): when the commit fails, each of those records is moved to the failures as well,
so SQS retries exactly the records whose work did not land. The response never fails the invocation
(``raise_on_entire_batch_failure=False``): a batch where every record failed reports every record,
which SQS treats the same way, and the indexer's ``ObjectsFailed`` metric and the DLQ carry the alarm.

Example:
    >>> processor = IndexerBatchProcessor(ingestor)
    >>> process_partial_response(event=event, record_handler=handler, processor=processor, context=context)
    {'batchItemFailures': [{'itemIdentifier': '059f36b4-87a3-44ab-83d2-661975830a7d'}]}
"""

from __future__ import annotations

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from core.ingestion.service import Ingestor, PreparedRecord


class IndexerBatchProcessor(BatchProcessor):
    """``BatchProcessor(EventType.SQS)`` that commits the prepared records once they are all prepared."""

    def __init__(self, ingestor: Ingestor) -> None:
        super().__init__(EventType.SQS, raise_on_entire_batch_failure=False)
        self.ingestor = ingestor

    def process(self) -> list[tuple]:
        """Prepare every record (Powertools isolates their failures), then commit the prepared ones."""
        results = super().process()
        prepared = [
            result for status, result, _ in results if status == "success" and isinstance(result, PreparedRecord)
        ]
        failures = self.ingestor.commit(prepared)
        for raw in list(self.success_messages):
            error = failures.get(raw["messageId"])
            if error is not None:
                self.success_messages.remove(raw)
                self.failure_handler(record=SQSRecord(raw), exception=(type(error), error, error.__traceback__))
        return results
