"""Traces of real pipeline runs, recorded by real tracers: the X-Ray SDK (with a capturing emitter) and the
OpenTelemetry SDK (with an in-memory exporter). Nothing leaves the machine.
"""

import copy
import json
import re
import subprocess
import sys

import pytest
from aws_lambda_powertools import Tracer
from aws_xray_sdk import global_sdk_config
from aws_xray_sdk.core.context import Context
from aws_xray_sdk.core.recorder import AWSXRayRecorder
from fastapi.testclient import TestClient
from haystack import tracing as haystack_tracing
from mangum import Mangum
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from core.api.app import create_app
from core.observability.otel import OtelTracing
from core.observability.tracing import TracingError, build_tracing, enable_haystack_tracing
from core.observability.xray import XRayTracing
from core.runtime.container import build_runtime
from scripts.invoke import LambdaContext
from tests.functional.test_handler_events import load_event
from tests.functional.test_init import ROOT, run_env, run_init

QUERY = "read a CSV file"
COMPONENTS = {"bm25_retriever", "text_embedder", "embedding_retriever", "joiner"}
SAFE_KEY = re.compile(r"^\w+$")
pytestmark = pytest.mark.filterwarnings("ignore:There is no current event loop:DeprecationWarning")


class CapturingEmitter:
    """Receives what the X-Ray SDK would send to the daemon."""

    def __init__(self) -> None:
        self.documents: list[dict] = []

    def send_entity(self, entity) -> None:
        self.documents.append(json.loads(entity.serialize()))

    def set_daemon_address(self, address) -> None:
        pass


@pytest.fixture
def recorder():
    """A real X-Ray recorder whose segments land in ``recorder.emitter.documents``."""
    was_enabled = global_sdk_config.sdk_enabled()
    global_sdk_config.set_sdk_enabled(True)
    xray = AWSXRayRecorder()
    xray.configure(emitter=CapturingEmitter(), context=Context(), sampling=False, context_missing="LOG_ERROR")
    yield xray
    global_sdk_config.set_sdk_enabled(was_enabled)
    Tracer._reset_config()  # Powertools tracers share their configuration
    haystack_tracing.disable_tracing()


@pytest.fixture
def xray_runtime(make_settings, small_store, recorder):
    def factory(**overrides):
        settings = make_settings(tracing_backend="off", **overrides)
        runtime = build_runtime(settings, store=small_store)
        tracer = Tracer(service="haystack-serverless", provider=recorder, disabled=False, auto_patch=False)
        runtime.telemetry.tracing = XRayTracing(settings, tracer=tracer)
        enable_haystack_tracing(runtime.telemetry.tracing)
        return runtime

    return factory


def children(document: dict) -> list[dict]:
    return document.get("subsegments", [])


def walk(document: dict):
    yield document
    for child in children(document):
        yield from walk(child)


def run_in_segment(recorder, runtime, values: dict) -> dict:
    recorder.begin_segment("test")
    try:
        runtime.pipelines["search"].run(values)
    finally:
        recorder.end_segment()
    return recorder.emitter.documents[-1]


def test_xray_shows_one_subsegment_per_pipeline_run_and_per_component(recorder, xray_runtime):
    segment = run_in_segment(recorder, xray_runtime(), {"query": QUERY, "top_k": 2})
    (pipeline,) = children(segment)
    assert pipeline["name"] == "haystack.pipeline.run"
    names = {child["name"] for child in children(pipeline)}
    assert names == {f"haystack.component.{c}" for c in COMPONENTS}
    by_component = {c["annotations"]["haystack_component_name"]: c for c in children(pipeline)}
    assert by_component["bm25_retriever"]["annotations"]["haystack_component_type"] == "KeywordRetriever"
    assert by_component["joiner"]["annotations"]["haystack_component_visits"] == 1
    for component in children(pipeline):
        assert pipeline["start_time"] <= component["start_time"] <= component["end_time"] <= pipeline["end_time"]


