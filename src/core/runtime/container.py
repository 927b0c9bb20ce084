"""Everything a container builds once at init, in order: settings → telemetry → store → generator → pipelines → cache.

The handler builds one ``Runtime`` at module scope (through ``core.runtime.boot``); tests build their own with
other settings or a prepared store. ``init_timings_ms`` records how long each stage took.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from core.cache.build import build_cache
from core.cache.embeddings import cache_text_embedders
from core.cache.tiered import TieredCache
from core.components.generators import ConfiguredChatGenerator
from core.observability.telemetry import Telemetry, build_telemetry
from core.pipelines.loader import ServedPipeline, load_pipelines
from core.runtime.generators import build_chat_generator
from core.security.access import Security, build_security
from core.settings import Settings
from core.store.base import LoadedStore
from core.store.load import load_store
from core.store.refresh import StoreRefresher, build_refresher, initial_etag


@dataclass
class Runtime:
    """Process-wide objects shared by every warm invocation."""

    settings: Settings
    store: LoadedStore
    chat_generator: Any | None
    pipelines: dict[str, ServedPipeline]
    cache: TieredCache
    telemetry: Telemetry
    init_timings_ms: dict[str, float] = field(default_factory=dict)
    chat_generator_factory: Callable[[Settings], Any | None] = build_chat_generator
    refresher: StoreRefresher | None = None  # the embedded store's: swaps in a newer snapshot (core.store.refresh)
    security: Security = field(default_factory=lambda: Security(None, None))  # tenants, rate limits

    def refresh_store(self) -> None:
        """Swap in a newer snapshot if one is due and exists (one clock read when none is due)."""
        if self.refresher is not None and self.refresher.maybe_refresh():
            self.store = replace(self.store, manifest=self.refresher.manifest)

    @property
    def store_generation(self) -> str:
        """Appended to the result cache key's version: which snapshot answered (``""`` for other stores)."""
        return self.refresher.key_segment if self.refresher is not None else ""

    def reconnect(self) -> None:
        """Re-create network clients (the cache's, the chat generator's, the store's), e.g. after a SnapStart restore.

        A pipeline whose new client cannot warm up becomes unavailable with the reason, as at init.
        The store (pgvector) drops its connection and opens a new one on its next use.
        """
        self.cache.reconnect()
        if self.security.limiter is not None and self.cache.l2 is not None:
            self.security.limiter.client = self.cache.l2.client  # the limiter shares the cache's connection
        reconnect_store = getattr(self.store.store, "reconnect", None)
        if reconnect_store is not None:
            reconnect_store()
        self.chat_generator = self.chat_generator_factory(self.settings)
        for served in self.pipelines.values():
            for _name, instance in served.pipeline.walk():
                if isinstance(instance, ConfiguredChatGenerator):
                    try:
                        instance.replace_backend(self.chat_generator)
                    except Exception as exc:  # noqa: BLE001 - as at init: unavailable, not fatal
                        if not served.by_design:
                            served.unavailable = f"warm-up failed: {type(exc).__name__}: {exc}"


def build_runtime(
    settings: Settings,
    *,
    store: LoadedStore | None = None,
    chat_generator_factory: Callable[[Settings], Any | None] = build_chat_generator,
) -> Runtime:
    """Build the runtime; ``store`` and ``chat_generator_factory`` let tests supply their own.

    Raises:
        core.observability.tracing.TracingError: The tracing backend cannot run here.
        core.store.snapshot.SnapshotError: The store snapshot is missing or invalid.
        core.pipelines.loader.PipelineLoadError: A pipeline file is invalid.
    """
    timings: dict[str, float] = {}
    telemetry = build_telemetry(settings)  # first: Haystack's tracer must be set before pipelines warm up

    def timed(stage: str, build: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        value = build()
        timings[stage] = round((time.perf_counter() - started) * 1000, 1)
        return value

    # The ETag before the load: a snapshot written in between is then seen as newer at the first check.
    etag = initial_etag(settings.store_snapshot_uri) if store is None and _refreshes(settings) else None
    loaded = store or timed("store_ms", lambda: load_store(settings))
    generator = timed("generator_ms", lambda: chat_generator_factory(settings))
    pipelines = timed(
        "pipelines_ms",
        lambda: load_pipelines(settings.pipelines_dir, loaded.store, generator, settings.max_query_chars),
    )
    cache = timed("cache_ms", lambda: build_cache(settings))
    cache_text_embedders(
        {n: p.pipeline for n, p in pipelines.items()}, cache, settings.cache_namespace, settings.cache_ttl_embeddings_s
    )
    # Loading includes each pipeline's warm-up; report the two apart.
    timings["warm_up_ms"] = round(sum(p.warm_up_ms for p in pipelines.values()), 1)
    timings["pipelines_ms"] = round(timings["pipelines_ms"] - timings["warm_up_ms"], 1)
    refresher = build_refresher(settings, loaded, telemetry.metrics, etag)
    security = build_security(settings, cache.l2.client if cache.l2 is not None else None, cache.breaker)
    return Runtime(
        settings, loaded, generator, pipelines, cache, telemetry, timings, chat_generator_factory, refresher, security
    )


def _refreshes(settings: Settings) -> bool:
    return settings.document_store == "memory" and settings.store_refresh_s > 0
