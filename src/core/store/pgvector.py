"""``DOCUMENT_STORE=pgvector``: documents in PostgreSQL with pgvector (Aurora PostgreSQL in AWS).

``PgvectorStore`` is Haystack's ``PgvectorDocumentStore`` (pgvector-haystack) with this project's store
protocol on top, so the same pipeline YAML runs on it as on the embedded store:

- ``bm25_retrieval`` → PostgreSQL full-text search, as the integration's keyword retrieval does
  (``plainto_tsquery``: every query term must occur; ranked by ``ts_rank_cd``; GIN index). All terms,
  not any: measured on the default corpus, the ``search`` pipeline's fusion is better with it (hit@1
  0.86 vs 0.79) and 10x faster than OR-ing the terms, because dense retrieval covers the queries whose
  terms never occur together (``bench/pgvector.py``). Scores are not BM25's: ``scale_score`` maps
  them to 0-1 with ``s / (1 + s)``.
- ``embedding_retrieval`` → cosine similarity (``<=>``), HNSW index by default. Queries run with
  ``hnsw.iterative_scan = strict_order`` (pgvector 0.8), so a selective filter (a tenant) still gets
  ``top_k`` rows from the index, in order.
- Both select the columns a result needs: the embedding only with ``return_embedding`` (parsing 50
  vectors of 256 floats cost 4 ms per query, 4x the HNSW search itself).
- Filters: Haystack's filter syntax, translated to SQL by the integration (``meta.tenant == "acme"``
  becomes ``meta->>'tenant' = %s``, with a btree index on it).
- ``replace_source`` / ``delete_source`` (``core.store.base.IndexTarget``): one transaction
  each, serialised per source object by an advisory lock, so readers never see an object half
  replaced and two indexers replacing the same object leave one copy.

Connections: one per container, opened at init (``open_pgvector_store``: fails init with one line if
the database cannot be reached), checked before each use and re-opened when broken (the
integration's behaviour), closed by ``reconnect()`` after a SnapStart restore. Credentials come from
``PG_CONN_STR`` and/or ``PG_CONN_SECRET`` (Secrets Manager or SSM through Powertools Parameters,
cached 5 minutes, re-read once when the password is refused: a rotation).

Example:
    >>> loaded = open_pgvector_store(load_settings(document_store="pgvector", pg_conn_str="postgresql://..."))
    >>> [d.meta["module"] for d in loaded.store.bm25_retrieval("parse JSON", top_k=2)]
    ['json', 'json.decoder']
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import psycopg
from haystack import Document
from haystack.document_stores.errors import DocumentStoreError
from haystack.document_stores.types import DuplicatePolicy
from haystack.utils import Secret
from haystack_integrations.document_stores.pgvector import PgvectorDocumentStore
from haystack_integrations.document_stores.pgvector.converters import (
    _from_haystack_to_pg_documents,
    _from_pg_to_haystack_documents,
)
from haystack_integrations.document_stores.pgvector.filters import (
    _convert_filters_to_where_clause_and_params,
    _validate_filters,
)
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from core.errors import cause_chain, one_line
from core.observability import redaction
from core.settings import Settings
from core.store.base import (
    META_BUCKET,
    META_KEY,
    META_TENANT,
    LoadedStore,
    SourceRef,
    StoreError,
    StoreUnavailableError,
)

logger = logging.getLogger("core.store.pgvector")

EMBEDDING_MODEL = "l2_supercat_256"  # what the bundled pipelines embed with (core.components.embedders)
SECRET_MAX_AGE_S = 300
APPLICATION_NAME = "haystack-serverless"
# Columns a retrieval result needs (the integration's converter expects the blob ones).
RESULT_COLUMNS = ("id", "content", "blob_data", "blob_meta", "blob_mime_type", "meta")
_STRATEGIES = {"hnsw": "hnsw", "exact": "exact_nearest_neighbor"}


def _operational_cause(exc: BaseException) -> BaseException | None:
    """The first ``psycopg.OperationalError`` in ``exc``'s chain (connection lost, refused, timed out)."""
    return next((cause for cause in cause_chain(exc) if isinstance(cause, psycopg.OperationalError)), None)


# --- credentials ---------------------------------------------------------------------------------------


