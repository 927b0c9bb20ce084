"""The indexing pipeline: each converter on a small real file, ids, meta, types, and the YAML's place."""

from pathlib import Path

import pytest
import yaml

from core.components.converters import html_to_text
from core.corpus.build import SPLIT_OVERLAP, SPLIT_WORDS
from core.ingestion.pipeline import ConversionError, IndexingPipeline, UnsupportedTypeError, chunk_id
from core.pipelines.loader import PipelineLoadError, load_pipelines
from core.store.base import SourceRef
from tests.ingestion_files import SAMPLES, tiny_pdf

ROOT = Path(__file__).resolve().parents[2]
YAML = ROOT / "pipelines" / "indexing" / "indexing.yml"
SOURCE = SourceRef(bucket="docs", key="acme/file", version="v1", tenant="acme")


@pytest.fixture(scope="module")
def indexing() -> IndexingPipeline:
    return IndexingPipeline.load(YAML)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_each_converter_reads_a_small_real_file(indexing, name):
    data, phrase = SAMPLES[name]
    chunks = indexing.convert(data, f"acme/{name}", None, SOURCE)
    assert len(chunks) == 1
    assert phrase in chunks[0].content
    assert len(chunks[0].embedding) == 256
    assert {k: chunks[0].meta[k] for k in SOURCE.meta()} == SOURCE.meta()


def test_long_text_is_split_into_overlapping_word_windows(indexing):
    words = [f"w{i}" for i in range(1000)]
    chunks = indexing.convert(" ".join(words).encode(), "long.txt", None, SOURCE)
    assert len(chunks) == 6  # ceil((1000 - 30) / (200 - 30))
    assert chunks[0].content.split()[-SPLIT_OVERLAP:] == chunks[1].content.split()[:SPLIT_OVERLAP]
    assert not {"_split_overlap", "source_id", "split_idx_start"} & set(chunks[0].meta)


def test_chunk_ids_are_stable_for_a_version_and_change_with_it(indexing):
    data = b"Same bytes, same ids. " * 300
    first = [c.id for c in indexing.convert(data, "a.txt", None, SOURCE)]
    again = [c.id for c in indexing.convert(data, "a.txt", None, SOURCE)]
    newer = [c.id for c in indexing.convert(data, "a.txt", None, SourceRef("docs", "acme/file", "v2", "acme"))]
    assert first == again
    assert len(set(first)) == len(first)
    assert set(first).isdisjoint(newer)
    assert first[0] == chunk_id(SOURCE, 0, indexing.convert(data, "a.txt", None, SOURCE)[0].content)


@pytest.mark.parametrize(
    ("data", "key"),
    [
        (b"%PDF-1.4 truncated", "broken.pdf"),
        (tiny_pdf("cut short")[:60], "cut.pdf"),
        (b"[1, 2, 3]", "list.json"),
        (b'{"title": "no content key"}', "nocontent.json"),
        (b"\xff\xfe\x00 not utf-8 \xc3", "latin.txt"),
    ],
)
def test_an_unreadable_object_is_a_conversion_error(indexing, data, key):
    with pytest.raises(ConversionError):
        indexing.convert(data, key, None, SOURCE)


def test_empty_objects_and_blank_text_give_no_chunks(indexing):
    assert indexing.convert(b"", "empty.pdf", None, SOURCE) == []
    assert indexing.convert(b"   \n\n  ", "blank.txt", None, SOURCE) == []


def test_the_type_comes_from_the_extension_else_the_content_type(indexing):
    assert indexing.media_type("a/b.MD", "binary/octet-stream") == "text/markdown"
    assert indexing.media_type("a/b.htm", None) == "text/html"
    assert indexing.media_type("a/README", "text/plain; charset=utf-8") == "text/plain"
    assert indexing.media_type("a/photo.png", "image/png") is None
    assert indexing.media_type("a/noext", None) is None
    with pytest.raises(UnsupportedTypeError):
        indexing.convert(b"\x89PNG", "photo.png", None, SOURCE)


def test_a_declared_charset_decodes_the_text(indexing):
    (chunk,) = indexing.convert("Café crème".encode("latin-1"), "menu", "text/plain; charset=latin-1", SOURCE)
    assert chunk.content == "Café crème"


def test_html_text_keeps_blocks_and_drops_what_never_is_content():
    text, title = html_to_text(
        "<html><head><title> My  Page </title><script>x()</script></head>"
        "<body><h1>Head</h1><p>One &amp; two</p><div>Three<br>Four</div><style>p{}</style></body></html>"
    )
    assert title == "My Page"
    assert text == "Head\nOne & two\nThree\nFour"


def test_the_yaml_splits_like_the_default_corpus_and_never_by_sentence():
    components = yaml.safe_load(YAML.read_text())["components"]
    splitter = components["splitter"]["init_parameters"]
    assert splitter == {"split_by": "word", "split_length": SPLIT_WORDS, "split_overlap": SPLIT_OVERLAP}


def test_the_api_does_not_serve_the_indexing_pipeline_as_a_route(small_store):
    served = load_pipelines(ROOT / "pipelines", small_store.store, None, 100)
    assert "indexing" not in served
    assert set(served) == {p.stem for p in (ROOT / "pipelines").glob("*.yml")}


def test_a_pipeline_without_sources_and_documents_is_refused(tmp_path):
    other = tmp_path / "search.yml"
    other.write_text((ROOT / "pipelines" / "search.yml").read_text())
    with pytest.raises(PipelineLoadError, match="sources"):
        IndexingPipeline.load(other)
    with pytest.raises(PipelineLoadError, match="does not exist"):
        IndexingPipeline.load(tmp_path / "missing.yml")
