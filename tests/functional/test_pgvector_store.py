"""DOCUMENT_STORE=pgvector against a real PostgreSQL 18 + pgvector 0.8 server (tests/postgres_server.py).

The server is started by these tests on a free loopback port as the unprivileged ``postgres`` user
(created when missing); it cannot be skipped: if it does not start, every test here fails with the
reason. Documents are the real small corpus (stdlib modules rendered, split and embedded with
WordLlama, as ``make index`` does); query embeddings come from the real ``StaticTextEmbedder``.
"""

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import psycopg
import pytest
from fastapi.testclient import TestClient
from haystack import Document
from haystack.document_stores.errors import DocumentStoreError
from haystack.document_stores.types import DuplicatePolicy
from moto import mock_aws

from core.api.app import create_app
from core.components.embedders import StaticTextEmbedder
from core.runtime.container import build_runtime
from core.runtime.snapstart import after_restore
from core.settings import Settings, SettingsError, load_settings
from core.store.base import SourceRef, StoreError, StoreUnavailableError, store_unavailable
from core.store.pgvector import PgvectorStore, connection_info, open_pgvector_store
from tests.postgres_server import PostgresServer, PostgresServerError
from tests.support import free_port

pytestmark = pytest.mark.slow  # starts a PostgreSQL server

ROOT = Path(__file__).resolve().parents[2]
DIM = 256
ACME = SourceRef(bucket="docs", key="acme/guide.md", version="v1", tenant="acme")
GLOBEX = SourceRef(bucket="docs", key="globex/guide.md", version="v1", tenant="globex")


# --- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """No setting of the developer's shell or CI reaches these tests' settings."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture(scope="module")
def pg():
    """One server for this module; a test that stops it leaves it to ``database`` to start again."""
    try:
        server = PostgresServer().start()
    except PostgresServerError as exc:
        pytest.fail(f"PostgreSQL with pgvector could not start: {exc}", pytrace=False)
    yield server
    server.close()


_databases = iter(range(1_000_000))


@pytest.fixture
def database(pg) -> str:
    """URL of a new, empty database (``vector`` extension created) on a running server."""
    pg.start()
    return pg.create_database(f"t{next(_databases)}")


@pytest.fixture(scope="module")
def corpus(small_store) -> list[Document]:
    """The small corpus's chunks with their WordLlama embeddings."""
    return small_store.store.filter_documents()


@pytest.fixture(scope="module")
def embedder() -> StaticTextEmbedder:
    embedder = StaticTextEmbedder()
    embedder.warm_up()
    return embedder


def embed(embedder, text: str) -> list[float]:
    return embedder.run(text=text)["embedding"]


def settings_for(url: str, **overrides) -> Settings:
    return load_settings(document_store="pgvector", pg_conn_str=url, **overrides)


@pytest.fixture
def store(database) -> PgvectorStore:
    return open_pgvector_store(settings_for(database)).store


@pytest.fixture
def filled(store, corpus) -> PgvectorStore:
    store.write_documents(corpus)
    return store


@pytest.fixture
def make_pg_client(make_settings, corpus):
    """An app over ``build_runtime`` with DOCUMENT_STORE=pgvector (the store comes from ``load_store``)."""

    def factory(url: str, fill: bool = True, **overrides) -> TestClient:
        settings = make_settings(document_store="pgvector", pg_conn_str=url, **overrides)
        runtime = build_runtime(settings)
        if fill:
            runtime.store.store.write_documents(corpus, policy=DuplicatePolicy.OVERWRITE)
        client = TestClient(create_app(runtime), raise_server_exceptions=False)
        client.runtime = runtime
        return client

    return factory


def chunks(source: SourceRef, texts: list[str]) -> list[Document]:
    """Chunks of one object as an indexer makes them (source meta, an embedding each)."""
    return [
        Document(content=text, meta={**source.meta(), "n": i}, embedding=[1.0 / (i + 1)] + [0.01] * (DIM - 1))
        for i, text in enumerate(texts)
    ]


