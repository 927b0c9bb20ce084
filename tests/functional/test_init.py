"""Container init: one structured line with per-stage timings, and nothing heavy that is not used."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Powertools imports the top of botocore (0.7 ms) to tag its user agent; its sessions and clients stay out.
HEAVY = [
    "boto3",
    "botocore.session",
    "aiobotocore",
    "openai",
    "aws_xray_sdk",
    "redis",
    "haystack_integrations",
    "opentelemetry.sdk",
]
PROBE = """
import json, sys
import handlers.api
print("MODULES=" + json.dumps(sorted(sys.modules)))
"""


def init_record(result: subprocess.CompletedProcess) -> dict:
    """The one JSON init line (Powertools' format, on stdout like every log line)."""
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{") and '"core.init"' in line]
    assert len(lines) == 1, result.stdout
    return lines[0]


def run_env(tmp_path) -> dict[str, str]:
    """The environment of a fresh handler process: the developer's shell cannot change the outcome."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GENERATOR", "OPENAI_", "AWS_", "TRACING_"))}
    env.update(PYTHONPATH=str(ROOT / "src"), HAYSTACK_TELEMETRY_ENABLED="False", HOME=str(tmp_path))
    return env


def run_init(env_overrides: dict, tmp_path) -> subprocess.CompletedProcess:
    env = {**run_env(tmp_path), **env_overrides}
    return subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT, check=False
    )


@pytest.fixture(scope="module")
def default_init(small_snapshot, tmp_path_factory):
    return run_init({"STORE_SNAPSHOT_URI": str(small_snapshot)}, tmp_path_factory.mktemp("home"))


def test_init_logs_one_structured_line_with_every_stage(default_init):
    assert default_init.returncode == 0, default_init.stderr
    record = init_record(default_init)
    assert (record["message"], record["level"], record["service"]) == ("init", "INFO", "haystack-serverless")
    assert (record["tracing"], record["version"]) == ("off", "local")
    timings = record["timings_ms"]
    stages = ("imports_ms", "settings_ms", "store_ms", "generator_ms", "pipelines_ms", "warm_up_ms")
    for stage in stages:
        assert timings[stage] >= 0, stage
    assert timings["total_ms"] >= sum(timings[s] for s in stages) * 0.99
    assert record["documents"] > 0
    assert record["pipelines"]["search"] == "ready"


def test_default_path_imports_nothing_heavy_it_does_not_use(default_init):
    modules = json.loads(default_init.stdout.split("MODULES=", 1)[1])
    assert "haystack" in modules  # the probe saw the real import
    assert not [m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)]


def test_bedrock_is_imported_only_when_chosen(small_snapshot, tmp_path):
    result = run_init(
        {
            "STORE_SNAPSHOT_URI": str(small_snapshot),
            "GENERATOR": "bedrock",
            "AWS_ACCESS_KEY_ID": "x",
            "AWS_SECRET_ACCESS_KEY": "x",
            "AWS_DEFAULT_REGION": "us-east-1",
        },
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    modules = json.loads(result.stdout.split("MODULES=", 1)[1])
    assert {"haystack_integrations", "boto3"} <= set(modules)
    assert "openai" not in modules


def test_a_layer_built_for_another_cpu_stops_init_with_one_line(tmp_path):
    from core.runtime.boot import check_layer_architecture

    (tmp_path / "haystack_serverless_layer.json").write_text('{"arch": "arm64", "python": "3.13"}')
    with pytest.raises(SystemExit) as stop:
        check_layer_architecture([str(tmp_path)], machine="x86_64")
    assert "built for arm64" in str(stop.value) and "ARCH=x86_64" in str(stop.value)
    check_layer_architecture([str(tmp_path)], machine="aarch64")  # the right CPU: no complaint
    check_layer_architecture([str(tmp_path / "elsewhere")], machine="x86_64")  # no layer: no complaint
