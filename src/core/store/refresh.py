"""Query side of a changing snapshot: notice a newer one and swap it in without failing a request.

Indexers rewrite the snapshot (``core.ingestion.embedded_target``); a query container loaded it at init.
At the start of each request that reads the store (``core.api.query.run_cached``), ``maybe_refresh`` costs
one clock read; at most every ``STORE_REFRESH_S`` seconds it compares the snapshot's ETag (S3
``HeadObject``, or a local file's inode/mtime/size) with the one it serves. When it changed, that
request downloads the snapshot, verifies every member's SHA-256, decodes it and swaps the new index into
the running ``EmbeddedDocumentStore`` (``replace_index``): pipelines keep their store object, a query
already running finishes on the index it started with, the next one sees the new index. The check runs
on the request path on purpose: Lambda freezes a container between invocations, so a background thread
would be frozen mid-download; a warm container pays the load once per new snapshot.

A snapshot that cannot be read keeps the old one serving (logged, ``SnapshotRefreshFailures``) and is
tried again at the next check; one that fails its checksums or was embedded with another model than
the one served is remembered by its ETag and not downloaded again until it changes.

Cache: the result cache key's version segment is the pipeline's YAML hash plus the store
*generation* (the first 12 hex digits of the SHA-256 of the snapshot's manifest, which holds the SHA-256
of every member): after a swap no entry computed on the old snapshot answers, in L1 or L2, and
containers that load the same snapshot share entries. Old entries are never read again and age out
(L1: ``CACHE_L1_TTL_S``; L2: ``CACHE_TTL_RESULTS_S``).

Example:
    >>> refresher = StoreRefresher("s3://idx/store.snapshot", store, manifest, interval_s=60, etag='"9b2c…"')
    >>> refresher.maybe_refresh()   # False until 60 s passed and the ETag changed
    False
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from core.observability import names
from core.observability.metrics import ServiceMetrics
from core.settings import Settings
from core.store.base import LoadedStore
from core.store.embedded import EmbeddedDocumentStore
from core.store.snapshot import SnapshotError, decode_snapshot, read_bytes_tagged, snapshot_etag, verify_snapshot

logger = logging.getLogger("core.store.refresh")

REFRESHED, FAILED = "refreshed", "failed"


def snapshot_generation(manifest: dict[str, Any] | None) -> str:
    """A short id of a snapshot's content (``""`` when there is no manifest, e.g. another store)."""
    if not manifest:
        return ""
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:12]