def keys_in(store: PgvectorStore) -> list[tuple[str, str]]:
    return sorted((d.meta.get("source_bucket"), d.meta.get("source_key")) for d in store.filter_documents())


# --- the server the tests start ----------------------------------------------------------------------


def test_the_server_runs_unprivileged_on_loopback_and_keeps_its_data_across_a_restart(pg, database):
    owner = process_owner(pg.proc.pid)
    assert owner != "root"
    assert pg.execute("SHOW listen_addresses") == [("127.0.0.1",)]
    assert pg.execute("SHOW unix_socket_directories") == [("",)]
    dbname = database.rsplit("/", 1)[1]
    pg.execute("CREATE TABLE kept (n int)", dbname)
    port = pg.port
    pg.stop()
    assert not pg.alive
    pg.start()
    assert pg.port == port
    assert pg.execute("SELECT count(*) FROM kept", dbname) == [(0,)]
    assert pg.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'", dbname)[0][0] >= "0.8"


def process_owner(pid: int) -> str:
    """User name owning a process."""
    import pwd

    return pwd.getpwuid(Path(f"/proc/{pid}").stat().st_uid).pw_name


# --- write and read --------------------------------------------------------------------------------


def test_writes_every_chunk_with_its_embedding_and_meta(store, corpus):
    assert store.write_documents(corpus) == len(corpus)
    assert store.count_documents() == len(corpus)
    read = {d.id: d for d in store.filter_documents({"field": "meta.module", "operator": "==", "value": "tomllib"})}
    expected = {d.id: d for d in corpus if d.meta["module"] == "tomllib"}
    assert read.keys() == expected.keys()
    some = next(iter(expected))
    assert read[some].content == expected[some].content
    assert read[some].meta == expected[some].meta
    assert read[some].embedding == pytest.approx(expected[some].embedding, abs=1e-6)


def test_init_creates_the_table_and_its_indexes_and_describes_them(database, pg):
    loaded = open_pgvector_store(settings_for(database))
    assert loaded.manifest == {
        "store": "pgvector",
        "embedding_model": "l2_supercat_256",
        "embedding_dim": DIM,
        "table": "public.haystack_documents",
        "search_strategy": "hnsw",
        "language": "english",
        "count": 0,
    }
    assert loaded.source.startswith("pgvector://127.0.0.1:") and loaded.source.endswith("/public.haystack_documents")
    assert "postgres-test" not in loaded.source
    indexes = {row[0] for row in pg.execute("SELECT indexname FROM pg_indexes", database.rsplit("/", 1)[1])}
    assert {
        "haystack_documents_keyword_idx",
        "haystack_documents_hnsw_idx",
        "haystack_documents_source_idx",
        "haystack_documents_tenant_idx",
    } <= indexes


def test_keyword_retrieval_finds_the_module_whose_text_has_every_term(filled):
    documents = filled.bm25_retrieval("parse JSON", top_k=5)
    assert documents and documents[0].meta["module"].startswith("json")
    assert all("json" in d.content.lower() and "pars" in d.content.lower() for d in documents)
    scores = [d.score for d in documents]
    assert scores == sorted(scores, reverse=True)
    assert all(d.embedding is None for d in documents)
    assert all(0 < d.score < 1 for d in filled.bm25_retrieval("parse JSON", top_k=5, scale_score=True))
    assert filled.bm25_retrieval("   ") == []
    assert filled.bm25_retrieval("zzyzx qwertyuiop") == []


def test_embedding_retrieval_with_exact_search_ranks_as_the_embedded_store_does(
    database, corpus, small_store, embedder
):
    store = open_pgvector_store(settings_for(database, pg_search_strategy="exact")).store
    store.write_documents(corpus)
    query = embed(embedder, "how do I parse JSON")
    ours = store.embedding_retrieval(query, top_k=10)
    embedded = small_store.store.embedding_retrieval(query, top_k=10)
    assert [d.id for d in ours] == [d.id for d in embedded]
    assert [d.score for d in ours] == pytest.approx([d.score for d in embedded], abs=1e-4)  # float32 sums
    assert ours[0].meta["module"].startswith("json")


