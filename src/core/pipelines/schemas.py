"""Wire models of pipeline inputs and outputs: documents, chat messages and metadata filters.

The pipeline contract (``core.pipelines.contract``) builds each pipeline's request and response models from
these; the routes' own bodies are in ``core.api.schemas``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.security.filters import MAX_FILTER_DEPTH

__all__ = ["MAX_FILTER_DEPTH", "MAX_TOP_K"]

MAX_TOP_K = 50


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
