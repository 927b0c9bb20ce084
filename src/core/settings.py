"""Every setting of the service: one model, environment variables only.

An explicit argument beats the environment, which beats the default (``Settings(generator="none")``
in tests). Field names are the environment variable names, lower-cased. The README's settings table
lists the same fields; ``tests/unit/test_settings.py`` checks that it does.

Example:
    >>> import os
    >>> os.environ["GENERATOR"] = "none"
    >>> load_settings().generator
    'none'
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AnyHttpUrl, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core.aws import is_s3_uri, on_lambda, split_s3

CODE_ROOT = Path(__file__).resolve().parent.parent
"""``src/`` in a checkout, ``/var/task`` in Lambda."""


def bundled_path(name: str) -> Path:
    """A file or folder shipped with the code.

    In the Lambda artifact it sits beside ``core/``; in a checkout, at the repository root.
    """
    beside = CODE_ROOT / name
    return beside if beside.exists() else CODE_ROOT.parent / name


class SettingsError(ValueError):
    """Invalid or missing settings; the message is one line naming the variables."""


class Settings(BaseSettings):
    """Service settings, read from the environment."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    pipelines_dir: Path = Field(
        default_factory=lambda: bundled_path("pipelines"),
        description="Folder of Haystack YAML pipelines to serve.",
    )
    document_store: Literal["memory", "pgvector"] = Field(
        default="memory",
        description="Document store backend. `memory`: the embedded store loaded from a snapshot; "
        "`pgvector`: PostgreSQL with pgvector (Aurora), `PG_*` settings.",
    )
    store_snapshot_uri: str = Field(
        default_factory=lambda: str(bundled_path("data") / "stdlib.snapshot"),
        description="Snapshot the embedded store loads at init: a local path or `s3://bucket/key`.",
    )
    # -- DOCUMENT_STORE=pgvector (core.store.pgvector) ------------------------------------------------
    pg_conn_str: SecretStr | None = Field(
        default=None,
        description="libpq connection string (`postgresql://user:pass@host:5432/db` or `host=... dbname=...`); "
        "with PG_CONN_SECRET it may leave out the credentials.",
    )
    pg_conn_secret: str | None = Field(
        default=None,
        pattern=r"^(secretsmanager|ssm):.+$",
        description="`secretsmanager:<id>` or `ssm:<name>` holding RDS-style JSON `{username, password[, host, "
        "port, dbname]}`; it fills in what PG_CONN_STR leaves out.",
    )
    pg_schema: str = Field(
        default="public", pattern=r"^[a-z_][a-z0-9_]{0,62}$", description="Schema of the documents table."
    )
    pg_table: str = Field(
        default="haystack_documents", pattern=r"^[a-z_][a-z0-9_]{0,47}$", description="Documents table."
    )
    pg_language: str = Field(
        default="english",
        pattern=r"^[a-z_]{1,63}$",
        description="Text search configuration of keyword retrieval (`SELECT cfgname FROM pg_ts_config`).",
    )
    pg_embedding_dim: int = Field(
        default=256, ge=1, le=16_000, description="Dimension of the `embedding` column (the embedder's)."
    )
    pg_search_strategy: Literal["hnsw", "exact"] = Field(
        default="hnsw", description="Dense search: `hnsw` (approximate, indexed) or `exact` (scans every row)."
    )
    pg_hnsw_ef_search: int = Field(
        default=200, ge=1, le=1000, description="HNSW candidate list size per query (recall vs latency)."
    )
    pg_connect_timeout_s: int = Field(default=5, ge=1, le=60, description="Connect timeout, s.")
    pg_statement_timeout_ms: int = Field(
        default=10_000, ge=100, le=900_000, description="Longest one SQL statement may run, ms."
    )
    generator: Literal["bedrock", "openai", "none"] = Field(
        default="none",
        description="Chat generator for the `rag` pipeline. `none`: `rag` is listed but unavailable.",
    )
    bedrock_model_id: str = Field(
        default="amazon.nova-micro-v1:0",
        min_length=1,
        description="Bedrock model or inference profile id (GENERATOR=bedrock).",
    )
    openai_base_url: AnyHttpUrl | None = Field(
        default=None,
        description="Base URL of an OpenAI-compatible server, e.g. `http://127.0.0.1:11434/v1` (GENERATOR=openai).",
    )
    openai_model: str | None = Field(default=None, description="Model name on that server (GENERATOR=openai).")
    openai_api_key: SecretStr | None = Field(
        default=None, description="API key for that server; local servers usually need none."
    )
    generator_timeout_s: float = Field(
        default=20.0, gt=0, le=900, description="Timeout of one generator call, seconds."
    )
    max_query_chars: int = Field(
        default=5000, ge=1, le=100_000, description="Longest query text accepted, in characters."
    )
    default_top_k: int = Field(
        default=5, ge=1, le=50, description="Documents returned when a request names no `top_k`."
    )
    readiness_timeout_s: float = Field(
        default=2.0, gt=0, le=10, description="Timeout of each dependency check in `GET /ready`, seconds."
    )
    redis_url: str | None = Field(
        default=None,
        description="L2 cache: `redis://host:port` or `rediss://` (TLS). Unset: no L2, only the in-process L1.",
    )
    redis_cluster: bool = Field(
        default=False, description="Use the cluster client (ElastiCache Serverless is always cluster mode)."
    )
    redis_auth_secret: str | None = Field(
        default=None,
        pattern=r"^(secretsmanager|ssm):.+$",
        description="Where the AUTH password (or JSON `{username, password}`) is: `secretsmanager:<id>`, `ssm:<name>`.",
    )
    redis_tls_ca_file: Path | None = Field(
        default=None, description="CA bundle for `rediss://` when not a public CA (ElastiCache needs none)."
    )
    redis_connect_timeout_ms: int = Field(default=250, ge=1, le=10_000, description="Redis connect timeout, ms.")
    redis_timeout_ms: int = Field(default=150, ge=1, le=10_000, description="Redis read/write timeout, ms.")
    redis_retries: int = Field(default=1, ge=0, le=5, description="Retries of a failed Redis command (with backoff).")
    cache_namespace: str = Field(
        default="hs", pattern=r"^[A-Za-z0-9_.-]{1,32}$", description="First segment of every cache key."
    )
    cache_ttl_results_s: int = Field(
        default=3600, ge=0, description="TTL of cached pipeline results, s (0: no caching)."
    )
    cache_ttl_embeddings_s: int = Field(
        default=86400, ge=0, description="TTL of cached query embeddings of remote text embedders, s (0: off)."
    )
    cache_l1_max_entries: int = Field(default=1024, ge=0, description="L1 (in-process) entries; 0 turns L1 off.")
    cache_l1_max_bytes: int = Field(default=64 * 1024 * 1024, ge=0, description="L1 size bound, bytes.")
    cache_l1_ttl_s: int = Field(
        default=60, ge=1, description="Longest an entry stays in L1: bounds staleness after an invalidation."
    )
    cache_breaker_failures: int = Field(default=3, ge=1, description="Consecutive L2 failures that open the breaker.")
    cache_breaker_cooldown_s: float = Field(
        default=30, gt=0, description="Seconds L2 is skipped once the breaker opens, before a probe."
    )
    cache_lock_ms: int = Field(
        default=0, ge=0, le=60_000, description="Cross-container stampede lock TTL, ms (`SET NX PX`); 0: off."
    )
    cache_lock_wait_ms: int = Field(
        default=2000, ge=0, le=60_000, description="How long a miss waits for another container's result, ms."
    )
    api_base_path: str = Field(
        default="/",
        pattern=r"^/[A-Za-z0-9._~/-]*$",
        description="Path prefix API Gateway adds before the app's routes (e.g. a custom domain's base path).",
    )
    tenant_registry: str | None = Field(
        default=None,
        pattern=r"^(ssm|secretsmanager):.+$",
        description="Tenant records: `ssm:<prefix>` (one JSON parameter per identity under `<prefix>/<kind>/<id>`) "
        "or `secretsmanager:<id>` (one JSON map). Unset: a single tenant, `default` (local runs).",
    )
    tenant_cache_ttl_s: int = Field(default=300, ge=0, le=86_400, description="How long a tenant record is cached, s.")
    tenant_negative_ttl_s: int = Field(
        default=30, ge=0, le=3_600, description="How long an unknown identity is remembered (no lookup meanwhile), s."
    )
    rate_limit_fail_mode: Literal["open", "closed"] = Field(
        default="open",
        description="When Redis cannot be asked: `open` lets requests through (counted in `RateLimitFailOpen`), "
        "`closed` answers 429.",
    )
    max_body_bytes: int = Field(
        default=64 * 1024, ge=1024, le=6 * 1024 * 1024, description="Largest request body accepted (413 above), bytes."
    )
    max_filter_depth: int = Field(default=5, ge=1, le=10, description="Deepest nesting of a request's filters.")
    cors_allow_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Origins allowed by CORS, comma-separated (empty: no CORS headers). `*` is refused on Lambda.",
    )
    trusted_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Host headers accepted (400 otherwise), comma-separated; empty: any (local runs; the template "
        "sets the API's own host). `*` is refused on Lambda.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Log level of the service's loggers."
    )
    powertools_service_name: str = Field(
        default="haystack-serverless",
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="`service` key of every log line and `service` dimension of every metric.",
    )
    powertools_metrics_namespace: str = Field(
        default="HaystackServerless",
        pattern=r"^[A-Za-z0-9_./#:-]{1,255}$",
        description="CloudWatch namespace of the EMF metrics (the template's alarms read the same one).",
    )
    powertools_logger_sample_rate: float = Field(
        default=0.0, ge=0, le=1, description="Fraction of requests logged at DEBUG whatever `LOG_LEVEL` says."
    )
    powertools_dev: bool = Field(
        default=False, description="Indented, readable JSON logs and EMF lines (`make run` turns it on)."
    )
    powertools_metrics_disabled: bool = Field(
        default=False,
        description="No EMF metrics at all. Powertools also mutes them when `POWERTOOLS_DEV` is on and this is unset.",
    )
    log_query_text: bool = Field(
        default=False,
        description="Log query text in clear (debugging). Off: logs carry only its SHA-256 prefix and length.",
    )
    tracing_backend: Literal["off", "xray", "otel"] = Field(
        default="off",
        description="Traces of requests, pipelines and components: `xray` (Powertools Tracer, X-Ray SDK), "
        "`otel` (the OpenTelemetry provider the ADOT layer configures), `off` (nothing imported).",
    )
    haystack_content_tracing_enabled: bool = Field(
        default=False, description="Put pipeline and component inputs/outputs (user content) into traces."
    )
    # -- ingestion (the indexer function) and the query side's view of a changing snapshot ---------------
    store_refresh_s: float = Field(
        default=60,
        ge=0,
        le=86_400,
        description="How often, at most, a query function checks the snapshot for a newer one, s (0: never).",
    )
    indexing_pipeline: Path = Field(
        default_factory=lambda: bundled_path("pipelines") / "indexing" / "indexing.yml",
        description="Haystack YAML of the indexer: convert, clean, split, embed (not served as an API route).",
    )
    ingest_key_prefix: str = Field(
        default="",
        pattern=r"^([^/]+/)*$",
        description="Key prefix before the tenant segment (e.g. `tenants/`): `<prefix><tenant>/...`.",
    )
    ingest_max_object_bytes: int = Field(
        default=50 * 1024 * 1024, ge=1, description="Largest object the indexer downloads; larger ones fail."
    )
    idempotency_table: str | None = Field(
        default=None,
        min_length=3,
        description="DynamoDB table of the indexer's idempotency records. Unset: none (re-deliveries redo "
        "the work; replace semantics keep them harmless).",
    )
    idempotency_ttl_s: int = Field(
        default=86_400, ge=60, description="How long a processed object version is remembered, s."
    )
    snapshot_commit_retries: int = Field(
        default=5, ge=0, le=20, description="Re-reads after a conflicting snapshot write before a batch fails."
    )

    @property
    def metrics_enabled(self) -> bool:
        """Whether EMF metrics are written: Powertools' rule (dev mode mutes them unless the switch is set)."""
        explicit = "powertools_metrics_disabled" in self.model_fields_set
        return not self.powertools_metrics_disabled and (explicit or not self.powertools_dev)

    @field_validator("cors_allow_origins", "trusted_hosts", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @model_validator(mode="after")
    def _no_wildcards_on_lambda(self) -> Settings:
        if on_lambda():
            for name in ("cors_allow_origins", "trusted_hosts"):
                if "*" in getattr(self, name):
                    raise ValueError(f"{name.upper()}: '*' is refused on Lambda; list the origins or hosts")
        return self

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("store_snapshot_uri")
    @classmethod
    def _snapshot_uri(cls, value: str) -> str:
        if "://" in value and not is_s3_uri(value):
            raise ValueError("expected a local path or s3://bucket/key")
        if is_s3_uri(value):
            bucket, key = split_s3(value)
            if not bucket or not key:
                raise ValueError("expected s3://bucket/key")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://")):
            raise ValueError("expected redis://host:port or rediss://host:port")
        return value

    @field_validator("pg_conn_str")
    @classmethod
    def _pg_conn_str(cls, value: SecretStr | None) -> SecretStr | None:
        text = value.get_secret_value() if value is not None else ""
        if value is not None and not (text.startswith(("postgresql://", "postgres://")) or "=" in text):
            raise ValueError("expected postgresql://user:password@host:port/dbname or key=value pairs")
        return value

    @model_validator(mode="after")
    def _pgvector_complete(self) -> Settings:
        if self.document_store == "pgvector" and not (self.pg_conn_str or self.pg_conn_secret):
            raise ValueError(
                "DOCUMENT_STORE=pgvector needs PG_CONN_STR or PG_CONN_SECRET "
                "('memory', the embedded store, needs neither)"
            )
        return self

    @model_validator(mode="after")
    def _generator_complete(self) -> Settings:
        if self.generator == "openai":
            missing = [name for name in ("openai_base_url", "openai_model") if not getattr(self, name)]
            if missing:
                names = " and ".join(n.upper() for n in missing)
                raise ValueError(f"GENERATOR=openai needs {names}")
        return self


def _secret_fields() -> set[str]:
    return {name for name, field in Settings.model_fields.items() if "SecretStr" in str(field.annotation)}


def _describe(error: dict) -> str:
    location = ".".join(str(part) for part in error.get("loc", ())).upper()
    message = error["msg"].removeprefix("Value error, ")
    if location:
        # Never echo a secret's value (a connection string carries its password).
        shown = None if location.lower() in _secret_fields() else error.get("input")
        got = "" if isinstance(shown, dict) or shown is None else f" (got {str(shown)[:60]!r})"
        return f"{location}: {message}{got}"
    return message


def load_settings(**overrides: object) -> Settings:
    """Read the settings from the environment (``overrides`` win).

    Raises:
        SettingsError: One line naming each invalid variable and what it expects.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        details = "; ".join(_describe(e) for e in exc.errors())
        raise SettingsError(f"invalid settings: {details}") from None
