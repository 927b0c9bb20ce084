"""The default corpus: standard library docs rendered by pydoc, deterministic, no side effects."""

from core.corpus.build import unique_chunks
from core.corpus.pydoc import SKIPPED_MODULES, clean_pydoc, render_module, stdlib_modules


def test_module_list_is_sorted_public_and_skips_side_effects():
    names = stdlib_modules(include_submodules=False)
    assert names == sorted(names)
    assert "json" in names
    assert not any(n.startswith("_") for n in names)
    assert not set(names) & SKIPPED_MODULES


def test_submodules_are_included_without_tests():
    names = stdlib_modules()
    assert "json.decoder" in names
    assert "xml.etree.ElementTree" in names
    assert not any(".test" in n or n.startswith("test") for n in names)


def test_rendering_gives_the_module_docs_without_machine_specific_paths():
    document = render_module("json")
    assert document.meta["module"] == "json"
    assert "json.loads" in document.content or "loads(s" in document.content
    assert "\nFILE\n" not in document.content
    assert "automatically generated" not in document.content
    assert render_module("json").id == document.id  # same text, same id: deterministic


def test_unimportable_module_is_skipped():
    assert render_module("no_such_module_anywhere") is None


def test_clean_pydoc_keeps_the_sections_after_file():
    text = "NAME\n    m\n\nFILE\n    /home/me/m.py\n\nDATA\n    x = 1\n"
    assert clean_pydoc(text) == "NAME\n    m\n\nDATA\n    x = 1\n"


def test_unique_chunks_drops_repeated_text():
    from haystack import Document

    chunks = [Document(content="same", meta={"module": "a"}), Document(content="same ", meta={"module": "b"})]
    assert [c.meta["module"] for c in unique_chunks(chunks)] == ["a"]
