"""The cache against real redis-server processes: standalone, TLS, cluster, and faults.

Servers come from tests/redis_fixtures.py (started on free loopback ports, stopped at teardown).
"""

import threading
import time

import pytest
import redis
from redis.cluster import RedisCluster as ClusterClient

from core.cache.__main__ import main as cache_cli
from core.cache.build import build_cache
from core.cache.tiered import HIT_L2, MISS

FAST = {"redis_timeout_ms": 100, "redis_connect_timeout_ms": 100, "redis_retries": 1}


def test_a_second_container_reads_the_first_ones_answer_from_l2(make_client, redis_url):
    first, second = make_client(redis_url=redis_url), make_client(redis_url=redis_url)
    miss = first.post("/query", json={"text": "read a CSV file"})
    assert miss.headers["x-cache"] == "MISS"
    hit = second.post("/query", json={"text": "read a CSV file"})
    assert hit.headers["x-cache"] == "HIT-L2"
    assert hit.json()["documents"] == miss.json()["documents"]
    assert second.post("/query", json={"text": "read a CSV file"}).headers["x-cache"] == "HIT-L1"
    keys = redis.Redis.from_url(redis_url).keys("hs:results:default:search:*")
    assert len(keys) == 1


def test_entries_expire_with_their_ttl(make_client, redis_url):
    settings = {"redis_url": redis_url, "cache_ttl_results_s": 1, "cache_l1_ttl_s": 1}
    client = make_client(**settings)
    client.post("/query", json={"text": "pickle"})
    ttl_ms = redis.Redis.from_url(redis_url).pttl(redis.Redis.from_url(redis_url).keys("hs:*")[0])
    assert 0 < ttl_ms <= 1000
    assert make_client(**settings).post("/query", json={"text": "pickle"}).headers["x-cache"] == "HIT-L2"
    time.sleep(1.2)
    assert client.post("/query", json={"text": "pickle"}).headers["x-cache"] == "MISS"


def test_tls_with_a_private_ca(make_client, tls_redis):
    settings = {"redis_url": tls_redis.url, "redis_tls_ca_file": str(tls_redis.ca_file)}
    assert settings["redis_url"].startswith("rediss://")
    assert make_client(**settings).post("/query", json={"text": "tls json"}).headers["x-cache"] == "MISS"
    assert make_client(**settings).post("/query", json={"text": "tls json"}).headers["x-cache"] == "HIT-L2"
    ready = make_client(**settings).get("/ready").json()
    assert "L2 ok" in next(c for c in ready["checks"] if c["name"] == "cache")["detail"]


def cluster_keys(cluster) -> dict[int, list[bytes]]:
    """Cached results per node (rate-limit buckets, ``hs:rl:*``, are not cache entries)."""
    return {port: redis.Redis(host=host, port=port).keys("hs:results:*") for host, port in cluster.startup_nodes}


def test_cluster_mode_spreads_entries_and_invalidates_on_every_primary(make_client, redis_cluster, monkeypatch):
    redis_cluster.flushall()
    settings = {"redis_url": redis_cluster.url, "redis_cluster": True}
    client = make_client(**settings)
    texts = [f"question {i} about json" for i in range(30)]
    for text in texts:
        assert client.post("/query", json={"text": text}).headers["x-cache"] == "MISS"
    client.post("/pipelines/search/run", json={"query": "other pipeline call"})
    spread = cluster_keys(redis_cluster)
    assert all(spread.values()), "every shard holds some entries"
    assert sum(len(v) for v in spread.values()) == 31
    assert make_client(**settings).post("/query", json={"text": texts[0]}).headers["x-cache"] == "HIT-L2"

    monkeypatch.setenv("REDIS_URL", redis_cluster.url)
    monkeypatch.setenv("REDIS_CLUSTER", "true")
    assert cache_cli(["invalidate", "--pipeline", "search"]) == 0
    assert sum(len(v) for v in cluster_keys(redis_cluster).values()) == 0
    assert make_client(**settings).post("/query", json={"text": texts[0]}).headers["x-cache"] == "MISS"


def test_invalidation_by_tenant_leaves_other_tenants(make_settings, small_store, redis_url, monkeypatch):
    from core.api.query import run_cached
    from core.runtime.container import build_runtime

    runtime = build_runtime(make_settings(redis_url=redis_url), store=small_store)
    for tenant in ("acme", "globex"):
        run_cached(runtime, runtime.pipelines["search"], {"query": "csv"}, tenant=tenant)
    monkeypatch.setenv("REDIS_URL", redis_url)
    assert cache_cli(["invalidate", "--tenant", "acme"]) == 0
    remaining = [k.decode() for k in redis.Redis.from_url(redis_url).keys("hs:*")]
    assert len(remaining) == 1 and ":globex:" in remaining[0]


def timed_queries(client, texts):
    results = []
    for text in texts:
        started = time.perf_counter()
        response = client.post("/query", json={"text": text})
        results.append((response.status_code, response.headers["x-cache"], time.perf_counter() - started))
    return results


