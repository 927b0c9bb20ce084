"""The readiness checklist: each check passing and failing, `python -m core.readiness` end to end, and /ready.

Real components where a user would have them: redis-server processes (tests/redis_fixtures.py), S3,
Secrets Manager and SSM through moto, an OpenAI-compatible HTTP server on loopback, the CLI in a
subprocess. Nothing leaves 127.0.0.1.
"""

import io
import json
import logging
import os
import platform
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from core.api.app import create_app
from core.observability.logs import CHATTY_LOGGERS, configure_logging
from core.readiness import CHECKS, Context, prepare, run_checklist, run_checks
from core.readiness.__main__ import main
from core.readiness.base import evaluate
from core.runtime.container import build_runtime
from core.settings import Settings
from core.store.base import LoadedStore
from core.store.embedded import EmbeddedDocumentStore
from tests.redis_servers import RedisServer
from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]
QUIET = {"HAYSTACK_TELEMETRY_ENABLED": "False"}  # the environment of a well-configured process
SETTING_VARS = {name.upper() for name in Settings.model_fields}


# --- helpers -----------------------------------------------------------------------------------------


def run_one(name: str, context: Context):
    """The results of the one check called ``name`` (with its criticality applied)."""
    return evaluate(context, tuple(c for c in CHECKS if c.name == name))


def only(name: str, context: Context):
    results = run_one(name, context)
    assert len(results) == 1, results
    return results[0]


def by_name(results) -> dict:
    return {r["name"] if isinstance(r, dict) else r.name: r for r in results}


def cli_env(tmp_path, snapshot, **overrides) -> dict[str, str]:
    """A fresh process's environment: no setting, AWS or Powertools variable of the developer's shell."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k.upper() not in SETTING_VARS and not k.startswith(("AWS_", "POWERTOOLS_", "OTEL_"))
    }
    env.update(
        PYTHONPATH=str(ROOT / "src"),
        HAYSTACK_TELEMETRY_ENABLED="False",
        HOME=str(tmp_path),
        PYTHONIOENCODING="utf-8",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=str(tmp_path / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-aws-credentials"),
        STORE_SNAPSHOT_URI=str(snapshot),
    )
    env.update(overrides)
    return env


def run_cli(env: dict[str, str], *args: str, code: str | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", code] if code else [sys.executable, "-m", "core.readiness", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, cwd=ROOT, check=False)


def report_lines(stdout: str) -> dict[str, str]:
    """``name → symbol`` of each check line of a text report."""
    lines = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in {"✓", "⚠", "✗"}:
            lines[parts[1]] = parts[0]
    return lines


@pytest.fixture(autouse=True)
def restore_logging():
    """Undo configure_logging (root handlers and levels): several tests configure it, as init does."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, {n: logging.getLogger(n).level for n in CHATTY_LOGGERS})
    yield
    root.handlers, root.level = saved[0], saved[1]
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture
def aws(monkeypatch):
    """Fake credentials and moto for S3, Secrets Manager and SSM."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield


@pytest.fixture
def no_aws_credentials(monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def cli_settings(make_settings, monkeypatch, small_snapshot):
    """The process environment main() reads: clean (make_settings cleared it), the small snapshot."""
    monkeypatch.setenv("STORE_SNAPSHOT_URI", str(small_snapshot))
    monkeypatch.setenv("HAYSTACK_TELEMETRY_ENABLED", "False")
    return monkeypatch


@pytest.fixture(scope="module")
def models_server():
    """An OpenAI-compatible server's ``GET /v1/models`` on loopback."""

    class Models(BaseHTTPRequestHandler):
        def do_GET(self):
            status = 200 if self.path == "/v1/models" else 404
            body = json.dumps({"object": "list", "data": [{"id": "tiny", "object": "model"}]}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Models)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    thread.join(5)


# --- configuration -----------------------------------------------------------------------------------


