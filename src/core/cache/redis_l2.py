"""L2 on Redis/Valkey (ElastiCache Serverless in AWS): one client per container, built at init.

Configured by ``REDIS_URL`` (``redis://`` or ``rediss://`` for TLS) and ``REDIS_CLUSTER`` (ElastiCache
Serverless is always cluster mode). Timeouts are short and retries few, so a slow or dead cache costs
a bounded delay; the circuit breaker in ``core.cache.tiered`` then stops calling it for a while.
AUTH comes from the URL or from ``REDIS_AUTH_SECRET`` (``secretsmanager:<id>`` or ``ssm:<name>``,
read through Powertools Parameters and cached): a plain password, or JSON
``{"username": ..., "password": ...}`` for ElastiCache RBAC users.

Example:
    >>> l2 = RedisL2.from_settings(settings)
    >>> l2.set("k", b"v", 60); l2.get("k")
    b'v'
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import redis
from redis.backoff import ExponentialBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

from core.observability import redaction
from core.settings import Settings

LOCK_PREFIX = "lock:"
# Delete the lock only if it is still ours (it may have expired and been taken by another container).
_UNLOCK = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


def read_auth_secret(reference: str, max_age_s: int = 300) -> tuple[str | None, str]:
    """``(username, password)`` from ``secretsmanager:<id>`` or ``ssm:<name>`` (Powertools Parameters, cached).

    Raises:
        ValueError: The reference names neither store.
    """
    store, _, name = reference.partition(":")
    if store == "secretsmanager":
        from aws_lambda_powertools.utilities.parameters import get_secret  # noqa: PLC0415 - only when configured

        raw = get_secret(name, max_age=max_age_s)
    elif store == "ssm":
        from aws_lambda_powertools.utilities.parameters import get_parameter  # noqa: PLC0415

        raw = get_parameter(name, decrypt=True, max_age=max_age_s)
    else:
        raise ValueError(f"REDIS_AUTH_SECRET must start with secretsmanager: or ssm:, got {store!r}")
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None, text
    if isinstance(data, dict) and "password" in data:
        redaction.register(str(data["password"]))
        return data.get("username"), data["password"]
    redaction.register(text)
    return None, text


class RedisL2:
    """The shared cache tier.

    Args:
        settings: ``REDIS_*`` settings.
        username: AUTH user (overrides the URL's), e.g. from ``REDIS_AUTH_SECRET``.
        password: AUTH password (overrides the URL's).
    """

    def __init__(self, settings: Settings, username: str | None = None, password: str | None = None) -> None:
        self.settings = settings
        self._username = username
        self._password = password
        self.client = self._connect()

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisL2:
        """Build the client, reading AUTH from ``REDIS_AUTH_SECRET`` when set."""
        username = password = None
        if settings.redis_auth_secret:
            username, password = read_auth_secret(settings.redis_auth_secret)
        return cls(settings, username, password)

    def _options(self) -> dict:
        s = self.settings
        options: dict = {
            "socket_connect_timeout": s.redis_connect_timeout_ms / 1000,
            "socket_timeout": s.redis_timeout_ms / 1000,
            "retry": Retry(ExponentialBackoff(cap=0.1, base=0.01), s.redis_retries),
            "health_check_interval": 30,
        }
        if s.redis_tls_ca_file:
            options["ssl_ca_certs"] = str(s.redis_tls_ca_file)
        if self._password is not None:
            options["password"] = self._password
        if self._username is not None:
            options["username"] = self._username
        return options

    def _connect(self) -> redis.Redis | RedisCluster:
        url = str(self.settings.redis_url)
        if self.settings.redis_cluster:
            # The same bounded Retry governs the cluster client's retries (redis-py 6+).
            return RedisCluster.from_url(url, **self._options())
        return redis.Redis.from_url(url, **self._options())

    def reconnect(self) -> None:
        """Drop every connection and build a new client (after a SnapStart restore)."""
        old, self.client = self.client, self._connect()
        with contextlib.suppress(redis.RedisError):
            old.close()

    def close(self) -> None:
        """Close the connections."""
        self.client.close()

    # -- the operations TieredCache uses -------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        """The value of ``key``."""
        return self.client.get(key)

    def set(self, key: str, value: bytes, ttl_s: float) -> None:
        """Store with a TTL (milliseconds precision)."""
        self.client.set(key, value, px=max(1, int(ttl_s * 1000)))

    def lock(self, key: str, token: str, ttl_ms: int) -> bool:
        """Take the compute lock of ``key`` (``SET NX PX``); whether we got it."""
        return bool(self.client.set(LOCK_PREFIX + key, token, nx=True, px=ttl_ms))

    def is_locked(self, key: str) -> bool:
        """Whether some container holds the compute lock of ``key``."""
        return bool(self.client.exists(LOCK_PREFIX + key))

    def unlock(self, key: str, token: str) -> None:
        """Release our lock (only if it is still ours)."""
        self.client.eval(_UNLOCK, 1, LOCK_PREFIX + key, token)

    def ping(self) -> bool:
        """Whether the server answers."""
        return bool(self.client.ping())

    # -- invalidation --------------------------------------------------------------------------------

    def _primaries(self) -> Iterator[redis.Redis]:
        if isinstance(self.client, RedisCluster):
            for node in self.client.get_primaries():
                yield self.client.get_redis_connection(node)
        else:
            yield self.client

    def delete_matching(self, pattern: str, batch: int = 500) -> int:
        """Delete every key matching ``pattern``, with ``SCAN`` on every primary (never ``KEYS``)."""
        deleted = 0
        for node in self._primaries():
            pending: list[bytes] = []
            for key in node.scan_iter(match=pattern, count=batch):
                pending.append(key)
                if len(pending) >= batch:
                    deleted += self._unlink(node, pending)
                    pending = []
            if pending:
                deleted += self._unlink(node, pending)
        return deleted

    @staticmethod
    def _unlink(node: redis.Redis, keys: list[bytes]) -> int:
        # One key per command: keys on one node may still sit in different slots (no CROSSSLOT errors).
        pipe = node.pipeline(transaction=False)
        for key in keys:
            pipe.unlink(key)
        return sum(int(n) for n in pipe.execute())
