"""Rate limiting (core.security.ratelimit) against real redis-server processes: standalone, TLS, cluster, faults.

Servers come from tests/redis_fixtures.py; clients are built the project's way (``RedisL2`` from settings).
"""

import contextlib
import math
import threading
import time

import pytest
import redis

from core.cache.breaker import CircuitBreaker
from core.cache.keys import pattern, result_key
from core.cache.redis_l2 import RedisL2
from core.security.ratelimit import Decision, Limit, RateLimiter, bucket_key, bucket_keys
from core.settings import Settings, load_settings

FAST = {"redis_timeout_ms": 100, "redis_connect_timeout_ms": 100, "redis_retries": 1}
LIMIT = Limit(rate_per_s=2, burst=3)  # a token every 0.5 s


@pytest.fixture
def make_redis(monkeypatch):
    """``make_redis(url, **settings)``: a redis-py client built by ``RedisL2`` (closed at teardown)."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    built = []

    def factory(url: str, **overrides):
        l2 = RedisL2(load_settings(redis_url=url, **overrides))
        built.append(l2)
        return l2.client

    yield factory
    for l2 in built:
        with contextlib.suppress(redis.RedisError):
            l2.close()


@pytest.fixture(params=["standalone", "cluster"])
def limiter_client(request, make_redis):
    """A client of the session's standalone server or of the session's 3-master cluster (emptied)."""
    if request.param == "standalone":
        return make_redis(request.getfixturevalue("redis_url"))
    cluster = request.getfixturevalue("redis_cluster")
    cluster.flushall()
    return make_redis(cluster.url, redis_cluster=True)


def take(limiter: RateLimiter, n: int, tenant="acme", pipeline="search", limit=LIMIT) -> list[Decision]:
    return [limiter.check(tenant, pipeline, limit) for _ in range(n)]


def owner(cluster, key: str):
    """The node serving ``key``'s slot (from CLUSTER SLOTS) and the slot."""
    slot = int(cluster.nodes[0].command("CLUSTER", "KEYSLOT", key))
    port = next(int(r[2][1]) for r in cluster.nodes[0].command("CLUSTER", "SLOTS") if int(r[0]) <= slot <= int(r[1]))
    return next(n for n in cluster.nodes if n.port == port), slot


# -- the bucket --------------------------------------------------------------------------------------------


def test_burst_passes_then_429_with_retry_after_one_over_rate_then_recovers(limiter_client):
    limiter = RateLimiter(limiter_client)
    burst = take(limiter, 3)
    assert [d.allowed for d in burst] == [True, True, True]
    assert [d.remaining for d in burst] == [2, 1, 0]
    assert burst[0].headers() == {"X-RateLimit-Limit": "3", "X-RateLimit-Remaining": "2", "X-RateLimit-Reset": "1"}
    assert burst[0].retry_after_s is None and burst[0].source == "redis"

    denied = limiter.check("acme", "search", LIMIT)
    assert not denied.allowed and denied.source == "redis"
    assert 0.4 < denied.retry_after_s <= 0.5  # 1/R less what refilled since the burst
    assert 1.4 < denied.reset_s <= 1.5  # three tokens to refill
    assert denied.headers() == {
        "X-RateLimit-Limit": "3",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "2",
        "Retry-After": "1",
    }

    time.sleep(denied.retry_after_s)
    again = limiter.check("acme", "search", LIMIT)
    assert again.allowed and again.remaining == 0
    assert not limiter.check("acme", "search", LIMIT).allowed
    assert (limiter.stats.allowed, limiter.stats.denied) == (4, 2)


def test_sustained_rate_is_the_configured_rate(make_redis, redis_url):
    limiter = RateLimiter(make_redis(redis_url))
    limit = Limit(rate_per_s=20, burst=5)  # a burst of 5 absorbs scheduling gaps of up to 250 ms
    allowed = 0
    started = time.monotonic()
    while time.monotonic() - started < 1.0:
        allowed += limiter.check("acme", "search", limit).allowed
        time.sleep(0.002)
    elapsed = time.monotonic() - started
    assert limit.burst + 20 * elapsed - 2 <= allowed <= limit.burst + 20 * elapsed


def test_buckets_are_per_tenant_and_per_pipeline(limiter_client):
    limiter = RateLimiter(limiter_client)
    assert all(d.allowed for d in take(limiter, 3, "acme", "search"))
    assert not limiter.check("acme", "search", LIMIT).allowed
    assert limiter.check("acme", "chat", LIMIT).remaining == 2
    assert limiter.check("globex", "search", LIMIT).remaining == 2
    # Segments cannot run into each other: ("a:b", "c") and ("a", "b:c") are different buckets.
    assert all(d.allowed for d in take(limiter, 3, "a:b", "c"))
    assert limiter.check("a", "b:c", LIMIT).remaining == 2


def test_limits_come_per_call_and_a_lowered_burst_applies_at_once(make_redis, redis_url):
    limiter = RateLimiter(make_redis(redis_url))
    assert limiter.check("acme", "search", Limit(rate_per_s=1, burst=10)).remaining == 9
    lowered = limiter.check("acme", "search", Limit(rate_per_s=1, burst=2))
    assert lowered.allowed and lowered.remaining == 1 and lowered.limit == 2
    assert limiter.check("acme", "search", Limit(rate_per_s=1, burst=2), cost=2).allowed is False


