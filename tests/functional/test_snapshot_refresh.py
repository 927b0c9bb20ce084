"""Query functions swap in a newer snapshot (S3 in moto, or a local file) without a failed request.

The app is the real one (``build_runtime`` + ``create_app`` under a TestClient) loading its snapshot
from ``s3://``; the refresher's clock is injected, so "after the refresh interval" is a number, not a sleep.
"""

import json
import threading

import boto3
import pytest
from fastapi.testclient import TestClient
from haystack import Document
from moto import mock_aws

from core.api.app import create_app
from core.components.embedders import StaticDocumentEmbedder
from core.components.wordllama import DEFAULT_MODEL
from core.observability import names
from core.runtime.container import build_runtime
from core.store.snapshot import encode_snapshot

BUCKET = "index-bucket"
URI = f"s3://{BUCKET}/store.snapshot"
INTERVAL = 30

OLD = ["Quokkas are small marsupials of Rottnest Island.", "Pelicans carry fish in their pouch."]
NEW = ["Quokka sightings were recounted by the island rangers this year.", "Axolotls regrow their limbs."]


def snapshot_bytes(texts: list[str]) -> bytes:
    embedded = StaticDocumentEmbedder().run(documents=[Document(content=t, meta={"tenant": "default"}) for t in texts])[
        "documents"
    ]
    return encode_snapshot(embedded, DEFAULT_MODEL)


