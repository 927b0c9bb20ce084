"""SnapStart hooks: prime before the snapshot, re-create clients and reseed randomness after a restore.

With ``SnapStart: {ApplyOn: PublishedVersions}``, Lambda runs init once when a version is published,
snapshots the memory, and restores that snapshot for every cold start. Whatever init created is then
shared by every restored environment: network connections (stale, or shared with other copies) and
the state of random generators (identical sequences). The hooks fix both. ``snapshot_restore_py``
ships with Lambda's Python runtimes (and in the layer); without it (locally) nothing is registered.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable

from core.runtime.container import Runtime

logger = logging.getLogger("core.runtime.snapstart")


def priming_events(runtime: Runtime) -> list[dict]:
    """API Gateway (REST) events that exercise the request path without calling paid services.

    ``/health`` and one ``search`` run (retrieval only, no generator), so lazy imports, the
    embedder and FastAPI's first-request work are in the snapshot.
    """
    events = [_rest_event("GET", "/health", None)]
    if "search" in runtime.pipelines and runtime.pipelines["search"].available:
        events.append(_rest_event("POST", "/pipelines/search/run", {"query": "warm up", "top_k": 1}))
    return events


def _rest_event(method: str, path: str, body: dict | None) -> dict:
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": {"Content-Type": "application/json"},
        "multiValueHeaders": {"Content-Type": ["application/json"]},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "path": path,
            "stage": "snapstart",
            "requestId": "snapstart-priming",
            "identity": {"sourceIp": "127.0.0.1"},
        },
        "body": json.dumps(body) if body is not None else None,
        "isBase64Encoded": False,
    }


def before_snapshot(runtime: Runtime, handler: Callable[[dict, object], dict] | None = None) -> None:
    """Send the priming events through the ASGI handler so first-call work lands in the snapshot.

    Priming is not traffic: no audit line, no metric (the version being published would count it), no
    Haystack span (there is no trace to join) — ``Telemetry.mute``.
    """
    with runtime.telemetry.mute():
        statuses = [handler(event, None)["statusCode"] for event in priming_events(runtime)] if handler else []
    logger.info("snapshot primed", extra={"statuses": statuses})


def after_restore(runtime: Runtime) -> None:
    """Reseed randomness and re-create network clients."""
    random.seed()  # from os.urandom: restored copies must not share a sequence
    runtime.reconnect()
    logger.info("restored from snapshot: clients re-created, random reseeded")


def register_hooks(runtime: Runtime, handler: Callable[[dict, object], dict] | None = None) -> bool:
    """Register the hooks with ``snapshot_restore_py``; returns whether it was available.

    Args:
        runtime: The container's runtime.
        handler: Mangum's handler (not the Powertools-wrapped entry point: priming has no Lambda
            context and is no invocation), used to prime the snapshot with ``priming_events``.
    """
    try:
        from snapshot_restore_py import register_after_restore, register_before_snapshot  # noqa: PLC0415
    except ImportError:
        return False
    register_before_snapshot(before_snapshot, runtime, handler)
    register_after_restore(after_restore, runtime)
    return True
