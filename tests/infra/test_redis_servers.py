"""The real-Redis test servers (tests/redis_servers.py, tests/redis_fixtures.py) work with redis-py.

Standalone, restart on the same port, SIGKILL and CLIENT PAUSE seen from a client with short
timeouts, TLS with the fixture's CA, a 3-master cluster, AUTH, and no process left behind.
"""

import os
import socket
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode
from redis.cluster import RedisCluster as ClusterClient
from redis.retry import Retry

from tests.redis_servers import RedisCluster, RedisServer, RedisServerError

pytestmark = pytest.mark.slow  # starts servers

TIMEOUT = 0.2  # client socket timeouts in the fault tests (s)
BOUND = 1.0  # a failure must be seen within this (s)


def fast_client(url: str, **kwargs) -> redis.Redis:
    """A client that fails after one attempt, within its 0.2 s timeouts."""
    return redis.Redis.from_url(
        url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT, retry=Retry(NoBackoff(), 0), **kwargs
    )


def pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# --- standalone -------------------------------------------------------------------------------------


def test_standalone_set_get(redis_url):
    assert redis_url.startswith("redis://127.0.0.1:") and redis_url.endswith("/0")
    client = redis.Redis.from_url(redis_url)
    assert client.set("greeting", "hello")
    assert client.get("greeting") == b"hello"
    client.close()


def test_redis_url_starts_empty(redis_url, redis_server_session):
    # Whatever an earlier test wrote is gone, and the fixture's server has no persistence configured.
    client = redis.Redis.from_url(redis_url)
    assert client.dbsize() == 0
    assert client.config_get("save") == {"save": ""}
    assert client.config_get("appendonly") == {"appendonly": "no"}
    assert client.config_get("bind") == {"bind": "127.0.0.1"}
    client.close()


def test_restart_on_the_same_port(redis_server):
    port = redis_server.port
    client = fast_client(redis_server.url)
    client.set("k", "v")

    redis_server.stop()
    assert not redis_server.alive
    with pytest.raises(redis.exceptions.ConnectionError):
        client.get("k")

    redis_server.start()
    assert redis_server.port == port
    assert client.ping()  # the same client reconnects
    assert client.get("k") is None  # nothing persisted
    client.close()


def test_kill_fails_fast_then_restart(redis_server):
    client = fast_client(redis_server.url)
    client.set("k", "v")
    pid = redis_server.proc.pid

    redis_server.kill()
    assert not pid_exists(pid)
    for _ in range(2):  # the reset pooled connection, then a refused new one
        started = time.perf_counter()
        with pytest.raises(redis.exceptions.ConnectionError):
            client.get("k")
        assert time.perf_counter() - started < BOUND

    redis_server.start()
    assert client.get("k") is None
    client.close()


def test_pause_times_out_then_recovers(redis_server):
    client = fast_client(redis_server.url)
    client.set("k", "v")  # connected before the pause

    paused_at = time.perf_counter()
    redis_server.pause(1000)
    started = time.perf_counter()
    with pytest.raises(redis.exceptions.TimeoutError):
        client.get("k")
    elapsed = time.perf_counter() - started
    assert TIMEOUT * 0.9 <= elapsed < BOUND

    time.sleep(max(0.0, paused_at + 1.1 - time.perf_counter()))
    assert client.get("k") == b"v"
    client.close()


def test_reset_recovers_a_paused_or_killed_server(redis_server):
    port = redis_server.port
    client = fast_client(redis_server.url)
    client.set("k", "v")
    redis_server.pause(30_000)  # not even CLIENT UNPAUSE gets through: reset() restarts it

    started = time.perf_counter()
    redis_server.reset()
    assert time.perf_counter() - started < 2 * BOUND
    assert redis_server.port == port
    assert client.dbsize() == 0

    redis_server.kill()
    redis_server.reset()
    assert client.ping()
    client.close()


def test_auth_required(tmp_path):
    with RedisServer(tmp_path, password="s3cret") as server:
        assert server.url == f"redis://127.0.0.1:{server.port}/0"  # the password is not in the URL
        anonymous = fast_client(server.url)
        with pytest.raises(redis.exceptions.AuthenticationError):
            anonymous.set("k", "v")
        with pytest.raises(redis.exceptions.AuthenticationError):
            fast_client(server.url, password="wrong").ping()

        authed = fast_client(server.url, password="s3cret")
        assert authed.set("k", "v")
        assert authed.get("k") == b"v"
        server.flushall()  # the control connection authenticates too
        assert authed.dbsize() == 0
        for client in (anonymous, authed):
            client.close()


# --- TLS --------------------------------------------------------------------------------------------