class Clock:
    """The refresher's clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def s3(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        yield client


@pytest.fixture
def serve(make_settings):
    """``serve(uri, **settings)`` → (TestClient, runtime, clock): the app loaded from ``uri``, clock injected."""

    def factory(uri: str = URI, **overrides):
        overrides.setdefault("store_refresh_s", INTERVAL)
        runtime = build_runtime(make_settings(store_snapshot_uri=uri, **overrides))
        clock = Clock()
        if runtime.refresher is not None:
            runtime.refresher.clock = clock
            runtime.refresher._last_check = clock()
        return TestClient(create_app(runtime), raise_server_exceptions=False), runtime, clock

    return factory


def query(client: TestClient, text: str = "quokka island", **headers: str) -> tuple[list[str], str]:
    response = client.post("/query", json={"text": text, "top_k": 2}, headers=headers)
    assert response.status_code == 200, response.text
    return [d["content"] for d in response.json()["documents"]], response.headers["x-cache"]


def test_after_the_interval_the_next_request_answers_from_the_new_snapshot_and_not_from_the_cache(s3, serve):
    s3.put_object(Bucket=BUCKET, Key="store.snapshot", Body=snapshot_bytes(OLD))
    client, runtime, clock = serve()
    old_generation = runtime.store_generation

    assert query(client) == ([OLD[0], OLD[1]], "MISS")
    assert query(client)[1] == "HIT-L1"

    s3.put_object(Bucket=BUCKET, Key="store.snapshot", Body=snapshot_bytes(NEW))
    clock.advance(INTERVAL - 1)
    assert query(client) == ([OLD[0], OLD[1]], "HIT-L1")  # not due yet: the loaded snapshot answers

    clock.advance(2)
    documents, cache = query(client)
    assert documents[0] == NEW[0]
    assert set(documents) <= set(NEW)
    assert cache == "MISS"  # the answer cached from the old snapshot does not answer any more
    assert runtime.store_generation != old_generation
    assert runtime.store.manifest["count"] == len(NEW)
    assert runtime.refresher.refreshes == 1


def test_containers_on_the_same_snapshot_share_the_cache_key_generation(s3, serve):
    s3.put_object(Bucket=BUCKET, Key="store.snapshot", Body=snapshot_bytes(OLD))
    _, first, _ = serve()
    _, second, _ = serve()
    assert first.store_generation == second.store_generation != ""


def test_no_request_fails_while_snapshots_are_swapped_under_it(s3, serve):
    bodies = [snapshot_bytes(OLD), snapshot_bytes(NEW)]
    s3.put_object(Bucket=BUCKET, Key="store.snapshot", Body=bodies[0])
    client, runtime, clock = serve()
    statuses: list[int] = []
    stop = threading.Event()

    def load() -> None:
        with TestClient(client.app, raise_server_exceptions=False) as own:
            while not stop.is_set() and len(statuses) < 2000:
                response = own.post(
                    "/query",
                    json={
                        "text": "island animals",
                        "top_k": 2,
                        "filters": {"field": "content", "operator": "!=", "value": ""},
                    },
                    headers={"Cache-Control": "no-cache"},
                )
                statuses.append(response.status_code)

    worker = threading.Thread(target=load)
    worker.start()
    try:
        for swap in range(6):
            s3.put_object(Bucket=BUCKET, Key="store.snapshot", Body=bodies[(swap + 1) % 2])
            clock.advance(INTERVAL + 1)
            assert runtime.refresher.maybe_refresh()
    finally:
        stop.set()
        worker.join(timeout=60)

    assert runtime.refresher.refreshes == 6
    assert statuses
    assert set(statuses) == {200}


def test_a_corrupt_new_snapshot_keeps_the_old_one_serving(s3, serve, capsys):
    s3.put_object(Bucket=BUCKET, Key="store.snapshot", Body=snapshot_bytes(OLD))
    client, runtime, clock = serve()
    generation = runtime.store_generation

    good = snapshot_bytes(NEW)
    s3.put_object(Bucket=BUCKET, Key="store.snapshot", Body=good[: len(good) // 2])  # truncated upload
    clock.advance(INTERVAL + 1)
    assert query(client)[0] == [OLD[0], OLD[1]]
    assert (runtime.refresher.failures, runtime.store_generation) == (1, generation)
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert any(doc.get(names.SNAPSHOT_REFRESH_FAILURES) == [1.0] for doc in emf)

    clock.advance(INTERVAL + 1)
    query(client)
    assert runtime.refresher.failures == 1  # the same broken object is not downloaded again

    s3.put_object(Bucket=BUCKET, Key="store.snapshot", Body=good)  # the fixed upload
    clock.advance(INTERVAL + 1)
    assert query(client)[0][0] == NEW[0]


def test_a_snapshot_embedded_with_another_model_is_refused(s3, serve):
    s3.put_object(Bucket=BUCKET, Key="store.snapshot", Body=snapshot_bytes(OLD))
    client, runtime, clock = serve()
    other = [Document(content=t, meta={"tenant": "default"}, embedding=[1.0, 0.0, 0.0]) for t in NEW]
    s3.put_object(Bucket=BUCKET, Key="store.snapshot", Body=encode_snapshot(other, "another-model"))
    clock.advance(INTERVAL + 1)
    assert query(client)[0] == [OLD[0], OLD[1]]
    assert runtime.refresher.failures == 1


def test_refresh_zero_never_checks(s3, serve):
    s3.put_object(Bucket=BUCKET, Key="store.snapshot", Body=snapshot_bytes(OLD))
    client, runtime, clock = serve(store_refresh_s=0)
    s3.put_object(Bucket=BUCKET, Key="store.snapshot", Body=snapshot_bytes(NEW))
    clock.advance(10**6)
    assert query(client)[0] == [OLD[0], OLD[1]]
    assert runtime.refresher.refreshes == 0
    assert runtime.store_generation  # the cache key still names the snapshot


def test_a_local_snapshot_file_is_refreshed_too(tmp_path, serve):
    path = tmp_path / "store.snapshot"
    path.write_bytes(snapshot_bytes(OLD))
    client, runtime, clock = serve(str(path))
    assert runtime.store_generation
    assert query(client)[0] == [OLD[0], OLD[1]]
    tmp = tmp_path / "next"
    tmp.write_bytes(snapshot_bytes(NEW))
    tmp.replace(path)  # how write_bytes replaces a snapshot: a new file
    clock.advance(INTERVAL + 1)
    assert query(client)[0][0] == NEW[0]
    assert runtime.refresher.refreshes == 1