def test_default_settings_are_valid_with_no_finding(make_settings):
    results = run_one("configuration", Context(make_settings(), environ=QUIET))
    assert [(r.name, r.severity) for r in results] == [("configuration", "ok")]
    assert "GENERATOR=none" in results[0].detail
    assert "not on Lambda" in results[0].detail


def test_invalid_settings_are_one_critical_line():
    context = Context(None, settings_error="invalid settings: LOG_LEVEL: Input should be 'DEBUG' (got 'LOUD')")
    result = only("configuration", context)
    assert (result.ok, result.severity) == (False, "critical")
    assert result.detail.startswith("invalid settings: LOG_LEVEL")
    assert result.recommendation


LAMBDA = {**QUIET, "AWS_LAMBDA_FUNCTION_NAME": "api", "AWS_XRAY_DAEMON_ADDRESS": "169.254.79.129:2000"}
SERVERLESS = "rediss://cache-abc123.serverless.use1.cache.amazonaws.com:6379"


@pytest.mark.parametrize(
    ("overrides", "environ", "finding", "severity"),
    [
        ({"log_level": "DEBUG"}, QUIET, "configuration.log_level", "warning"),
        ({"powertools_logger_sample_rate": 0.5}, QUIET, "configuration.powertools_logger_sample_rate", "warning"),
        ({"log_query_text": True}, QUIET, "configuration.log_query_text", "warning"),
        (
            {"haystack_content_tracing_enabled": True, "tracing_backend": "xray"},
            QUIET,
            "configuration.haystack_content_tracing_enabled",
            "warning",
        ),
        ({"cache_ttl_results_s": 0}, QUIET, "configuration.cache_ttl_results_s", "warning"),
        (
            {"redis_url": SERVERLESS.replace("rediss://", "redis://"), "redis_cluster": True},
            QUIET,
            "configuration.redis_url",
            "critical",
        ),
        ({"redis_url": SERVERLESS}, QUIET, "configuration.redis_url", "critical"),  # cluster mode off
        ({"redis_url": "redis://10.0.0.5:6379", "redis_cluster": True}, QUIET, "configuration.redis_url", "warning"),
        ({"redis_url": "redis://10.0.0.5:6379"}, LAMBDA, "configuration.redis_url", "warning"),
        (
            {"redis_url": "rediss://10.0.0.5:6379", "redis_tls_ca_file": "/nonexistent/ca.pem"},
            QUIET,
            "configuration.redis_tls_ca_file",
            "critical",
        ),
        ({"redis_auth_secret": "ssm:/cache/auth"}, QUIET, "configuration.redis_auth_secret", "warning"),
        (
            {
                "generator": "openai",
                "openai_base_url": "http://llm.internal:8000/v1",
                "openai_model": "m",
                "openai_api_key": "sk-x",
            },
            QUIET,
            "configuration.openai_base_url",
            "warning",
        ),
        ({}, LAMBDA, "configuration.tracing_backend", "warning"),
        ({"powertools_metrics_disabled": True}, QUIET, "configuration.powertools_metrics_disabled", "warning"),
        (
            {"powertools_metrics_disabled": True, "tracing_backend": "xray"},
            LAMBDA,
            "configuration.powertools_metrics_disabled",
            "critical",
        ),
        (
            {"powertools_dev": True, "tracing_backend": "xray"},
            LAMBDA,
            "configuration.powertools_metrics_disabled",
            "critical",
        ),
        ({"powertools_dev": True, "tracing_backend": "xray"}, LAMBDA, "configuration.powertools_dev", "warning"),
        ({}, {}, "configuration.haystack_telemetry_enabled", "warning"),
    ],
)
def test_risky_settings_are_reported_with_their_severity(make_settings, overrides, environ, finding, severity):
    results = by_name(run_one("configuration", Context(make_settings(**overrides), environ=environ)))
    assert results["configuration"].severity == "ok"  # valid settings; the finding is separate
    assert finding in results, list(results)
    assert results[finding].severity == severity
    assert results[finding].recommendation


