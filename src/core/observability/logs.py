"""Logging: Powertools' JSON lines for every logger of the process, and query text kept out of them.

``configure_logging`` builds the Powertools ``Logger`` and hands its handler to the root logger, so
records of ``core.*``, Haystack (whose keyword arguments become keys) and Mangum share one JSON stream
and the keys appended per request (``correlation_id``, and on Lambda ``cold_start``,
``function_version``, … from ``inject_lambda_context``). Modules keep using ``logging.getLogger``.

Example:
    >>> logger = configure_logging(load_settings())
    >>> logger.append_keys(correlation_id="c0ffee")
    >>> logging.getLogger("core.example").info("hello")   # {"level":"INFO","message":"hello",...}
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from typing import IO, Any

from aws_lambda_powertools import Logger

from core.observability import redaction
from core.settings import Settings

# Haystack logs every component run and Mangum every request at INFO: kept for DEBUG (or a sampled request).
CHATTY_LOGGERS = ("haystack", "mangum")
# The audit trail is written whatever LOG_LEVEL says (WARNING in an environment must not lose it).
AUDIT_LOGGER = "core.audit"
QUERY_HASH_CHARS = 16


def configure_logging(settings: Settings, stream: IO[str] | None = None) -> Logger:
    """Route every logger of the process through one Powertools JSON handler; return the Powertools logger.

    Args:
        settings: ``LOG_LEVEL``, ``POWERTOOLS_SERVICE_NAME``, ``POWERTOOLS_LOGGER_SAMPLE_RATE`` and
            ``POWERTOOLS_DEV`` (indented lines) are read here.
        stream: Where the lines go (stdout by default; tests pass a buffer).
    """
    _forget_previous(settings.powertools_service_name)
    serializer = None
    if settings.powertools_dev:
        serializer = lambda data: json.dumps(data, indent=2, default=str, ensure_ascii=False)  # noqa: E731
    logger = Logger(
        service=settings.powertools_service_name,
        level=settings.log_level,
        stream=stream,
        json_serializer=serializer,
        name="%(name)s",  # the emitting logger (core.api.app, haystack.core.pipeline, …)
        log_record_order=["level", "message", "name", "timestamp"],
    )
    # The Powertools logger writes through its own handler; everyone else reaches it through root.
    logger._logger.propagate = False  # noqa: SLF001 - Powertools exposes no setter
    logging.logAsyncioTasks = False  # no "taskName": every request runs in Mangum's one task
    redaction.register_settings(settings)
    redaction.install(logger.logger_handler)
    root = logging.getLogger()
    root.handlers = [logger.logger_handler]
    root.setLevel(settings.log_level)
    LevelSampler(settings).apply(sampled=False)
    return logger


def _forget_previous(service: str) -> None:
    """Undo an earlier configuration of the same service (tests, benchmarks): Powertools would reuse it."""
    existing = logging.getLogger(service)
    if getattr(existing, "init", False):
        for handler in existing.handlers[:]:
            existing.removeHandler(handler)
        for attribute in ("init", "powertools_handler", "powertools_buffer_config", "powertools_buffer_cache"):
            existing.__dict__.pop(attribute, None)


class LevelSampler:
    """Per request: DEBUG for a sampled fraction (``POWERTOOLS_LOGGER_SAMPLE_RATE``), else ``LOG_LEVEL``."""

    def __init__(self, settings: Settings) -> None:
        self.rate = settings.powertools_logger_sample_rate
        self.level = settings.log_level

    def draw(self) -> bool:
        """Decide this request's level and apply it; returns whether the request is sampled."""
        sampled = self.rate > 0 and random.random() < self.rate  # noqa: S311 - sampling, not security
        self.apply(sampled=sampled)
        return sampled

    def apply(self, *, sampled: bool) -> None:
        """Set the root and the chatty loggers' levels."""
        debug = sampled or self.level == "DEBUG"
        logging.getLogger().setLevel(logging.DEBUG if sampled else self.level)
        for name in CHATTY_LOGGERS:
            logging.getLogger(name).setLevel(logging.DEBUG if debug else logging.WARNING)
        logging.getLogger(AUDIT_LOGGER).setLevel(logging.INFO)


def fingerprint(text: Any, *, clear: bool = False) -> dict[str, Any]:
    """What logs may say about a query: its SHA-256 prefix and length, or (``LOG_QUERY_TEXT``) the text itself.

    The hash lets an operator find every request with the same query without the logs holding it.
    """
    if not isinstance(text, str):
        return {}
    facts: dict[str, Any] = {
        "query_sha256": hashlib.sha256(text.encode()).hexdigest()[:QUERY_HASH_CHARS],
        "query_chars": len(text),
    }
    if clear:
        facts["query_text"] = text
    return facts
