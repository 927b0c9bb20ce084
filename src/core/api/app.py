"""The FastAPI application: routes, validation and the error model, built around a ``Runtime``.

Example:
    >>> from fastapi.testclient import TestClient
    >>> app = create_app(build_runtime(load_settings()))
    >>> TestClient(app).get("/health").json()["status"]
    'ok'
"""

# No `from __future__ import annotations`: FastAPI reads the per-pipeline request models from the
# route functions' annotations, which are local to `_add_pipeline_route`.
#
# Routes are `async def` and run pipelines inline, on the event loop. A Lambda container serves one
# request at a time, so a worker thread per request (FastAPI's treatment of `def` routes) buys nothing
# and cost ~0.5 ms of the ~0.9 ms a warm GET /health took. `make run` (uvicorn) therefore also serves
# one request at a time, as one Lambda container does.

import json
import logging
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.middleware.cors import CORSMiddleware

from core.api.errors import install_error_handlers
from core.api.middleware import RequestContextMiddleware
from core.api.query import CacheControl, admit, answer_query, get_pipeline, run_cached
from core.api.schemas import ErrorBody, QueryRequest, QueryResponse
from core.errors import ApiError
from core.pipelines.loader import ServedPipeline
from core.readiness import run_checks
from core.runtime.container import Runtime
from core.security.access import RATE_LIMIT_HEADERS

logger = logging.getLogger("core.api.app")

ERRORS = {
    400: {"model": ErrorBody, "description": "Malformed request (e.g. invalid JSON)."},
    401: {"model": ErrorBody, "description": "No identity (a multi-tenant deployment needs one)."},
    403: {"model": ErrorBody, "description": "Unknown tenant, or a pipeline the tenant may not run."},
    404: {"model": ErrorBody, "description": "Unknown pipeline."},
    413: {"model": ErrorBody, "description": "Body larger than MAX_BODY_BYTES."},
    422: {"model": ErrorBody, "description": "Request does not match the schema."},
    429: {"model": ErrorBody, "description": "The tenant's rate limit for this pipeline (see Retry-After)."},
    500: {"model": ErrorBody, "description": "Internal error."},
    502: {"model": ErrorBody, "description": "The chat generator failed."},
    503: {"model": ErrorBody, "description": "The pipeline cannot run here (e.g. no generator configured)."},
}


class Health(BaseModel):
    """Liveness."""

    status: str = Field(description="Always `ok` when the process answers.")


class Check(BaseModel):
    """One readiness check."""

    name: str
    ok: bool = Field(description="`false` only for a critical failure (the response is then 503).")
    detail: str
    severity: Literal["ok", "warning", "critical"] = Field(
        description="`ok` (✓), `warning` (⚠: degraded or risky, still ready) or `critical` (✗)."
    )
    recommendation: str | None = Field(default=None, description="What to do about a warning or a failure.")


class Readiness(BaseModel):
    """Readiness: every check and the overall verdict."""

    status: str = Field(description="`ready` or `not_ready`.")
    checks: list[Check]


class PipelineInfo(BaseModel):
    """A served pipeline."""

    name: str
    description: str
    version: str = Field(description="First 12 hex digits of the SHA-256 of the YAML file.")
    available: bool = Field(description="Whether `POST /pipelines/{name}/run` can run it.")
    unavailable_reason: str | None = None
    input_schema: dict[str, Any] = Field(description="JSON schema of the run request body.")
    outputs: list[str] = Field(description="Names of the run response fields.")


class PipelineList(BaseModel):
    """``GET /pipelines``."""

    pipelines: list[PipelineInfo]


def json_response(data: dict[str, Any], headers: dict[str, str]) -> Response:
    """A JSON response built directly from data already in the response model's shape.

    The routes still declare ``response_model`` (the OpenAPI schema), but returning a ``Response``
    skips FastAPI's re-validation of every document: that cost ~0.4 ms per answer, 5 % of a warm
    search. The shapes are the ones ``core.pipelines.loader.to_api`` produces, checked by the API tests.
    """
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(content=body, media_type="application/json", headers=headers)