def test_embedding_retrieval_through_hnsw_keeps_recall_and_returns_embeddings_only_when_asked(
    filled, small_store, embedder
):
    for text in ("read and write CSV files", "copy a directory tree", "serialize python objects to bytes"):
        query = embed(embedder, text)
        approximate = filled.embedding_retrieval(query, top_k=10)
        exact = small_store.store.embedding_retrieval(query, top_k=10)
        assert len({d.id for d in approximate} & {d.id for d in exact}) >= 9, text
    query = embed(embedder, "parse JSON")
    assert all(d.embedding is None for d in filled.embedding_retrieval(query, top_k=3))
    with_embeddings = filled.embedding_retrieval(query, top_k=3, return_embedding=True)
    assert all(len(d.embedding) == DIM for d in with_embeddings)
    assert all(0 <= d.score <= 1 for d in filled.embedding_retrieval(query, top_k=3, scale_score=True))
    with pytest.raises(ValueError, match="dimension 3"):
        filled.embedding_retrieval([0.1, 0.2, 0.3])


def test_top_k_beyond_the_hnsw_candidate_list_and_a_selective_filter_still_fill_top_k(database, corpus, embedder):
    # ef_search 10 < top_k 50, and a filter matching a few percent of the rows: without the iterative
    # index scan, HNSW would return at most 10 candidates and drop the filtered-out ones among them.
    store = open_pgvector_store(settings_for(database, pg_hnsw_ef_search=10)).store
    store.write_documents(corpus)
    query = embed(embedder, "run a shell command")
    assert len(store.embedding_retrieval(query, top_k=50)) == 50
    only = {"field": "meta.module", "operator": "==", "value": "marshal"}
    expected = {d.id for d in corpus if d.meta["module"] == "marshal"}
    assert 0 < len(expected) < 50
    assert {d.id for d in store.embedding_retrieval(query, filters=only, top_k=50)} == expected


# --- tenants ---------------------------------------------------------------------------------------


def test_a_tenant_filter_never_returns_another_tenants_documents(store, corpus, embedder):
    # The same chunks for two tenants: every query matches both, the filter must pick one.
    acme = [Document(content=d.content, embedding=d.embedding, meta={**d.meta, "tenant": "acme"}) for d in corpus]
    globex = [Document(content=d.content, embedding=d.embedding, meta={**d.meta, "tenant": "globex"}) for d in corpus]
    store.write_documents(acme + globex)
    acme_only = {"field": "meta.tenant", "operator": "==", "value": "acme"}
    with_module = {
        "operator": "AND",
        "conditions": [acme_only, {"field": "meta.module", "operator": "==", "value": "csv"}],
    }
    for text in ("read and write CSV files", "parse JSON", "copy a directory tree", "regular expression"):
        unfiltered = store.bm25_retrieval(text, top_k=50) + store.embedding_retrieval(embed(embedder, text), top_k=50)
        assert {d.meta["tenant"] for d in unfiltered} == {"acme", "globex"}
        for filters in (acme_only, with_module):
            keyword = store.bm25_retrieval(text, filters=filters, top_k=50)
            dense = store.embedding_retrieval(embed(embedder, text), filters=filters, top_k=50)
            assert dense, text
            assert {d.meta["tenant"] for d in keyword + dense} == {"acme"}, text


# --- the indexer's target: replace and delete by source -------------------------------------------


def test_replace_source_twice_leaves_one_copy_and_drops_chunks_the_new_version_lacks(store):
    assert store.replace_source(ACME, chunks(ACME, ["alpha one", "alpha two", "alpha three"])) == 3
    assert store.replace_source(ACME, chunks(ACME, ["alpha one", "alpha two", "alpha three"])) == 3
    assert store.count_documents() == 3
    v2 = SourceRef(ACME.bucket, ACME.key, "v2", ACME.tenant)
    assert store.replace_source(v2, chunks(v2, ["beta one", "beta two"])) == 2
    kept = store.filter_documents()
    assert sorted(d.content for d in kept) == ["beta one", "beta two"]
    assert {d.meta["source_version"] for d in kept} == {"v2"}


