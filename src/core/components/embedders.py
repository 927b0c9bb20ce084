"""Haystack embedder components backed by ``core.components.wordllama.StaticEmbeddingModel`` (offline).

Example (YAML):
    text_embedder:
      type: core.components.embedders.StaticTextEmbedder
      init_parameters: {model: l2_supercat_256}
"""

from __future__ import annotations

from dataclasses import replace

from haystack import Document, component, default_to_dict

from core.components.wordllama import DEFAULT_MODEL, StaticEmbeddingModel

# One loaded model per name per process: pipelines and the indexer share it.
_MODELS: dict[str, StaticEmbeddingModel] = {}


def _model(name: str) -> StaticEmbeddingModel:
    if name not in _MODELS:
        _MODELS[name] = StaticEmbeddingModel.load(name)
    return _MODELS[name]


@component
class StaticTextEmbedder:
    """Embeds a query text with a static (WordLlama) embedding model.

    Args:
        model: Model name, e.g. ``l2_supercat_256``.
    """

    # In-process and ~0.3 ms: cheaper to compute than to fetch from Redis (core.cache.embeddings).
    cache_outputs = False

    def __init__(self, model: str = DEFAULT_MODEL) -> None:
        self.model = model
        self._embedding_model: StaticEmbeddingModel | None = None

    def warm_up(self) -> None:
        """Load the model (once per process)."""
        if self._embedding_model is None:
            self._embedding_model = _model(self.model)

    def to_dict(self) -> dict:
        """Serialise for YAML."""
        return default_to_dict(self, model=self.model)

    @component.output_types(embedding=list[float])
    def run(self, text: str) -> dict:
        """Embed ``text``.

        Returns:
            ``{"embedding": list[float]}``.
        """
        self.warm_up()
        return {"embedding": self._embedding_model.embed([text])[0].tolist()}


@component
class StaticDocumentEmbedder:
    """Embeds documents' content (optionally prefixed by meta fields) with a static model.

    Args:
        model: Model name, e.g. ``l2_supercat_256``.
        meta_fields_to_embed: Meta fields whose values are embedded before the content.
        batch_size: Documents per tokenizer batch.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        meta_fields_to_embed: list[str] | None = None,
        batch_size: int = 256,
    ) -> None:
        self.model = model
        self.meta_fields_to_embed = meta_fields_to_embed or []
        self.batch_size = batch_size
        self._embedding_model: StaticEmbeddingModel | None = None

    def warm_up(self) -> None:
        """Load the model (once per process)."""
        if self._embedding_model is None:
            self._embedding_model = _model(self.model)

    def to_dict(self) -> dict:
        """Serialise for YAML."""
        return default_to_dict(
            self, model=self.model, meta_fields_to_embed=self.meta_fields_to_embed, batch_size=self.batch_size
        )

    def _text(self, document: Document) -> str:
        parts = [str(document.meta[f]) for f in self.meta_fields_to_embed if document.meta.get(f) is not None]
        return "\n".join([*parts, document.content or ""])

    @component.output_types(documents=list[Document])
    def run(self, documents: list[Document]) -> dict:
        """Return copies of ``documents`` with ``embedding`` set."""
        self.warm_up()
        embedded: list[Document] = []
        for start in range(0, len(documents), self.batch_size):
            batch = documents[start : start + self.batch_size]
            vectors = self._embedding_model.embed([self._text(d) for d in batch])
            embedded.extend(replace(d, embedding=v.tolist()) for d, v in zip(batch, vectors, strict=True))
        return {"documents": embedded}
