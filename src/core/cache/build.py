"""Build the container's cache from settings (once, at init)."""

from __future__ import annotations

import logging

from core.cache.breaker import CircuitBreaker
from core.cache.memory import MemoryCache
from core.cache.tiered import TieredCache
from core.settings import Settings

logger = logging.getLogger("core.cache")


def build_cache(settings: Settings) -> TieredCache:
    """L1 always (unless sized 0); L2 when ``REDIS_URL`` is set.

    A failure to build the L2 client (e.g. its AUTH secret cannot be read) leaves the service running
    on L1 alone, with the reason in ``/ready``: the cache never stops the service.
    """
    l1 = MemoryCache(settings.cache_l1_max_entries, settings.cache_l1_max_bytes)
    l2 = None
    problem = None
    if settings.redis_url:
        try:
            from core.cache.redis_l2 import RedisL2  # noqa: PLC0415 - redis is imported only when configured

            l2 = RedisL2.from_settings(settings)
        except Exception as exc:  # noqa: BLE001 - the service runs without L2 rather than not at all
            problem = f"L2 not available: {type(exc).__name__}: {exc}"
            logger.warning(problem)
    cache = TieredCache(
        l1,
        l2,
        breaker=CircuitBreaker(settings.cache_breaker_failures, settings.cache_breaker_cooldown_s),
        l1_ttl_s=settings.cache_l1_ttl_s,
        lock_ms=settings.cache_lock_ms,
        lock_wait_ms=settings.cache_lock_wait_ms,
    )
    cache.problem = problem
    return cache
