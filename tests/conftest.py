"""Shared fixtures: snapshots built from the real corpus, runtimes, and app clients."""

import os

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

import importlib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from core.api.app import create_app
from core.corpus.build import build_documents
from core.runtime.container import build_runtime
from core.settings import Settings, load_settings
from core.store.load import memory_store_from_snapshot
from core.store.snapshot import write_snapshot
from tests.support import HANDLER_ENV, forget_handler_module

ROOT = Path(__file__).resolve().parent.parent
FULL_SNAPSHOT = ROOT / "data" / "stdlib.snapshot"
# A slice of the standard library: enough neighbours that ranking means something, quick to build.
SMALL_CORPUS = ["json", "csv", "re", "pickle", "subprocess", "pathlib", "tomllib", "configparser", "marshal", "shutil"]


@pytest.fixture(scope="session")
def small_snapshot(tmp_path_factory) -> Path:
    """A real snapshot of a few stdlib modules (rendered, split, embedded like `make index`)."""
    path = tmp_path_factory.mktemp("snap") / "small.snapshot"
    write_snapshot(str(path), build_documents(SMALL_CORPUS), "l2_supercat_256")
    return path


@pytest.fixture(scope="session")
def full_snapshot() -> Path:
    """The default corpus snapshot `make index` builds (built here when missing)."""
    if not FULL_SNAPSHOT.exists():
        write_snapshot(str(FULL_SNAPSHOT), build_documents(), "l2_supercat_256")
    return FULL_SNAPSHOT


@pytest.fixture(scope="session")
def small_store(small_snapshot):
    """The small snapshot loaded once per session."""
    return memory_store_from_snapshot(str(small_snapshot))


@pytest.fixture
def make_settings(small_snapshot, monkeypatch):
    """Settings from a clean environment plus overrides (the small snapshot by default)."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)

    def factory(**overrides) -> Settings:
        overrides.setdefault("store_snapshot_uri", str(small_snapshot))
        return load_settings(**overrides)

    return factory


@pytest.fixture
def make_client(make_settings, small_store):
    """Build an app client: `make_client(generator_factory=..., **settings)`."""

    def factory(chat_generator_factory=None, store=None, **overrides) -> TestClient:
        settings = make_settings(**overrides)
        kwargs = {"store": store or small_store}
        if chat_generator_factory is not None:
            kwargs["chat_generator_factory"] = chat_generator_factory
        runtime = build_runtime(settings, **kwargs)
        return TestClient(create_app(runtime), raise_server_exceptions=False)

    return factory


@pytest.fixture
def client(make_client) -> TestClient:
    """The app with default settings (GENERATOR=none) over the small snapshot."""
    return make_client()


@pytest.fixture(scope="module")
def api(small_snapshot):
    """`handlers.api` imported fresh, as Lambda's init does: the small snapshot, no generator."""
    with pytest.MonkeyPatch.context() as mp:
        for name in HANDLER_ENV:
            mp.delenv(name, raising=False)
        mp.setenv("STORE_SNAPSHOT_URI", str(small_snapshot))
        mp.setenv("GENERATOR", "none")
        forget_handler_module()
        try:
            yield importlib.import_module("handlers.api")
        finally:
            forget_handler_module()
