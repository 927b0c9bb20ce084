"""The indexer Lambda handler (`handlers.indexer.handler`) on SQS batches of S3 notifications, in moto.

Objects live in a moto S3 bucket (versioning on), the snapshot in another, idempotency records in a
moto DynamoDB table with Powertools' schema. Events are real SQS messages: the notification bodies
(AWS's shape, eventVersion 2.1 with versionId and sequencer, as S3 sends them) go through a moto queue
and come back as Lambda's SQS event records; one test lets moto's S3 send them itself.
"""

import importlib
import json
import logging
import sys
import threading
import time
from itertools import count
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from core.components.wordllama import DEFAULT_MODEL
from core.ingestion.embedded_target import SnapshotTarget
from core.ingestion.runtime import build_indexer
from core.observability import names
from core.settings import Settings, load_settings
from core.store.snapshot import decode_snapshot, snapshot_etag
from scripts.invoke import LambdaContext
from tests.ingestion_files import SAMPLES, tiny_pdf

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
DOCS = "docs-bucket"
INDEX = "index-bucket"
SNAPSHOT_URI = f"s3://{INDEX}/store.snapshot"
TABLE = "idempotency"
HANDLER_ENV = [name.upper() for name in Settings.model_fields]
_sequencer = count(0x5F00000000000001)


class World:
    """The moto resources of one test."""

    def __init__(self) -> None:
        self.s3 = boto3.client("s3", region_name=REGION)
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.ddb = boto3.client("dynamodb", region_name=REGION)
        self.s3.create_bucket(Bucket=DOCS)
        self.s3.put_bucket_versioning(Bucket=DOCS, VersioningConfiguration={"Status": "Enabled"})
        self.s3.create_bucket(Bucket=INDEX)
        self.queue_url = self.sqs.create_queue(QueueName="ingest")["QueueUrl"]
        self.queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        # Powertools' DynamoDB persistence layer: partition key "id" (string), TTL on "expiration".
        self.ddb.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )

    # -- S3 objects and the notifications S3 sends about them ---------------------------------------------

    def put(self, key: str, body: bytes, content_type: str | None = None) -> str:
        """Upload an object; returns the ObjectCreated:Put notification body S3 would send for it."""
        extra = {"ContentType": content_type} if content_type else {}
        response = self.s3.put_object(Bucket=DOCS, Key=key, Body=body, **extra)
        return notification(
            "ObjectCreated:Put", key, etag=response["ETag"].strip('"'), version=response["VersionId"], size=len(body)
        )

    def delete(self, key: str) -> str:
        """Delete an object (a delete marker: the bucket is versioned); returns the notification body."""
        response = self.s3.delete_object(Bucket=DOCS, Key=key)
        return notification("ObjectRemoved:DeleteMarkerCreated", key, version=response["VersionId"])

    # -- SQS ----------------------------------------------------------------------------------------------

    def deliver(self, *bodies: str) -> dict:
        """Send the bodies through the queue and receive them: a Lambda SQS event of those messages."""
        for body in bodies:
            self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=body)
        return self.receive(len(bodies))

    def receive(self, expected: int) -> dict:
        """Receive ``expected`` messages as Lambda's SQS event (the event source mapping's shape)."""
        messages: list[dict] = []
        while len(messages) < expected:
            batch = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, AttributeNames=["All"], MessageAttributeNames=["All"]
            ).get("Messages", [])
            assert batch, f"expected {expected} messages, got {len(messages)}"
            messages += batch
        return {
            "Records": [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": m.get("Attributes", {}),
                    "messageAttributes": {},
                    "md5OfBody": m["MD5OfBody"],
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.queue_arn,
                    "awsRegion": REGION,
                }
                for m in messages
            ]
        }

    # -- the store ----------------------------------------------------------------------------------------

    def chunks(self) -> list:
        """Every chunk in the snapshot (none when there is no snapshot yet)."""
        try:
            data = self.s3.get_object(Bucket=INDEX, Key="store.snapshot")["Body"].read()
        except self.s3.exceptions.NoSuchKey:
            return []
        return decode_snapshot(data).store.filter_documents()

    def keys(self) -> dict[str, int]:
        """Chunks per source key."""
        counts: dict[str, int] = {}
        for chunk in self.chunks():
            counts[chunk.meta["source_key"]] = counts.get(chunk.meta["source_key"], 0) + 1
        return counts

    def snapshot_etag(self) -> str | None:
        return snapshot_etag(SNAPSHOT_URI, self.s3)

    def idempotency_records(self) -> list[dict]:
        return self.ddb.scan(TableName=TABLE)["Items"]