def read_connection_secret(reference: str, fresh: bool = False) -> dict[str, Any]:
    """The JSON of ``secretsmanager:<id>`` / ``ssm:<name>`` (Powertools Parameters, cached ``SECRET_MAX_AGE_S``).

    Raises:
        StoreError: It cannot be read, or is not JSON with ``username`` and ``password``.
    """
    store, _, name = reference.partition(":")
    try:
        from aws_lambda_powertools.utilities import parameters  # noqa: PLC0415 - only when configured

        if store == "secretsmanager":
            raw = parameters.get_secret(name, max_age=SECRET_MAX_AGE_S, force_fetch=fresh)
        else:
            raw = parameters.get_parameter(name, decrypt=True, max_age=SECRET_MAX_AGE_S, force_fetch=fresh)
    except Exception as exc:  # noqa: BLE001 - GetParameterError, botocore errors: one line at init
        raise StoreError(f"PG_CONN_SECRET {reference}: cannot be read ({one_line(exc)})") from None
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None
    if not isinstance(data, dict) or not data.get("username") or not data.get("password"):
        raise StoreError(f"PG_CONN_SECRET {reference}: expected JSON with username and password (RDS secret format)")
    redaction.register(str(data["password"]))
    return data


def connection_info(settings: Settings, fresh: bool = False) -> str:
    """The libpq connection string: ``PG_CONN_STR``, completed by ``PG_CONN_SECRET``.

    The secret always supplies the credentials; its ``host``, ``port`` and ``dbname`` (present in secrets
    attached to an RDS/Aurora cluster) are used only where ``PG_CONN_STR`` does not name them, so
    ``PG_CONN_STR="host=<reader endpoint> sslmode=require"`` can point the API at a reader.

    Raises:
        StoreError: The secret cannot be read or ``PG_CONN_STR`` is not a connection string.
    """
    base = settings.pg_conn_str.get_secret_value() if settings.pg_conn_str else ""
    if not settings.pg_conn_secret:
        return base
    data = read_connection_secret(settings.pg_conn_secret, fresh)
    try:
        given = conninfo_to_dict(base)
    except psycopg.ProgrammingError as exc:
        raise StoreError(f"PG_CONN_STR is not a valid connection string ({type(exc).__name__})") from None
    filled = {key: data.get(key) for key in ("host", "port", "dbname") if data.get(key) and key not in given}
    return make_conninfo(
        base, **{k: str(v) for k, v in filled.items()}, user=str(data["username"]), password=str(data["password"])
    )


def endpoint(conninfo: str) -> str:
    """``host:port/dbname`` of a connection string (never its credentials)."""
    try:
        parts = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return "?"
    return f"{parts.get('host') or 'localhost'}:{parts.get('port') or 5432}/{parts.get('dbname') or '?'}"


# --- the store -----------------------------------------------------------------------------------------