class StoreRefresher:
    """Keeps a running embedded store on the newest snapshot (see the module docstring).

    Args:
        uri: The snapshot (``STORE_SNAPSHOT_URI``).
        store: The store the pipelines hold.
        manifest: The manifest of the snapshot it serves.
        interval_s: ``STORE_REFRESH_S``; 0 never checks.
        etag: The ETag of the snapshot it serves, taken before it was loaded (``None``: unknown; the
            first check then loads it and finds the same generation).
        clock: Seconds (wall clock: a SnapStart restore or a thaw jumps it forward, which makes a check due).
        on_event: Called with ``"refreshed"`` or ``"failed"`` (metrics).
        s3: A boto3 S3 client (default: a new one, for ``s3://``).
    """

    def __init__(
        self,
        uri: str,
        store: EmbeddedDocumentStore,
        manifest: dict[str, Any],
        *,
        interval_s: float,
        etag: str | None,
        clock: Callable[[], float] = time.time,
        on_event: Callable[[str], None] | None = None,
        s3: Any = None,
    ) -> None:
        self.uri = uri
        self.store = store
        self.manifest = manifest
        self.generation = snapshot_generation(manifest)
        self.interval_s = interval_s
        self.etag = etag
        self.clock = clock
        self.on_event = on_event
        self.s3 = s3
        self.refreshes = 0
        self.failures = 0
        self._last_check = clock()
        self._busy = threading.Lock()

    @property
    def key_segment(self) -> str:
        """What the result cache key's version gets appended: ``.<generation>`` (or nothing)."""
        return f".{self.generation}" if self.generation else ""

    def maybe_refresh(self) -> bool:
        """Check for a newer snapshot if one is due, and swap it in; ``True`` when it swapped."""
        if self.interval_s <= 0:
            return False
        now = self.clock()
        if self._last_check <= now < self._last_check + self.interval_s:
            return False
        if not self._busy.acquire(blocking=False):
            return False  # another thread is checking: this request serves what is loaded
        try:
            self._last_check = now
            return self._check()
        finally:
            self._busy.release()

    def _check(self) -> bool:
        try:
            etag = snapshot_etag(self.uri, self.s3)
            if etag is None:
                logger.warning("snapshot %s is gone; serving the loaded one", self.uri)
                return False
            if etag == self.etag:
                return False
            data, etag = read_bytes_tagged(self.uri, self.s3)
        except SnapshotError as exc:
            return self._failed(f"cannot read the snapshot: {exc}")
        if data is None:
            return False
        started = time.perf_counter()
        try:
            manifest = verify_snapshot(data)
            if snapshot_generation(manifest) == self.generation:
                self.etag = etag  # rewritten with the same content (e.g. a restore of this one)
                return False
            self._check_compatible(manifest)
            snapshot = decode_snapshot(data)
        except SnapshotError as exc:
            self.etag = etag  # this object is bad: not again until it changes
            return self._failed(f"the new snapshot is unusable: {exc}")
        self.store.replace_index(snapshot.store.index)
        previous = self.generation
        self.manifest, self.generation, self.etag = manifest, snapshot_generation(manifest), etag
        self.refreshes += 1
        logger.info(
            "snapshot refreshed",
            extra={
                "snapshot": self.uri,
                "documents": manifest.get("count"),
                "generation": self.generation,
                "previous_generation": previous,
                "bytes": len(data),
                "load_ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )
        self._emit(REFRESHED)
        return True

    def _check_compatible(self, manifest: dict[str, Any]) -> None:
        """The served pipelines embed queries with the model of the loaded snapshot: the new one must match."""
        index = self.store.index
        if not index.ids or not manifest.get("count"):
            return
        served = (index.embedding_model, int(index.embeddings.shape[1]))
        offered = (manifest.get("embedding_model"), manifest.get("embedding_dim"))
        if offered != served:
            raise SnapshotError(f"it is embedded with {offered[0]} (dim {offered[1]}); this container serves {served}")

    def _failed(self, reason: str) -> bool:
        self.failures += 1
        logger.warning("snapshot refresh failed; serving the loaded one: %s", reason, extra={"snapshot": self.uri})
        self._emit(FAILED)
        return False

    def _emit(self, event: str) -> None:
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:  # a metric must not fail the request
                logger.exception("refresh metric failed")


def emf_emitter(metrics: ServiceMetrics) -> Callable[[str], None]:
    """``on_event`` writing one EMF document per refresh or failure, dimensions (service, version)."""

    def emit(event: str) -> None:
        if not metrics.enabled:
            return
        document = EphemeralMetrics(namespace=metrics.namespace, service=metrics.service)
        document.add_dimension(names.DIM_VERSION, metrics.version)
        name = names.SNAPSHOT_REFRESHES if event == REFRESHED else names.SNAPSHOT_REFRESH_FAILURES
        document.add_metric(name=name, unit=MetricUnit.Count, value=1)
        print(json.dumps(document.serialize_metric_set(), separators=(",", ":")))
        document.clear_metrics()

    return emit


def build_refresher(
    settings: Settings, loaded: LoadedStore, metrics: ServiceMetrics, etag: str | None
) -> StoreRefresher | None:
    """The refresher of an embedded store (``None`` for other stores, which need none).

    ``etag`` is the snapshot's, taken before it was loaded; ``None`` with refresh on takes it now.
    """
    if not isinstance(loaded.store, EmbeddedDocumentStore):
        return None
    if etag is None and settings.store_refresh_s > 0:
        etag = initial_etag(loaded.source)
    return StoreRefresher(
        loaded.source,
        loaded.store,
        loaded.manifest,
        interval_s=settings.store_refresh_s,
        etag=etag,
        on_event=emf_emitter(metrics),
    )


def initial_etag(uri: str) -> str | None:
    """The snapshot's ETag now, ``None`` when it cannot be checked (the first refresh check then loads it)."""
    try:
        return snapshot_etag(uri)
    except SnapshotError as exc:
        logger.warning("cannot check the snapshot's ETag at init: %s", exc)
        return None
