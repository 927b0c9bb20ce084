"""SnapStart hooks: priming before the snapshot; new clients and new randomness after a restore."""

import random
import sys

import pytest
import snapshot_restore_py

from core.api.app import create_app
from core.runtime.container import build_runtime
from core.runtime.snapstart import after_restore, before_snapshot, priming_events, register_hooks


@pytest.fixture
def aws_credentials(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture
def bedrock_runtime(make_settings, small_store, aws_credentials):
    return build_runtime(make_settings(generator="bedrock"), store=small_store)


def rag_backend(runtime):
    return runtime.pipelines["rag"].pipeline.get_component("llm").backend


def test_restore_re_creates_the_generator_client(bedrock_runtime):
    old_backend = rag_backend(bedrock_runtime)
    old_client = old_backend.client
    assert old_client is not None
    after_restore(bedrock_runtime)
    new_backend = rag_backend(bedrock_runtime)
    assert new_backend is not old_backend
    assert new_backend.client is not None
    assert new_backend.client is not old_client
    assert bedrock_runtime.chat_generator is new_backend
    assert bedrock_runtime.pipelines["rag"].available


def test_restore_reseeds_random():
    random.seed(1234)
    state = random.getstate()
    expected = [random.random() for _ in range(3)]
    random.setstate(state)  # as if restored from a snapshot taken here

    class NoClients:
        def reconnect(self):
            pass

    after_restore(NoClients())
    assert [random.random() for _ in range(3)] != expected


def test_priming_runs_retrieval_only_through_the_handler(make_settings, small_store):
    from mangum import Mangum

    runtime = build_runtime(make_settings(), store=small_store)
    handler = Mangum(create_app(runtime), lifespan="off")
    paths = [e["path"] for e in priming_events(runtime)]
    assert paths == ["/health", "/pipelines/search/run"]  # never /query or rag: no paid calls at publish
    calls = []

    def recording(event, context):
        response = handler(event, context)
        calls.append(response["statusCode"])
        return response

    before_snapshot(runtime, recording)
    assert calls == [200, 200]


def test_priming_is_not_traffic_no_metric_no_audit_line_no_span(make_settings, small_store, capsys, caplog):
    from haystack import tracing as haystack_tracing
    from mangum import Mangum

    runtime = build_runtime(make_settings(), store=small_store)
    sentinel = haystack_tracing.tracer.actual_tracer
    capsys.readouterr()
    with caplog.at_level("INFO", logger="core.audit"):
        before_snapshot(runtime, Mangum(create_app(runtime), lifespan="off"))
    assert '"_aws"' not in capsys.readouterr().out  # neither the pipeline's nor the requests' documents
    assert not [r for r in caplog.records if r.name == "core.audit"]
    assert not runtime.telemetry.metrics.metrics.metric_set  # nothing left for the first real invocation
    assert haystack_tracing.tracer.actual_tracer is sentinel  # tracing back as it was
    assert not runtime.telemetry.muted


def test_hooks_register_with_snapshot_restore_py_and_are_skipped_without_it(make_settings, small_store, monkeypatch):
    runtime = build_runtime(make_settings(), store=small_store)
    before = len(snapshot_restore_py.get_before_snapshot())
    after = len(snapshot_restore_py.get_after_restore())
    assert register_hooks(runtime, None) is True
    assert len(snapshot_restore_py.get_before_snapshot()) == before + 1
    assert len(snapshot_restore_py.get_after_restore()) == after + 1
    snapshot_restore_py.get_before_snapshot().pop()
    snapshot_restore_py.get_after_restore().pop()
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", None)  # import fails, as outside Lambda
    assert register_hooks(runtime, None) is False
