"""S3 notifications in SQS bodies: actions, decoded keys, identities, the tenant rule."""

import json

import pytest

from core.ingestion.events import MalformedMessageError, is_test_event, parse_message, tenant_of
from core.names import DEFAULT_TENANT


def body(*records: dict) -> str:
    return json.dumps({"Records": list(records)})


def record(name: str, key: str, **obj: object) -> dict:
    return {"eventVersion": "2.1", "eventName": name, "s3": {"bucket": {"name": "docs"}, "object": {"key": key, **obj}}}


def test_created_and_removed_events_with_their_identity():
    created, removed, expired = parse_message(
        body(
            record(
                "ObjectCreated:CompleteMultipartUpload", "a/My+Guide%C3%A9.md", eTag="abc-2", versionId="v1", size=9
            ),
            record("ObjectRemoved:DeleteMarkerCreated", "a/b.md", versionId="dm", sequencer="0A"),
            record("LifecycleExpiration:Delete", "a/c.md", sequencer="0B"),
        )
    )
    assert (created.action, created.key, created.version, created.etag, created.size) == (
        "created",
        "a/My Guideé.md",
        "v1",
        "abc-2",
        9,
    )
    assert (removed.action, removed.version) == ("removed", "dm")
    assert expired.action == "removed"
    assert created.identity() == {
        "action": "created",
        "bucket": "docs",
        "key": "a/My Guideé.md",
        "version": "v1",
        "etag": "abc-2",
        "sequencer": None,
    }


def test_the_same_event_has_the_same_identity_and_a_later_one_another():
    first = parse_message(body(record("ObjectCreated:Put", "k.md", eTag="e", sequencer="01")))[0]
    again = parse_message(body(record("ObjectCreated:Put", "k.md", eTag="e", sequencer="01")))[0]
    later = parse_message(body(record("ObjectCreated:Put", "k.md", eTag="e", sequencer="02")))[0]
    assert first.identity() == again.identity() != later.identity()


def test_test_events_and_other_event_types_yield_nothing():
    test = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "docs"})
    assert parse_message(test) == []
    assert is_test_event(test)
    assert parse_message(body(record("ObjectRestore:Completed", "k.md"))) == []
    assert not is_test_event(body(record("ObjectRestore:Completed", "k.md")))


def test_an_sns_envelope_is_opened():
    inner = body(record("ObjectCreated:Put", "k.txt", eTag="e"))
    (event,) = parse_message(json.dumps({"Type": "Notification", "Message": inner, "TopicArn": "arn:aws:sns:x"}))
    assert event.key == "k.txt"


@pytest.mark.parametrize(
    "text",
    ["not json", "[1, 2]", json.dumps({"Hello": "world"}), body({"eventName": "ObjectCreated:Put", "s3": {}})],
)
def test_malformed_messages_are_refused(text):
    with pytest.raises(MalformedMessageError):
        parse_message(text)


@pytest.mark.parametrize(
    ("key", "prefix", "tenant"),
    [
        ("acme/guide.md", "", "acme"),
        ("acme/deep/er/guide.md", "", "acme"),
        ("guide.md", "", DEFAULT_TENANT),
        ("tenants/acme/guide.md", "tenants/", "acme"),
        ("public/guide.md", "tenants/", DEFAULT_TENANT),
        ("tenants/guide.md", "tenants/", DEFAULT_TENANT),
        ("tenants/acme/", "tenants/", DEFAULT_TENANT),
        ("we ird/guide.md", "", DEFAULT_TENANT),
        ("-acme/guide.md", "", DEFAULT_TENANT),
        ("a/b/acme/x.md", "a/b/", "acme"),
    ],
)
def test_the_tenant_rule(key, prefix, tenant):
    assert tenant_of(key, prefix) == tenant