def _add_pipeline_route(router: APIRouter, runtime: Runtime, served: ServedPipeline) -> None:
    request_model = served.request_model

    async def run(body: request_model, request: Request) -> Response:
        values = {name: getattr(body, name) for name in body.model_fields_set}
        access = admit(runtime, request.scope.get("aws.event"), served, values)  # before saying more about it
        pipeline = get_pipeline(runtime, served.name)
        result = run_cached(
            runtime,
            pipeline,
            values,
            tenant=access.tenant,
            control=CacheControl.from_header(request.headers.get("cache-control")),
        )
        headers = {"X-Cache": result.cache, **access.headers}
        return json_response({**result.outputs, "cached": result.cached}, headers)

    router.add_api_route(
        f"/pipelines/{served.name}/run",
        run,
        methods=["POST"],
        response_model=served.response_model,
        operation_id=f"run_{served.name.replace('-', '_')}",
        summary=f"Run the {served.name!r} pipeline",
        description=served.description,
        responses=ERRORS,
        tags=["pipelines"],
    )


def create_app(runtime: Runtime) -> FastAPI:
    """Build the application for ``runtime``."""
    app = FastAPI(
        title="Haystack Serverless",
        version="0.1.0",
        description="Haystack YAML pipelines served from AWS Lambda.",
        docs_url="/docs",
        redoc_url=None,
        # FastAPI's own OpenTelemetry spans would start a second trace (parented from HTTP headers, not
        # the handler's span) and its metrics/logs would duplicate ours: telemetry has one owner here,
        # core.observability (TRACING_BACKEND picks where spans go).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    install_error_handlers(app)
    settings = runtime.settings
    # Added last = outermost: the request context (request id, body limit, audit line) sees every request,
    # also one the host or CORS checks answer.
    if settings.cors_allow_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_allow_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "Cache-Control", "X-Request-Id", "X-Api-Key", "Authorization"],
            expose_headers=["X-Request-Id", "X-Cache", "Retry-After", *RATE_LIMIT_HEADERS],
        )
    app.add_middleware(
        RequestContextMiddleware,
        telemetry=runtime.telemetry,
        max_body_bytes=settings.max_body_bytes,
        trusted_hosts=settings.trusted_hosts,
    )
    router = APIRouter()

    @router.get("/health", response_model=Health, operation_id="health", summary="Liveness", tags=["service"])
    async def health() -> Health:
        return Health(status="ok")

    @router.get(
        "/ready",
        response_model=Readiness,
        operation_id="ready",
        summary="Readiness: pipelines, store and configured dependencies",
        responses={503: {"model": Readiness, "description": "A critical check failed (warnings answer 200)."}},
        tags=["service"],
    )
    async def ready() -> JSONResponse:
        checks = run_checks(runtime)
        ok = all(c.ok for c in checks)  # only critical failures answer 503; warnings stay ready
        body = Readiness(status="ready" if ok else "not_ready", checks=[Check(**c.as_dict()) for c in checks])
        return JSONResponse(body.model_dump(), status_code=200 if ok else 503)

    @router.get(
        "/pipelines",
        response_model=PipelineList,
        operation_id="list_pipelines",
        summary="List pipelines",
        tags=["pipelines"],
    )
    async def list_pipelines() -> PipelineList:
        return PipelineList(
            pipelines=[
                PipelineInfo(
                    name=p.name,
                    description=p.description,
                    version=p.version,
                    available=p.available,
                    unavailable_reason=p.unavailable,
                    input_schema=p.input_schema(),
                    outputs=list(p.outputs),
                )
                for p in runtime.pipelines.values()
            ]
        )

    for served in runtime.pipelines.values():
        _add_pipeline_route(router, runtime, served)

    @router.post("/pipelines/{name}/run", include_in_schema=False, responses=ERRORS)
    async def run_unknown(name: str) -> None:
        raise ApiError(404, "not_found", f"no pipeline named {name!r}; GET /pipelines lists them")

    @router.post(
        "/query",
        response_model=QueryResponse,
        operation_id="query",
        summary="Answer a query: `rag` when a generator is configured, else `search`",
        responses=ERRORS,
        tags=["query"],
    )
    async def query(body: QueryRequest, request: Request) -> Response:
        answer, cache, limits = answer_query(
            runtime,
            body,
            event=request.scope.get("aws.event"),
            control=CacheControl.from_header(request.headers.get("cache-control")),
        )
        return json_response(answer, {"X-Cache": cache, **limits})

    app.include_router(router)
    return app