@pytest.mark.parametrize(
    ("overrides", "environ"),
    [
        # TLS and cluster mode: right for Serverless; tenants from a registry, rate limits in that Redis
        ({"redis_url": SERVERLESS, "redis_cluster": True, "tenant_registry": "ssm:/hs/tenants"}, LAMBDA),
        ({"redis_url": "redis://127.0.0.1:6379"}, QUIET),  # plain text on a developer's machine: fine
        ({"haystack_content_tracing_enabled": True}, QUIET),  # no backend: the switch has no effect
        (
            {
                "generator": "openai",
                "openai_base_url": "http://127.0.0.1:11434/v1",
                "openai_model": "m",
                "openai_api_key": "k",
            },
            QUIET,
        ),
        ({"powertools_dev": True, "powertools_metrics_disabled": False}, QUIET),  # make run's combination
    ],
)
def test_safe_variants_of_those_settings_have_no_finding(make_settings, overrides, environ):
    names = [r.name for r in run_one("configuration", Context(make_settings(**overrides), environ=environ))]
    expected = ["configuration"] + (["configuration.tracing_backend"] if "AWS_LAMBDA_FUNCTION_NAME" in environ else [])
    assert names == expected


@pytest.mark.parametrize(
    ("overrides", "finding", "severity"),
    [
        ({}, "configuration.tenant_registry", "critical"),  # one tenant for every caller on Lambda
        ({"tenant_registry": "ssm:/hs/tenants"}, "configuration.rate_limit", "warning"),  # no Redis: no limits
    ],
)
def test_tenancy_on_lambda_is_checked(make_settings, overrides, finding, severity):
    results = by_name(run_one("configuration", Context(make_settings(**overrides), environ=LAMBDA)))
    assert results[finding].severity == severity


def test_the_summary_never_shows_a_redis_password(make_settings):
    settings = make_settings(redis_url="rediss://default:hunter2@10.0.0.5:6380")
    detail = only("configuration", Context(settings, environ=QUIET)).detail
    assert "hunter2" not in detail
    assert "rediss://10.0.0.5:6380" in detail


# --- dependencies ------------------------------------------------------------------------------------


def test_dependencies_of_the_enabled_features_import(make_settings):
    settings = make_settings(redis_url="redis://127.0.0.1:6379", tracing_backend="xray", generator="bedrock")
    result = only("dependencies", Context(settings, environ=QUIET))
    assert result.severity == "ok"
    for feature in ("REDIS_URL: redis", "TRACING_BACKEND=xray: aws-xray-sdk", "GENERATOR=bedrock: amazon-bedrock"):
        assert feature in result.detail


def test_a_missing_dependency_of_an_enabled_feature_is_critical(make_settings, monkeypatch):
    monkeypatch.setitem(sys.modules, "redis", None)  # what `import redis` does when redis is not installed
    assert only("dependencies", Context(make_settings(), environ=QUIET)).severity == "ok"  # no REDIS_URL
    result = only("dependencies", Context(make_settings(redis_url="redis://127.0.0.1:6379"), environ=QUIET))
    assert (result.ok, result.severity) == (False, "critical")
    assert "redis (redis, for REDIS_URL)" in result.detail
    assert "install redis" in result.recommendation


def test_dependencies_are_checked_from_the_raw_environment_when_settings_are_invalid(monkeypatch):
    monkeypatch.setitem(sys.modules, "aws_xray_sdk", None)
    environ = {"TRACING_BACKEND": "xray", "LOG_LEVEL": "LOUD"}
    result = only("dependencies", Context(None, settings_error="invalid settings: LOG_LEVEL", environ=environ))
    assert result.severity == "critical"
    assert "aws_xray_sdk (aws-xray-sdk, for TRACING_BACKEND=xray)" in result.detail


