"""The offline embedder: real WordLlama weights from the installed wheel, no download."""

import numpy as np

from core.components.embedders import StaticDocumentEmbedder, StaticTextEmbedder
from core.components.wordllama import StaticEmbeddingModel


def test_embeddings_are_unit_vectors_of_the_model_dimension():
    model = StaticEmbeddingModel.load()
    vectors = model.embed(["parse a JSON document", "compress files with gzip", ""])
    assert vectors.shape == (3, 256)
    assert np.allclose(np.linalg.norm(vectors[:2], axis=1), 1.0, atol=1e-5)
    assert not vectors[2].any()  # empty text: zero vector, no NaN
    assert model.embed([]).shape == (0, 256)


def test_related_texts_are_closer_than_unrelated_ones():
    model = StaticEmbeddingModel.load()
    query, related, unrelated = model.embed(["how do I parse JSON", "decode JSON text into objects", "play a sound"])
    assert query @ related > query @ unrelated + 0.1


def test_batches_give_the_same_vectors_as_single_texts():
    model = StaticEmbeddingModel.load()
    texts = ["alpha beta", "a much longer sentence about regular expressions and matching", "x"]
    together = model.embed(texts)
    alone = np.vstack([model.embed([t]) for t in texts])
    assert np.allclose(together, alone, atol=1e-6)


def test_components_embed_queries_and_documents():
    from haystack import Document

    query = StaticTextEmbedder().run(text="parse JSON")["embedding"]
    assert len(query) == 256
    docs = StaticDocumentEmbedder(meta_fields_to_embed=["module"], batch_size=1).run(
        documents=[Document(content="loads", meta={"module": "json"}), Document(content="reader")]
    )["documents"]
    assert all(len(d.embedding) == 256 for d in docs)
    assert StaticDocumentEmbedder().to_dict()["init_parameters"]["model"] == "l2_supercat_256"