def test_delete_source_removes_exactly_that_objects_chunks(store):
    neighbours = [
        GLOBEX,
        SourceRef("docs", ACME.key + ".bak", "v1", "acme"),  # a key that starts with ACME's
        SourceRef("other-bucket", ACME.key, "v1", "acme"),  # the same key in another bucket
    ]
    store.replace_source(ACME, chunks(ACME, ["a1", "a2", "a3"]))
    for source in neighbours:
        store.replace_source(source, chunks(source, ["n1", "n2"]))
    assert store.delete_source(ACME) == 3
    assert keys_in(store) == sorted((s.bucket, s.key) for s in neighbours for _ in range(2))
    assert store.delete_source(ACME) == 0


def test_a_failed_replace_changes_nothing(store):
    store.replace_source(ACME, chunks(ACME, ["old one", "old two"]))
    broken = chunks(ACME, ["new one", "new two"])
    broken[1] = Document(content="new two", meta=ACME.meta(), embedding=[0.5] * 3)  # wrong dimension
    with pytest.raises(DocumentStoreError, match="unchanged"):
        store.replace_source(ACME, broken)
    assert sorted(d.content for d in store.filter_documents()) == ["old one", "old two"]
    assert store.replace_source(ACME, chunks(ACME, ["new one"])) == 1  # the connection is usable again


def test_replace_source_refuses_chunks_of_another_object(store):
    with pytest.raises(ValueError, match=r"s3://docs/acme/guide\.md"):
        store.replace_source(ACME, chunks(GLOBEX, ["not mine"]))
    assert store.count_documents() == 0


