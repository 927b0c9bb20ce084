"""The default corpus: the Python standard library reference, rendered by ``pydoc``.

The corpus is made from the interpreter that runs the build, so it needs no download and is the
same on every machine with the same Python version. Modules are rendered in sorted order, so the
output is deterministic.

Example:
    >>> from core.corpus.pydoc import render_module
    >>> render_module("json").meta["module"]
    'json'
"""

from __future__ import annotations

import contextlib
import importlib
import io
import pkgutil
import pydoc
import re
import sys
import warnings
from collections.abc import Iterable, Iterator

from haystack import Document

# Modules whose import has side effects (opens a browser, prints, starts a GUI) or that are
# platform shims without useful documentation.
SKIPPED_MODULES = frozenset(
    {
        "antigravity",
        "this",
        "idlelib",
        "tkinter",
        "turtle",
        "turtledemo",
        "pydoc_data",
        "msvcrt",
        "winreg",
        "winsound",
        "nt",
        "_msi",
        "msilib",
    }
)


def _public(name: str) -> bool:
    parts = name.split(".")
    return not any(p.startswith("_") or p in {"test", "tests", "idle_test"} for p in parts) and (
        parts[0] not in SKIPPED_MODULES
    )


def stdlib_modules(include_submodules: bool = True) -> list[str]:
    """Public standard library modules, sorted.

    Args:
        include_submodules: Also list the public submodules of packages (``json.decoder``,
            ``xml.etree.ElementTree``); finding them imports each package.

    Returns:
        Names from ``sys.stdlib_module_names`` (and their submodules) without private (``_``)
        parts, test packages, or the modules in ``SKIPPED_MODULES``.
    """
    names = {name for name in sys.stdlib_module_names if _public(name)}
    if include_submodules:
        for name in sorted(names):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    package = importlib.import_module(name)
            except BaseException:  # noqa: BLE001, S112 - not importable here: nothing to walk
                continue
            for info in pkgutil.walk_packages(getattr(package, "__path__", []), f"{name}.", onerror=lambda _: None):
                if _public(info.name):
                    names.add(info.name)
    return sorted(names)


def render_module(name: str) -> Document | None:
    """Render one module's documentation as a Haystack ``Document``.

    Args:
        name: Importable module name.

    Returns:
        The document, or ``None`` when the module cannot be imported here (any exception,
        including ``SystemExit``, is swallowed: some modules refuse to import on this platform).
    """
    sink = io.StringIO()
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(sink),
            contextlib.redirect_stderr(sink),
        ):
            warnings.simplefilter("ignore")
            text = pydoc.render_doc(name, renderer=pydoc.plaintext)
    except BaseException:  # noqa: BLE001 - a module that cannot import is skipped, whatever it raises
        return None
    return Document(
        content=clean_pydoc(text),
        meta={"module": name, "source": f"pydoc:{name}", "python": sys.version.split()[0]},
    )


_BOILERPLATE = re.compile(r"\n    The following documentation is automatically generated.*?listed above\.\n", re.DOTALL)
_FILE_SECTION = re.compile(r"\nFILE\n    .*?(?:\n(?=\S)|\Z)", re.DOTALL)


def clean_pydoc(text: str) -> str:
    """Drop what is the same in every module (the generated-docs notice) or machine-specific (FILE)."""
    text = _BOILERPLATE.sub("\n", text)
    return _FILE_SECTION.sub("\n", text).rstrip() + "\n"


def render_modules(names: Iterable[str]) -> Iterator[Document]:
    """Render each module that imports; skip the others."""
    for name in names:
        document = render_module(name)
        if document is not None:
            yield document
