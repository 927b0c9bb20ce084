"""The cache as callers see it: X-Cache, `cached`, Cache-Control, version and tenant separation (L1 here;
the Redis tier is exercised against real servers in test_cache_redis.py)."""

from core.api.query import answer_query, run_cached
from core.api.schemas import QueryRequest
from core.runtime.container import build_runtime


def test_second_identical_query_is_an_l1_hit_with_the_same_answer(client):
    first = client.post("/query", json={"text": "read a CSV file", "top_k": 3})
    second = client.post("/query", json={"top_k": 3, "text": "read a CSV file"})
    assert first.headers["x-cache"] == "MISS" and first.json()["cached"] is False
    assert second.headers["x-cache"] == "HIT-L1" and second.json()["cached"] is True
    assert second.json()["documents"] == first.json()["documents"]


def test_query_and_run_endpoints_share_entries_for_the_same_inputs(client):
    client.post("/query", json={"text": "pickle objects", "top_k": 5})
    run = client.post("/pipelines/search/run", json={"query": "pickle objects", "top_k": 5})
    assert run.headers["x-cache"] == "HIT-L1"
    assert run.json()["cached"] is True


def test_cache_control_no_cache_bypasses_and_no_store_does_not_write(client):
    client.post("/query", json={"text": "regular expressions"})
    fresh = client.post("/query", json={"text": "regular expressions"}, headers={"Cache-Control": "no-cache"})
    assert fresh.headers["x-cache"] == "BYPASS" and fresh.json()["cached"] is False
    unstored = client.post("/query", json={"text": "toml files"}, headers={"Cache-Control": "no-store"})
    assert unstored.headers["x-cache"] == "BYPASS"
    assert client.post("/query", json={"text": "toml files"}).headers["x-cache"] == "MISS"


def test_errors_are_not_cached(client):
    bad = {"text": "json", "filters": {"field": "meta.module", "operator": ">", "value": "json"}}
    assert client.post("/query", json=bad).status_code == 400
    assert client.post("/query", json=bad).status_code == 400


def test_caching_off_with_ttl_zero(make_client):
    client = make_client(cache_ttl_results_s=0)
    for _ in range(2):
        assert client.post("/query", json={"text": "json"}).headers["x-cache"] == "BYPASS"


def test_a_new_pipeline_version_never_reads_the_old_entries(make_settings, small_store, tmp_path):
    source = (make_settings().pipelines_dir / "search.yml").read_text()
    (tmp_path / "search.yml").write_text(source)
    settings = make_settings(pipelines_dir=tmp_path)
    stable = build_runtime(settings, store=small_store)
    (tmp_path / "search.yml").write_text(source + "\n# canary: same graph, new version\n")
    canary = build_runtime(settings, store=small_store)
    canary.cache = stable.cache  # one shared cache, as L2 is shared by both versions
    assert stable.pipelines["search"].version != canary.pipelines["search"].version
    request = QueryRequest(text="csv reader")
    assert answer_query(stable, request)[1] == "MISS"
    assert answer_query(stable, request)[1] == "HIT-L1"
    assert answer_query(canary, request)[1] == "MISS"


def test_tenants_never_share_entries(make_settings, small_store):
    runtime = build_runtime(make_settings(), store=small_store)
    search = runtime.pipelines["search"]
    values = {"query": "csv reader", "top_k": 3}
    assert run_cached(runtime, search, dict(values), tenant="acme").cache == "MISS"
    assert run_cached(runtime, search, dict(values), tenant="acme").cache == "HIT-L1"
    assert run_cached(runtime, search, dict(values), tenant="globex").cache == "MISS"


def test_ready_reports_the_cache_without_failing(client):
    client.post("/query", json={"text": "json"})
    body = client.get("/ready").json()
    cache = next(c for c in body["checks"] if c["name"] == "cache")
    assert cache["ok"] is True
    assert "L2 disabled" in cache["detail"]
    assert "L1 1 entries" in cache["detail"]