def test_two_indexers_replacing_the_same_object_at_once_leave_one_version(database):
    """Each round, two containers replace the same object with different versions at the same moment."""
    stores = [open_pgvector_store(settings_for(database)).store for _ in range(2)]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def index(store: PgvectorStore, version: str) -> None:
        source = SourceRef(ACME.bucket, ACME.key, version, ACME.tenant)
        try:
            barrier.wait(timeout=10)
            store.replace_source(source, chunks(source, [f"{version} chunk {i}" for i in range(20)]))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    for round_ in range(15):
        threads = [threading.Thread(target=index, args=(s, f"r{round_}-{n}")) for n, s in enumerate(stores)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert not errors, errors
        versions = {d.meta["source_version"] for d in stores[0].filter_documents()}
        assert len(versions) == 1, f"round {round_}: chunks of {sorted(versions)}"
        assert stores[0].count_documents() == 20


# --- the API over pgvector ----------------------------------------------------------------------------


def test_query_through_the_search_pipeline_answers_as_with_the_embedded_store(make_pg_client, client, database):
    pg_client = make_pg_client(database)
    for text in ("read and write CSV files", "how do I parse JSON"):
        ours = pg_client.post("/query", json={"text": text, "top_k": 3})
        embedded = client.post("/query", json={"text": text, "top_k": 3})
        assert ours.status_code == embedded.status_code == 200, ours.text
        ours_body, embedded_body = ours.json(), embedded.json()
        assert set(ours_body) == set(embedded_body)
        assert ours_body["pipeline"] == "search"
        assert len(ours_body["documents"]) == 3
        assert [set(d) for d in ours_body["documents"]] == [set(d) for d in embedded_body["documents"]]
        assert ours_body["documents"][0]["meta"]["module"] == embedded_body["documents"][0]["meta"]["module"]
    run = pg_client.post("/pipelines/search/run", json={"query": "match a regular expression", "top_k": 2})
    assert run.status_code == 200, run.text
    assert run.json()["documents"][0]["meta"]["module"] == "re"


def test_query_filters_reach_the_database(make_pg_client, database):
    body = (
        make_pg_client(database)
        .post(
            "/query",
            json={
                "text": "parse",
                "top_k": 10,
                "filters": {"field": "meta.module", "operator": "==", "value": "tomllib"},
            },
        )
        .json()
    )
    assert body["documents"]
    assert {d["meta"]["module"] for d in body["documents"]} == {"tomllib"}


def test_ready_then_database_stopped_503s_with_the_error_body_then_recovers(make_pg_client, database, pg):
    client = make_pg_client(database)
    ready = client.get("/ready")
    assert ready.status_code == 200, ready.text
    store_check = next(c for c in ready.json()["checks"] if c["name"] == "store")
    count = client.runtime.store.store.count_documents()
    assert store_check["ok"]
    assert store_check["detail"].startswith(f"{count} documents from pgvector://127.0.0.1:")

    pg.stop()
    try:
        not_ready = client.get("/ready")
        assert not_ready.status_code == 503
        failed = next(c for c in not_ready.json()["checks"] if c["name"] == "store")
        assert failed["severity"] == "critical" and "unreadable" in failed["detail"]
        assert "PG_CONN_STR" in failed["recommendation"]
        for path, body in (("/query", {"text": "database down"}), ("/pipelines/search/run", {"query": "down too"})):
            response = client.post(path, json=body)
            assert response.status_code == 503, response.text
            error = response.json()["error"]
            assert error["code"] == "store_unavailable"
            assert "127.0.0.1" not in error["message"]  # where the database is stays in the logs
            assert set(error) == {"code", "message", "request_id"}
    finally:
        pg.start()
    # Same container, no restart: the next request reconnects.
    assert client.post("/query", json={"text": "database back"}).status_code == 200
    assert client.get("/ready").status_code == 200


def test_an_empty_table_is_not_ready(make_pg_client, database):
    response = make_pg_client(database, fill=False).get("/ready")
    assert response.status_code == 503
    check = next(c for c in response.json()["checks"] if c["name"] == "store")
    assert check["detail"] == "empty: no documents to search"
    assert "index documents" in check["recommendation"]


# --- init, credentials, SnapStart ------------------------------------------------------------------


HANDLER_INIT = "import json, sys; import handlers.api; print('MODULES=' + json.dumps(sorted(sys.modules)))"


def lambda_init(tmp_path, **env: str) -> subprocess.CompletedProcess:
    """Import the API handler in a fresh process, as Lambda's init does (module scope builds the runtime)."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if k.lower() not in Settings.model_fields and not k.startswith(("AWS_", "POWERTOOLS_"))
    }
    clean.update(PYTHONPATH=str(ROOT / "src"), HAYSTACK_TELEMETRY_ENABLED="False", HOME=str(tmp_path), **env)
    command = [sys.executable, "-c", HANDLER_INIT]
    return subprocess.run(command, env=clean, capture_output=True, text=True, timeout=120, cwd=ROOT, check=False)


def test_lambda_init_fails_fast_with_one_line_when_the_database_is_unreachable(tmp_path):
    port = free_port()
    started = time.perf_counter()
    result = lambda_init(
        tmp_path, DOCUMENT_STORE="pgvector", PG_CONN_STR=f"postgresql://app:s3cret-pw@127.0.0.1:{port}/haystack"
    )
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith(f"init failed: pgvector at 127.0.0.1:{port}/haystack: OperationalError:"), result.stderr
    assert "Traceback" not in result.stderr
    assert "s3cret-pw" not in result.stderr + result.stdout
    assert time.perf_counter() - started < 30


def test_lambda_init_with_pgvector_logs_the_store_and_only_then_imports_psycopg(
    tmp_path, filled, database, small_snapshot
):
    result = lambda_init(tmp_path, DOCUMENT_STORE="pgvector", PG_CONN_STR=database)
    assert result.returncode == 0, result.stderr
    init = next(json.loads(line) for line in result.stdout.splitlines() if '"core.init"' in line)
    assert init["documents"] == filled.count_documents()
    assert init["snapshot"].startswith("pgvector://127.0.0.1:")
    assert "postgres-test" not in result.stdout
    modules = json.loads(result.stdout.split("MODULES=", 1)[1])
    assert "psycopg" in modules
    default = lambda_init(tmp_path, STORE_SNAPSHOT_URI=str(small_snapshot))
    assert default.returncode == 0, default.stderr
    assert "psycopg" not in json.loads(default.stdout.split("MODULES=", 1)[1])


def test_a_table_of_another_dimension_stops_init(database):
    open_pgvector_store(settings_for(database, pg_embedding_dim=768))
    with pytest.raises(StoreError, match=r"has embedding vector\(768\), but PG_EMBEDDING_DIM says vector\(256\)"):
        open_pgvector_store(settings_for(database))


@pytest.mark.parametrize("store_kind", ["secretsmanager", "ssm"])
def test_credentials_from_an_rds_style_secret_and_a_rotation(pg, database, monkeypatch, store_kind):
    from aws_lambda_powertools.utilities import parameters

    dbname = database.rsplit("/", 1)[1]
    pg.create_role("app", "first-pw", dbname)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    parameters.clear_caches()
    secret = {"username": "app", "password": "first-pw", "engine": "postgres", "host": "127.0.0.1", "port": pg.port}

    def put(value: dict) -> None:
        import json

        text = json.dumps(value)
        if store_kind == "secretsmanager":
            client = boto3.client("secretsmanager")
            try:
                client.put_secret_value(SecretId="db", SecretString=text)
            except client.exceptions.ResourceNotFoundException:
                client.create_secret(Name="db", SecretString=text)
        else:
            boto3.client("ssm").put_parameter(Name="db", Value=text, Type="SecureString", Overwrite=True)

    with mock_aws():
        put(secret)
        # The secret has host and port (RDS attachment format) but no dbname: PG_CONN_STR names it.
        settings = load_settings(
            document_store="pgvector", pg_conn_str=f"dbname={dbname}", pg_conn_secret=f"{store_kind}:db"
        )
        assert "password=first-pw" in connection_info(settings) and "user=app" in connection_info(settings)
        store = open_pgvector_store(settings).store
        assert store.count_documents() == 0
        # Rotation: the server and the secret change; the cached secret is stale until refused.
        pg.execute("ALTER ROLE app PASSWORD 'second-pw'")
        put({**secret, "password": "second-pw"})
        store.reconnect()
        assert store.count_documents() == 0
        # A secret that is not RDS JSON stops init with one line.
        put({"password": "only"})
        parameters.clear_caches()
        with pytest.raises(StoreError, match=f"PG_CONN_SECRET {store_kind}:db: expected JSON with username"):
            open_pgvector_store(settings)
    parameters.clear_caches()


def test_a_role_that_may_only_read_and_write_rows_opens_a_table_an_administrator_created(pg, database, corpus):
    open_pgvector_store(settings_for(database))  # the administrator (owner) creates table and indexes
    dbname = database.rsplit("/", 1)[1]
    pg.execute("DROP ROLE IF EXISTS reader_writer")
    pg.execute("CREATE ROLE reader_writer LOGIN PASSWORD 'rw-pw'")
    pg.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON haystack_documents TO reader_writer", dbname)
    store = open_pgvector_store(settings_for(pg.url(dbname, "reader_writer", "rw-pw"))).store
    assert store.replace_source(ACME, chunks(ACME, ["row one", "row two"])) == 2
    assert store.bm25_retrieval("row", top_k=5)
    with pytest.raises(StoreError, match="permission denied"):
        open_pgvector_store(settings_for(pg.url(dbname, "reader_writer", "rw-pw"), pg_table="not_created_yet"))


def test_wrong_credentials_stop_init(pg, database):
    wrong = database.replace("postgres-test", "not-the-password")
    with pytest.raises(StoreUnavailableError, match="password authentication failed"):
        open_pgvector_store(settings_for(wrong))


def test_snapstart_restore_drops_the_connection_and_the_next_query_opens_a_new_one(make_pg_client, database):
    client = make_pg_client(database)
    store = client.runtime.store.store
    assert client.post("/query", json={"text": "before restore"}).status_code == 200
    before = store._connection
    backend = before.info.backend_pid
    after_restore(client.runtime)
    assert store._connection is None and before.closed
    assert client.post("/query", json={"text": "after restore"}).status_code == 200
    assert store._connection.info.backend_pid != backend


def test_connection_errors_are_recognised_as_unavailable_but_others_are_not():
    assert store_unavailable(StoreUnavailableError("down"))
    assert store_unavailable(psycopg.OperationalError("server closed the connection unexpectedly"))
    assert not store_unavailable(psycopg.errors.UndefinedTable("no such table"))
    assert not store_unavailable(RuntimeError("bug"))


# --- settings ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "names", "expects"),
    [
        ({"DOCUMENT_STORE": "pgvector"}, ["PG_CONN_STR", "PG_CONN_SECRET"], "DOCUMENT_STORE=pgvector needs"),
        ({"DOCUMENT_STORE": "pgvector", "PG_CONN_STR": "db.example.com"}, ["PG_CONN_STR"], "postgresql://"),
        ({"PG_CONN_SECRET": "vault:db"}, ["PG_CONN_SECRET"], "secretsmanager|ssm"),
        ({"PG_TABLE": "Robert'); DROP TABLE x;--"}, ["PG_TABLE"], "pattern"),
        ({"PG_SEARCH_STRATEGY": "ivfflat"}, ["PG_SEARCH_STRATEGY"], "'hnsw' or 'exact'"),
        ({"PG_EMBEDDING_DIM": "0"}, ["PG_EMBEDDING_DIM"], "greater than or equal to 1"),
        ({"PG_CONNECT_TIMEOUT_S": "0"}, ["PG_CONNECT_TIMEOUT_S"], "greater than or equal to 1"),
    ],
)
def test_invalid_pgvector_settings_stop_with_one_line(clean_env, monkeypatch, env, names, expects):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError) as error:
        load_settings()
    message = str(error.value)
    assert "\n" not in message
    for name in names:
        assert name in message
    assert expects in message


def test_a_rejected_connection_string_is_never_echoed(clean_env, monkeypatch):
    monkeypatch.setenv("PG_CONN_STR", "db.example.com:5432 password s3cret-pw")
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert "PG_CONN_STR" in str(error.value)
    assert "s3cret-pw" not in str(error.value)
    monkeypatch.setenv("PG_CONN_STR", "postgresql://app:s3cret-pw@db.example.com/haystack")
    settings = load_settings(document_store="pgvector")
    assert "s3cret-pw" not in repr(settings)


def test_without_its_layer_pgvector_stops_init_with_one_line(make_settings, monkeypatch):
    import sys

    from core.store.base import StoreError
    from core.store.load import load_store

    monkeypatch.setitem(sys.modules, "psycopg", None)  # as in the default deployment: no PgvectorLayer
    monkeypatch.delitem(sys.modules, "core.store.pgvector", raising=False)
    settings = make_settings(document_store="pgvector", pg_conn_str="host=127.0.0.1 port=1 dbname=x")
    with pytest.raises(StoreError, match="PgvectorLayer"):
        load_store(settings)


def test_export_then_restore_returns_identical_retrieval_results(filled, embedder, tmp_path):
    from core.store.recovery import export_store, read_version, restore_documents, verify

    queries = ["parse JSON text", "read a CSV file", "copy a directory tree"]

    def answers() -> list[list[str]]:
        return [
            [d.id for d in filled.embedding_retrieval(query_embedding=embed(embedder, q), top_k=5)]
            + [d.id for d in filled.bm25_retrieval(query=q, top_k=5)]
            for q in queries
        ]

    before = answers()
    backup = tmp_path / "pgvector.snapshot"
    manifest = export_store(filled, "l2_supercat_256", str(backup))
    assert manifest["count"] == filled.count_documents()

    doomed = [d.id for d in filled.filter_documents()][::2]  # the damage: half the rows gone
    filled.delete_documents(doomed)
    assert answers() != before

    written, deleted = restore_documents(filled, read_version(str(backup), None))
    assert (written, deleted) == (verify(read_version(str(backup), None))["count"], 0)
    assert answers() == before
