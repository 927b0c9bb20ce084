"""Rate limits per tenant and pipeline: an atomic token bucket in Redis/Valkey, one Lua script per request.

A bucket holds up to ``burst`` tokens and refills at ``rate_per_s``; a request takes ``cost`` tokens
(default 1) or is denied. The refill, the check and the take run in one script, so concurrent requests
from any number of containers never admit more than ``burst + rate_per_s * elapsed``. The script reads
the server's clock (``TIME``), so container clocks do not matter.

Key layout: one hash per bucket, ``<ns>:rl:{<tenant>:<pipeline>}`` (fields ``tokens`` and ``ts``, server
time in µs). Every segment is percent-encoded (``core.cache.keys.segment``: no ``{``, ``}`` or ``:`` left),
so the braces are the key's only hash tag: every key of a bucket lies in one cluster slot (cluster-safe),
and different buckets spread over every shard. The bucket expires (``PEXPIRE``) once it would be full
again plus a second: an absent bucket *is* a full one, so idle buckets cost no memory. The cache's
``SCAN`` patterns (``<ns>:<kind>:<tenant>:<pipeline>:<version>:<digest>``) never match these keys.

Headers (``Decision.headers()``), all delta-seconds, never timestamps (no clock skew), after the IETF
``RateLimit`` header fields draft but with the ``X-RateLimit-*`` names:

- ``X-RateLimit-Limit``: the burst (the most requests that can pass at once).
- ``X-RateLimit-Remaining``: whole tokens left after this request (requests that would pass right now).
- ``X-RateLimit-Reset``: seconds (ceil) until the bucket is full again; one meaning whether the request
  passed or not.
- ``Retry-After`` (denied only): seconds (ceil) until this request would pass.

Redis unavailable (connection refused, timeout, cluster down, breaker open): ``fail_mode="open"`` (the
default) allows the request with ``source="fail_open"`` and no headers (nothing is known);
``fail_mode="closed"`` denies it with ``source="fail_closed"`` and ``Retry-After:
fail_closed_retry_after_s``. Either way ``stats`` counts it and ``on_unavailable(decision)`` is called (a
metric). A failing call costs at most the client's socket timeouts and retries; after ``threshold``
failures the circuit breaker (``core.cache.breaker``) skips Redis for its cool-down, at no cost.

Example:
    >>> import redis
    >>> limiter = RateLimiter(redis.Redis.from_url("redis://127.0.0.1:6379/0"), namespace="hs")
    >>> decision = limiter.check("acme", "search", Limit(rate_per_s=5, burst=10))
    >>> decision.allowed, decision.remaining, decision.headers()
    (True, 9, {'X-RateLimit-Limit': '10', 'X-RateLimit-Remaining': '9', 'X-RateLimit-Reset': '1'})
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import redis
from redis.cluster import RedisCluster

from core.cache.breaker import CircuitBreaker
from core.cache.keys import segment

logger = logging.getLogger(__name__)

Source = Literal["redis", "fail_open", "fail_closed"]
FailMode = Literal["open", "closed"]

KIND = "rl"
EXPIRE_MARGIN_MS = 1000  # an idle bucket outlives its refill by this much (absent == full anyway)

# KEYS[1]: the bucket hash. ARGV: rate (tokens/s), burst, cost, expiry margin (ms).
# Returns {allowed (0|1), tokens left (string: a Lua number returned as-is would be truncated),
#          µs until full, µs until `cost` tokens are there (0 when allowed)}.
SCRIPT = """
if redis.replicate_commands then redis.replicate_commands() end
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000000)
local allowed = 0
local wait_us = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  wait_us = math.ceil((cost - tokens) * 1000000 / rate)
end
local full_us = math.ceil((burst - tokens) * 1000000 / rate)
redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(full_us / 1000) + tonumber(ARGV[4]))
return {allowed, string.format('%.17g', tokens), full_us, wait_us}
"""


@dataclass(frozen=True, slots=True)
class Limit:
    """A token bucket's parameters (from the tenant record: per tenant, overridable per pipeline).

    Args:
        rate_per_s: Tokens added per second (the sustained request rate), > 0.
        burst: Capacity (requests that may pass at once after idling), >= 1.
    """

    rate_per_s: float
    burst: int

    def __post_init__(self) -> None:
        if not (self.rate_per_s > 0 and math.isfinite(self.rate_per_s)):
            raise ValueError(f"rate_per_s must be a positive number, got {self.rate_per_s!r}")
        if isinstance(self.burst, bool) or not isinstance(self.burst, int) or self.burst < 1:
            raise ValueError(f"burst must be an integer >= 1, got {self.burst!r}")


def _ceil_s(seconds: float) -> int:
    # Rounded to the millisecond first, so float noise (1.0000000002) does not add a second.
    return math.ceil(round(seconds, 3))


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer for one request.

    ``limit`` is the burst; ``remaining`` whole tokens left; ``reset_s`` seconds until the bucket is full;
    ``retry_after_s`` seconds until the request would pass (``None`` when allowed). For ``fail_open``,
    ``remaining``/``reset_s`` are placeholders (``limit``, 0) and ``headers()`` is empty; for
    ``fail_closed``, ``remaining`` is 0 and ``reset_s`` equals ``retry_after_s``.
    """

    allowed: bool
    limit: int
    remaining: int
    reset_s: float
    retry_after_s: float | None
    source: Source

    def headers(self) -> dict[str, str]:
        """``X-RateLimit-Limit/Remaining/Reset`` and, when denied, ``Retry-After`` (integer seconds, ceil)."""
        if self.source == "fail_open":
            return {}
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(_ceil_s(self.reset_s)),
        }
        if self.retry_after_s is not None:
            headers["Retry-After"] = str(max(1, _ceil_s(self.retry_after_s)))
        return headers