class _QuietIndexNotice(logging.Filter):
    """Drop the integration's warning that the HNSW index exists: it does on every cold start but the first."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "HNSW index already exists" not in str(record.msg)


logging.getLogger("haystack_integrations.document_stores.pgvector.document_store").addFilter(_QuietIndexNotice())


class PgvectorStore(PgvectorDocumentStore):
    """``PgvectorDocumentStore`` with the project's store protocol, indexer target and connection handling.

    Build it with ``from_settings`` (or ``open_pgvector_store``, which also connects). It is still a
    ``PgvectorDocumentStore``: Haystack's own pgvector retrievers accept it too.

    Args:
        conninfo: Returns the libpq connection string; called with ``True`` to bypass the secret's cache
            (after the password was refused). ``None``: the integration's ``connection_string``.
        connect_timeout_s: libpq ``connect_timeout``.
        statement_timeout_ms: Server-side bound of every statement.
        **kwargs: ``PgvectorDocumentStore`` arguments (``table_name``, ``embedding_dimension``, ...).
    """

    def __init__(
        self,
        *,
        conninfo: Callable[[bool], str] | None = None,
        connect_timeout_s: int = 5,
        statement_timeout_ms: int = 10_000,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("connection_string", Secret.from_env_var("PG_CONN_STR", strict=False))
        kwargs.setdefault("keyword_index_name", f"{kwargs.get('table_name', 'haystack_documents')}_keyword_idx")
        kwargs.setdefault("hnsw_index_name", f"{kwargs.get('table_name', 'haystack_documents')}_hnsw_idx")
        super().__init__(**kwargs)
        self._conninfo = conninfo
        self.connect_timeout_s = connect_timeout_s
        self.statement_timeout_ms = statement_timeout_ms

    @classmethod
    def from_settings(cls, settings: Settings) -> PgvectorStore:
        """The store ``PG_*`` settings describe (not connected yet)."""
        return cls(
            conninfo=lambda fresh: connection_info(settings, fresh),
            connect_timeout_s=settings.pg_connect_timeout_s,
            statement_timeout_ms=settings.pg_statement_timeout_ms,
            schema_name=settings.pg_schema,
            table_name=settings.pg_table,
            language=settings.pg_language,
            embedding_dimension=settings.pg_embedding_dim,
            vector_function="cosine_similarity",
            search_strategy=_STRATEGIES[settings.pg_search_strategy],
            hnsw_ef_search=settings.pg_hnsw_ef_search,
            recreate_table=False,  # never from a function: the table is the data
        )

    @property
    def table(self) -> str:
        """``schema.table``."""
        return f"{self.schema_name}.{self.table_name}"

    @property
    def endpoint(self) -> str:
        """``host:port/dbname`` (no credentials), for messages."""
        return endpoint(self._resolve(fresh=False)) if self._conninfo else "PG_CONN_STR"

    # -- connection --------------------------------------------------------------------------------------

    def _resolve(self, fresh: bool) -> str:
        if self._conninfo is not None:
            return self._conninfo(fresh)
        return self.connection_string.resolve_value() or ""

    def _options(self) -> dict[str, Any]:
        settings = [f"statement_timeout={self.statement_timeout_ms}"]
        if self.search_strategy == "hnsw":
            # Per connection (the integration sets ef_search once, on its first connection only).
            settings += [f"hnsw.ef_search={self.hnsw_ef_search or 40}", "hnsw.iterative_scan=strict_order"]
        return {
            "connect_timeout": self.connect_timeout_s,
            "application_name": APPLICATION_NAME,
            "options": " ".join(f"-c {s}" for s in settings),
        }

    def _create_connection(self) -> psycopg.Connection:
        """Open a connection (the integration's override point); a refused password re-reads the secret once.

        Raises:
            StoreUnavailableError: The server cannot be reached, or refuses the credentials.
        """
        conninfo = self._resolve(fresh=False)
        try:
            return psycopg.Connection.connect(conninfo, **self._options())
        except psycopg.OperationalError as exc:
            if self._conninfo is not None and "password authentication failed" in str(exc):
                with contextlib.suppress(psycopg.OperationalError):
                    return psycopg.Connection.connect(self._resolve(fresh=True), **self._options())
            raise StoreUnavailableError(f"pgvector at {endpoint(conninfo)}: {one_line(exc)}") from exc

    def open(self) -> None:
        """Connect, create what is missing (extension, table, indexes) and check the embedding dimension.

        Raises:
            StoreUnavailableError: The database cannot be reached.
            StoreError: The table exists with another embedding dimension, or cannot be set up.
        """
        with self._unavailable_on_connection_errors():
            try:
                self._ensure_db_setup()
                self._ensure_meta_indexes()
                found = self._embedding_type()
            except DocumentStoreError as exc:
                raise StoreError(f"pgvector table {self.table}: {one_line(exc.__cause__ or exc)}") from exc
        expected = f"{self.vector_type}({self.embedding_dimension})"
        if found != expected:
            raise StoreError(
                f"pgvector table {self.table} has embedding {found}, but PG_EMBEDDING_DIM says {expected}: "
                "use another PG_TABLE or re-create this one"
            )

    def _ensure_meta_indexes(self) -> None:
        """Btree indexes on the meta keys that every delete (source) and tenant filter names.

        Looked up first, as the integration does for its own: a role that may only read and write rows
        (not own the table) opens a table an administrator created.
        """
        indexes = {
            f"{self.table_name}_source_idx": (META_BUCKET, META_KEY),
            f"{self.table_name}_tenant_idx": (META_TENANT,),
        }
        existing = self._execute_sql(
            cursor=self._cursor,
            sql_query=sql.SQL("SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = %s"),
            params=(self.schema_name, self.table_name),
            error_msg="Could not list the table's indexes",
        ).fetchall()
        for name, keys in indexes.items():
            if (name,) in existing:
                continue
            statement = sql.SQL("CREATE INDEX IF NOT EXISTS {name} ON {schema}.{table} ({columns})").format(
                name=sql.Identifier(name),
                schema=sql.Identifier(self.schema_name),
                table=sql.Identifier(self.table_name),
                columns=sql.SQL(", ").join(sql.SQL("(meta->>{})").format(sql.Literal(k)) for k in keys),
            )
            self._execute_sql(cursor=self._cursor, sql_query=statement, error_msg=f"Could not create index {name}")

    def _embedding_type(self) -> str:
        statement = sql.SQL(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = to_regclass(%s) AND attname = 'embedding'"
        )
        row = self._execute_sql(
            cursor=self._cursor,
            sql_query=statement,
            params=(f'"{self.schema_name}"."{self.table_name}"',),
            error_msg="Could not read the embedding column's type",
        ).fetchone()
        return row[0] if row else "none"

    def reconnect(self) -> None:
        """Drop the connection (after a SnapStart restore its socket is another machine's); the next use re-opens it."""
        self.close()

    @contextlib.contextmanager
    def _unavailable_on_connection_errors(self) -> Iterator[None]:
        """Re-raise failures caused by a lost or refused connection as ``StoreUnavailableError``."""
        try:
            yield
        except StoreError:
            raise
        except (psycopg.Error, DocumentStoreError) as exc:
            cause = _operational_cause(exc)
            if cause is None:
                raise
            raise StoreUnavailableError(f"pgvector {self.table}: {one_line(cause)}") from exc

    # -- retrieval (the signatures of core.store.embedded.EmbeddedDocumentStore) -----------------------

    def bm25_retrieval(
        self, query: str, filters: dict[str, Any] | None = None, top_k: int = 10, scale_score: bool = False
    ) -> list[Document]:
        """Full-text search: documents holding every query term, by ``ts_rank_cd`` (see the module docstring).

        Raises:
            StoreUnavailableError: The database does not answer.
            haystack.errors.FilterError: ``filters`` is malformed.
        """
        if not query.strip():
            return []
        _validate_filters(filters)
        language = sql.Literal(self.language)
        statement = sql.SQL(
            "SELECT {columns}, ts_rank_cd(to_tsvector({language}, content), query) AS score "
            "FROM {schema}.{table}, plainto_tsquery({language}, %s) query "
            "WHERE to_tsvector({language}, content) @@ query"
        ).format(columns=self._columns(False), language=language, **self._names())
        where, params = _convert_filters_to_where_clause_and_params(filters, "AND") if filters else (sql.SQL(""), ())
        statement += where + sql.SQL(" ORDER BY score DESC, id LIMIT %s")
        documents = self._select(statement, (query, *params, top_k))
        if scale_score:
            documents = [replace(d, score=d.score / (1 + d.score)) for d in documents]
        return documents

    def embedding_retrieval(
        self,
        query_embedding: list[float],
        filters: dict[str, Any] | None = None,
        top_k: int = 10,
        scale_score: bool = False,
        return_embedding: bool = False,
    ) -> list[Document]:
        """Documents by cosine similarity (``1 - (embedding <=> query)``), through the HNSW index by default.

        Raises:
            ValueError: The query's dimension is not the table's.
            StoreUnavailableError: The database does not answer.
        """
        query = np.asarray(query_embedding, dtype=np.float32)
        if query.shape != (self.embedding_dimension,):
            raise ValueError(f"query embedding has dimension {query.size}; the store's is {self.embedding_dimension}")
        _validate_filters(filters)
        statement = sql.SQL("SELECT {columns}, 1 - (embedding <=> %s) AS score FROM {schema}.{table}").format(
            columns=self._columns(return_embedding), **self._names()
        )
        where, params = _convert_filters_to_where_clause_and_params(filters) if filters else (sql.SQL(""), ())
        statement += where + sql.SQL(" ORDER BY embedding <=> %s LIMIT %s")
        documents = self._select(statement, (query, *params, query, top_k))
        if scale_score:
            documents = [replace(d, score=(d.score + 1) / 2) for d in documents]
        return documents

    def _names(self) -> dict[str, sql.Identifier]:
        return {"schema": sql.Identifier(self.schema_name), "table": sql.Identifier(self.table_name)}

    @staticmethod
    def _columns(with_embedding: bool) -> sql.Composable:
        names = (*RESULT_COLUMNS, "embedding") if with_embedding else RESULT_COLUMNS
        return sql.SQL(", ").join(sql.Identifier(n) for n in names)

    def _select(self, statement: sql.Composed, params: tuple) -> list[Document]:
        with self._unavailable_on_connection_errors():
            self._ensure_db_setup()
            rows = self._execute_sql(
                cursor=self._dict_cursor,
                sql_query=statement,
                params=params,
                error_msg="Could not retrieve documents from PgvectorDocumentStore",
            ).fetchall()
        return _from_pg_to_haystack_documents(rows)

    # -- core.store.base.IndexTarget ---------------------------------------------------------------

    def replace_source(self, source: SourceRef, documents: list[Document]) -> int:
        """Delete every chunk of ``source.bucket``/``source.key`` and write ``documents``, in one transaction.

        Readers see the old chunks or the new ones, never neither or both; a failure changes nothing.

        Raises:
            ValueError: A document's meta names another source object.
            StoreUnavailableError: The database does not answer (nothing changed).
        """
        for document in documents:
            if (document.meta.get(META_BUCKET), document.meta.get(META_KEY)) != (source.bucket, source.key):
                raise ValueError(f"document {document.id} does not carry the meta of s3://{source.bucket}/{source.key}")
        rows = _from_haystack_to_pg_documents(documents)
        insert = self._build_insert_statement(DuplicatePolicy.OVERWRITE)
        with self._source_transaction(source) as cursor:
            if rows:
                cursor.executemany(insert, rows)
        return len(rows)

    def delete_source(self, source: SourceRef) -> int:
        """Delete every chunk of ``source.bucket``/``source.key``; returns how many were deleted.

        Raises:
            StoreUnavailableError: The database does not answer (nothing changed).
        """
        with self._source_transaction(source) as cursor:
            return cursor.rowcount

    @contextlib.contextmanager
    def _source_transaction(self, source: SourceRef) -> Iterator[psycopg.Cursor]:
        """A transaction holding ``source``'s advisory lock, after deleting its chunks; yields the cursor.

        The lock serialises writers of the same object (two indexers replacing it at once would
        otherwise each delete the rows they see and both insert: two copies).
        """
        delete = sql.SQL("DELETE FROM {schema}.{table} WHERE meta->>{bucket} = %s AND meta->>{key} = %s").format(
            bucket=sql.Literal(META_BUCKET), key=sql.Literal(META_KEY), **self._names()
        )
        with self._unavailable_on_connection_errors():
            self._ensure_db_setup()
            connection = self._connection
            try:
                with connection.transaction(), connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                        (f"{self.table}:{source.bucket}/{source.key}",),
                    )
                    cursor.execute(delete, (source.bucket, source.key))
                    yield cursor
            except psycopg.Error as exc:
                if _operational_cause(exc) is not None:
                    raise
                raise DocumentStoreError(
                    f"pgvector: s3://{source.bucket}/{source.key} unchanged: {one_line(exc)}"
                ) from exc


def open_pgvector_store(settings: Settings) -> LoadedStore:
    """Connect to the configured database and describe the table (init, ``DOCUMENT_STORE=pgvector``).

    Raises:
        StoreUnavailableError: The database cannot be reached (init stops: the store is essential).
        StoreError: The secret or the table does not fit the settings.
    """
    store = PgvectorStore.from_settings(settings)
    store.open()
    conninfo = store.endpoint
    manifest = {
        "store": "pgvector",
        "embedding_model": EMBEDDING_MODEL,
        "embedding_dim": store.embedding_dimension,
        "table": store.table,
        "search_strategy": settings.pg_search_strategy,
        "language": store.language,
        "count": store.count_documents(),
    }
    logger.info("pgvector store opened", extra={"endpoint": conninfo, **manifest})
    return LoadedStore(store=store, manifest=manifest, source=f"pgvector://{conninfo}/{store.table}")
