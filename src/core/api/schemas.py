"""Bodies of the routes' own requests and answers: ``POST /query`` and the error body."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from core.pipelines.schemas import (
    MAX_FILTER_DEPTH,
    MAX_TOP_K,
    Comparison,
    DocumentOut,
    Filters,
    Logic,
    Strict,
    filter_depth,
)


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
