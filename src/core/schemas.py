"""API models shared by the routes: documents, chat messages, filters, errors, query."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_TOP_K = 50
MAX_FILTER_DEPTH = 5


class Strict(BaseModel):
    """Base for request models: unknown fields are rejected."""

    # strict: `true`, "5" or 5.0 are not a `top_k` of 1 or 5 (lax mode would coerce them)
    model_config = ConfigDict(extra="forbid", strict=True)


class DocumentOut(BaseModel):
    """A retrieved document."""

    id: str = Field(description="Stable document id.")
    content: str | None = Field(description="The chunk's text.")
    score: float | None = Field(default=None, description="Relevance score given by the pipeline (higher is better).")
    meta: dict[str, Any] = Field(default_factory=dict, description="Metadata, e.g. `module` for the default corpus.")


class DocumentIn(Strict):
    """A document passed to a pipeline."""

    content: str = Field(description="Text of the document.")
    meta: dict[str, Any] = Field(default_factory=dict, description="Metadata.")
    id: str | None = Field(default=None, description="Id; derived from content and meta when absent.")


class ChatMessageIO(Strict):
    """A chat message (input or output)."""

    role: Literal["user", "assistant", "system"] = Field(description="Who speaks.")
    text: str | None = Field(description="The message text.")
    meta: dict[str, Any] = Field(default_factory=dict, description="Generator metadata (model, usage, ...).")


Operator = Literal["==", "!=", ">", ">=", "<", "<=", "in", "not in"]


class Comparison(Strict):
    """One condition: ``{"field": "meta.module", "operator": "==", "value": "json"}``."""

    field: str = Field(
        pattern=r"^(content|id|meta(\.[A-Za-z0-9_\-]+)+)$", description="`meta.<key>`, `content` or `id`."
    )
    operator: Operator
    value: Any = Field(description="Value to compare with (a list for `in` / `not in`).")


class Logic(Strict):
    """Conditions joined by ``AND`` / ``OR`` / ``NOT``."""

    operator: Literal["AND", "OR", "NOT"]
    conditions: list[Comparison | Logic] = Field(min_length=1, max_length=32)


Filters = Annotated[
    Comparison | Logic,
    Field(description="Haystack metadata filter (https://docs.haystack.deepset.ai/docs/metadata-filtering)."),
]


def filter_depth(node: Comparison | Logic) -> int:
    """Nesting depth of a filter (a single comparison has depth 1)."""
    if isinstance(node, Comparison):
        return 1
    return 1 + max(filter_depth(c) for c in node.conditions)


class QueryRequest(Strict):
    """``POST /query`` body."""

    text: str = Field(min_length=1, description="The question or keywords.", examples=["how do I parse JSON"])
    top_k: int | None = Field(default=None, ge=1, le=MAX_TOP_K, description="Documents to return (1-50).")
    filters: Filters | None = None

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @field_validator("filters")
    @classmethod
    def _shallow(cls, value: Comparison | Logic | None) -> Comparison | Logic | None:
        if value is not None and filter_depth(value) > MAX_FILTER_DEPTH:
            raise ValueError(f"nested deeper than {MAX_FILTER_DEPTH} levels")
        return value


class QueryResponse(BaseModel):
    """``POST /query`` answer."""

    query: str = Field(description="The query text as received.")
    answer: str | None = Field(description="Generated answer (`rag`), or null when only retrieval ran.")
    documents: list[DocumentOut]
    pipeline: str = Field(description="Which pipeline answered: `rag` or `search`.")
    cached: bool = Field(description="Whether the result came from a cache.")
    execution_time_ms: float = Field(description="Time spent in the pipeline, milliseconds.")


class ErrorDetail(BaseModel):
    """What went wrong."""

    code: str = Field(description="Machine-readable error code, e.g. `validation_error`.")
    message: str = Field(description="Human-readable explanation.")
    request_id: str = Field(description="Request id (API Gateway's, or generated locally).")


class ErrorBody(BaseModel):
    """Body of every 4xx/5xx response."""

    error: ErrorDetail
