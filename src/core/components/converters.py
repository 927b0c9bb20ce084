"""A light HTML-to-text converter on the standard library's ``html.parser`` (no new dependency).

Haystack's ``HTMLToDocument`` uses ``trafilatura``, which brings ~70 MB (lxml, dateparser, babel, …) into
a Lambda layer whose budget is 250 MB for everything. Documents an indexer receives are a team's own pages,
not web pages to strip of ads, so this converter keeps the text of every element but the ones that never
carry content (``script``, ``style``, ``template``, ``noscript``, ``svg``, ``head`` apart from ``title``),
turns block elements into line breaks, and puts ``<title>`` into ``meta["title"]``.

It behaves like Haystack's converters: a source that cannot be read is skipped with a warning.

Example (YAML):
    html:
      type: core.components.converters.HTMLTextConverter
"""

from __future__ import annotations

import logging
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from haystack import Document, component
from haystack.components.converters.utils import get_bytestream_from_source, normalize_metadata
from haystack.dataclasses import ByteStream

logger = logging.getLogger(__name__)

_SKIPPED = frozenset({"script", "style", "template", "noscript", "svg", "head", "iframe", "object"})
_BLOCKS = frozenset(
    {
        "p", "div", "section", "article", "main", "aside", "header", "footer", "nav", "br", "hr", "li", "ul", "ol",
        "dl", "dt", "dd", "table", "tr", "td", "th", "thead", "tbody", "pre", "blockquote", "figure", "figcaption",
        "h1", "h2", "h3", "h4", "h5", "h6", "form", "fieldset", "details", "summary", "address",
    }
)  # fmt: skip
_VOID = frozenset({"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "embed", "source", "wbr"})


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title: list[str] = []
        self._skip_depth = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in _SKIPPED and tag not in _VOID:
            self._skip_depth += 1
        if tag in _BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in _SKIPPED and self._skip_depth:
            self._skip_depth -= 1
        if tag in _BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title.append(data)
        elif not self._skip_depth:
            self.parts.append(data)


def html_to_text(html: str) -> tuple[str, str | None]:
    """The visible text of ``html`` (one line per block) and its ``<title>``, if any."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    lines = (re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in "".join(parser.parts).split("\n"))
    title = " ".join("".join(parser.title).split()) or None
    return "\n".join(line for line in lines if line), title


@component
class HTMLTextConverter:
    """Converts HTML sources to documents with the standard library's parser (see the module docstring).

    Args:
        encoding: Used when a source's ``meta`` names none (``encoding``).
    """

    def __init__(self, encoding: str = "utf-8") -> None:
        self.encoding = encoding

    @component.output_types(documents=list[Document])
    def run(
        self, sources: list[str | Path | ByteStream], meta: dict[str, Any] | list[dict[str, Any]] | None = None
    ) -> dict[str, list[Document]]:
        """Convert each source; the source's meta (and ``meta``) is kept, ``title`` added when the page has one.

        Returns:
            ``{"documents": [...]}``, one per source that could be read.
        """
        documents = []
        for source, extra in zip(sources, normalize_metadata(meta, sources_count=len(sources)), strict=True):
            try:
                stream = get_bytestream_from_source(source)
                text, title = html_to_text(stream.data.decode(stream.meta.get("encoding", self.encoding)))
            except Exception as exc:  # noqa: BLE001 - as Haystack's converters: skip what cannot be read, say why
                logger.warning("could not convert %s: %s", source, exc)
                continue
            merged = {**stream.meta, **extra}
            if title and "title" not in merged:
                merged["title"] = title
            documents.append(Document(content=text, meta=merged))
        return {"documents": documents}
