"""What one request did, gathered as it runs: the audit line, the request metrics and the trace read it.

The middleware opens a ``RequestRecord`` per request (a context variable: Mangum and uvicorn run the
routes in the request's own task); the service and the generator slot fill in what they learn.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RequestRecord:
    """Facts about one request; ``None`` where the request never got that far."""

    request_id: str
    method: str
    path: str
    started: float = field(default_factory=time.perf_counter)
    pipeline: str | None = None
    pipeline_version: str | None = None
    tenant: str | None = None
    cache: str | None = None  # HIT-L1, HIT-L2, MISS or BYPASS
    cache_errors: int = 0
    query: dict[str, Any] = field(default_factory=dict)  # core.observability.logs.fingerprint
    pipeline_ms: float | None = None
    generator_ms: float = 0.0
    generator_calls: int = 0
    input_tokens: int | None = None
    output_tokens: int | None = None
    error_code: str | None = None
    rate_limit: str | None = None  # the limiter's decision source: redis, fail_open, fail_closed

    def add_generator_call(self, elapsed_ms: float, usage: dict[str, int | None]) -> None:
        """Count one chat generator call and the tokens its backend reported (when it did)."""
        self.generator_calls += 1
        self.generator_ms += elapsed_ms
        for name in ("input_tokens", "output_tokens"):
            value = usage.get(name)
            if value is not None:
                setattr(self, name, (getattr(self, name) or 0) + value)

    def elapsed_ms(self) -> float:
        """Milliseconds since the request started."""
        return round((time.perf_counter() - self.started) * 1000, 2)


_current: ContextVar[RequestRecord | None] = ContextVar("haystack_serverless_request", default=None)


def current_request() -> RequestRecord | None:
    """The record of the request being served, if any (``None`` at init, in CLIs, in bare tests)."""
    return _current.get()


def open_request(record: RequestRecord) -> object:
    """Make ``record`` the current one; returns the token for ``close_request``."""
    return _current.set(record)


def close_request(token: object) -> None:
    """Restore the record that was current before ``open_request``."""
    _current.reset(token)  # type: ignore[arg-type]