def test_xray_keys_are_safe_and_large_values_are_metadata(recorder, xray_runtime):
    segment = run_in_segment(recorder, xray_runtime(), {"query": QUERY})
    for entity in walk(segment):
        for key, value in (entity.get("annotations") or {}).items():
            assert SAFE_KEY.match(key), key
            assert isinstance(value, str | int | float | bool)
    pipeline = children(segment)[0]
    component = children(pipeline)[0]
    assert "haystack_component_input_spec" in component["metadata"]["haystack"]  # a dict: metadata


def test_xray_traces_carry_no_content_unless_content_tracing_is_on(recorder, xray_runtime):
    segment = run_in_segment(recorder, xray_runtime(), {"query": QUERY})
    assert QUERY not in json.dumps(segment)
    keys = {k for entity in walk(segment) for k in (entity.get("metadata") or {}).get("haystack", {})}
    assert "haystack_pipeline_input_data" not in keys

    segment = run_in_segment(recorder, xray_runtime(haystack_content_tracing_enabled=True), {"query": QUERY})
    keys = {k for entity in walk(segment) for k in (entity.get("metadata") or {}).get("haystack", {})}
    assert {"haystack_pipeline_input_data", "haystack_component_input", "haystack_component_output"} <= keys
    assert QUERY in json.dumps(segment)


def test_xray_records_the_failing_component(recorder, xray_runtime):
    runtime = xray_runtime()

    def broken(**_):
        raise RuntimeError("embedder exploded")

    runtime.pipelines["search"].pipeline.get_component("text_embedder").run = broken
    with pytest.raises(Exception, match="exploded"):
        run_in_segment(recorder, runtime, {"query": QUERY})
    pipeline = children(recorder.emitter.documents[-1])[0]
    failed = next(c for c in children(pipeline) if c["name"] == "haystack.component.text_embedder")
    assert failed.get("fault") or failed.get("error")
    (exception,) = failed["cause"]["exceptions"]
    assert exception["type"] in {"RuntimeError", "PipelineRuntimeError"}  # Haystack wraps what components raise
    assert "exploded" in exception["message"]


def test_the_lambda_handler_span_holds_the_pipeline_and_the_request_annotations(recorder, xray_runtime):
    runtime = xray_runtime()
    handler = runtime.telemetry.lambda_handler(Mangum(create_app(runtime), lifespan="off"))
    event = copy.deepcopy(load_event("api-search-run.json"))
    recorder.begin_segment("facade")  # what Lambda opens around an invocation
    assert handler(event, LambdaContext())["statusCode"] == 200
    recorder.end_segment()
    (handler_span,) = children(recorder.emitter.documents[-1])
    assert handler_span["name"] == "## handler"
    assert handler_span["annotations"]["ColdStart"] in (True, False)
    assert (handler_span["annotations"]["status"], handler_span["annotations"]["pipeline"]) == (200, "search")
    assert handler_span["annotations"]["cache"] == "MISS"
    assert [c["name"] for c in children(handler_span)] == ["haystack.pipeline.run"]
    assert "response" not in (handler_span.get("metadata") or {}).get("haystack-serverless", {})


# -- OpenTelemetry --------------------------------------------------------------------------------------------


@pytest.fixture
def otel(make_settings, small_store):
    """``otel(**settings)`` → (runtime, exporter): spans of an SDK provider collected in memory."""

    def factory(**overrides):
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        settings = make_settings(**overrides)
        runtime = build_runtime(settings, store=small_store)
        runtime.telemetry.tracing = OtelTracing(settings, provider=provider)
        enable_haystack_tracing(runtime.telemetry.tracing)
        return runtime, exporter

    yield factory
    haystack_tracing.disable_tracing()


