"""API Lambda entry point: API Gateway (REST v1 or HTTP API v2) → Mangum → FastAPI.

Everything heavy is built here once, during Lambda init, and reused by every warm invocation.
Mangum runs with ``lifespan="off"``: its lifespan would run on every invocation. The handler reads
like its decorators would: Powertools' Lambda context keys and correlation id, the tracing backend's
``## handler`` span, and the EMF flush with the cold start metric (``runtime.telemetry.lambda_handler``).
"""

from core.runtime.boot import STARTED  # first: the init clock starts before the heavy imports

# isort: split
from mangum import Mangum

from core.api.app import create_app
from core.runtime.boot import boot
from core.runtime.snapstart import register_hooks

runtime = boot(STARTED)
app = create_app(runtime)
asgi_handler = Mangum(app, lifespan="off", api_gateway_base_path=runtime.settings.api_base_path)
handler = runtime.telemetry.lambda_handler(asgi_handler)
register_hooks(runtime, asgi_handler)
