"""Request context: request id, telemetry, JSON bodies whatever the declared type, and a last-resort 500.

A pure ASGI middleware (not ``BaseHTTPMiddleware``): no extra task per request, and an exception
that escapes the app becomes the error body here instead of a stack trace. Each request opens a
``RequestRecord`` that the routes fill in; when the response is sent (or the app fails), the telemetry
writes its audit line and metrics, so a 500 from an escaped exception counts in ``Errors5xx`` too.
"""

from __future__ import annotations

import json
import logging
import re
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.observability.context import RequestRecord, close_request, open_request
from core.observability.telemetry import Telemetry

logger = logging.getLogger("core.api.middleware")

# API Gateway ids: UUIDs (REST) and base64-like tokens (HTTP API). Anything else is not echoed.
_SAFE_ID = re.compile(r"[A-Za-z0-9._:=+/\-]{1,128}")
_JSON = b"application/json"


def request_id_from_scope(scope: Scope) -> str:
    """API Gateway's request id (REST v1 and HTTP API v2 both carry ``requestContext.requestId``).

    Locally (no Lambda event): the caller's ``X-Request-Id`` when it is a safe token, else a new UUID.
    """
    event = scope.get("aws.event") or {}
    request_id = str((event.get("requestContext") or {}).get("requestId") or "")
    if _SAFE_ID.fullmatch(request_id):
        return request_id
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if _SAFE_ID.fullmatch(candidate):
                return candidate
    return str(uuid.uuid4())


def _as_json_body(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Treat every request body as JSON: the API has no other body type, and ``curl -d`` sends form encoding."""
    kept = [(k, v) for k, v in headers if k != b"content-type"]
    declared = [v for k, v in headers if k == b"content-type"]
    if declared and (declared[0].startswith(_JSON) or b"+json" in declared[0]):
        return headers
    return [*kept, (b"content-type", _JSON)]


class RequestContextMiddleware:
    """Sets ``request.state.request_id``, echoes it in ``X-Request-Id``, observes and answers unhandled errors."""

    def __init__(
        self,
        app: ASGIApp,
        telemetry: Telemetry,
        max_body_bytes: int = 64 * 1024,
        trusted_hosts: list[str] | None = None,
    ) -> None:
        self.app = app
        self.telemetry = telemetry
        self.max_body_bytes = max_body_bytes
        self.trusted_hosts = trusted_hosts or []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from_scope(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        if scope["method"] in {"POST", "PUT", "PATCH"}:
            scope["headers"] = _as_json_body(list(scope["headers"]))
        record = RequestRecord(request_id, scope["method"], scope["path"])
        token = open_request(record)
        self.telemetry.start(record)
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode("latin-1"))]
            await send(message)

        try:
            try:
                if self.trusted_hosts and not host_allowed(scope, self.trusted_hosts):
                    record.error_code = "invalid_host"
                    await _error(send_with_id, 400, "invalid_host", "this host is not served here", request_id)
                    return
                body = await _read_body(receive, self.max_body_bytes) if scope["method"] in _BODY_METHODS else None
                if body is _TOO_LARGE:
                    record.error_code = "payload_too_large"
                    await _error(
                        send_with_id,
                        413,
                        "payload_too_large",
                        f"body larger than {self.max_body_bytes} bytes",
                        request_id,
                    )
                    return
                await self.app(scope, receive if body is None else _replay(body), send_with_id)
            except Exception:
                logger.exception("unhandled error")
                if status:
                    raise
                record.error_code = "internal_error"
                await _error(send_with_id, 500, "internal_error", "internal error", request_id)
        finally:
            self.telemetry.finish(record, status or 500, in_lambda="aws.event" in scope)
            close_request(token)


_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def host_allowed(scope: Scope, trusted: list[str]) -> bool:
    """Whether the Host header is one of ``trusted`` (``*.example.com`` matches its subdomains)."""
    host = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"host"), "")
    host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host  # drop a port, keep IPv6 literals whole
    return any(host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:])) for pattern in trusted)


_TOO_LARGE = object()


async def _read_body(receive: Receive, limit: int) -> bytes | object:
    """The whole request body, or ``_TOO_LARGE`` as soon as it passes ``limit`` (the rest is not read)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return _TOO_LARGE
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    """A ``receive`` that hands the app the body already read, then waits like a quiet client."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


async def _error(send: Send, status: int, code: str, message: str, request_id: str) -> None:
    body = json.dumps({"error": {"code": code, "message": message, "request_id": request_id}})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", _JSON), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body.encode()})
