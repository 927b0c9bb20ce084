"""Cache building blocks: keys, L1, the circuit breaker, and the tiered flow with a failing L2."""

import threading
import time

import pytest

from core.cache.breaker import CircuitBreaker
from core.cache.keys import digest, pattern, result_key
from core.cache.memory import MemoryCache
from core.cache.tiered import BYPASS, HIT_L1, HIT_L2, MISS, TieredCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def key(**overrides):
    args = {"kind": "results", "tenant": "acme", "pipeline": "search", "version": "v1", "inputs": {"query": "json"}}
    args.update(overrides)
    return result_key("hs", **args)


# -- keys ------------------------------------------------------------------------------------------------


def test_key_ignores_order_whitespace_and_equivalent_numbers():
    a = {"query": "parse JSON", "top_k": 5, "filters": {"field": "meta.module", "operator": "==", "value": 1}}
    b = {"filters": {"value": 1.0, "operator": "==", "field": "meta.module"}, "top_k": 5.0, "query": "parse JSON"}
    assert digest(a) == digest(b)


@pytest.mark.parametrize(
    "change",
    [
        {"tenant": "other"},
        {"pipeline": "rag"},
        {"version": "v2"},
        {"kind": "other"},
        {"inputs": {"query": "JSON"}},
        {"inputs": {"query": "json", "top_k": 3}},
        {"inputs": {"query": "json "}},
    ],
)
def test_anything_that_changes_the_answer_changes_the_key(change):
    assert key(**change) != key()


def test_key_segments_cannot_inject_scan_patterns():
    evil = key(tenant="a*:b?[c]")
    assert "*" not in evil and "?" not in evil and "[" not in evil
    assert evil.split(":")[2] == "a%2A%3Ab%3F%5Bc%5D"


def test_distinct_tenants_never_share_a_key():
    names = ["a:b", "a_b", "a%3Ab", "a b", "ä", "", "%"]
    assert len({key(tenant=name) for name in names}) == len(names)


def test_patterns_select_a_tenant_or_a_pipeline_across_versions():
    import fnmatch

    keys = [key(), key(version="v2"), key(tenant="other"), key(pipeline="rag")]
    by_pipeline = [k for k in keys if fnmatch.fnmatchcase(k, pattern("hs", pipeline="search"))]
    by_tenant = [k for k in keys if fnmatch.fnmatchcase(k, pattern("hs", tenant="acme"))]
    assert by_pipeline == [key(), key(version="v2"), key(tenant="other")]
    assert by_tenant == [key(), key(version="v2"), key(pipeline="rag")]


# -- L1 --------------------------------------------------------------------------------------------------


def test_l1_expires_entries():
    clock = Clock()
    l1 = MemoryCache(10, 1000, clock=clock)
    l1.set("a", b"1", ttl_s=5)
    assert l1.get("a") == b"1"
    clock.now += 5.01
    assert l1.get("a") is None
    assert len(l1) == 0


def test_l1_is_bounded_by_entries_and_bytes_evicting_the_least_recent():
    l1 = MemoryCache(3, 10)
    for name in "abc":
        l1.set(name, b"xx", 60)
    l1.get("a")  # a is now the most recent
    l1.set("d", b"xx", 60)
    assert l1.get("b") is None and l1.get("a") == b"xx"
    l1.set("e", b"123456789", 60)  # 9 bytes: only this and nothing else fits in 10
    assert len(l1) == 1 and l1.size_bytes == 9
    l1.set("big", b"x" * 11, 60)
    assert l1.get("big") is None
    assert MemoryCache(0, 100).get("x") is None


# -- breaker ---------------------------------------------------------------------------------------------