def test_otel_spans_nest_components_under_the_pipeline_run(otel):
    runtime, exporter = otel()
    client = TestClient(create_app(runtime))
    assert client.post("/pipelines/search/run", json={"query": QUERY}).status_code == 200
    spans = exporter.get_finished_spans()
    (pipeline,) = [s for s in spans if s.name == "haystack.pipeline.run"]
    components = [s for s in spans if s.name == "haystack.component.run"]
    assert {s.attributes["haystack.component.name"] for s in components} == COMPONENTS
    assert all(s.parent.span_id == pipeline.context.span_id for s in components)
    assert "haystack.pipeline.input_data" not in pipeline.attributes
    assert QUERY not in json.dumps([dict(s.attributes) for s in spans], default=str)


def test_otel_content_only_when_enabled(otel):
    runtime, exporter = otel(haystack_content_tracing_enabled=True)
    runtime.pipelines["search"].run({"query": QUERY})
    (pipeline,) = [s for s in exporter.get_finished_spans() if s.name == "haystack.pipeline.run"]
    assert QUERY in str(pipeline.attributes["haystack.pipeline.input_data"])


def test_otel_handler_span_is_the_parent_of_the_pipeline_run(otel):
    runtime, exporter = otel()
    handler = runtime.telemetry.lambda_handler(Mangum(create_app(runtime), lifespan="off"))
    assert handler(load_event("api-search-run.json"), LambdaContext())["statusCode"] == 200
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert spans["haystack.pipeline.run"].parent.span_id == spans["handler"].context.span_id
    assert spans["handler"].attributes["status"] == 200


GLOBAL_PROVIDER_PROBE = """
import json, sys
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)  # what the ADOT layer's wrapper does before the handler is imported
sys.path.insert(0, ".")
from scripts.invoke import LambdaContext
import handlers.api
event = json.load(open("events/api-search-run.json"))
status = handlers.api.handler(event, LambdaContext())["statusCode"]
spans = [
    {"name": s.name, "trace": s.context.trace_id, "id": s.context.span_id,
     "parent": s.parent.span_id if s.parent else None, "attributes": dict(s.attributes)}
    for s in exporter.get_finished_spans()
]
print("RESULT=" + json.dumps({"status": status, "spans": spans}, default=str))
"""


def test_otel_through_the_real_handler_is_one_trace_with_the_request_annotations(small_snapshot, tmp_path):
    result = run_init({"STORE_SNAPSHOT_URI": str(small_snapshot), "TRACING_BACKEND": "otel"}, tmp_path)
    assert result.returncode == 1  # no provider yet: see the previous test; now with one, set globally
    probe = subprocess.run(
        [sys.executable, "-c", GLOBAL_PROVIDER_PROBE],
        env={**run_env(tmp_path), "STORE_SNAPSHOT_URI": str(small_snapshot), "TRACING_BACKEND": "otel"},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr
    report = json.loads(probe.stdout.split("RESULT=", 1)[1])
    assert report["status"] == 200
    spans = report["spans"]
    assert len({s["trace"] for s in spans}) == 1, [s["name"] for s in spans]  # FastAPI's own spans are off
    handler = next(s for s in spans if s["name"] == "handler")
    assert (handler["attributes"]["status"], handler["attributes"]["pipeline"]) == (200, "search")
    assert "ended span" not in probe.stdout + probe.stderr


def test_otel_without_a_configured_provider_stops_init(make_settings, tmp_path, small_snapshot):
    with pytest.raises(TracingError, match="ADOT"):
        build_tracing(make_settings(tracing_backend="otel"))
    result = run_init({"STORE_SNAPSHOT_URI": str(small_snapshot), "TRACING_BACKEND": "otel"}, tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "init failed: TRACING_BACKEND=otel needs a configured OpenTelemetry tracer provider: add the ADOT "
        "Lambda layer (AdotLayerArn) or set TRACING_BACKEND=xray|off"
    ]


def test_off_leaves_haystack_with_its_no_op_tracer(make_settings):
    tracing = build_tracing(make_settings(tracing_backend="off"))
    assert tracing.backend == "off"
    assert not haystack_tracing.is_tracing_enabled()
