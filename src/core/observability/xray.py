"""``TRACING_BACKEND=xray``: Powertools ``Tracer`` around the handler, Haystack's spans as X-Ray subsegments.

``XRayHaystackTracer`` implements ``haystack.tracing.Tracer``: a pipeline run and each component run
open a subsegment under the current one (the handler's ``## handler`` on Lambda), so a trace shows
handler → ``haystack.pipeline.run`` → one subsegment per component, each with its time and errors.

Haystack's tag keys (``haystack.component.name``) are not valid X-Ray annotation keys (alphanumerics
and ``_`` only): they become ``haystack_component_name``. Short scalars are annotations (indexed,
filterable: ``annotation.haystack_component_name = "retriever"``); anything else — dicts, long text,
and content when ``HAYSTACK_CONTENT_TRACING_ENABLED`` lets it through ``ContentGuard`` — is metadata.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from typing import Any

from aws_lambda_powertools import Tracer
from haystack import tracing as haystack_tracing
from haystack.tracing import Span
from haystack.tracing import utils as tracing_utils

from core.settings import Settings

METADATA_NAMESPACE = "haystack"
# X-Ray keeps annotation strings short and indexes them; longer values are metadata.
ANNOTATION_MAX_CHARS = 250
# Names X-Ray accepts: letters, digits, spaces and _ . : / % & # = + \ - @ (at most 200 characters).
_UNSAFE_NAME = re.compile(r"[^\w .:/%&#=+\\\-@]")
_UNSAFE_KEY = re.compile(r"\W")
# Clients whose calls get their own subsegments: Bedrock, S3, SSM, Secrets Manager (botocore) and
# OpenAI-compatible servers (httpx). Patching every library the SDK knows would import them all at init.
PATCHED_MODULES = ("botocore", "httpx")


def annotation_key(key: str) -> str:
    """An X-Ray-safe annotation key: ``haystack.component.name`` → ``haystack_component_name``."""
    return _UNSAFE_KEY.sub("_", key)


def subsegment_name(operation_name: str, tags: dict[str, Any] | None) -> str:
    """``haystack.pipeline.run``, or the component's name for ``haystack.component.run``."""
    component = (tags or {}).get("haystack.component.name")
    name = f"haystack.component.{component}" if component else operation_name
    return _UNSAFE_NAME.sub("_", name)[:200]


class XRaySpan(Span):
    """A Haystack span over one X-Ray subsegment (or nothing, where X-Ray has no open segment)."""

    def __init__(self, subsegment: Any) -> None:
        self._subsegment = subsegment

    def set_tag(self, key: str, value: Any) -> None:
        """Annotation for a short scalar, metadata for anything else."""
        if self._subsegment is None:
            return
        safe = annotation_key(key)
        if isinstance(value, bool | int | float) or (isinstance(value, str) and len(value) <= ANNOTATION_MAX_CHARS):
            self._subsegment.put_annotation(safe, value)
        else:
            self._subsegment.put_metadata(safe, tracing_utils.coerce_tag_value(value), METADATA_NAMESPACE)

    def raw_span(self) -> Any:
        """The X-Ray subsegment."""
        return self._subsegment

    def get_correlation_data_for_logs(self) -> dict[str, Any]:
        """The trace id, for log lines written inside the span."""
        trace_id = getattr(self._subsegment, "trace_id", None)
        return {"xray_trace_id": trace_id} if trace_id else {}


class XRayHaystackTracer(haystack_tracing.Tracer):
    """Haystack spans as X-Ray subsegments of the recorder's current segment.

    Example:
        >>> from aws_xray_sdk.core import xray_recorder
        >>> haystack.tracing.enable_tracing(XRayHaystackTracer(xray_recorder))
    """

    def __init__(self, recorder: Any) -> None:
        self._recorder = recorder

    @contextlib.contextmanager
    def trace(
        self,
        operation_name: str,
        tags: dict[str, Any] | None = None,
        parent_span: Span | None = None,  # unused: X-Ray nests under the current subsegment
    ) -> Iterator[Span]:
        """Open a subsegment named after the operation (or the component) for the block."""
        with self._recorder.in_subsegment(subsegment_name(operation_name, tags)) as subsegment:
            span = XRaySpan(subsegment)
            span.set_tag("haystack.operation", operation_name)
            if tags:
                span.set_tags(tags)
            yield span

    def current_span(self) -> Span | None:
        """The innermost open subsegment as a span, or ``None`` outside any."""
        entity = self._recorder.get_trace_entity() if self._recorder.is_sampled() else None
        return XRaySpan(entity) if entity is not None else None


class XRayTracing:
    """The ``xray`` backend: Powertools ``Tracer`` for the handler, ``XRayHaystackTracer`` for Haystack."""

    backend = "xray"

    def __init__(self, settings: Settings, tracer: Tracer | None = None) -> None:
        self.tracer = tracer or Tracer(service=settings.powertools_service_name, patch_modules=PATCHED_MODULES)
        self.haystack_tracer = XRayHaystackTracer(self.tracer.provider)

    def lambda_handler(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        """``## handler`` subsegment per invocation, with the ``ColdStart`` and ``Service`` annotations.

        Responses are not captured as metadata: they hold documents and answers (user content).
        """
        return self.tracer.capture_lambda_handler(handler, capture_response=False)

    def annotate(self, values: dict[str, str | int | float | bool]) -> None:
        """Annotate the current subsegment (the handler's), under X-Ray-safe keys."""
        for key, value in values.items():
            self.tracer.put_annotation(annotation_key(key), value)
