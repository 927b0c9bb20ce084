"""Security in the template (issue 8): API keys and usage plans, the tenant registry, CORS and trusted
hosts, least privilege and secrets, checked on what CloudFormation would create.

The template is translated by the SAM CLI's samtranslator (`.venv-sam`) once per parameter set the project
deploys (samconfig.toml's default, staging and prod, and prod with pgvector, with the cache, in controller
mode, and with every security parameter set), then evaluated for that set's values by
`tests.infra.test_ingestion_template.Stack` (conditions, Fn::If, Sub, Select, ... as CloudFormation would).
Every checker used on the whole template is also shown failing on a planted mistake.
"""

import copy
import json
import re
import typing
from pathlib import Path

import pytest
from cfnlint.decode import decode

from core.api.middleware import host_allowed
from core.deploy.hooks import SMOKE_API_KEY_ID, SMOKE_HOST
from core.security.tenants import Identity, SsmTenantSource, TenantRecord
from core.settings import Settings, load_settings
from tests.infra.sam import Stack, samconfig_overrides, translate
from tests.infra.test_ingestion_template import _cycle

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
SAMCONFIG = ROOT / "samconfig.toml"
SAM_PYTHON = ROOT / ".venv-sam" / "bin" / "python"
STACK = "haystack-serverless-test"  # Stack's AWS::StackName
REGION = "us-east-1"
ACCOUNT = "123456789012"
NETWORK = {"VpcId": "vpc-0abc", "SubnetIds": "subnet-a,subnet-b"}
KMS_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
FUNCTIONS = ("ApiFunction", "IndexerFunction", "CodeDeployHookPreTraffic", "CodeDeployHookPostTraffic")


SECURED = {
    "TenantRegistryPrefix": "/acme/prod/tenants",
    "TenantRegistryKmsKeyArn": KMS_KEY,
    "CorsAllowOrigins": "https://app.example.com,https://admin.example.com:8443",
    "TrustedHosts": "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com",
    "CustomDomainName": "api.example.com",
    "RateLimitFailMode": "closed",
    "TenantCacheSeconds": "60",
}
PARAMETER_SETS = {
    "defaults": {},
    "default": samconfig_overrides("default"),
    "staging": samconfig_overrides("staging"),
    "prod": samconfig_overrides("prod"),
    "prod+pgvector": {**samconfig_overrides("prod"), "DocumentStore": "pgvector", **NETWORK},
    "prod+cache": {**samconfig_overrides("prod"), "EnableCache": "true", **NETWORK},
    "prod+controller": {**samconfig_overrides("prod"), "PublishAlias": "published"},
    "prod+served": {**samconfig_overrides("prod"), "StoreSnapshotUri": "s3://other-bucket/snaps/live.snapshot"},
    "secured": {
        **samconfig_overrides("prod"),
        **SECURED,
        "DocumentStore": "pgvector",
        "EnableCache": "true",
        "CreateDevApiKey": "true",
        **NETWORK,
    },
}
PROD_LIKE = [name for name in PARAMETER_SETS if name.startswith(("prod", "staging"))]

# AWS managed policies SAM attaches, with the statements in them that use a wildcard and why nothing
# narrower exists (AWS's managed policy reference documents each policy's JSON).
ALLOWED_MANAGED_POLICIES = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": (
        "logs:CreateLogGroup/CreateLogStream/PutLogEvents on *: every function's logs; SAM attaches it to each "
        "function role, and the streams Lambda creates have names no template can know."
    ),
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess": (
        "xray:PutTraceSegments/PutTelemetryRecords/GetSampling* on *: X-Ray has no resource-level permissions; "
        "SAM adds it for Tracing: Active."
    ),
    "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole": (
        "ec2:CreateNetworkInterface/DescribeNetworkInterfaces/DescribeSubnets/DeleteNetworkInterface/"
        "AssignPrivateIpAddresses/UnassignPrivateIpAddresses on *: Lambda manages the function's ENIs with the "
        "role, and Describe* take no resource. SAM adds it with VpcConfig (even inside a false Fn::If)."
    ),
    "arn:aws:iam::aws:policy/service-role/AWSCodeDeployRoleForLambda": (
        "cloudwatch:DescribeAlarms, lambda:UpdateAlias/GetAlias/GetProvisionedConcurrencyConfig, sns:Publish on *: "
        "the role SAM makes for CodeDeploy (CodeDeployServiceRole) to shift the alias and read the alarms; hooks "
        "only as lambda:InvokeFunction on function:CodeDeployHook_*."
    ),
}
# Inline statements allowed a wildcard, each with the reason. Empty: the template has none (the X-Ray and
# logs grants that need "*" come with the managed policies above).
ALLOWED_STATEMENTS: dict[tuple[str, str, str], str] = {}

