"""API Lambda entry point: API Gateway (REST v1 or HTTP API v2) → Mangum → FastAPI.

Everything heavy is built here once, during Lambda init, and reused by every warm invocation.
Mangum runs with ``lifespan="off"``: its lifespan would run on every invocation.
"""

from core.boot import STARTED  # first: the init clock starts before the heavy imports

# isort: split
from mangum import Mangum

from core.app import create_app
from core.boot import boot
from core.snapstart import register_hooks

runtime = boot(STARTED)
app = create_app(runtime)
handler = Mangum(app, lifespan="off", api_gateway_base_path=runtime.settings.api_base_path)
register_hooks(runtime, handler)
