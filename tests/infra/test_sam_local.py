"""`sam local start-api` keeps working with the explicit API definition: the SAM CLI's own parser maps
every route's integration (`${ApiFunction.Arn}:live`) to the API function. Runs in the SAM CLI venv.
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
from samcli.commands.local.lib.swagger.integration_uri import LambdaUri
from samtranslator.yaml_helper import yaml_parse
template = yaml_parse(open(sys.argv[1]).read())
body = template["Resources"]["RestApi"]["Properties"]["DefinitionBody"]
routes = {
    path: LambdaUri.get_function_name(method["x-amazon-apigateway-integration"]["uri"])
    for path, methods in body["paths"].items()
    for method in methods.values()
}
print(json.dumps(routes))
"""


def test_sam_local_routes_every_path_to_the_api_function():
    if not SAM_PYTHON.exists():
        pytest.skip("no SAM CLI venv (.venv-sam): `make test` installs it")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [str(SAM_PYTHON), "-c", PROBE, str(ROOT / "template.yaml")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    routes = json.loads(result.stdout)
    assert routes == {"/": "ApiFunction", "/{proxy+}": "ApiFunction"}
