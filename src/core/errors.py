"""Errors every layer may raise or inspect: ``ApiError`` (an HTTP status and code) and the cause chain.

A leaf module: features raise ``ApiError`` without importing FastAPI; ``core.api.errors`` turns it into the
error body ``{"error": {"code", "message", "request_id"}}``.
"""

from __future__ import annotations


class ApiError(Exception):
    """An error with its HTTP status and code, raised by routes and the query flow."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def cause_chain(exc: BaseException | None) -> list[BaseException]:
    """``exc`` and every exception it was raised from or during, outermost first (cycles cut)."""
    chain: list[BaseException] = []
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    return chain


def one_line(exc: BaseException) -> str:
    """``Type: message`` on one line (whitespace collapsed), for logs and init failures."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
