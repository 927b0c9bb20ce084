"""Secrets never appear in log output: the real handler booted at DEBUG with secrets in its settings."""

import io
import json
import logging
import subprocess
import sys

from core.observability import redaction
from core.observability.logs import configure_logging
from tests.functional.test_init import ROOT, run_env

OPENAI_KEY = "sk-test-9f8e7d6c5b4a"
REDIS_PASSWORD = "hunter2-redis-pass"
PG_PASSWORD = "pg-secret-0192"

PROBE = """
import json, logging, sys
sys.path.insert(0, ".")
import handlers.api
from scripts.invoke import LambdaContext
log = logging.getLogger("core.test")
settings = handlers.api.runtime.settings
log.debug("settings: %r", settings.model_dump())
log.warning("connecting to %s with key %s", settings.redis_url, settings.openai_api_key.get_secret_value())
try:
    raise RuntimeError("login failed for " + settings.openai_api_key.get_secret_value())
except RuntimeError:
    log.exception("boom")
event = json.load(open("events/api-query.json"))
print(handlers.api.handler(event, LambdaContext())["statusCode"])
"""


def test_the_booted_handler_logs_no_secret_at_debug(small_snapshot, tmp_path):
    env = {
        **run_env(tmp_path),
        "STORE_SNAPSHOT_URI": str(small_snapshot),
        "LOG_LEVEL": "DEBUG",
        "OPENAI_API_KEY": OPENAI_KEY,
        # A Redis nobody answers: the cache degrades (and logs it), the request still answers.
        "REDIS_URL": f"redis://default:{REDIS_PASSWORD}@127.0.0.1:1",
        "REDIS_CONNECT_TIMEOUT_MS": "20",
        "REDIS_TIMEOUT_MS": "20",
    }
    result = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT, check=False
    )
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "login failed for ***" in output  # the lines were written, scrubbed
    for secret in (OPENAI_KEY, REDIS_PASSWORD):
        assert secret not in output


def test_secrets_fetched_at_run_time_are_scrubbed_too(make_settings):
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        configure_logging(make_settings(), stream=stream)
        redaction.register(PG_PASSWORD)  # what core.store.pgvector does with the database secret
        logging.getLogger("core.test").warning(
            "dsn host=db user=app password=%s; url postgresql://app:%s@db/x", PG_PASSWORD, PG_PASSWORD
        )
        logging.getLogger("core.test").warning("token=abcdef123456 in a query string")
    finally:
        root.handlers, root.level = handlers, level
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert PG_PASSWORD not in stream.getvalue()
    assert "password=***" in lines[0]["message"] and "app:***@db" in lines[0]["message"]
    assert "token=***" in lines[1]["message"]