def test_tls_set_get_with_the_fixture_ca(tls_redis):
    assert tls_redis.url == f"rediss://127.0.0.1:{tls_redis.port}/0"
    client = redis.Redis.from_url(tls_redis.url, ssl_ca_certs=str(tls_redis.ca_file))
    assert client.set("tls-key", "secret")
    assert client.get("tls-key") == b"secret"
    client.close()

    # The certificate names localhost too.
    by_name = redis.Redis.from_url(f"rediss://localhost:{tls_redis.port}/0", ssl_ca_certs=str(tls_redis.ca_file))
    assert by_name.get("tls-key") == b"secret"
    by_name.close()


def test_tls_port_refuses_plain_connections(tls_redis):
    plain = fast_client(f"redis://127.0.0.1:{tls_redis.port}/0")
    started = time.perf_counter()
    with pytest.raises(redis.exceptions.ConnectionError):
        plain.ping()
    assert time.perf_counter() - started < BOUND


def test_tls_certificate_is_verified(tls_redis):
    # A client without the fixture's CA (the system trust store only) rejects the server.
    untrusting = fast_client(tls_redis.url)
    with pytest.raises(redis.exceptions.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        untrusting.ping()


def test_tls_server_has_no_plain_port(tls_redis):
    client = redis.Redis.from_url(tls_redis.url, ssl_ca_certs=str(tls_redis.ca_file))
    assert client.config_get("port") == {"port": "0"}
    assert client.config_get("tls-auth-clients") == {"tls-auth-clients": "no"}
    client.close()


# --- cluster ----------------------------------------------------------------------------------------


def cluster_client(cluster, **kwargs) -> ClusterClient:
    return ClusterClient(startup_nodes=[ClusterNode(host, port) for host, port in cluster.startup_nodes], **kwargs)


def test_cluster_spreads_keys_over_three_masters(redis_cluster):
    redis_cluster.flushall()
    assert len(redis_cluster.startup_nodes) == 3
    assert redis_cluster.url == f"redis://127.0.0.1:{redis_cluster.startup_nodes[0][1]}"
    client = cluster_client(redis_cluster)
    for i in range(100):
        client.set(f"key:{i}", i)

    sizes = redis_cluster.dbsizes()
    assert sum(sizes) == 100
    assert all(size > 0 for size in sizes), sizes
    assert [client.get(f"key:{i}") for i in range(100)] == [str(i).encode() for i in range(100)]
    assert len(client.get_primaries()) == 3
    assert client.get_replicas() == []
    client.close()


def test_cluster_from_url(redis_cluster):
    client = ClusterClient.from_url(redis_cluster.url)
    client.set("{tag}a", 1)
    client.set("{tag}b", 2)
    assert client.mget("{tag}a", "{tag}b") == [b"1", b"2"]  # one slot: a multi-key command works
    client.close()


def test_cluster_node_and_whole_cluster_restart(redis_cluster_fresh):
    cluster = redis_cluster_fresh
    node = cluster.nodes[1]
    port = node.port
    node.kill()
    node.start()
    assert node.port == port
    cluster.wait_ok()  # it kept its nodes-PORT.conf: same ID, same slots

    client = cluster_client(cluster)
    for i in range(60):
        client.set(f"key:{i}", i)
    assert all(size > 0 for size in cluster.dbsizes())
    client.close()

    ports = cluster.startup_nodes
    cluster.stop()
    assert not any(n.alive for n in cluster.nodes)
    cluster.start()  # the same cluster again, not re-created
    assert cluster.startup_nodes == ports
    assert cluster.dbsizes() == [0, 0, 0]
    client = cluster_client(cluster)
    client.set("back", 1)
    assert client.get("back") == b"1"
    client.close()


def test_cluster_with_a_taken_port_gets_new_ports(tmp_path):
    cluster = RedisCluster(tmp_path)
    taken = cluster.nodes[1].port
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        with cluster:
            assert taken not in [port for _, port in cluster.startup_nodes]
            assert len(cluster.dbsizes()) == 3
    assert not any(n.alive for n in cluster.nodes)


# --- the managers themselves -------------------------------------------------------------------------


def test_no_process_left_after_close(tmp_path):
    with RedisServer(tmp_path / "a") as server:
        pid = server.proc.pid
        assert pid_exists(pid)
    assert not pid_exists(pid)
    assert not server.alive


def test_a_taken_port_is_replaced(tmp_path):
    server = RedisServer(tmp_path)
    taken = server.port
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        with server:
            assert server.port != taken
            assert server.command("PING") == "PONG"


def test_a_server_that_cannot_start_fails_clearly(tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        server = RedisServer(tmp_path, port=port)  # a fixed port is not replaced
        started = time.perf_counter()
        with pytest.raises(RedisServerError, match="Address already in use") as error:
            server.start()
        assert time.perf_counter() - started < 10
        assert "redis.log" in str(error.value)
        assert not server.alive
