"""Offline text embeddings from WordLlama's token-embedding matrix.

WordLlama is a static embedding model: each token has one vector; a text's embedding is the mean of
its tokens' vectors, L2-normalised. The ``wordllama`` wheel ships the weights and the tokenizer, so
nothing is downloaded. The model is run here with ``tokenizers`` and ``numpy`` only, without
importing ``wordllama`` itself (its import configures logging and pulls packages we do not need),
which keeps the code identical on x86_64 and arm64.

Example:
    >>> model = StaticEmbeddingModel.load()
    >>> model.embed(["parse JSON", "decode a JSON document"]).shape
    (2, 256)
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

DEFAULT_MODEL = "l2_supercat_256"
_TOKENIZER_FILES = {"l2_supercat": "l2_supercat_tokenizer_config.json"}


class ModelNotFoundError(RuntimeError):
    """The model's weights or tokenizer are not installed."""


def wordllama_package_dir() -> Path:
    """Directory of the installed ``wordllama`` package, found without importing it."""
    spec = importlib.util.find_spec("wordllama")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError("the 'wordllama' package (which ships the weights) is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


class StaticEmbeddingModel:
    """A token-embedding matrix plus its tokenizer; embeds texts by mean pooling.

    Args:
        weights: ``(vocabulary, dim)`` matrix.
        tokenizer: A ``tokenizers.Tokenizer`` whose ids index ``weights``.
        name: Model name, kept for provenance (snapshots record it).
    """

    def __init__(self, weights: np.ndarray, tokenizer: Tokenizer, name: str = DEFAULT_MODEL) -> None:
        self.weights = np.ascontiguousarray(weights, dtype=np.float32)
        self.tokenizer = tokenizer
        self.name = name

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return int(self.weights.shape[1])

    @classmethod
    def load(cls, name: str = DEFAULT_MODEL, package_dir: Path | None = None) -> StaticEmbeddingModel:
        """Load weights and tokenizer from the ``wordllama`` wheel's files.

        Args:
            name: ``<config>_<dim>``, e.g. ``l2_supercat_256``.
            package_dir: Where the files are; defaults to the installed ``wordllama`` package.

        Raises:
            ModelNotFoundError: The files are not there.
        """
        config = name.rsplit("_", 1)[0]
        root = package_dir or wordllama_package_dir()
        weights_path = root / "weights" / f"{name}.safetensors"
        tokenizer_path = root / "tokenizers" / _TOKENIZER_FILES.get(config, f"{config}_tokenizer_config.json")
        for path in (weights_path, tokenizer_path):
            if not path.is_file():
                raise ModelNotFoundError(f"embedding model file missing: {path}")
        tensors = load_file(str(weights_path))
        tokenizer = Tokenizer.from_file(str(tokenizer_path))
        tokenizer.no_padding()
        tokenizer.no_truncation()
        return cls(tensors["embedding.weight"], tokenizer, name=name)

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embed texts.

        Args:
            texts: Texts to embed; an empty text gets a zero vector.

        Returns:
            ``(len(texts), dim)`` float32 matrix of unit-length rows (zero rows for empty texts).
        """
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        encodings = self.tokenizer.encode_batch(texts, add_special_tokens=False)
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        ids = np.fromiter((i for e in encodings for i in e.ids), dtype=np.int64, count=int(lengths.sum()))
        ids = np.clip(ids, 0, self.weights.shape[0] - 1)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        nonempty = lengths > 0
        if ids.size:
            starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))[nonempty]
            out[nonempty] = np.add.reduceat(self.weights[ids], starts, axis=0) / lengths[nonempty, None]
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out
