"""The small pure parts of observability: query fingerprints, X-Ray names and keys, the content guard."""

import contextlib

import pytest
from haystack import tracing as haystack_tracing

from core.observability.logs import fingerprint
from core.observability.tracing import CONTENT_TAGS, ContentGuard
from core.observability.xray import annotation_key, subsegment_name


def test_fingerprint_hides_the_text_but_identifies_it():
    facts = fingerprint("how do I parse JSON")
    assert set(facts) == {"query_sha256", "query_chars"}
    assert facts == fingerprint("how do I parse JSON")
    assert facts["query_sha256"] != fingerprint("how do I parse YAML")["query_sha256"]
    assert fingerprint("x", clear=True)["query_text"] == "x"
    assert fingerprint(None) == {}  # a pipeline without a text query


@pytest.mark.parametrize(
    ("key", "safe"),
    [
        ("haystack.component.name", "haystack_component_name"),
        ("haystack.pipeline.max_runs_per_component", "haystack_pipeline_max_runs_per_component"),
        ("weird-key with spaces", "weird_key_with_spaces"),
    ],
)
def test_annotation_keys_are_alphanumeric_and_underscore(key, safe):
    assert annotation_key(key) == safe


def test_subsegment_names_are_the_component_or_the_operation_and_x_ray_safe():
    assert subsegment_name("haystack.pipeline.run", {}) == "haystack.pipeline.run"
    assert subsegment_name("haystack.component.run", {"haystack.component.name": "bm25"}) == "haystack.component.bm25"
    assert subsegment_name("haystack.component.run", {"haystack.component.name": "a(b)!"}) == "haystack.component.a_b__"
    assert len(subsegment_name("op", {"haystack.component.name": "x" * 500})) == 200


class RecordingSpan(haystack_tracing.Span):
    def __init__(self, tags):
        self.tags = tags

    def set_tag(self, key, value):
        self.tags[key] = value


class RecordingTracer(haystack_tracing.Tracer):
    def __init__(self):
        self.spans = []

    @contextlib.contextmanager
    def trace(self, operation_name, tags=None, parent_span=None):
        span = RecordingSpan(dict(tags or {}))
        self.spans.append(span)
        yield span

    def current_span(self):
        return self.spans[-1] if self.spans else None


@pytest.mark.parametrize("allowed", [False, True])
def test_the_content_guard_drops_content_tags_unless_allowed(monkeypatch, allowed):
    monkeypatch.setattr(haystack_tracing.tracer, "is_content_tracing_enabled", allowed)
    inner = RecordingTracer()
    guard = ContentGuard(inner)
    tags = {"haystack.pipeline.input_data": {"query": "secret"}, "haystack.pipeline.metadata": {}}
    with guard.trace("haystack.pipeline.run", tags=tags) as span:
        span.set_tag("haystack.component.output", "answer")
        span.set_content_tag("haystack.pipeline.output_data", "answer")
        span.set_tag("haystack.component.visits", 1)
    recorded = inner.spans[0].tags
    assert "haystack.pipeline.metadata" in recorded and "haystack.component.visits" in recorded
    assert (set(recorded) & CONTENT_TAGS != set()) is allowed
    assert guard.current_span().raw_span() is inner.spans[0]