def test_a_layer_built_for_another_cpu_is_a_critical_dependency_failure(make_settings, monkeypatch, tmp_path):
    other = "arm64" if platform.machine().lower() in {"x86_64", "amd64"} else "x86_64"
    (tmp_path / "haystack_serverless_layer.json").write_text(json.dumps({"arch": other}))
    monkeypatch.syspath_prepend(str(tmp_path))
    result = only("dependencies", Context(make_settings(), environ=QUIET))
    assert result.severity == "critical"
    assert f"built for {other}" in result.detail


# --- logging -----------------------------------------------------------------------------------------


def test_logging_configured_as_at_init_passes(make_settings):
    settings = make_settings(log_level="WARNING")
    configure_logging(settings, stream=io.StringIO())
    result = only("logging", Context(settings, environ=QUIET))
    assert result.severity == "ok"
    assert "Powertools JSON on the root logger at WARNING" in result.detail


def test_logging_without_the_powertools_handler_is_a_warning(make_settings):
    logging.getLogger().handlers = [logging.StreamHandler(io.StringIO())]
    result = only("logging", Context(make_settings(), environ=QUIET))
    assert (result.ok, result.severity) == (True, "warning")
    assert "no Powertools JSON handler (handlers: StreamHandler)" in result.detail


def test_logging_at_another_level_than_log_level_is_a_warning(make_settings):
    settings = make_settings()
    configure_logging(settings, stream=io.StringIO())
    logging.getLogger().setLevel(logging.ERROR)
    result = only("logging", Context(settings, environ=QUIET))
    assert result.severity == "warning"
    assert "at ERROR, LOG_LEVEL says INFO" in result.detail


# --- tracing -----------------------------------------------------------------------------------------


def test_xray_on_lambda_with_active_tracing_passes(make_settings):
    result = only("tracing", Context(make_settings(tracing_backend="xray"), environ=LAMBDA))
    assert result.severity == "ok"
    assert "169.254.79.129:2000" in result.detail


def test_xray_on_lambda_without_active_tracing_is_a_warning(make_settings):
    environ = {k: v for k, v in LAMBDA.items() if k != "AWS_XRAY_DAEMON_ADDRESS"}
    result = only("tracing", Context(make_settings(tracing_backend="xray"), environ=environ))
    assert result.severity == "warning"
    assert "Tracing: Active" in result.recommendation


def test_otel_without_a_provider_fails_the_cli(tmp_path, small_snapshot):
    result = run_cli(cli_env(tmp_path, small_snapshot, TRACING_BACKEND="otel"))
    assert result.returncode == 1, result.stdout + result.stderr
    lines = report_lines(result.stdout)
    assert (lines["tracing"], lines["init"]) == ("✗", "✗")
    assert "no OpenTelemetry tracer provider" in result.stdout
    assert "ADOT" in result.stdout
    assert "store" not in lines  # not built: said once, on the init line
    assert "store and pipelines not checked" in result.stdout


OTEL_PROVIDER_RUN = """
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
trace.set_tracer_provider(TracerProvider())  # what the ADOT layer's wrapper does before the code runs
from core.readiness.__main__ import main
raise SystemExit(main(["--json"]))
"""


def test_otel_with_a_configured_provider_passes_the_cli(tmp_path, small_snapshot):
    result = run_cli(cli_env(tmp_path, small_snapshot, TRACING_BACKEND="otel"), code=OTEL_PROVIDER_RUN)
    assert result.returncode == 0, result.stdout + result.stderr
    checks = by_name(json.loads(result.stdout)["checks"])
    assert checks["tracing"]["severity"] == "ok"
    assert "TracerProvider" in checks["tracing"]["detail"]
    assert checks["init"]["severity"] == "ok"


# --- init, store, pipelines --------------------------------------------------------------------------


