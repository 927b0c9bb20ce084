"""Pytest fixtures for real Redis servers (loaded with ``-p tests.redis_fixtures`` from pyproject's addopts).

- ``redis_server``: a fresh standalone server for one test: kill it, pause it, restart it freely.
- ``redis_server_session`` + ``redis_url``: one standalone server per session; ``redis_url`` flushes it
  (and restarts it on the same port if a test stopped, killed or paused it) before each test.
- ``tls_redis``: a TLS-only server (session); ``.url`` is ``rediss://``, verify with ``.ca_file``.
- ``redis_cluster``: 3 masters in cluster mode (session); ``redis_cluster_fresh`` is a new one for a
  test that stops or pauses nodes.

Servers are started lazily (only by tests that ask) and are stopped at teardown. They need
``redis-server``/``redis-cli`` on PATH: ``make test`` installs them (scripts/ensure-redis.sh).
"""

from __future__ import annotations

import pytest

from tests.redis_servers import RedisCluster, RedisServer, TlsRedisServer, redis_available


def _require_redis() -> None:
    if not redis_available():
        pytest.fail("redis-server/redis-cli not on PATH: run scripts/ensure-redis.sh (make test does)", pytrace=False)


@pytest.fixture
def redis_server(tmp_path_factory):
    """A fresh standalone server for this test (stopped at teardown)."""
    _require_redis()
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    with server:
        yield server


@pytest.fixture(scope="session")
def redis_server_session(tmp_path_factory):
    """One standalone server for the session; use it through ``redis_url``."""
    _require_redis()
    server = RedisServer(tmp_path_factory.mktemp("redis-session"))
    with server:
        yield server


@pytest.fixture
def redis_url(redis_server_session) -> str:
    """URL of the session server: running (restarted if a test stopped, killed or paused it) and empty."""
    redis_server_session.reset()
    return redis_server_session.url


@pytest.fixture(scope="session")
def tls_redis(tmp_path_factory):
    """A TLS-only server with a self-signed CA made for this session."""
    _require_redis()
    server = TlsRedisServer(tmp_path_factory.mktemp("redis-tls"))
    with server:
        yield server


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory):
    """Three masters in cluster mode for the session (``.startup_nodes``, ``.url``, ``.flushall()``)."""
    _require_redis()
    cluster = RedisCluster(tmp_path_factory.mktemp("redis-cluster"))
    with cluster:
        yield cluster


@pytest.fixture
def redis_cluster_fresh(tmp_path_factory):
    """A new 3-master cluster for a test that stops, kills or pauses nodes (about 2 s to create)."""
    _require_redis()
    cluster = RedisCluster(tmp_path_factory.mktemp("redis-cluster"))
    with cluster:
        yield cluster