def test_redis_killed_mid_run_then_back(make_client, redis_server):
    client = make_client(redis_url=redis_server.url, cache_breaker_failures=3, cache_breaker_cooldown_s=0.5, **FAST)
    before = timed_queries(client, [f"before {i}" for i in range(3)])
    redis_server.kill()
    during = timed_queries(client, [f"during {i}" for i in range(8)])
    assert all(status == 200 for status, _, _ in before + during)
    assert all(cache == "MISS" for _, cache, _ in during)
    # Bounded: a dead server refuses at once; a refused connect is retried once with a short backoff.
    assert max(seconds for _, _, seconds in during) < 1.0
    ready = client.get("/ready").json()
    assert "breaker open" in next(c for c in ready["checks"] if c["name"] == "cache")["detail"]

    redis_server.start()
    time.sleep(0.6)  # the cool-down ends: the next call probes Redis and closes the breaker
    after = timed_queries(client, ["after 0", "after 0"])
    assert [cache for _, cache, _ in after] == ["MISS", "HIT-L1"]
    ready = client.get("/ready").json()
    assert "L2 ok" in next(c for c in ready["checks"] if c["name"] == "cache")["detail"]
    assert make_client(redis_url=redis_server.url).post("/query", json={"text": "after 0"}).headers["x-cache"] == (
        "HIT-L2"
    )


def test_redis_paused_costs_bounded_latency_and_the_breaker_recovers(make_client, redis_server):
    client = make_client(redis_url=redis_server.url, cache_breaker_failures=2, cache_breaker_cooldown_s=0.5, **FAST)
    timed_queries(client, ["warm"])
    redis_server.pause(1500)
    during = timed_queries(client, [f"paused {i}" for i in range(5)])
    assert all(status == 200 for status, _, _ in during)
    # Each L2 call times out after 100 ms, retried once; the breaker opens after 2 failing calls,
    # then L2 is skipped: only the first requests pay, and each pays at most a few timeouts.
    slow = [seconds for _, _, seconds in during]
    assert max(slow) < 0.8
    assert slow[-1] < 0.1
    time.sleep(1.6)  # pause over, cool-down over
    after = timed_queries(client, ["recovered", "recovered"])
    assert [cache for _, cache, _ in after] == ["MISS", "HIT-L1"]
    assert (
        make_client(redis_url=redis_server.url).post("/query", json={"text": "recovered"}).headers["x-cache"]
        == "HIT-L2"
    )


def test_cross_container_lock_computes_once(make_settings, redis_url):
    settings = make_settings(redis_url=redis_url, cache_lock_ms=5000, cache_lock_wait_ms=3000)
    containers = [build_cache(settings), build_cache(settings)]
    computed = []
    results = []
    barrier = threading.Barrier(2)

    def compute():
        computed.append(1)
        time.sleep(0.3)
        return b"answer"

    def container(cache):
        barrier.wait()
        results.append(cache.get_or_compute("hs:results:t:p:v:stampede", 60, compute))

    threads = [threading.Thread(target=container, args=(c,)) for c in containers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(computed) == 1
    assert sorted(status for _, status in results) == sorted([MISS, HIT_L2])
    assert {value for value, _ in results} == {b"answer"}
    assert not redis.Redis.from_url(redis_url).exists("lock:hs:results:t:p:v:stampede")


def test_snapstart_restore_reconnects_redis(make_settings, small_store, redis_url):
    from core.runtime.container import build_runtime
    from core.runtime.snapstart import after_restore

    runtime = build_runtime(make_settings(redis_url=redis_url), store=small_store)
    old_client = runtime.cache.l2.client
    after_restore(runtime)
    assert runtime.cache.l2.client is not old_client
    assert runtime.cache.ping() is True


@pytest.mark.parametrize("secret_store", ["secretsmanager", "ssm"])
def test_auth_password_from_secrets_manager_or_ssm(make_client, tmp_path_factory, secret_store, monkeypatch):
    import boto3
    from moto import mock_aws

    from tests.redis_servers import RedisServer

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with RedisServer(tmp_path_factory.mktemp("auth"), password="s3cret-pw") as server, mock_aws():
        if secret_store == "secretsmanager":
            boto3.client("secretsmanager").create_secret(Name="cache-auth", SecretString='{"password": "s3cret-pw"}')
        else:
            boto3.client("ssm").put_parameter(Name="cache-auth", Value="s3cret-pw", Type="SecureString")
        client = make_client(redis_url=server.url, redis_auth_secret=f"{secret_store}:cache-auth")
        assert client.post("/query", json={"text": "auth"}).headers["x-cache"] == "MISS"
        assert (
            make_client(redis_url=server.url, redis_auth_secret=f"{secret_store}:cache-auth")
            .post("/query", json={"text": "auth"})
            .headers["x-cache"]
            == "HIT-L2"
        )
        unauthenticated = make_client(redis_url=server.url)
        response = unauthenticated.post("/query", json={"text": "auth"})
        assert response.status_code == 200 and response.headers["x-cache"] == "MISS"  # degraded, not failed


def test_cluster_client_type(make_settings, redis_cluster):
    cache = build_cache(make_settings(redis_url=redis_cluster.url, redis_cluster=True))
    assert isinstance(cache.l2.client, ClusterClient)
    assert {n.port for n in cache.l2.client.get_primaries()} == {p for _, p in redis_cluster.startup_nodes}