# Settings that carry a secret's *location*, never the secret (core.settings: `secretsmanager:<id>` | `ssm:<name>`).
SECRET_REFERENCE = re.compile(r"^(secretsmanager|ssm):\S+$")
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL|ACCESS_?KEY", re.I)
# Names of a thing, not its secret (SMOKE_API_KEY_ID: an API key's id, which API Gateway shows anyone who may
# list keys; the value is what authenticates).
IDENTIFIER_NAME = re.compile(r"_(ID|ARN|NAME)$")
SECRET_VALUES = {
    "URL with a password": re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@", re.I),
    "password= in a connection string": re.compile(r"(^|\s)password\s*=", re.I),
    "AWS access key id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "API key of an LLM provider": re.compile(r"\bsk-[A-Za-z0-9_-]{16,}"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
}


# --- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def template() -> dict:
    data, matches = decode(str(TEMPLATE))
    assert not matches, [m.message for m in matches]
    return data


@pytest.fixture(scope="module")
def translated(tmp_path_factory) -> dict[str, dict]:
    """Each parameter set's CloudFormation, from one run of the SAM CLI's samtranslator."""
    return translate(PARAMETER_SETS, tmp_path_factory.mktemp("sam"))


@pytest.fixture(scope="module")
def deployed(translated) -> dict[str, dict[str, dict]]:
    """Parameter set → the resources CloudFormation would create, evaluated."""
    return {name: Stack(translated[name], PARAMETER_SETS[name]).resources() for name in PARAMETER_SETS}


def _environment(resources: dict, function: str) -> dict[str, str]:
    return resources[function]["Properties"].get("Environment", {}).get("Variables", {})


def _prefix(parameter_set: str) -> str:
    return PARAMETER_SETS[parameter_set].get("TenantRegistryPrefix") or f"/{STACK}/tenants"


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


# --- 1. API keys on every method -------------------------------------------------------------------

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace", "x-amazon-apigateway-any-method"}


def _keyless_methods(body: dict) -> list[tuple[str, str]]:
    """(path, method) of every operation API Gateway would run without an API key.

    A method requires one when its own `security` (or, without one, the API's) names a security scheme of
    type apiKey, in the header, called x-api-key, and the API takes keys from the header.
    """
    schemes = body.get("components", {}).get("securitySchemes", {})
    key_schemes = {
        name for name, scheme in schemes.items() if scheme == {"type": "apiKey", "name": "x-api-key", "in": "header"}
    }
    header_keys = body.get("x-amazon-apigateway-api-key-source") == "HEADER"
    keyless = []
    for path, operations in body.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in METHODS:
                continue
            requirements = operation.get("security", body.get("security", []))
            if not (header_keys and any(set(r) & key_schemes for r in requirements)):
                keyless.append((path, method))
    return keyless


@pytest.mark.parametrize("parameter_set", list(PARAMETER_SETS))
def test_every_api_method_requires_an_api_key(deployed, parameter_set):
    resources = deployed[parameter_set]
    apis = {n: r for n, r in resources.items() if r["Type"] == "AWS::ApiGateway::RestApi"}
    assert set(apis) == {"RestApi"}
    body = apis["RestApi"]["Properties"]["Body"]
    cors = bool(PARAMETER_SETS[parameter_set].get("CorsAllowOrigins"))
    # Only the browser's preflight is let through without a key, and only when CORS is on.
    assert sorted(_keyless_methods(body)) == ([("/", "options"), ("/{proxy+}", "options")] if cors else [])
    for path, operations in body["paths"].items():
        assert operations["x-amazon-apigateway-any-method"]["security"] == [{"api_key": []}], path
        assert set(operations) == {"x-amazon-apigateway-any-method", *(["options"] if cors else [])}, path
    # The methods are the body's: no method resource, no other API that could skip the requirement.
    assert not [r for r in resources.values() if r["Type"] in ("AWS::ApiGateway::Method", "AWS::ApiGatewayV2::Api")]
    # And every one of them invokes the live alias through ApiInvokeRole, the key's id in its event.
    for operations in body["paths"].values():
        for operation in operations.values():
            integration = operation["x-amazon-apigateway-integration"]
            assert integration["type"] == "aws_proxy"
            assert integration["uri"] == (
                f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/<ApiFunction.Arn>:live/invocations"
            )
            assert integration["credentials"] == "<ApiInvokeRole.Arn>"