def test_a_missing_snapshot_fails_init_in_one_line_and_the_other_checks_still_run(tmp_path, small_snapshot):
    result = run_cli(cli_env(tmp_path, tmp_path / "missing.snapshot"))
    assert result.returncode == 1
    lines = report_lines(result.stdout)
    assert lines == {"configuration": "✓", "dependencies": "✓", "logging": "✓", "init": "✗", "cache": "✓"}
    init_line = next(line for line in result.stdout.splitlines() if line.strip().startswith("✗ init"))
    assert "SnapshotError: snapshot" in init_line
    assert "make index" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_a_broken_pipeline_file_fails_init(cli_settings, tmp_path):
    (tmp_path / "broken.yml").write_text("components: [not, a, mapping\n")
    cli_settings.setenv("PIPELINES_DIR", str(tmp_path))
    results = by_name(run_checklist(prepare(log_stream=io.StringIO())))
    assert results["init"].severity == "critical"
    assert results["init"].detail.startswith("PipelineLoadError:")
    assert "pipeline YAML" in results["init"].recommendation


def test_a_loaded_store_and_pipelines_pass(make_settings, small_store):
    runtime = build_runtime(make_settings(), store=small_store)
    context = Context(runtime.settings, runtime=runtime, environ=QUIET)
    assert only("store", context).severity == "ok"
    assert only("pipelines", context).detail == "1 runnable: search"  # rag: unavailable by design (no generator)
    assert only("init", context).detail.startswith("runtime built in")


def test_an_empty_store_is_critical(make_settings):
    empty = LoadedStore(store=EmbeddedDocumentStore(), manifest={"embedding_dim": 256}, source="empty")
    runtime = build_runtime(make_settings(), store=empty)
    result = only("store", Context(runtime.settings, runtime=runtime))
    assert (result.ok, result.detail) == (False, "empty: no documents to search")
    assert "make index" in result.recommendation


def test_a_pipeline_whose_generator_cannot_warm_up_is_critical(make_settings, small_store):
    class BrokenGenerator:
        def warm_up(self):
            raise ConnectionError("cannot reach the model")

    settings = make_settings(generator="bedrock")
    runtime = build_runtime(settings, store=small_store, chat_generator_factory=lambda s: BrokenGenerator())
    result = only("pipelines", Context(settings, runtime=runtime))
    assert result.severity == "critical"
    assert "rag: warm-up failed: ConnectionError: cannot reach the model" in result.detail


# --- the S3 snapshot ---------------------------------------------------------------------------------


def put_snapshot(path: Path, key: str = "v1/small.snapshot") -> str:
    boto3.client("s3").create_bucket(Bucket="snapshots")
    boto3.client("s3").put_object(Bucket="snapshots", Key=key, Body=path.read_bytes())
    return f"s3://snapshots/{key}"


def test_an_s3_snapshot_that_exists_passes_with_its_size_and_etag(make_settings, aws, small_snapshot):
    uri = put_snapshot(small_snapshot)
    result = only("snapshot", Context(make_settings(store_snapshot_uri=uri)))
    assert result.severity == "ok"
    etag = boto3.client("s3").head_object(Bucket="snapshots", Key="v1/small.snapshot")["ETag"]
    assert result.detail.startswith(f"{uri}: {small_snapshot.stat().st_size / 1e6:.1f} MB, ETag {etag}, modified ")


def test_a_missing_s3_snapshot_is_critical(make_settings, aws, small_snapshot):
    put_snapshot(small_snapshot)
    result = only("snapshot", Context(make_settings(store_snapshot_uri="s3://snapshots/v2/missing.snapshot")))
    assert (result.ok, result.detail) == (False, "s3://snapshots/v2/missing.snapshot: not found")
    assert "upload the snapshot" in result.recommendation


