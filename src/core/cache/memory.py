"""L1: an in-process LRU cache bounded by entries and bytes, with a TTL per entry.

It lives at module scope of the container (built once at init), so it survives across warm
invocations of one Lambda container; each container has its own.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict


class MemoryCache:
    """Thread-safe LRU of ``bytes`` values.

    Args:
        max_entries: Most entries kept (0 disables the cache).
        max_bytes: Most value bytes kept; a value larger than this is not cached.
        clock: Monotonic clock (tests pass a fake one).
    """

    def __init__(self, max_entries: int, max_bytes: int, clock=time.monotonic) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        """Bytes of values held."""
        return self._bytes

    def get(self, key: str) -> bytes | None:
        """The value, or ``None`` when absent or expired."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            expires, value = entry
            if expires <= self._clock():
                self._drop(key)
                return None
            self._entries.move_to_end(key)
            return value

    def set(self, key: str, value: bytes, ttl_s: float) -> None:
        """Store ``value`` for ``ttl_s`` seconds, evicting the least recently used to stay in bounds."""
        if self.max_entries <= 0 or ttl_s <= 0 or len(value) > self.max_bytes:
            return
        with self._lock:
            if key in self._entries:
                self._drop(key)
            self._entries[key] = (self._clock() + ttl_s, value)
            self._bytes += len(value)
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                self._drop(next(iter(self._entries)))

    def delete_matching(self, predicate) -> int:
        """Drop the entries whose key satisfies ``predicate``; returns how many."""
        with self._lock:
            doomed = [k for k in self._entries if predicate(k)]
            for key in doomed:
                self._drop(key)
            return len(doomed)

    def _drop(self, key: str) -> None:
        _, value = self._entries.pop(key)
        self._bytes -= len(value)
