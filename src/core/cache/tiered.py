"""The read-through flow: L1 → L2 → compute → write both, with a stampede guard; never raises for L2.

``get_or_compute`` answers with the value and how it was served (``HIT-L1``, ``HIT-L2``, ``MISS``,
``BYPASS``). Any L2 failure is counted, feeds the circuit breaker, and falls through to computing:
the cache can make a request slower by at most its timeouts, never make it fail.

Stampede guard: concurrent misses on one key in a container compute once (a per-key lock; the others
wait and then read L1). Across containers, with ``lock_ms`` > 0, the first miss takes a short Redis
lock (``SET NX PX``); the others poll L2 for up to ``lock_wait_ms`` and then compute themselves.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from core.cache.breaker import CircuitBreaker
from core.cache.memory import MemoryCache
from core.observability.names import BYPASS, HIT_L1, HIT_L2, MISS

__all__ = ["BYPASS", "HIT_L1", "HIT_L2", "MISS", "TieredCache"]

POLL_S = 0.025


@dataclass
class CacheStats:
    """Counters since init (for ``/ready`` and metrics)."""

    hits_l1: int = 0
    hits_l2: int = 0
    misses: int = 0
    bypasses: int = 0
    l2_errors: int = 0
    l2_skipped: int = 0  # L2 calls not made: breaker open, or the configured L2 could not be built
    last_l2_error: str | None = None
    computed: int = 0
    waited_for_lock: int = 0


class TieredCache:
    """L1 (in process) in front of an optional L2 (``core.cache.redis_l2.RedisL2`` or compatible).

    Args:
        l1: The in-process cache.
        l2: The shared cache, or ``None`` (L1 only).
        breaker: Skips L2 after repeated failures.
        l1_ttl_s: Longest an entry stays in L1 (bounds staleness after another container invalidates).
        lock_ms: Cross-container lock TTL; 0 turns the lock off.
        lock_wait_ms: How long a container waits for another's result before computing itself.
    """

    def __init__(
        self,
        l1: MemoryCache,
        l2=None,
        *,
        breaker: CircuitBreaker | None = None,
        l1_ttl_s: float = 60,
        lock_ms: int = 0,
        lock_wait_ms: int = 0,
    ) -> None:
        self.l1 = l1
        self.l2 = l2
        self.breaker = breaker or CircuitBreaker(threshold=3, cooldown_s=30)
        self.l1_ttl_s = l1_ttl_s
        self.lock_ms = lock_ms
        self.lock_wait_ms = lock_wait_ms
        self.stats = CacheStats()
        self.problem: str | None = None  # why L2 is missing although configured (set by build_cache)
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    # -- L2 calls that never raise ---------------------------------------------------------------------

    def _l2(self, operation: Callable[[], object], default: object = None) -> object:
        if self.l2 is None or not self.breaker.allow():
            if self.l2 is not None or self.problem:
                self.stats.l2_skipped += 1
            return default
        try:
            result = operation()
        except Exception as exc:  # noqa: BLE001 - any L2 failure degrades to "no cache", by design
            self.stats.l2_errors += 1
            self.stats.last_l2_error = type(exc).__name__
            self.breaker.failure()
            return default
        self.breaker.success()
        return result

    # -- reads and writes ------------------------------------------------------------------------------

    def get(self, key: str) -> tuple[bytes | None, str | None]:
        """The cached value and where it came from (``HIT-L1``/``HIT-L2``), or ``(None, None)``."""
        value = self.l1.get(key)
        if value is not None:
            return value, HIT_L1
        value = self._l2(lambda: self.l2.get(key))
        if value is not None:
            self.l1.set(key, value, self.l1_ttl_s)
            return value, HIT_L2
        return None, None

    def set(self, key: str, value: bytes, ttl_s: float) -> None:
        """Write both tiers (L1 for at most ``l1_ttl_s``)."""
        self.l1.set(key, value, min(ttl_s, self.l1_ttl_s))
        self._l2(lambda: self.l2.set(key, value, ttl_s))

    def get_or_compute(
        self, key: str, ttl_s: float, compute: Callable[[], bytes], *, bypass: bool = False, store: bool = True
    ) -> tuple[bytes, str]:
        """The cached value, or ``compute()`` stored for ``ttl_s`` seconds; with how it was served.

        ``bypass`` skips the reads (the fresh value is still written unless ``store`` is false).
        Exceptions of ``compute`` propagate and nothing is cached.
        """
        if ttl_s <= 0 or not store:
            value = compute()
            self.stats.computed += 1
            self._count(BYPASS)
            return value, BYPASS
        if not bypass:
            value, source = self.get(key)
            if value is not None:
                self._count(source)
                return value, source
        with self._key_lock(key):
            if not bypass:
                value = self.l1.get(key)  # another thread of this container may have computed it
                if value is not None:
                    self._count(HIT_L1)
                    return value, HIT_L1
            token, held_elsewhere = self._try_lock(key) if not bypass else (None, False)
            if held_elsewhere:
                value = self._wait_for_other_container(key)
                if value is not None:
                    self._count(HIT_L2)
                    return value, HIT_L2
            elif token:
                # The holder before us may have finished between our read and our lock.
                value = self._l2(lambda: self.l2.get(key))
                if value is not None:
                    self._l2(lambda: self.l2.unlock(key, token))
                    self.l1.set(key, value, self.l1_ttl_s)
                    self._count(HIT_L2)
                    return value, HIT_L2
            try:
                value = compute()
                self.stats.computed += 1
                self.set(key, value, ttl_s)
            finally:
                if token:
                    self._l2(lambda: self.l2.unlock(key, token))
        self._count(BYPASS if bypass else MISS)
        return value, BYPASS if bypass else MISS

    def _count(self, source: str) -> None:
        if source == HIT_L1:
            self.stats.hits_l1 += 1
        elif source == HIT_L2:
            self.stats.hits_l2 += 1
        elif source == BYPASS:
            self.stats.bypasses += 1
        else:
            self.stats.misses += 1

    # -- stampede guard ------------------------------------------------------------------------------

    def _key_lock(self, key: str) -> threading.Lock:
        with self._locks_guard:
            lock = self._locks.get(key)
            if lock is None:
                if len(self._locks) > 10_000:  # forget idle locks; a lock in use is still referenced
                    self._locks = {k: v for k, v in self._locks.items() if v.locked()}
                lock = self._locks[key] = threading.Lock()
            return lock

    def _try_lock(self, key: str) -> tuple[str | None, bool]:
        """Take the cross-container compute lock.

        Returns:
            ``(token, False)`` when we hold it, ``(None, True)`` when another container does,
            ``(None, False)`` when the lock is off or L2 cannot be reached.
        """
        if not self.lock_ms or self.l2 is None:
            return None, False
        token = uuid.uuid4().hex
        acquired = self._l2(lambda: self.l2.lock(key, token, self.lock_ms), default=None)
        if acquired is None:
            return None, False
        return (token, False) if acquired else (None, True)

    def _wait_for_other_container(self, key: str) -> bytes | None:
        """Poll L2 for the lock holder's result, for at most ``lock_wait_ms``; ``None`` if it does not come."""
        self.stats.waited_for_lock += 1
        deadline = time.monotonic() + self.lock_wait_ms / 1000
        while time.monotonic() < deadline:
            time.sleep(POLL_S)
            value = self._l2(lambda: self.l2.get(key))
            if value is not None:
                self.l1.set(key, value, self.l1_ttl_s)
                return value
            if not self._l2(lambda: self.l2.is_locked(key), default=False):
                return self._l2(lambda: self.l2.get(key))  # released: the result is there, or it failed
        return None

    # -- state -----------------------------------------------------------------------------------------

    def state(self) -> dict:
        """What ``/ready`` shows: L2 state (``disabled``/``ok``/``degraded``/``breaker_open``) and counters."""
        if self.l2 is None:
            l2_state = "unavailable" if self.problem else "disabled"
        elif self.breaker.state != "closed":
            l2_state = "breaker_open"
        else:
            l2_state = "degraded" if self.breaker.failures else "ok"
        return {
            "l2": l2_state,
            "l1_entries": len(self.l1),
            "l1_bytes": self.l1.size_bytes,
            "hits_l1": self.stats.hits_l1,
            "hits_l2": self.stats.hits_l2,
            "misses": self.stats.misses,
            "l2_errors": self.stats.l2_errors,
            "l2_skipped": self.stats.l2_skipped,
        }

    def ping(self) -> bool | None:
        """Ping L2 through the breaker: ``True``/``False``, or ``None`` when there is no L2 or it is skipped."""
        if self.l2 is None or self.breaker.state == "open":
            return None
        return bool(self._l2(self.l2.ping, default=False))

    def reconnect(self) -> None:
        """Re-create L2's connections (after a SnapStart restore)."""
        if self.l2 is not None:
            self.l2.reconnect()