def test_the_key_check_catches_a_method_without_a_key_and_a_key_from_elsewhere(deployed):
    body = deployed["prod"]["RestApi"]["Properties"]["Body"]
    assert _keyless_methods(body) == []
    no_security = copy.deepcopy(body)
    del no_security["paths"]["/{proxy+}"]["x-amazon-apigateway-any-method"]["security"]
    assert _keyless_methods(no_security) == [("/{proxy+}", "x-amazon-apigateway-any-method")]
    emptied = copy.deepcopy(body)
    emptied["paths"]["/"]["x-amazon-apigateway-any-method"]["security"] = []
    assert _keyless_methods(emptied) == [("/", "x-amazon-apigateway-any-method")]
    # Keys from a Lambda authorizer's usageIdentifierKey are not the caller's x-api-key header.
    authorizer_source = {**copy.deepcopy(body), "x-amazon-apigateway-api-key-source": "AUTHORIZER"}
    assert len(_keyless_methods(authorizer_source)) == 2
    other_scheme = copy.deepcopy(body)
    other_scheme["components"]["securitySchemes"]["api_key"]["name"] = "authorization"
    assert len(_keyless_methods(other_scheme)) == 2
    extra = copy.deepcopy(body)
    extra["paths"]["/admin"] = {"get": {"x-amazon-apigateway-integration": {}}}
    assert _keyless_methods(extra) == [("/admin", "get")]


def test_gateway_refusals_answer_with_the_error_body(deployed):
    # Missing or unknown key (403), throttle and quota (429): API Gateway answers, not the app; same body.
    responses = deployed["prod"]["RestApi"]["Properties"]["Body"]["x-amazon-apigateway-gateway-responses"]
    assert {"INVALID_API_KEY", "THROTTLED", "QUOTA_EXCEEDED", "DEFAULT_4XX", "DEFAULT_5XX"} <= set(responses)
    assert [responses[r]["statusCode"] for r in ("INVALID_API_KEY", "THROTTLED", "QUOTA_EXCEEDED")] == [
        "403",
        "429",
        "429",
    ]
    for name, response in responses.items():
        text = response["responseTemplates"]["application/json"]
        # API Gateway fills these in: messageString is a quoted JSON string, requestId a bare value.
        filled = text.replace("$context.error.messageString", '"Forbidden"').replace("$context.requestId", "r-1")
        error = json.loads(filled)["error"]
        assert set(error) == {"code", "message", "request_id"}, name
        assert error["request_id"] == "r-1" and re.fullmatch(r"[a-z_]+", error["code"]), name


def test_parameter_dependent_api_body_is_redeployed_on_every_update(template):
    # SAM names the API deployment after a hash of DefinitionBody as written (intrinsics unresolved): a body
    # whose content depends on parameter values (the OPTIONS methods of CorsAllowOrigins) needs AlwaysDeploy,
    # or changing the parameter would leave the stage on the previous deployment.
    properties = template["Resources"]["RestApi"]["Properties"]
    text = json.dumps(properties["DefinitionBody"])
    parameters = set(template["Parameters"])
    depends = '"Fn::If"' in text or any(f'{{"Ref": "{p}"}}' in text or f"${{{p}}}" in text for p in parameters)
    assert depends, "the check below only matters while the body depends on a parameter"
    assert properties.get("AlwaysDeploy") is True


# --- usage plans and keys ----------------------------------------------------------------------------


@pytest.mark.parametrize("parameter_set", list(PARAMETER_SETS))
def test_usage_plan_throttles_and_quotas_each_key_from_parameters_on_the_stage(translated, parameter_set):
    resources = translated[parameter_set]["Resources"]
    plans = {n: r for n, r in resources.items() if r["Type"] == "AWS::ApiGateway::UsagePlan"}
    assert set(plans) == {"StandardUsagePlan"}
    plan = plans["StandardUsagePlan"]["Properties"]
    assert plan["Throttle"] == {"RateLimit": {"Ref": "StandardRateLimit"}, "BurstLimit": {"Ref": "StandardBurstLimit"}}
    assert plan["Quota"] == {"Limit": {"Ref": "StandardQuotaLimit"}, "Period": {"Ref": "StandardQuotaPeriod"}}
    # Attached to the stage SAM makes for RestApi (a key works only in a plan on the stage it calls).
    (stage,) = plan["ApiStages"]
    assert stage["ApiId"] == {"Ref": "RestApi"}
    stage_resource = resources[stage["Stage"]["Ref"]]
    assert stage_resource["Type"] == "AWS::ApiGateway::Stage"
    assert stage_resource["Properties"]["RestApiId"] == {"Ref": "RestApi"}
    assert stage_resource["Properties"]["StageName"] == {"Ref": "StageName"}
    # Every key the stack puts in a plan goes into this one.
    for resource in resources.values():
        if resource["Type"] == "AWS::ApiGateway::UsagePlanKey":
            assert resource["Properties"]["UsagePlanId"] == {"Ref": "StandardUsagePlan"}


