"""The README's promise on the real default corpus, through the same server `make run` starts."""

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def served(full_snapshot, tmp_path_factory):
    """`uvicorn handlers.api:app` (what `make run` runs) on a free loopback port, default settings."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"GENERATOR", "STORE_SNAPSHOT_URI", "PIPELINES_DIR"}}
    env.update(
        PYTHONPATH=str(ROOT / "src"), HAYSTACK_TELEMETRY_ENABLED="False", HOME=str(tmp_path_factory.mktemp("home"))
    )
    log = tmp_path_factory.mktemp("log") / "server.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "handlers.api:app", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited: {log.read_text()}")
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    else:
        process.kill()
        pytest.fail(f"server did not start: {log.read_text()}")
    yield base
    process.terminate()
    process.wait(10)


def test_parse_json_query_returns_the_json_docs_first(served):
    # Sent exactly like `curl -d '{"text":"how do I parse JSON"}'` (form-encoded content type).
    response = httpx.post(
        f"{served}/query",
        content=b'{"text":"how do I parse JSON"}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    modules = [d["meta"]["module"] for d in response.json()["documents"]]
    assert modules[0] == "json" or modules[0].startswith("json.")
    assert sum(m == "json" or m.startswith("json.") for m in modules) >= 4, modules


def test_default_server_is_ready_over_the_whole_standard_library(served):
    body = httpx.get(f"{served}/ready", timeout=10).json()
    assert body["status"] == "ready"
    store = next(c for c in body["checks"] if c["name"] == "store")
    count = int(store["detail"].split()[0])
    assert count > 5000  # the whole standard library, not a slice
