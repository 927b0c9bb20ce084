"""`sam local start-api` keeps working with the explicit API definition: the SAM CLI's own providers map
every route's integration (`${ApiFunction.Arn}:live`) to the API function, with CORS on (OPTIONS methods
of their own, an Fn::If in the body) and off. Runs in the SAM CLI venv. `sam local` does not enforce API
keys (it warns that it skips the api_key scheme).
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAM_PYTHON = ROOT / ".venv-sam" / "bin" / "python"
PROBE = """
import json, sys
from samcli.lib.providers.api_provider import ApiProvider
from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider
stacks, _ = SamLocalStackProvider.get_stacks(sys.argv[1], parameter_overrides=json.loads(sys.argv[2]))
routes = {}
for route in ApiProvider(stacks).routes:
    routes.setdefault(route.path, {}).update({method: route.function_name for method in route.methods})
print(json.dumps(routes))
"""
METHODS = {"DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"}


@pytest.mark.parametrize("parameters", [{}, {"CorsAllowOrigins": "https://app.example.com"}])
def test_sam_local_routes_every_path_to_the_api_function(parameters):
    if not SAM_PYTHON.exists():
        pytest.skip("no SAM CLI venv (.venv-sam): `make test` installs it")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"AWS_DEFAULT_REGION": "us-east-1"}
    result = subprocess.run(
        [str(SAM_PYTHON), "-c", PROBE, str(ROOT / "template.yaml"), json.dumps(parameters)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    routes = json.loads(result.stdout)
    assert routes == {path: dict.fromkeys(METHODS, "ApiFunction") for path in ("/", "/{proxy+}")}