def test_an_unreachable_s3_is_critical_and_bounded(make_settings, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    settings = make_settings(store_snapshot_uri="s3://snapshots/v1/small.snapshot", readiness_timeout_s=0.5)
    result = only("snapshot", Context(settings))
    assert result.severity == "critical"
    assert "S3 unreachable within 0.5 s" in result.detail


def test_a_local_snapshot_has_no_s3_check(make_settings):
    assert run_one("snapshot", Context(make_settings())) == []


def test_the_cli_loads_an_s3_snapshot_and_reports_it(cli_settings, aws, small_snapshot, capsys):
    uri = put_snapshot(small_snapshot)
    cli_settings.setenv("STORE_SNAPSHOT_URI", uri)
    assert main(["--json"]) == 0
    checks = by_name(json.loads(capsys.readouterr().out)["checks"])
    assert checks["snapshot"]["severity"] == "ok"
    assert checks["store"]["detail"].endswith(f"from {uri}")

    boto3.client("s3").delete_object(Bucket="snapshots", Key="v1/small.snapshot")
    assert main([]) == 1
    lines = report_lines(capsys.readouterr().out)
    assert (lines["init"], lines["snapshot"]) == ("✗", "✗")


# --- Redis and its AUTH secret -----------------------------------------------------------------------


def test_redis_that_answers_passes(make_settings, small_store, redis_url):
    runtime = build_runtime(make_settings(redis_url=redis_url), store=small_store)
    result = only("cache", Context(runtime.settings, runtime=runtime))
    assert result.severity == "ok"
    assert result.detail.startswith("L2 ok at redis://127.0.0.1:")


def test_redis_on_a_closed_port_is_a_warning_not_a_failure(make_settings, small_store):
    settings = make_settings(redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_connect_timeout_ms=100)
    runtime = build_runtime(settings, store=small_store)
    result = only("cache", Context(settings, runtime=runtime))
    assert (result.ok, result.severity) == (True, "warning")
    assert "L2 degraded: ping failed (ConnectionError)" in result.detail
    assert "security groups" in result.recommendation


def test_the_cli_pings_redis(tmp_path, small_snapshot, redis_url):
    up = run_cli(cli_env(tmp_path, small_snapshot, REDIS_URL=redis_url))
    assert up.returncode == 0, up.stdout
    assert report_lines(up.stdout)["cache"] == "✓"
    closed = run_cli(cli_env(tmp_path, small_snapshot, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"))
    assert closed.returncode == 0, closed.stdout  # the service answers from L1: a warning, not a failure
    assert report_lines(closed.stdout)["cache"] == "⚠"
    assert closed.stdout.rstrip().endswith("ready: 6 ✓, 1 ⚠, 0 ✗")


def test_redis_is_pinged_even_when_init_failed(make_settings, redis_url):
    settings = make_settings(redis_url=redis_url)
    context = Context(settings, init_error=RuntimeError("boom"), environ=QUIET)
    assert only("cache", context).detail.startswith("L2 ok")


@pytest.mark.parametrize("secret_store", ["secretsmanager", "ssm"])
def test_a_readable_auth_secret_passes_and_redis_accepts_it(cli_settings, aws, tmp_path_factory, secret_store, capsys):
    with RedisServer(tmp_path_factory.mktemp("auth"), password="s3cret-pw") as server:
        if secret_store == "secretsmanager":
            boto3.client("secretsmanager").create_secret(
                Name="cache-auth", SecretString='{"username": "default", "password": "s3cret-pw"}'
            )
        else:
            boto3.client("ssm").put_parameter(Name="cache-auth", Value="s3cret-pw", Type="SecureString")
        cli_settings.setenv("REDIS_URL", server.url)
        cli_settings.setenv("REDIS_AUTH_SECRET", f"{secret_store}:cache-auth")
        assert main(["--json"]) == 0
    checks = by_name(json.loads(capsys.readouterr().out)["checks"])
    assert checks["redis_auth"]["severity"] == "ok"
    expected = "JSON password (user default)" if secret_store == "secretsmanager" else "plain password (9 characters)"
    assert checks["redis_auth"]["detail"] == f"{secret_store}:cache-auth: {expected}"
    assert checks["cache"]["detail"].startswith("L2 ok")
    assert "s3cret-pw" not in json.dumps(checks)


def test_an_unreadable_auth_secret_is_a_warning(make_settings, aws):
    settings = make_settings(redis_url="redis://127.0.0.1:6379", redis_auth_secret="secretsmanager:missing")
    result = only("redis_auth", Context(settings))
    assert (result.ok, result.severity) == (True, "warning")
    assert result.detail.startswith("secretsmanager:missing: cannot be read")
    assert "secretsmanager:GetSecretValue" in result.recommendation


def test_a_json_auth_secret_without_a_password_is_a_warning(make_settings, aws):
    boto3.client("secretsmanager").create_secret(Name="cache-auth", SecretString='{"username": "app"}')
    settings = make_settings(redis_url="redis://127.0.0.1:6379", redis_auth_secret="secretsmanager:cache-auth")
    result = only("redis_auth", Context(settings))
    assert result.severity == "warning"
    assert "without a password" in result.detail


# --- the generator -----------------------------------------------------------------------------------


def test_bedrock_with_credentials_and_a_region_passes(make_settings, small_store, aws):
    settings = make_settings(generator="bedrock")
    expected = "bedrock amazon.nova-micro-v1:0 in us-east-1 (env credentials)"
    assert only("generator", Context(settings)).detail == expected
    runtime = build_runtime(settings, store=small_store)  # the client warm-up creates, as /ready sees it
    assert only("generator", Context(settings, runtime=runtime)).severity == "ok"


def test_bedrock_without_credentials_is_critical(make_settings, no_aws_credentials):
    result = only("generator", Context(make_settings(generator="bedrock")))
    assert (result.ok, result.detail) == (False, "no AWS credentials or region for Bedrock")
    assert "execution role" in result.recommendation


def test_an_openai_compatible_server_that_answers_passes(make_settings, models_server):
    settings = make_settings(generator="openai", openai_base_url=models_server, openai_model="tiny")
    result = only("generator", Context(settings))
    assert result.severity == "ok"
    assert models_server in result.detail


def test_an_unreachable_openai_compatible_server_is_critical(make_settings):
    closed = f"http://127.0.0.1:{free_port()}/v1"
    settings = make_settings(generator="openai", openai_base_url=closed, openai_model="tiny", readiness_timeout_s=0.5)
    result = only("generator", Context(settings))
    assert result.severity == "critical"
    assert "unreachable" in result.detail
    assert "OPENAI_BASE_URL" in result.recommendation


def test_no_generator_has_no_generator_check(make_settings):
    assert run_one("generator", Context(make_settings())) == []


# --- the CLI end to end ------------------------------------------------------------------------------


def test_cli_with_default_settings_is_ready(tmp_path, small_snapshot):
    result = run_cli(cli_env(tmp_path, small_snapshot))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("Readiness of haystack-serverless (not on Lambda)\n")
    assert report_lines(result.stdout) == dict.fromkeys(
        ["configuration", "dependencies", "logging", "init", "pipelines", "store", "cache"], "✓"
    )
    assert result.stdout.rstrip().endswith("ready: 7 ✓, 0 ⚠, 0 ✗")
    assert result.stderr == ""  # init's log lines stay out of the way unless --logs


def test_cli_with_an_invalid_setting_prints_one_line_and_exits_1(tmp_path, small_snapshot):
    result = run_cli(cli_env(tmp_path, small_snapshot, LOG_LEVEL="LOUD"))
    assert result.returncode == 1
    lines = [line for line in result.stdout.splitlines() if line.strip().startswith("✗")]
    assert lines == [
        "  ✗ configuration  invalid settings: LOG_LEVEL: Input should be 'DEBUG', 'INFO', 'WARNING' or 'ERROR' "
        "(got 'LOUD')"
    ]
    assert report_lines(result.stdout) == {"configuration": "✗", "dependencies": "✓"}
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stdout.rstrip().endswith("NOT READY: 1 ✓, 0 ⚠, 1 ✗")


def test_cli_with_debug_logging_warns_and_exits_0(tmp_path, small_snapshot):
    result = run_cli(cli_env(tmp_path, small_snapshot, LOG_LEVEL="DEBUG"))
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    index = next(i for i, line in enumerate(lines) if line.strip().startswith("⚠ configuration.log_level"))
    assert "LOG_LEVEL=DEBUG" in lines[index]
    assert lines[index + 1].strip().startswith("→ LOG_LEVEL=INFO")
    assert result.stdout.rstrip().endswith("ready: 7 ✓, 1 ⚠, 0 ✗")


def test_cli_json_has_the_shape_of_ready(tmp_path, small_snapshot):
    result = run_cli(cli_env(tmp_path, small_snapshot, CACHE_TTL_RESULTS_S="0"), "--json")
    assert result.returncode == 0
    body = json.loads(result.stdout)
    assert body["status"] == "ready"
    assert body["summary"] == {"ok": 7, "warning": 1, "critical": 0}
    warned = by_name(body["checks"])["configuration.cache_ttl_results_s"]
    assert set(warned) == {"name", "ok", "severity", "detail", "recommendation"}
    assert (warned["ok"], warned["severity"]) == (True, "warning")


def test_cli_logs_flag_shows_init_logs_on_stderr(tmp_path, small_snapshot):
    result = run_cli(cli_env(tmp_path, small_snapshot, LOG_LEVEL="DEBUG"), "--logs", "--json")
    assert result.returncode == 0
    json.loads(result.stdout)  # stdout stays the report
    first = json.loads(result.stderr.splitlines()[0])
    assert first["service"] == "haystack-serverless"


def test_cli_falls_back_to_ascii_symbols_where_the_terminal_cannot_show_them(tmp_path, small_snapshot):
    result = run_cli(cli_env(tmp_path, small_snapshot, PYTHONIOENCODING="ascii", LOG_LEVEL="DEBUG"))
    assert result.returncode == 0
    assert "  WARN configuration.log_level" in result.stdout
    assert "  OK   store" in result.stdout


# --- GET /ready ----------------------------------------------------------------------------------------


def test_ready_runs_only_the_bounded_runtime_checks(make_client):
    response = make_client().get("/ready")
    assert response.status_code == 200
    checks = response.json()["checks"]
    assert [c["name"] for c in checks] == ["pipelines", "store", "cache"]
    assert all(c["severity"] == "ok" and c["recommendation"] is None for c in checks)


def test_ready_answers_200_with_a_warning_when_redis_is_down(make_client):
    client = make_client(redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_connect_timeout_ms=100)
    response = client.get("/ready")
    assert response.status_code == 200
    cache = by_name(response.json()["checks"])["cache"]
    assert (cache["ok"], cache["severity"]) == (True, "warning")
    assert cache["recommendation"]


def test_ready_checks_the_s3_snapshot(make_settings, small_store, aws, small_snapshot):
    from fastapi.testclient import TestClient

    uri = put_snapshot(small_snapshot)
    client = TestClient(create_app(build_runtime(make_settings(store_snapshot_uri=uri), store=small_store)))
    present = client.get("/ready")
    assert present.status_code == 200
    assert by_name(present.json()["checks"])["snapshot"]["severity"] == "ok"

    boto3.client("s3").delete_object(Bucket="snapshots", Key="v1/small.snapshot")
    missing = client.get("/ready")
    assert missing.status_code == 503
    failing = [c for c in missing.json()["checks"] if not c["ok"]]
    assert [(c["name"], c["severity"]) for c in failing] == [("snapshot", "critical")]


def test_ready_is_the_same_list_the_cli_runs_for_the_runtime(make_settings, small_store):
    runtime = build_runtime(make_settings(), store=small_store)
    from_ready = [(r.name, r.severity) for r in run_checks(runtime)]
    from_cli = [(r.name, r.severity) for r in run_checklist(Context(runtime.settings, runtime=runtime, environ=QUIET))]
    assert from_ready and set(from_ready) <= set(from_cli)
    assert {c.name for c in CHECKS if c.on_ready} == {"snapshot", "pipelines", "store", "cache", "generator"}