def test_concurrent_requests_never_pass_more_than_burst_plus_refill(limiter_client):
    limiter = RateLimiter(limiter_client)
    limit = Limit(rate_per_s=5, burst=10)
    threads, per_thread = 8, 40
    results: list[bool] = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads)

    def worker():
        barrier.wait()
        mine = [limiter.check("acme", "search", limit).allowed for _ in range(per_thread)]
        with lock:
            results.extend(mine)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    started = time.monotonic()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.monotonic() - started
    assert len(results) == threads * per_thread
    allowed = sum(results)
    assert limit.burst <= allowed <= limit.burst + limit.rate_per_s * elapsed
    assert limiter.stats.errors == 0


def test_idle_buckets_expire_once_they_would_be_full(make_redis, redis_url):
    client = make_redis(redis_url)
    RateLimiter(client).check("acme", "search", LIMIT)
    key = bucket_key("hs", "acme", "search")
    assert client.hgetall(key).keys() == {b"tokens", b"ts"}
    # One token to refill at 2/s: full in 500 ms, plus the 1 s margin.
    assert 1000 < client.pttl(key) <= 1500


def test_uses_server_time_not_the_container_clock(make_redis, redis_url, monkeypatch):
    limiter = RateLimiter(make_redis(redis_url))
    honest = take(limiter, 5, tenant="honest")
    wild = iter([0.0, 4.1e9, -1e9, 1e12, 17.0, 3.3e9] * 10)
    monkeypatch.setattr(time, "time", lambda: next(wild))
    skewed = take(limiter, 5, tenant="skewed")
    assert [(d.allowed, d.remaining) for d in skewed] == [(d.allowed, d.remaining) for d in honest]
    assert [d.allowed for d in skewed] == [True, True, True, False, False]
    assert 0.4 < skewed[3].retry_after_s <= 0.5


def test_script_runs_again_after_the_server_forgets_it(make_redis, redis_url, redis_server_session):
    limiter = RateLimiter(make_redis(redis_url))
    assert limiter.check("acme", "search", LIMIT).remaining == 2
    redis_server_session.command("SCRIPT", "FLUSH")
    assert limiter.check("acme", "search", LIMIT).remaining == 1  # NOSCRIPT → EVAL, same bucket
    assert limiter.stats.errors == 0


def test_tls(make_redis, tls_redis):
    tls_redis.flushall()
    limiter = RateLimiter(make_redis(tls_redis.url, redis_tls_ca_file=str(tls_redis.ca_file)))
    assert [d.allowed for d in take(limiter, 4)] == [True, True, True, False]


def test_cache_invalidation_patterns_never_match_buckets(make_redis, redis_url):
    client = make_redis(redis_url)
    RateLimiter(client).check("acme", "search", LIMIT)
    cached = result_key("hs", kind="results", tenant="acme", pipeline="search", version="v1", inputs={"q": 1})
    client.set(cached, b"x")
    for match in (pattern("hs"), pattern("hs", tenant="acme"), pattern("hs", pipeline="search")):
        assert [k.decode() for k in client.scan_iter(match=match)] == [cached]


# -- cluster -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tenant", "pipeline"), [("acme", "search"), ("a{b}c", "x}y{"), ("{}", ":"), ("ténant/ü", "p*?[]")]
)
def test_keys_of_a_bucket_share_one_slot_whatever_the_names(redis_cluster, tenant, pipeline):
    keys = bucket_keys("hs", tenant, pipeline)
    tag = keys[0][keys[0].index("{") + 1 : keys[0].index("}")]
    slots = {int(redis_cluster.nodes[0].command("CLUSTER", "KEYSLOT", k)) for k in keys}
    assert slots == {int(redis_cluster.nodes[0].command("CLUSTER", "KEYSLOT", tag))}
    for key in keys:  # the braces around the tag are the only ones: names cannot move the tag
        assert key.count("{") == 1 and key.count("}") == 1 and key.endswith("}")


def test_cluster_buckets_spread_over_shards_and_each_stays_on_its_slot(make_redis, redis_cluster):
    redis_cluster.flushall()
    limiter = RateLimiter(make_redis(redis_cluster.url, redis_cluster=True))
    tenants = [f"tenant-{i}" for i in range(60)]
    for tenant in tenants:
        assert [d.allowed for d in take(limiter, 4, tenant=tenant)] == [True, True, True, False]
    assert all(size > 0 for size in redis_cluster.dbsizes()), "buckets on every shard"
    assert sum(redis_cluster.dbsizes()) == len(tenants)  # the script wrote nothing but the declared keys
    for tenant in tenants[:10]:
        for key in bucket_keys("hs", tenant, "search"):
            node, slot = owner(redis_cluster, key)
            assert node.command("EXISTS", key) == 1
            assert int(node.command("CLUSTER", "COUNTKEYSINSLOT", slot)) >= 1


