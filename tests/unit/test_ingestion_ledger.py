"""The idempotency ledger on Powertools' DynamoDB persistence layer (moto): claim, complete, release."""

import boto3
import pytest
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
from moto import mock_aws

from core.ingestion.ledger import EventInProgressError, IdempotencyLedger, NoLedger

EVENT = {"action": "created", "bucket": "docs", "key": "a.md", "version": "v1", "etag": "e", "sequencer": "01"}


@pytest.fixture
def ledger(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        boto3.client("dynamodb").create_table(
            TableName="idempotency",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield IdempotencyLedger(DynamoDBPersistenceLayer(table_name="idempotency"), ttl_s=3600)


def test_a_completed_event_is_not_claimed_again(ledger):
    assert ledger.claim(EVENT, remaining_ms=30_000)
    ledger.complete(EVENT)
    assert not ledger.claim(EVENT, remaining_ms=30_000)
    assert ledger.claim({**EVENT, "sequencer": "02"}, remaining_ms=30_000)  # another event of the same key


def test_an_event_in_progress_elsewhere_fails_until_released(ledger):
    assert ledger.claim(EVENT, remaining_ms=30_000)
    with pytest.raises(EventInProgressError):
        ledger.claim(EVENT, remaining_ms=30_000)
    ledger.release(EVENT, RuntimeError("commit failed"))
    assert ledger.claim(EVENT, remaining_ms=30_000)


def test_a_claim_of_an_invocation_that_timed_out_can_be_taken_over(ledger):
    assert ledger.claim(EVENT, remaining_ms=0)  # its in-progress expiry is now: the container died
    assert ledger.claim(EVENT, remaining_ms=30_000)


def test_without_a_table_every_delivery_is_handled():
    ledger = NoLedger()
    assert ledger.claim(EVENT, remaining_ms=None)
    ledger.complete(EVENT)
    assert ledger.claim(EVENT, remaining_ms=None)
