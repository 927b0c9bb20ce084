"""The SAM transform as `sam deploy` runs it: samtranslator of the SAM CLI (`.venv-sam`, which `make test`
installs; it pins other versions than the project's venv, so it runs in its own interpreter).

Example:
    >>> translated = translate({"defaults": {}, "prod": samconfig_overrides("prod")}, tmp_path)
    >>> translated["prod"]["Resources"]["ApiFunctionDeploymentGroup"]
"""

import json
import os
import re
import shlex
import subprocess
import tomllib
import typing
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


STACK_ID = (
    "arn:aws:cloudformation:us-east-1:123456789012:stack/haystack-serverless-test/51af3dc0-da77-11e4-872e-1234567db123"
)


# --- CloudFormation, evaluated ------------------------------------------------------------------------

NO_VALUE = object()
PSEUDO = {
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "haystack-serverless-test",
    "AWS::StackId": STACK_ID,
}


class Stack:
    """One template with one set of parameter values, evaluated as CloudFormation would.

    A resource's Ref is ``<Name>`` and its attributes ``<Name.Attribute>``, except for buckets with a
    BucketName: their Ref is that name and their Arn ``arn:aws:s3:::<name>``.
    """

    def __init__(self, template: dict, parameters: dict[str, str] | None = None):
        self.template = template
        self.parameters: dict[str, typing.Any] = {}
        for name, parameter in template.get("Parameters", {}).items():
            value = str((parameters or {}).get(name, parameter.get("Default", "")))
            self.parameters[name] = value.split(",") if parameter["Type"] == "CommaDelimitedList" else value
        self._conditions: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = bool(self(self.template["Conditions"][name]))
        return self._conditions[name]

    def _bucket_name(self, name: str) -> str | None:
        resource = self.template["Resources"].get(name, {})
        if resource.get("Type") == "AWS::S3::Bucket" and "BucketName" in resource.get("Properties", {}):
            return self(resource["Properties"]["BucketName"])
        return None

    def ref(self, name: str):
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.parameters:
            return self.parameters[name]
        if name in PSEUDO:
            return PSEUDO[name]
        assert name in self.template["Resources"], f"unknown reference {name}"
        if self.template["Resources"][name]["Type"] == "AWS::Lambda::Version":  # Ref is the version's ARN
            return f"arn:aws:lambda:us-east-1:123456789012:function:<{name}>:7"
        return self._bucket_name(name) or f"<{name}>"

    def get_att(self, name: str, attribute: str) -> str:
        assert name in self.template["Resources"], f"unknown resource {name}"
        bucket = self._bucket_name(name)
        if bucket and attribute == "Arn":
            return f"arn:aws:s3:::{bucket}"
        return f"<{name}.{attribute}>"

    def _sub(self, value) -> str:
        text, variables = (value, {}) if isinstance(value, str) else value
        variables = {k: self(v) for k, v in variables.items()}

        def replace(match: re.Match) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name and not name.startswith("AWS::"):
                return self.get_att(*name.split(".", 1))
            return str(self.ref(name))

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def _if(self, value):
        name, then, otherwise = value
        return self(then if self.condition(name) else otherwise)

    def _get_att(self, value) -> str:
        name, attribute = value if isinstance(value, list) else value.split(".", 1)
        return self.get_att(name, attribute)

    def __call__(self, node):
        if isinstance(node, list):
            return [v for v in (self(item) for item in node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, value), = node.items()  # fmt: skip
            functions = {
                "Ref": self.ref,
                "Condition": self.condition,
                "Fn::If": self._if,
                "Fn::Equals": lambda v: str(self(v[0])) == str(self(v[1])),
                "Fn::Not": lambda v: not self(v[0]),
                "Fn::And": lambda v: all(self(x) for x in v),
                "Fn::Or": lambda v: any(self(x) for x in v),
                "Fn::Sub": self._sub,
                "Fn::Join": lambda v: v[0].join(str(x) for x in self(v[1])),
                "Fn::Split": lambda v: str(self(v[1])).split(v[0]),
                "Fn::Select": lambda v: self(v[1])[int(self(v[0]))],
                "Fn::GetAtt": self._get_att,
                "Fn::FindInMap": lambda v: self.template["Mappings"][self(v[0])][str(self(v[1]))][self(v[2])],
            }
            if key in functions:
                return functions[key](value)
        return {k: v for k, v in ((k, self(v)) for k, v in node.items()) if v is not NO_VALUE}

    def resources(self) -> dict[str, dict]:
        """The resources this deploy creates (their Condition true), properties evaluated."""
        return {
            name: {**resource, "Properties": self(resource.get("Properties", {}))}
            for name, resource in self.template["Resources"].items()
            if "Condition" not in resource or self.condition(resource["Condition"])
        }

    def rule_failures(self) -> list[str]:
        failures = []
        for rule in self.template.get("Rules", {}).values():
            if "RuleCondition" in rule and not self(rule["RuleCondition"]):
                continue
            failures += [a["AssertDescription"] for a in rule["Assertions"] if not self(a["Assert"])]
        return failures
