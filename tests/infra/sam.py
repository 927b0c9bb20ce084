"""The SAM transform as `sam deploy` runs it: samtranslator of the SAM CLI (`.venv-sam`, which `make test`
installs; it pins other versions than the project's venv, so it runs in its own interpreter).

Example:
    >>> translated = translate({"defaults": {}, "prod": samconfig_overrides("prod")}, tmp_path)
    >>> translated["prod"]["Resources"]["ApiFunctionDeploymentGroup"]
"""

import json
import os
import shlex
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
SAMCONFIG = ROOT / "samconfig.toml"
SAM_BIN = ROOT / ".venv-sam" / "bin"

TRANSLATE = """
import json, sys
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

class Policies:
    def load(self):
        return {}

text = open(sys.argv[1]).read()
outputs = []
for parameters in json.loads(sys.argv[2]):
    template = yaml_parse(text)
    for name, resource in template["Resources"].items():
        properties = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if isinstance(properties.get(key), str):
                properties[key] = f"s3://bucket/{name}.zip"  # what sam package uploads
    outputs.append(transform(template, parameters, Policies()))
print(json.dumps(outputs))
"""


def samconfig_overrides(environment: str) -> dict[str, str]:
    """The parameter overrides an environment of samconfig.toml deploys with."""
    text = tomllib.loads(SAMCONFIG.read_text())[environment]["global"]["parameters"]["parameter_overrides"]
    return dict(token.split("=", 1) for token in shlex.split(text))


def translate(parameter_sets: dict[str, dict], workdir: Path, template: Path = TEMPLATE) -> dict[str, dict]:
    """Each parameter set's CloudFormation, from one run of the SAM CLI's samtranslator."""
    if not (SAM_BIN / "python").exists():
        pytest.skip("no SAM CLI venv (.venv-sam): `make test` and `make build` install it")
    script = workdir / "translate.py"
    script.write_text(TRANSLATE)
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"AWS_DEFAULT_REGION": "us-east-1"}
    result = subprocess.run(
        [str(SAM_BIN / "python"), str(script), str(template), json.dumps(list(parameter_sets.values()))],
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(zip(parameter_sets, json.loads(result.stdout), strict=True))
