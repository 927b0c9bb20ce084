"""The import-linter contracts of pyproject.toml (run by `make lint`): kept today, broken by a planted mistake."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(src: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        env={"PYTHONPATH": str(src), "PATH": ""},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def src_copy(tmp_path):
    copy = tmp_path / "src"
    shutil.copytree(ROOT / "src", copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def _plant(path: Path, line: str) -> None:
    path.write_text(path.read_text() + f"\n\ndef _planted() -> None:\n    {line}  # noqa\n")


def test_the_contracts_are_kept_on_the_source_tree():
    result = _lint(ROOT / "src")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


def test_a_back_import_breaks_the_layers_contract(src_copy):
    # A feature package reaching up into the API, even lazily inside a function.
    _plant(src_copy / "core" / "store" / "base.py", "import core.api.app")
    result = _lint(src_copy)
    assert result.returncode != 0
    assert "core.store.base -> core.api.app" in result.stdout


def test_a_cycle_inside_a_package_breaks_the_acyclic_contract(src_copy):
    # core.observability.otel imports core.observability.exceptions; the way back closes a cycle.
    _plant(src_copy / "core" / "observability" / "exceptions.py", "import core.observability.otel")
    result = _lint(src_copy)
    assert result.returncode != 0
    assert "no cycles between the modules of a package BROKEN" in result.stdout