def notification(
    name: str, key: str, *, etag: str | None = None, version: str | None = None, size: int | None = None
) -> str:
    """An S3 event notification body as S3 sends it to SQS (eventVersion 2.1; the key URL-encoded)."""
    obj = {"key": key.replace(" ", "+"), "sequencer": f"{next(_sequencer):X}"}
    if size is not None:
        obj["size"] = size
    if etag is not None:
        obj["eTag"] = etag
    if version is not None:
        obj["versionId"] = version
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": REGION,
        "eventTime": "2026-11-26T10:00:00.000Z",
        "eventName": name,
        "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
        "requestParameters": {"sourceIPAddress": "203.0.113.7"},
        "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810", "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "IndexDocuments",
            "bucket": {
                "name": DOCS,
                "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                "arn": f"arn:aws:s3:::{DOCS}",
            },
            "object": obj,
        },
    }
    return json.dumps({"Records": [record]})


def failures(response: dict) -> list[str]:
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


def message_ids(event: dict) -> list[str]:
    return [record["messageId"] for record in event["Records"]]


def json_lines(text: str) -> list[dict]:
    lines = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue
    return lines


@pytest.fixture
def world(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield World()


@pytest.fixture
def restore_logging():
    """The handler's boot replaces the root handler: put the test runner's back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers, root.level = handlers, level


def forget_handler_module() -> None:
    sys.modules.pop("handlers.indexer", None)
    package = sys.modules.get("handlers")
    if package is not None and hasattr(package, "indexer"):
        delattr(package, "indexer")


@pytest.fixture
def indexer(world, monkeypatch, restore_logging):
    """``indexer(**env)``: `handlers.indexer`, imported fresh (its init runs) in moto with this environment."""

    def load(**env: object):
        for name in HANDLER_ENV:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("STORE_SNAPSHOT_URI", SNAPSHOT_URI)
        monkeypatch.setenv("IDEMPOTENCY_TABLE", TABLE)
        for name, value in env.items():
            if value is None:
                monkeypatch.delenv(name.upper(), raising=False)
            else:
                monkeypatch.setenv(name.upper(), str(value))
        forget_handler_module()
        return importlib.import_module("handlers.indexer")

    yield load
    forget_handler_module()


def invoke(module, event: dict) -> dict:
    return module.handler(event, LambdaContext("IndexerFunction"))


# -- partial batch failures ---------------------------------------------------------------------------------


def test_a_batch_with_one_poison_object_reports_exactly_that_item_as_failed(world, indexer):
    handler = indexer()
    event = world.deliver(
        world.put("acme/guide.md", b"# Guide\n\nUse pathlib to join paths."),
        world.put("acme/broken.pdf", b"%PDF-1.4 this is not really a PDF"),
        world.put("acme/notes.txt", b"The walrus operator assigns inside expressions."),
    )
    poison = message_ids(event)[1]

    response = invoke(handler, event)

    assert failures(response) == [poison]
    assert world.keys() == {"acme/guide.md": 1, "acme/notes.txt": 1}
    # The poison object's claim was released: its retry is not taken for a duplicate.
    assert len(world.idempotency_records()) == 2


def test_a_malformed_message_fails_alone(world, indexer):
    handler = indexer()
    event = world.deliver("this is not an S3 notification", world.put("a.txt", b"kept text"))
    response = invoke(handler, event)
    assert failures(response) == [message_ids(event)[0]]
    assert world.keys() == {"a.txt": 1}


def test_an_object_over_the_size_limit_fails_its_record(world, indexer):
    handler = indexer(ingest_max_object_bytes=64)
    event = world.deliver(world.put("big.txt", b"word " * 100), world.put("small.txt", b"tiny"))
    assert failures(invoke(handler, event)) == [message_ids(event)[0]]
    assert world.keys() == {"small.txt": 1}


# -- idempotency -------------------------------------------------------------------------------------------


def test_a_duplicate_delivery_adds_no_chunks_and_leaves_a_completed_idempotency_record(world, indexer):
    handler = indexer()
    body = world.put("acme/guide.md", b"# Guide\n\n" + b"Lists keep their order. " * 200)
    event = world.deliver(body)
    assert failures(invoke(handler, event)) == []
    chunks, etag = len(world.chunks()), world.snapshot_etag()
    assert chunks > 1

    redelivered = world.deliver(body)  # the same S3 event again (S3 and SQS deliver at least once)
    assert failures(invoke(handler, redelivered)) == []
    assert failures(invoke(handler, event)) == []  # and the very same SQS message

    assert len(world.chunks()) == chunks
    assert world.snapshot_etag() == etag  # not even rewritten
    records = world.idempotency_records()
    assert len(records) == 1
    assert records[0]["status"]["S"] == "COMPLETED"


def test_without_an_idempotency_table_a_duplicate_is_harmless(world, indexer):
    handler = indexer(idempotency_table=None)
    body = world.put("guide.md", b"Sets hold unique items. " * 100)
    invoke(handler, world.deliver(body))
    chunks, etag = len(world.chunks()), world.snapshot_etag()

    assert failures(invoke(handler, world.deliver(body))) == []
    assert len(world.chunks()) == chunks  # the same ids replaced by themselves
    assert world.snapshot_etag() == etag  # a no-op commit writes nothing


def test_a_record_whose_commit_failed_is_not_completed_and_its_retry_indexes_it(world, indexer):
    handler = indexer(store_snapshot_uri="s3://index-later/store.snapshot")  # the bucket does not exist yet
    event = world.deliver(world.put("guide.md", b"Dictionaries keep insertion order."))

    assert failures(invoke(handler, event)) == message_ids(event)
    assert world.idempotency_records() == []  # not COMPLETED, not left INPROGRESS

    world.s3.create_bucket(Bucket="index-later")
    assert failures(invoke(handler, event)) == []  # the retry does the work
    data = world.s3.get_object(Bucket="index-later", Key="store.snapshot")["Body"].read()
    assert decode_snapshot(data).store.count_documents() == 1
    assert [r["status"]["S"] for r in world.idempotency_records()] == ["COMPLETED"]


# -- removals and stale events ---------------------------------------------------------------------------


def test_a_removal_deletes_the_objects_chunks_and_only_them(world, indexer):
    handler = indexer()
    invoke(handler, world.deliver(world.put("acme/a.md", b"Alpha text. " * 300), world.put("acme/b.md", b"Beta.")))
    before = world.keys()
    assert before["acme/a.md"] > 1
    assert before["acme/b.md"] == 1

    response = invoke(handler, world.deliver(world.delete("acme/a.md")))

    assert failures(response) == []
    assert world.keys() == {"acme/b.md": 1}


def test_events_the_object_has_moved_past_are_skipped(world, indexer):
    handler = indexer()
    old = world.put("guide.md", b"Old text about tuples.")
    new = world.put("guide.md", b"New text about named tuples.")
    # The newer version's event arrives first; the older one's, late, must not bring back the old text.
    invoke(handler, world.deliver(new))
    assert failures(invoke(handler, world.deliver(old))) == []
    assert [c.content for c in world.chunks()] == ["New text about named tuples."]

    # A removal whose object was uploaded again since deletes nothing.
    removed = world.delete("guide.md")
    again = world.put("guide.md", b"Newest text about dataclasses.")
    invoke(handler, world.deliver(again))
    assert failures(invoke(handler, world.deliver(removed))) == []
    assert [c.content for c in world.chunks()] == ["Newest text about dataclasses."]


def test_an_object_replaced_by_a_new_version_keeps_only_the_new_chunks(world, indexer):
    handler = indexer()
    invoke(handler, world.deliver(world.put("guide.md", b"First version. " * 300)))
    first = {c.meta["source_version"] for c in world.chunks()}
    invoke(handler, world.deliver(world.put("guide.md", b"Second version, shorter.")))
    chunks = world.chunks()
    assert [c.content for c in chunks] == ["Second version, shorter."]
    assert {c.meta["source_version"] for c in chunks}.isdisjoint(first)


# -- converters and meta ---------------------------------------------------------------------------------


def test_every_converter_indexes_a_small_real_file_with_source_and_tenant_meta(world, indexer):
    handler = indexer()
    bodies = [world.put(f"acme/{name}", data) for name, (data, _) in SAMPLES.items()]
    response = invoke(handler, world.deliver(*bodies))

    assert failures(response) == []
    chunks = world.chunks()
    by_key = {c.meta["source_key"]: c for c in chunks}
    assert set(by_key) == {f"acme/{name}" for name in SAMPLES}
    for name, (_, phrase) in SAMPLES.items():
        chunk = by_key[f"acme/{name}"]
        assert phrase in chunk.content, name
        versions = world.s3.list_object_versions(Bucket=DOCS, Prefix=f"acme/{name}")["Versions"]
        assert chunk.meta["source_bucket"] == DOCS
        assert chunk.meta["source_version"] == versions[0]["VersionId"]
        assert chunk.meta["tenant"] == "acme"
        assert len(chunk.embedding) == 256
    assert "track()" not in by_key["acme/page.html"].content  # scripts are not text
    assert by_key["acme/page.html"].meta["title"] == "Queues"
    assert by_key["acme/record.json"].meta["title"] == "decimal"  # a JSON object's other fields are meta


def test_the_tenant_is_the_first_segment_under_the_key_prefix(world, indexer):
    handler = indexer(ingest_key_prefix="tenants/")
    invoke(
        handler,
        world.deliver(
            world.put("tenants/globex/handbook.md", b"Globex handbook."),
            world.put("public/faq.md", b"Public answers."),
            world.put("readme.txt", b"Top level."),
            world.put("tenants/initech/a b/report.txt", b"Key with a space."),
        ),
    )
    tenants = {c.meta["source_key"]: c.meta["tenant"] for c in world.chunks()}
    assert tenants == {
        "tenants/globex/handbook.md": "globex",
        "public/faq.md": "default",
        "readme.txt": "default",
        "tenants/initech/a b/report.txt": "initech",
    }


def test_a_document_cannot_claim_another_tenant_through_its_own_fields(world, indexer):
    handler = indexer()
    record = json.dumps({"content": "Sneaky text.", "tenant": "other", "source_key": "x"}).encode()
    invoke(handler, world.deliver(world.put("acme/record.json", record)))
    (chunk,) = world.chunks()
    assert (chunk.meta["tenant"], chunk.meta["source_key"]) == ("acme", "acme/record.json")


def test_the_s3_test_event_and_unsupported_types_are_acknowledged(world, indexer):
    handler = indexer()
    test_event = json.dumps(
        {"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2026-11-26T10:00:00.000Z", "Bucket": DOCS}
    )
    event = world.deliver(test_event, world.put("photo.png", b"\x89PNG\r\n\x1a\n"), world.put("ok.md", b"Fine."))
    assert failures(invoke(handler, event)) == []
    assert world.keys() == {"ok.md": 1}


def test_notifications_sent_by_s3_itself_are_indexed(world, indexer):
    handler = indexer()
    world.s3.put_bucket_notification_configuration(
        Bucket=DOCS,
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": world.queue_arn, "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    world.s3.put_object(Bucket=DOCS, Key="acme/My Notes.txt", Body=b"Notes sent by S3 itself.")
    event = world.receive(2)  # S3's s3:TestEvent, then the ObjectCreated:Put (its key URL-encoded)
    assert failures(invoke(handler, event)) == []
    assert world.keys() == {"acme/My Notes.txt": 1}


def with_object(event: dict, **fields: str) -> dict:
    """A sample event about the object as moto made it (its real version id and ETag); the shape unchanged."""
    body = json.loads(event["Records"][0]["body"])
    body["Records"][0]["s3"]["object"].update(fields)
    event["Records"][0]["body"] = json.dumps(body)
    return event


def test_the_sample_events_in_events_indexer_run_through_the_handler(world, indexer):
    handler = indexer()
    samples = ROOT / "events" / "indexer"
    load = lambda name: json.loads((samples / name).read_text())  # noqa: E731
    assert failures(invoke(handler, load("sqs-s3-test-event.json"))) == []

    created = load("sqs-object-created.json")
    key = json.loads(created["Records"][0]["body"])["Records"][0]["s3"]["object"]["key"].replace("+", " ")
    put = world.s3.put_object(Bucket=DOCS, Key=key, Body=b"Sample event text.")
    created = with_object(created, eTag=put["ETag"].strip('"'), versionId=put["VersionId"])
    assert failures(invoke(handler, created)) == []
    assert world.keys() == {key: 1}

    marker = world.s3.delete_object(Bucket=DOCS, Key=key)
    removed = with_object(load("sqs-object-removed.json"), versionId=marker["VersionId"])
    assert failures(invoke(handler, removed)) == []
    assert world.keys() == {}


# -- the snapshot race -------------------------------------------------------------------------------------


@pytest.mark.parametrize("existing", [True, False], ids=["snapshot-exists", "no-snapshot-yet"])
def test_two_indexers_racing_on_the_snapshot_both_land_their_documents(world, monkeypatch, existing):
    for name in HANDLER_ENV:
        monkeypatch.delenv(name, raising=False)
    settings = load_settings(store_snapshot_uri=SNAPSHOT_URI)
    if existing:
        seed = build_indexer(settings, s3=world.s3)
        assert failures(seed.handle(world.deliver(world.put("seed.md", b"Seed document.")))) == []
    read_etag = world.snapshot_etag()
    both_read = threading.Barrier(2, timeout=30)

    def first_writer(attempt: int) -> None:
        if attempt == 0:
            both_read.wait()

    def second_writer(attempt: int) -> None:
        if attempt == 0:
            both_read.wait()  # both read the same snapshot ...
            deadline = time.monotonic() + 30
            while world.snapshot_etag() == read_etag:  # ... and the first one's write lands before ours
                assert time.monotonic() < deadline, "the first writer never wrote"
                time.sleep(0.01)

    pauses: dict[str, list[float]] = {"a": [], "b": []}
    runtimes = {
        who: build_indexer(
            settings,
            s3=world.s3,
            target=SnapshotTarget(
                SNAPSHOT_URI, DEFAULT_MODEL, retries=3, s3=world.s3, before_write=hook, sleep=pauses[who].append
            ),
        )
        for who, hook in (("a", first_writer), ("b", second_writer))
    }
    events = {"a": world.deliver(world.put("a.md", b"Written by A.")), "b": world.deliver(world.put("b.md", b"By B."))}
    responses: dict[str, dict] = {}
    threads = [
        threading.Thread(target=lambda who=who: responses.update({who: runtimes[who].handle(events[who])}))
        for who in ("a", "b")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert responses == {"a": {"batchItemFailures": []}, "b": {"batchItemFailures": []}}
    assert len(pauses["b"]) == 1  # B's conditional write got 412, it re-read and re-applied once
    assert pauses["a"] == []
    expected = {"a.md": 1, "b.md": 1} | ({"seed.md": 1} if existing else {})
    assert world.keys() == expected


# -- telemetry -------------------------------------------------------------------------------------------


def test_one_log_line_per_object_and_one_emf_document_per_invocation(world, indexer, capsys):
    handler = indexer(powertools_service_name="indexer-test")
    invoke(handler, world.deliver(world.put("keep.md", b"Keep me.")))
    capsys.readouterr()
    event = world.deliver(
        world.put("new.md", b"New text."), world.put("bad.pdf", tiny_pdf("x")[:40]), world.delete("keep.md")
    )
    invoke(handler, event)
    lines = json_lines(capsys.readouterr().out)

    objects = [line for line in lines if str(line.get("message", "")).startswith("object ")]
    assert sorted((line["key"], line["outcome"]) for line in objects) == [
        ("bad.pdf", "failed"),
        ("keep.md", "deleted"),
        ("new.md", "indexed"),
    ]
    assert all(line["service"] == "indexer-test" and line["function_name"] == "IndexerFunction" for line in objects)
    (emf,) = [line for line in lines if "_aws" in line]
    (directive,) = emf["_aws"]["CloudWatchMetrics"]
    assert sorted(directive["Dimensions"][0]) == sorted(names.INDEXER_DIMENSIONS)
    assert (emf["service"], emf["function"]) == ("indexer-test", names.INDEXER_FUNCTION)
    assert emf[names.DOCUMENTS_INDEXED] == [1.0]
    assert emf[names.CHUNKS_WRITTEN] == [1.0]
    assert emf[names.OBJECTS_DELETED] == [1.0]
    assert emf[names.OBJECTS_FAILED] == [1.0]
    assert emf[names.SNAPSHOT_CONFLICTS] == [0.0]
    assert len(emf[names.SNAPSHOT_COMMIT_LATENCY]) == 1