# -- Redis unavailable -------------------------------------------------------------------------------------


def test_fail_open_when_redis_is_killed_then_the_breaker_recovers(make_redis, redis_server):
    seen: list[Decision] = []
    limiter = RateLimiter(
        make_redis(redis_server.url, **FAST), breaker=CircuitBreaker(2, 0.5), on_unavailable=seen.append
    )
    assert limiter.check("acme", "search", LIMIT).source == "redis"
    redis_server.kill()

    timings = []
    for _ in range(6):
        started = time.perf_counter()
        decision = limiter.check("acme", "search", LIMIT)
        timings.append(time.perf_counter() - started)
        assert decision.allowed and decision.source == "fail_open"
        assert decision.headers() == {}
    assert max(timings) < 0.5  # refused at once, retried once with a short backoff
    assert max(timings[2:]) < 0.05  # breaker open: Redis is not called (stats below prove it)
    assert limiter.breaker.state == "open"
    assert limiter.stats.fail_open == 6 and len(seen) == 6
    assert (limiter.stats.errors, limiter.stats.skipped, limiter.stats.last_error) == (2, 4, "ConnectionError")

    redis_server.start()
    time.sleep(0.55)  # the cool-down ends: the next call probes Redis and closes the breaker
    back = limiter.check("acme", "search", LIMIT)
    assert back.source == "redis" and back.remaining == 2  # the restarted server is empty: a full bucket
    assert limiter.breaker.state == "closed"
    assert limiter.stats.fail_open == 6


def test_fail_closed_denies_with_retry_after(make_redis, redis_server):
    seen: list[Decision] = []
    limiter = RateLimiter(
        make_redis(redis_server.url, **FAST),
        fail_mode="closed",
        fail_closed_retry_after_s=2.5,
        breaker=CircuitBreaker(2, 30),
        on_unavailable=seen.append,
    )
    redis_server.kill()
    decisions = take(limiter, 3)
    assert [(d.allowed, d.source) for d in decisions] == [(False, "fail_closed")] * 3
    assert decisions[0].retry_after_s == 2.5
    assert decisions[0].headers() == {
        "X-RateLimit-Limit": "3",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "3",
        "Retry-After": "3",
    }
    assert (limiter.stats.fail_closed, limiter.stats.fail_open, len(seen)) == (3, 0, 3)


def test_a_paused_server_costs_bounded_time_then_fails_open(make_redis, redis_server):
    limiter = RateLimiter(make_redis(redis_server.url, **FAST), breaker=CircuitBreaker(2, 30))
    limiter.check("acme", "search", LIMIT)
    redis_server.pause(1000)
    timings = []
    for _ in range(4):
        started = time.perf_counter()
        assert limiter.check("acme", "search", LIMIT).source == "fail_open"
        timings.append(time.perf_counter() - started)
    # 100 ms socket timeout, one retry: each of the two calls before the breaker opens pays about 0.2 s.
    assert max(timings) < 0.5
    assert max(timings[2:]) < 0.05  # breaker open
    assert limiter.stats.last_error == "TimeoutError"


def test_cluster_node_down_fails_open_and_recovers_when_it_rejoins(make_redis, redis_cluster_fresh):
    cluster = redis_cluster_fresh
    limiter = RateLimiter(make_redis(cluster.url, redis_cluster=True, **FAST), breaker=CircuitBreaker(2, 0.5))
    assert limiter.check("acme", "search", LIMIT).source == "redis"
    node, _ = owner(cluster, bucket_key("hs", "acme", "search"))
    node.kill()
    started = time.perf_counter()
    assert [d.source for d in take(limiter, 3)] == ["fail_open"] * 3
    assert time.perf_counter() - started < 1.0
    assert limiter.breaker.state == "open"

    node.start()
    cluster.wait_ok()
    time.sleep(0.55)
    assert limiter.check("acme", "search", LIMIT).source == "redis"
    assert limiter.breaker.state == "closed"


# -- arguments and headers (no server) ---------------------------------------------------------------------


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (math.inf, 1), (1, 0), (1, 1.5), (1, True)])
def test_invalid_limits_are_refused(rate, burst):
    with pytest.raises(ValueError, match=r"rate_per_s|burst"):
        Limit(rate_per_s=rate, burst=burst)


def test_a_cost_that_could_never_pass_is_refused_before_any_call():
    limiter = RateLimiter(redis.Redis(host="127.0.0.1", port=1), breaker=CircuitBreaker(1, 30))
    for cost in (0, 4, 1.0):
        with pytest.raises(ValueError, match="cost"):
            limiter.check("acme", "search", LIMIT, cost=cost)
    assert limiter.stats.errors == 0


def test_retry_after_is_whole_seconds_rounded_up():
    denied = Decision(False, 10, 0, reset_s=4.2, retry_after_s=1.0000000002, source="redis")
    assert denied.headers()["Retry-After"] == "1"
    assert Decision(False, 10, 0, 0.3, 0.001, "redis").headers()["Retry-After"] == "1"
    assert Decision(False, 10, 0, 2.01, 1.01, "redis").headers()["Retry-After"] == "2"