@dataclass
class RateLimitStats:
    """Counters since init (for metrics and ``/ready``)."""

    allowed: int = 0
    denied: int = 0  # by the bucket (source "redis")
    fail_open: int = 0
    fail_closed: int = 0
    errors: int = 0  # Redis calls that failed
    skipped: int = 0  # Redis calls not made: breaker open
    last_error: str | None = None


def bucket_key(namespace: str, tenant: str, pipeline: str) -> str:
    """The bucket's hash: ``<ns>:rl:{<tenant>:<pipeline>}``, every segment percent-encoded."""
    return f"{segment(namespace)}:{KIND}:{{{segment(tenant)}:{segment(pipeline)}}}"


def bucket_keys(namespace: str, tenant: str, pipeline: str) -> tuple[str, ...]:
    """Every key the script touches for one bucket (its ``KEYS``): all share one hash tag."""
    return (bucket_key(namespace, tenant, pipeline),)


class RateLimiter:
    """Token buckets per (tenant, pipeline) in Redis; thread-safe, one instance per container.

    Args:
        client: A ``redis.Redis`` or ``redis.cluster.RedisCluster`` (e.g. the cache's, built by
            ``core.cache.redis_l2.RedisL2``): its socket timeouts and retries bound each call.
        namespace: Key prefix (the cache namespace).
        fail_mode: ``"open"`` allows, ``"closed"`` denies when Redis cannot answer.
        breaker: Skips Redis after repeated failures (share the cache's to trip both together).
        fail_closed_retry_after_s: ``Retry-After`` of a fail-closed denial.
        on_unavailable: Called with every ``fail_open``/``fail_closed`` decision (e.g. emit a metric);
            must not raise.
    """

    def __init__(
        self,
        client: redis.Redis | RedisCluster,
        *,
        namespace: str = "hs",
        fail_mode: FailMode = "open",
        breaker: CircuitBreaker | None = None,
        fail_closed_retry_after_s: float = 5.0,
        on_unavailable: Callable[[Decision], None] | None = None,
    ) -> None:
        if fail_mode not in ("open", "closed"):
            raise ValueError(f"fail_mode must be 'open' or 'closed', got {fail_mode!r}")
        if not fail_closed_retry_after_s > 0:
            raise ValueError("fail_closed_retry_after_s must be > 0")
        self.client = client
        self.namespace = namespace
        self.fail_mode = fail_mode
        self.breaker = breaker or CircuitBreaker(threshold=3, cooldown_s=30)
        self.fail_closed_retry_after_s = fail_closed_retry_after_s
        self.on_unavailable = on_unavailable
        self.stats = RateLimitStats()
        self._stats_lock = threading.Lock()
        # register_script computes the SHA1 with the client's encoder; the calls are ours (see _run).
        self._script = client.register_script(SCRIPT)

    def check(self, tenant: str, pipeline: str, limit: Limit, cost: int = 1) -> Decision:
        """Take ``cost`` tokens from the (tenant, pipeline) bucket if it has them.

        Raises:
            ValueError: ``cost`` is not an integer in ``1..limit.burst`` (it could never pass).
        """
        if isinstance(cost, bool) or not isinstance(cost, int) or not 1 <= cost <= limit.burst:
            raise ValueError(f"cost must be an integer in 1..{limit.burst}, got {cost!r}")
        if not self.breaker.allow():
            self._count(skipped=1)
            return self._unavailable(limit)
        key = bucket_key(self.namespace, tenant, pipeline)
        try:
            allowed, tokens, full_us, wait_us = self._run(key, limit, cost)
        except Exception as exc:  # noqa: BLE001 - any Redis-side failure takes the configured fail mode
            self.breaker.failure()
            self._count(errors=1, last_error=type(exc).__name__)
            logger.warning(
                "rate limit: Redis call failed (%s: %s); failing %s", type(exc).__name__, exc, self.fail_mode
            )
            return self._unavailable(limit)
        self.breaker.success()
        decision = Decision(
            allowed=bool(allowed),
            limit=limit.burst,
            remaining=math.floor(float(tokens)),
            reset_s=int(full_us) / 1e6,
            retry_after_s=None if allowed else int(wait_us) / 1e6,
            source="redis",
        )
        self._count(allowed=int(decision.allowed), denied=int(not decision.allowed))
        return decision

    def _run(self, key: str, limit: Limit, cost: int) -> list:
        args = (repr(float(limit.rate_per_s)), limit.burst, cost, EXPIRE_MARGIN_MS)
        try:
            return self.client.evalsha(self._script.sha, 1, key, *args)
        except redis.exceptions.NoScriptError:
            # A new or restarted node: EVAL runs it and caches it on the node that owns the key. (The
            # Script object's own fallback, SCRIPT LOAD, goes to every primary in a cluster.)
            return self.client.eval(SCRIPT, 1, key, *args)

    def _unavailable(self, limit: Limit) -> Decision:
        if self.fail_mode == "open":
            decision = Decision(True, limit.burst, limit.burst, 0.0, None, "fail_open")
            self._count(fail_open=1)
        else:
            wait = self.fail_closed_retry_after_s
            decision = Decision(False, limit.burst, 0, wait, wait, "fail_closed")
            self._count(fail_closed=1)
        if self.on_unavailable is not None:
            self.on_unavailable(decision)
        return decision

    def _count(self, last_error: str | None = None, **increments: int) -> None:
        with self._stats_lock:
            for name, n in increments.items():
                setattr(self.stats, name, getattr(self.stats, name) + n)
            if last_error is not None:
                self.stats.last_error = last_error
