"""API Lambda entry point: API Gateway (REST v1 or HTTP API v2) → Mangum → FastAPI.

Everything heavy is built here once, during Lambda init, and reused by every warm invocation.
Mangum runs with ``lifespan="off"``: its lifespan would run on every invocation.
"""

import logging

from mangum import Mangum

from core.app import create_app
from core.pipelines import PipelineLoadError
from core.runtime import build_runtime
from core.settings import SettingsError, load_settings
from core.snapshot import SnapshotError

try:
    settings = load_settings()
    logging.basicConfig(level=settings.log_level, format="%(levelname)s %(name)s %(message)s")
    # Haystack logs every component run at INFO; keep that for LOG_LEVEL=DEBUG.
    logging.getLogger("haystack").setLevel(logging.DEBUG if settings.log_level == "DEBUG" else logging.WARNING)
    runtime = build_runtime(settings)
except (SettingsError, SnapshotError, PipelineLoadError) as exc:
    # One clear line instead of a traceback; the init fails, so a bad deploy never takes traffic.
    raise SystemExit(f"init failed: {exc}") from None

app = create_app(runtime)
handler = Mangum(app, lifespan="off", api_gateway_base_path=settings.api_base_path)
