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

logger = logging.getLogger("core.middleware")

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

    def __init__(self, app: ASGIApp, telemetry: Telemetry) -> None:
        self.app = app
        self.telemetry = telemetry

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
                await self.app(scope, receive, send_with_id)
            except Exception:
                logger.exception("unhandled error")
                if status:
                    raise
                record.error_code = "internal_error"
                await _internal_error(send_with_id, request_id)
        finally:
            self.telemetry.finish(record, status or 500, in_lambda="aws.event" in scope)
            close_request(token)


async def _internal_error(send: Send, request_id: str) -> None:
    body = json.dumps({"error": {"code": "internal_error", "message": "internal error", "request_id": request_id}})
    await send(
        {
            "type": "http.response.start",
            "status": 500,
            "headers": [(b"content-type", _JSON), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body.encode()})