def test_usage_plan_parameters_have_sane_defaults(template):
    parameters = template["Parameters"]
    assert 0 < float(parameters["StandardRateLimit"]["Default"]) <= int(parameters["StandardBurstLimit"]["Default"])
    assert int(parameters["StandardQuotaLimit"]["Default"]) > 0
    assert parameters["StandardQuotaPeriod"]["AllowedValues"] == ["DAY", "WEEK", "MONTH"]


@pytest.mark.parametrize("parameter_set", list(PARAMETER_SETS))
def test_a_dev_key_and_its_tenant_only_where_asked_and_its_value_never_output(deployed, translated, parameter_set):
    resources = deployed[parameter_set]
    keys = {n for n, r in resources.items() if r["Type"] == "AWS::ApiGateway::ApiKey"}
    wanted = PARAMETER_SETS[parameter_set].get("CreateDevApiKey") == "true"
    assert keys == ({"DevApiKey"} if wanted else set())
    if wanted:
        assert resources["DevApiKey"]["Properties"]["Enabled"] is True
        assert resources["DevApiKeyInStandardPlan"]["Properties"] == {
            "KeyId": "<DevApiKey>",
            "KeyType": "API_KEY",
            "UsagePlanId": "<StandardUsagePlan>",
        }
        record = resources["DevTenantRecord"]["Properties"]
        assert record["Name"] == f"{_prefix(parameter_set)}/api-key/<DevApiKey>"
        assert TenantRecord.parse(json.loads(record["Value"])).tenant_id == "default"
    outputs = translated[parameter_set]["Outputs"]
    if wanted:
        assert outputs["DevApiKeyId"]["Value"] == {"Ref": "DevApiKey"}  # Ref of an ApiKey is its id
    # The key's value is an attribute of nothing CloudFormation outputs: no output reads the key but by Ref.
    for name, output in outputs.items():
        text = json.dumps(output["Value"])
        assert "DevApiKey" not in text or output["Value"] == {"Ref": "DevApiKey"}, name


def test_staging_and_prod_get_no_key_from_the_template():
    for env in ("staging", "prod"):
        assert samconfig_overrides(env).get("CreateDevApiKey", "false") == "false", env
    assert samconfig_overrides("default")["CreateDevApiKey"] == "true"


# --- 2. the tenant registry -----------------------------------------------------------------------


def _grants(role: dict) -> list[tuple[str, str, str, str]]:
    """(effect, action, resource, condition JSON) of every inline statement of an evaluated role."""
    found = []
    for policy in role.get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            for action in _as_list(statement.get("Action", [])):
                for resource in _as_list(statement.get("Resource", [])):
                    condition = json.dumps(statement.get("Condition", {}), sort_keys=True)
                    found.append((statement["Effect"], action, resource, condition))
    return found


def _role(resources: dict, function: str) -> dict:
    name = re.fullmatch(r"<(\w+)\.Arn>", resources[function]["Properties"]["Role"])[1]
    return resources[name]["Properties"]


