"""Secrets never reach a log line: every line is scrubbed after it is formatted, whoever wrote it.

Two nets: the exact values of known secrets (the settings' secret fields, the password in ``REDIS_URL``,
and what is fetched at run time — the Redis AUTH secret, the database secret — through ``register``),
and patterns that look like credentials whatever their value (``scheme://user:<password>@``,
``password=<…>`` in connection strings). Scrubbing the formatted line also covers exception text and
fields logged by libraries (Haystack's keyword arguments, botocore's debug lines).

Example:
    >>> register("s3cr3t-value")
    >>> scrub('{"message": "connecting with s3cr3t-value"}')
    '{"message": "connecting with ***"}'
"""

from __future__ import annotations

import logging
import re
import threading

MASK = "***"
MIN_SECRET_CHARS = 6  # shorter values would mask ordinary words
_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][\w+.-]*://[^:/@\s\"]*:)[^@\s\"]+@")
_KEY_VALUE = re.compile(r"(?i)\b(password|passwd|pwd|api_key|apikey|secret|token)(\s*[=:]\s*)(?!\*\*\*)[^\s,;\"'&]+")

_secrets: set[str] = set()
_lock = threading.Lock()


def register(*values: str | None) -> None:
    """Remember secret values so that no log line shows them (short or empty values are ignored)."""
    with _lock:
        _secrets.update(v for v in values if isinstance(v, str) and len(v) >= MIN_SECRET_CHARS)


def scrub(text: str) -> str:
    """``text`` with every known secret and credential-looking value replaced by ``***``."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    text = _URL_PASSWORD.sub(rf"\g<1>{MASK}@", text)
    return _KEY_VALUE.sub(rf"\g<1>\g<2>{MASK}", text)


def install(handler: logging.Handler) -> None:
    """Scrub every line ``handler`` writes (wraps its ``format``)."""
    if getattr(handler, "_scrubbing", False):
        return
    formatted = handler.format

    def format_scrubbed(record: logging.LogRecord) -> str:
        return scrub(formatted(record))

    handler.format = format_scrubbed  # type: ignore[method-assign]
    handler._scrubbing = True  # type: ignore[attr-defined]  # noqa: SLF001 - marker against wrapping twice


def register_settings(settings: object) -> None:
    """Register the secret values a ``Settings`` holds: its ``SecretStr`` fields and URL passwords."""
    for name in type(settings).model_fields:  # type: ignore[attr-defined]
        value = getattr(settings, name)
        if hasattr(value, "get_secret_value"):
            register(value.get_secret_value())
        elif isinstance(value, str) and "://" in value:
            match = _URL_PASSWORD.search(value)
            if match:
                register(value[match.end(1) : match.end() - 1])