def test_breaker_opens_after_threshold_then_probes_once_and_closes():
    clock = Clock()
    breaker = CircuitBreaker(threshold=3, cooldown_s=10, clock=clock)
    for _ in range(2):
        breaker.failure()
    assert breaker.state == "closed" and breaker.allow()
    breaker.failure()
    assert breaker.state == "open" and not breaker.allow()
    clock.now += 10
    assert breaker.state == "half_open"
    assert breaker.allow() is True
    assert breaker.allow() is False  # one probe at a time
    breaker.failure()
    assert breaker.state == "open"
    clock.now += 10
    assert breaker.allow()
    breaker.success()
    assert breaker.state == "closed" and breaker.allow()
    assert breaker.opened_count == 2


# -- tiered ----------------------------------------------------------------------------------------------


class FakeL2:
    """A dict-backed L2 that can be made to fail."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.failing = False
        self.calls = 0

    def _maybe_fail(self):
        self.calls += 1
        if self.failing:
            raise ConnectionError("L2 down")

    def get(self, key):
        self._maybe_fail()
        return self.data.get(key)

    def set(self, key, value, ttl_s):
        self._maybe_fail()
        self.data[key] = value

    def ping(self):
        self._maybe_fail()
        return True

    def reconnect(self):
        pass


def test_reads_go_l1_then_l2_and_an_l2_hit_fills_l1():
    l2 = FakeL2()
    cache = TieredCache(MemoryCache(10, 10_000), l2)
    value, status = cache.get_or_compute("k", 60, lambda: b"computed")
    assert (value, status) == (b"computed", MISS)
    assert l2.data["k"] == b"computed"
    assert cache.get_or_compute("k", 60, lambda: b"other")[1] == HIT_L1
    other_container = TieredCache(MemoryCache(10, 10_000), l2)
    assert other_container.get_or_compute("k", 60, lambda: b"other") == (b"computed", HIT_L2)
    assert other_container.get_or_compute("k", 60, lambda: b"other")[1] == HIT_L1


def test_bypass_recomputes_and_no_store_writes_nothing():
    cache = TieredCache(MemoryCache(10, 10_000), FakeL2())
    cache.get_or_compute("k", 60, lambda: b"old")
    assert cache.get_or_compute("k", 60, lambda: b"new", bypass=True) == (b"new", BYPASS)
    assert cache.get_or_compute("k", 60, lambda: b"x") == (b"new", HIT_L1)
    assert cache.get_or_compute("j", 60, lambda: b"y", store=False) == (b"y", BYPASS)
    assert cache.get("j") == (None, None)
    assert cache.get_or_compute("z", 0, lambda: b"z") == (b"z", BYPASS)  # TTL 0: caching off


def test_errors_in_compute_are_not_cached():
    cache = TieredCache(MemoryCache(10, 10_000), FakeL2())

    def boom():
        raise RuntimeError("pipeline failed")

    with pytest.raises(RuntimeError):
        cache.get_or_compute("k", 60, boom)
    assert cache.get("k") == (None, None)


def test_a_failing_l2_never_fails_a_request_and_opens_the_breaker():
    l2 = FakeL2()
    l2.failing = True
    cache = TieredCache(MemoryCache(0, 0), l2, breaker=CircuitBreaker(threshold=2, cooldown_s=60))
    for i in range(5):
        assert cache.get_or_compute(f"k{i}", 60, lambda: b"v") == (b"v", MISS)
    assert cache.breaker.state == "open"
    assert l2.calls == 2  # then L2 is skipped entirely
    assert cache.state()["l2"] == "breaker_open"
    assert cache.ping() is None


def test_concurrent_misses_on_one_key_compute_once():
    cache = TieredCache(MemoryCache(10, 10_000), FakeL2())
    computed = []
    start = threading.Barrier(8)

    def compute():
        computed.append(1)
        time.sleep(0.1)
        return b"v"

    statuses = []

    def worker():
        start.wait()
        statuses.append(cache.get_or_compute("k", 60, compute)[1])

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(computed) == 1
    assert sorted(statuses) == [HIT_L1] * 7 + [MISS]