@pytest.mark.parametrize("parameter_set", list(PARAMETER_SETS))
def test_tenant_registry_environment_and_exact_ssm_and_kms_grants(deployed, parameter_set):
    resources, prefix = deployed[parameter_set], _prefix(parameter_set)
    environment = _environment(resources, "ApiFunction")
    assert environment["TENANT_REGISTRY"] == f"ssm:{prefix}"
    parameters = PARAMETER_SETS[parameter_set]
    assert environment["TENANT_CACHE_TTL_S"] == parameters.get("TenantCacheSeconds", "300")
    assert environment["RATE_LIMIT_FAIL_MODE"] == parameters.get("RateLimitFailMode", "open")
    records = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{prefix}/*"
    expected = {("Allow", "ssm:GetParameter", records, "{}")}
    if parameters.get("TenantRegistryKmsKeyArn"):
        condition = {
            "StringEquals": {"kms:ViaService": f"ssm.{REGION}.amazonaws.com"},
            "StringLike": {"kms:EncryptionContext:PARAMETER_ARN": records},
        }
        expected.add(("Allow", "kms:Decrypt", KMS_KEY, json.dumps(condition, sort_keys=True)))
    grants = {g for g in _grants(_role(resources, "ApiFunction")) if g[1].startswith(("ssm:", "kms:"))}
    assert grants == expected
    # Nothing else reads the registry: the hooks send the smoke key id, the function looks it up.
    for function in FUNCTIONS[1:]:
        assert not [g for g in _grants(_role(resources, function)) if g[1].startswith(("ssm:", "kms:"))], function


@pytest.mark.parametrize("parameter_set", ["defaults", "secured"])
def test_the_grant_covers_exactly_where_the_code_looks_records_up(deployed, parameter_set, monkeypatch):
    resources, prefix = deployed[parameter_set], _prefix(parameter_set)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "api")
    reference = _environment(resources, "ApiFunction")["TENANT_REGISTRY"]
    assert load_settings(tenant_registry=reference).tenant_registry == reference
    store, _, name = reference.partition(":")
    source = SsmTenantSource(name, provider=object())  # no AWS call: the naming only
    (grant,) = [g for g in _grants(_role(resources, "ApiFunction")) if g[1] == "ssm:GetParameter"]
    arn = grant[2]
    for key_id in ("a1b2c3d4e5", "codedeploy-smoke-" + STACK):
        parameter = source.parameter_name(Identity("api-key", key_id, "test"))
        assert _iam_match(arn, f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{parameter}")
    # Not a sibling path, not the prefix's parent.
    assert not _iam_match(arn, f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{prefix}-other/api-key/x")
    assert not _iam_match(arn, f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/other/api-key/x")
    assert store == "ssm"


def _iam_match(pattern: str, arn: str) -> bool:
    """IAM's resource matching: `*` any run of characters (slashes too), `?` one character."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, arn) is not None


def test_tenant_parameters_accept_what_the_code_accepts(template):
    parameters = template["Parameters"]
    prefix = parameters["TenantRegistryPrefix"]["AllowedPattern"]
    for value, accepted in (("", True), ("/a/b", True), ("/a.b_c-d/e", True), ("a/b", False), ("/a/", False)):
        assert bool(re.fullmatch(prefix, value)) is accepted, value
        if accepted and value:
            SsmTenantSource(value, provider=object())
    fail_modes = typing.get_args(Settings.model_fields["rate_limit_fail_mode"].annotation)
    assert set(parameters["RateLimitFailMode"]["AllowedValues"]) == set(fail_modes)
    assert parameters["RateLimitFailMode"]["Default"] == Settings.model_fields["rate_limit_fail_mode"].default
    ttl = Settings.model_fields["tenant_cache_ttl_s"]
    assert parameters["TenantCacheSeconds"]["Default"] == ttl.default
    bounds = {type(m).__name__: m for m in ttl.metadata}
    assert (parameters["TenantCacheSeconds"]["MinValue"], parameters["TenantCacheSeconds"]["MaxValue"]) == (
        bounds["Ge"].ge,
        bounds["Le"].le,
    )


# --- 3. the smoke tenant -------------------------------------------------------------------------------


@pytest.mark.parametrize("parameter_set", list(PARAMETER_SETS))
def test_smoke_tenant_record_matches_the_key_id_the_hook_sends(deployed, translated, parameter_set):
    resources = deployed[parameter_set]
    hook = _environment(resources, "CodeDeployHookPreTraffic")
    key_id = hook[SMOKE_API_KEY_ID]
    assert key_id == f"codedeploy-smoke-{STACK}"
    record = resources["SmokeTenantRecord"]["Properties"]
    assert record["Name"] == f"{_prefix(parameter_set)}/api-key/{key_id}"
    assert record["Type"] == "String"
    tenant = TenantRecord.parse(json.loads(record["Value"]))
    # Tenant default: the bundled corpus's chunks carry meta.tenant = default, so the smoke queries find them.
    assert (tenant.tenant_id, tenant.allowed_pipelines, tenant.enabled) == ("default", "*", True)
    # The record exists before the hook can run (CodeDeploy runs it during the alias update).
    assert translated[parameter_set]["Resources"]["CodeDeployHookPreTraffic"]["DependsOn"] == "SmokeTenantRecord"
    # An id API Gateway could never give a real key (its ids are 10 lowercase letters and digits), and one
    # the code can look up.
    assert not re.fullmatch(r"[a-z0-9]{10}", key_id)
    assert SsmTenantSource("/x", provider=object()).parameter_name(Identity("api-key", key_id, "test"))


# --- 4. CORS and trusted hosts ----------------------------------------------------------------------


def _host_allowed(host: str, patterns: list[str]) -> bool:
    """The app's own check (core.api.middleware.host_allowed) on a request to ``host``."""
    return host_allowed({"type": "http", "headers": [(b"host", host.encode())]}, patterns)


def _wildcard_problems(environment: dict[str, str]) -> list[str]:
    """Origins or hosts that let anyone in: `*`, or a wildcard beyond this region's execute-api hosts."""
    origins = environment.get("CORS_ALLOW_ORIGINS", "").split(",")
    hosts = environment.get("TRUSTED_HOSTS", "").split(",")
    return [f"CORS_ALLOW_ORIGINS: {o}" for o in origins if "*" in o] + [
        f"TRUSTED_HOSTS: {h}" for h in hosts if "*" in h and h != f"*.execute-api.{REGION}.amazonaws.com"
    ]


@pytest.mark.parametrize("parameter_set", list(PARAMETER_SETS))
def test_cors_and_trusted_hosts_from_parameters_never_a_wildcard(deployed, parameter_set, monkeypatch):
    environment = _environment(deployed[parameter_set], "ApiFunction")
    parameters = PARAMETER_SETS[parameter_set]
    assert environment.get("CORS_ALLOW_ORIGINS") == (parameters.get("CorsAllowOrigins") or None)
    hosts = environment["TRUSTED_HOSTS"].split(",")
    expected = parameters.get("TrustedHosts", f"*.execute-api.{REGION}.amazonaws.com").split(",")
    assert hosts == expected + ([parameters["CustomDomainName"]] if parameters.get("CustomDomainName") else [])
    assert _wildcard_problems(environment) == []
    # The settings take them as they are on Lambda (where `*` is refused).
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "api")
    settings = load_settings(cors_allow_origins=environment.get("CORS_ALLOW_ORIGINS", ""), trusted_hosts=hosts)
    assert settings.trusted_hosts == hosts
    # The API's own host passes the check; the smoke tests' host too (or every smoke test would get a 400).
    assert _host_allowed(f"a1b2c3d4e5.execute-api.{REGION}.amazonaws.com", hosts)
    assert _host_allowed(_environment(deployed[parameter_set], "CodeDeployHookPreTraffic")[SMOKE_HOST], hosts)
    if parameters.get("CustomDomainName"):
        assert _host_allowed(parameters["CustomDomainName"], hosts)
    # Another region's APIs, or any other host, are refused.
    assert not _host_allowed("a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com", hosts)
    assert not _host_allowed("evil.example.com", hosts)


def test_the_wildcard_check_catches_star_origins_and_broad_hosts():
    assert _wildcard_problems({"CORS_ALLOW_ORIGINS": "https://a.example.com,*", "TRUSTED_HOSTS": "*"}) == [
        "CORS_ALLOW_ORIGINS: *",
        "TRUSTED_HOSTS: *",
    ]
    assert _wildcard_problems({"TRUSTED_HOSTS": "*.amazonaws.com"}) == ["TRUSTED_HOSTS: *.amazonaws.com"]
    assert _wildcard_problems({"CORS_ALLOW_ORIGINS": "https://*.example.com"}) == [
        "CORS_ALLOW_ORIGINS: https://*.example.com"
    ]


def test_prod_samconfig_sets_no_wildcard_and_the_parameters_refuse_one(template):
    parameters = template["Parameters"]
    for env in ("default", "staging", "prod"):
        overrides = samconfig_overrides(env)
        for name in ("CorsAllowOrigins", "TrustedHosts", "CustomDomainName"):
            assert "*" not in overrides.get(name, ""), (env, name)
    for name, value in (
        ("CorsAllowOrigins", "*"),
        ("CorsAllowOrigins", "https://a.example.com,*"),
        ("CorsAllowOrigins", "https://*.example.com"),
        ("TrustedHosts", "*"),
        ("TrustedHosts", "*.example.com"),
        ("CustomDomainName", "*.example.com"),
    ):
        assert not re.fullmatch(parameters[name]["AllowedPattern"], value), (name, value)
    for name, value in (
        ("CorsAllowOrigins", "https://app.example.com,http://localhost:5173"),
        ("TrustedHosts", "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com,api.example.com"),
        ("CustomDomainName", "api.example.com"),
    ):
        assert re.fullmatch(parameters[name]["AllowedPattern"], value), (name, value)


@pytest.mark.parametrize("parameter_set", list(PARAMETER_SETS))
def test_no_dependency_cycle(translated, parameter_set):
    assert _cycle(translated[parameter_set]) is None


def test_the_function_cannot_name_its_own_apis_host(translated):
    # Why TRUSTED_HOSTS is a pattern or a parameter: RestApi names the function, so the reverse is a cycle.
    cyclic = copy.deepcopy(translated["defaults"])
    variables = cyclic["Resources"]["ApiFunction"]["Properties"]["Environment"]["Variables"]
    variables["TRUSTED_HOSTS"] = {"Fn::Sub": "${RestApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}"}
    assert _cycle(cyclic) is not None


# --- 5. least privilege -------------------------------------------------------------------------------

POLICY_DOCUMENTS = {
    "AWS::IAM::Policy": ["PolicyDocument"],
    "AWS::IAM::ManagedPolicy": ["PolicyDocument"],
    "AWS::S3::BucketPolicy": ["PolicyDocument"],
    "AWS::SQS::QueuePolicy": ["PolicyDocument"],
    "AWS::SNS::TopicPolicy": ["PolicyDocument"],
}


def _documents(resources: dict) -> list[tuple[str, dict]]:
    """(where, policy document) of every identity and resource policy the stack creates."""
    found = []
    for name, resource in resources.items():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::IAM::Role":
            found += [(f"{name}/{p['PolicyName']}", p["PolicyDocument"]) for p in properties.get("Policies", [])]
        for key in POLICY_DOCUMENTS.get(resource["Type"], []):
            found.append((name, properties[key]))
    return found


def _statement_problems(where: str, statement: dict) -> list[str]:
    """What is too broad in one Allow statement (nothing for a Deny, or for an allowlisted grant)."""
    if statement["Effect"] != "Allow":
        return []
    problems = []
    if "NotAction" in statement or "NotResource" in statement:
        problems.append(f"{where}: NotAction/NotResource in an Allow")
    if statement.get("Principal") in ("*", {"AWS": "*"}):
        problems.append(f"{where}: Allow to any principal")
    for action in _as_list(statement.get("Action", [])):
        for resource in _as_list(statement.get("Resource", [])):
            if (where.partition("/")[0], action, resource) in ALLOWED_STATEMENTS:
                continue
            if "*" in action:
                problems.append(f"{where}: action {action}")
            if resource == "*":
                problems.append(f"{where}: {action} on *")
    return problems


def _iam_problems(resources: dict) -> list[str]:
    """Every Allow that grants `*`, a whole service (`svc:*`), a wildcard action, or `*` resources, every
    NotAction/NotResource Allow, every Allow to any principal, and every managed policy not allowlisted."""
    problems = [
        problem
        for where, document in _documents(resources)
        for statement in _as_list(document["Statement"])
        for problem in _statement_problems(where, statement)
    ]
    roles = {n: r["Properties"] for n, r in resources.items() if r["Type"] == "AWS::IAM::Role"}
    problems += [
        f"{name}: managed policy {arn}"
        for name, role in roles.items()
        for arn in role.get("ManagedPolicyArns", [])
        if arn not in ALLOWED_MANAGED_POLICIES
    ]
    return problems


@pytest.mark.parametrize("parameter_set", list(PARAMETER_SETS))
def test_every_policy_statement_grants_named_actions_on_named_resources(deployed, parameter_set):
    resources = deployed[parameter_set]
    assert _iam_problems(resources) == []
    # The walk saw the stack's roles and resource policies (an empty walk would pass anything).
    documents = dict(_documents(resources))
    assert len([w for w in documents if "/" in w]) >= len(FUNCTIONS) + 1  # each function's role, ApiInvokeRole
    assert {"DocumentsBucketPolicy", "StoreBucketPolicy", "IngestionQueuePolicy"} <= set(documents)


def test_the_walk_catches_each_kind_of_broad_grant(deployed):
    clean = deployed["prod"]
    role = re.fullmatch(r"<(\w+)\.Arn>", clean["ApiFunction"]["Properties"]["Role"])[1]

    def planted(statement: dict | None = None, managed: str | None = None, resource: dict | None = None) -> list:
        resources = copy.deepcopy(clean)
        if statement:
            resources[role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"].append(statement)
        if managed:
            resources[role]["Properties"]["ManagedPolicyArns"].append(managed)
        if resource:
            resources["Planted"] = resource
        return _iam_problems(resources)

    allow = {"Effect": "Allow"}
    both = planted({**allow, "Action": "*", "Resource": "*"})
    assert len(both) == 2 and both[0].endswith("action *") and both[1].endswith("* on *")
    assert both[0].startswith(f"{role}/")
    assert planted({**allow, "Action": "s3:*", "Resource": "arn:aws:s3:::b/*"})[0].endswith("action s3:*")
    assert planted({**allow, "Action": "ssm:GetParameter*", "Resource": "arn:x"})[0].endswith("ssm:GetParameter*")
    assert planted({**allow, "Action": ["sqs:SendMessage"], "Resource": ["arn:x", "*"]})[0].endswith(
        "sqs:SendMessage on *"
    )
    assert "NotAction" in planted({**allow, "NotAction": "iam:*", "Resource": "arn:x"})[0]
    assert planted({"Effect": "Deny", "Action": "*", "Resource": "*"}) == []
    assert planted(managed="arn:aws:iam::aws:policy/AdministratorAccess")[0].endswith("AdministratorAccess")
    bucket_policy = {
        "Type": "AWS::S3::BucketPolicy",
        "Properties": {
            "PolicyDocument": {
                "Statement": [{**allow, "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}]
            }
        },
    }
    assert planted(resource=bucket_policy) == ["Planted: Allow to any principal"]


def test_allowlists_give_a_reason_for_each_entry():
    for arn, reason in {**ALLOWED_MANAGED_POLICIES, **{str(k): v for k, v in ALLOWED_STATEMENTS.items()}}.items():
        assert len(reason) > 40, arn


# --- secrets --------------------------------------------------------------------------------------------


def _secret_problems(environment: dict[str, str]) -> list[str]:
    """Variables that carry a secret's value instead of its location."""
    problems = []
    for name, value in environment.items():
        text = str(value)
        if name.endswith("_SECRET"):
            if not SECRET_REFERENCE.fullmatch(text):
                problems.append(f"{name}: not a secretsmanager:/ssm: reference")
        elif SECRET_NAME.search(name) and not IDENTIFIER_NAME.search(name):
            problems.append(f"{name}: a secret's value in the environment")
        for what, pattern in SECRET_VALUES.items():
            if pattern.search(text):
                problems.append(f"{name}: {what}")
    return problems


def test_every_secret_setting_is_caught_by_its_name_or_its_value():
    # A SecretStr setting is refused by name (OPENAI_API_KEY), or is a connection string whose secret part
    # the value patterns find (PG_CONN_STR may be set with host and dbname only; its password never).
    fields = {n.upper() for n, f in Settings.model_fields.items() if "SecretStr" in str(f.annotation)}
    assert {"PG_CONN_STR", "OPENAI_API_KEY"} <= fields
    assert {f for f in fields if not SECRET_NAME.search(f)} == {"PG_CONN_STR"}


@pytest.mark.parametrize("parameter_set", list(PARAMETER_SETS))
def test_no_secret_values_in_any_function_environment(deployed, template, parameter_set):
    resources = deployed[parameter_set]
    globals_environment = Stack(template, PARAMETER_SETS[parameter_set])(
        template["Globals"]["Function"]["Environment"]["Variables"]
    )
    assert _secret_problems(globals_environment) == []
    functions = [n for n, r in resources.items() if r["Type"] == "AWS::Lambda::Function"]
    assert set(FUNCTIONS) <= set(functions)
    for function in functions:
        assert _secret_problems(_environment(resources, function)) == [], function
    # Credentials of the database come from the RDS-managed secret, by reference.
    api = _environment(resources, "ApiFunction")
    if "PG_CONN_STR" in api:
        assert api["PG_CONN_SECRET"] == "secretsmanager:<DatabaseCluster.MasterUserSecret.SecretArn>"


def test_the_secrets_scan_catches_values_and_plain_secret_settings():
    assert _secret_problems({"OPENAI_API_KEY": "sk-proj-abcdefghijklmnop1234"}) == [
        "OPENAI_API_KEY: a secret's value in the environment",
        "OPENAI_API_KEY: API key of an LLM provider",
    ]
    assert _secret_problems({"PG_CONN_STR": "host=db port=5432 user=haystack password=hunter2"}) == [
        "PG_CONN_STR: password= in a connection string"
    ]
    assert _secret_problems({"REDIS_URL": "rediss://default:hunter2@cache:6379"}) == ["REDIS_URL: URL with a password"]
    assert _secret_problems({"REDIS_AUTH_SECRET": "hunter2"}) == [
        "REDIS_AUTH_SECRET: not a secretsmanager:/ssm: reference"
    ]
    assert _secret_problems({"EXTRA": "AKIAABCDEFGHIJKLMNOP"}) == ["EXTRA: AWS access key id"]
    assert _secret_problems({"DB_PASSWORD": "x"}) == ["DB_PASSWORD: a secret's value in the environment"]
    # References and plain configuration pass.
    assert (
        _secret_problems(
            {
                "PG_CONN_SECRET": "secretsmanager:arn:aws:secretsmanager:us-east-1:1:secret:rds-x",
                "REDIS_AUTH_SECRET": "ssm:/stack/redis",
                "PG_CONN_STR": "host=db port=5432 dbname=haystack sslmode=require",
                "REDIS_URL": "rediss://cache.example.com:6379",
                "TENANT_REGISTRY": "ssm:/stack/tenants",
            }
        )
        == []
    )


def test_no_parameter_takes_a_secret(template):
    # A secret passed as a parameter shows in the console and the change set: references only (NoEcho would
    # still put it in the function's environment).
    names = [n for n, p in template["Parameters"].items() if SECRET_NAME.search(n) and not p.get("AllowedValues")]
    assert names == []
    # A flag (a closed set of values) may be named after a key: CreateDevApiKey.
    assert template["Parameters"]["CreateDevApiKey"]["AllowedValues"] == ["true", "false"]
