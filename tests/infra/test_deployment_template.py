"""Safe deployments in the template, checked on what the SAM transform makes of it.

The CodeDeploy application and deployment group, the alias update policy with its hooks, the hook
functions and their roles exist only after the transform: samtranslator (the SAM CLI's, in `.venv-sam`)
translates the template once per parameter set that matters (the defaults, each DeploymentType, prod's
samconfig overrides, PublishAlias=published), as CloudFormation's transform would with those values.
The hooks' build target (src/Makefile) is run too, and its artifact imported the way Lambda would.
"""

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from cfnlint.decode import decode

from core.deploy.hooks import DEFAULT_INVOKE_TIMEOUT_S, REPORT_MARGIN_S
from core.deploy.smoke import load_cases
from scripts.package import AWS_SERVICES
from tests.infra.sam import samconfig_overrides, translate

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
SAMCONFIG = ROOT / "samconfig.toml"
SAM_DIR = ROOT / ".venv-sam" / "bin"
SMOKE = ROOT / "events" / "smoke"
HOOKS = {"PreTraffic": "CodeDeployHookPreTraffic", "PostTraffic": "CodeDeployHookPostTraffic"}
NEW_VERSION_ALARMS = ["NewVersion5xxRateAlarm", "NewVersionP99LatencyAlarm", "NewVersionErrorsAlarm"]
CODEDEPLOY_TYPES = [
    "AllAtOnce",
    "Canary10Percent5Minutes",
    "Canary10Percent10Minutes",
    "Canary10Percent15Minutes",
    "Canary10Percent30Minutes",
    "Linear10PercentEvery1Minute",
    "Linear10PercentEvery2Minutes",
    "Linear10PercentEvery3Minutes",
    "Linear10PercentEvery10Minutes",
]
DEPLOYMENT_GROUP_ARN = (
    "arn:${AWS::Partition}:codedeploy:${AWS::Region}:${AWS::AccountId}:deploymentgroup:"
    "${ServerlessDeploymentApplication}/${ApiFunctionDeploymentGroup}"
)
LIVE_INTEGRATION = (
    "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/"
    "${ApiFunction.Arn}:live/invocations"
)


PARAMETER_SETS = {
    "defaults": {},
    "prod": samconfig_overrides("prod"),
    "controller": {"PublishAlias": "published", "DeploymentType": "Canary10Percent5Minutes"},
    **{f"type:{name}": {"DeploymentType": name} for name in CODEDEPLOY_TYPES},
}


@pytest.fixture(scope="module")
def translated(tmp_path_factory) -> dict[str, dict]:
    """Each parameter set's CloudFormation, translated in one run of the SAM CLI's samtranslator."""
    return translate(PARAMETER_SETS, tmp_path_factory.mktemp("sam"))


@pytest.fixture(scope="module")
def cfn(translated) -> dict:
    """The defaults' translation (dev: PublishAlias=live, AllAtOnce)."""
    return translated["defaults"]


def _of_type(template: dict, resource_type: str) -> dict[str, dict]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == resource_type}


def _alias(template: dict) -> tuple[str, dict]:
    (item,) = _of_type(template, "AWS::Lambda::Alias").items()
    return item


def _version_id(template: dict) -> str:
    (name,) = _of_type(template, "AWS::Lambda::Version")
    return name


def _statements(template: dict, role: str) -> list[dict]:
    policies = template["Resources"][role]["Properties"].get("Policies", [])
    return [s for p in policies for s in p["PolicyDocument"]["Statement"]]


def _grants(statements: list[dict]) -> dict[str, list]:
    """Action → resources, each statement one action (how the template writes them)."""
    grants = {}
    for statement in statements:
        assert statement["Effect"] == "Allow"
        assert isinstance(statement["Action"], str), statement
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        grants[statement["Action"]] = resources
    return grants


# --- the CodeDeploy path ----------------------------------------------------------------------------------


def test_api_function_gets_a_codedeploy_application_and_deployment_group(cfn):
    resources = cfn["Resources"]
    assert resources["ServerlessDeploymentApplication"]["Properties"] == {"ComputePlatform": "Lambda"}
    groups = _of_type(cfn, "AWS::CodeDeploy::DeploymentGroup")
    assert set(groups) == {"ApiFunctionDeploymentGroup"}, "the hooks must not get a deployment group"
    group = groups["ApiFunctionDeploymentGroup"]["Properties"]
    assert group["ApplicationName"] == {"Ref": "ServerlessDeploymentApplication"}
    assert group["DeploymentStyle"] == {"DeploymentType": "BLUE_GREEN", "DeploymentOption": "WITH_TRAFFIC_CONTROL"}
    assert group["AutoRollbackConfiguration"]["Enabled"] is True
    assert "DEPLOYMENT_STOP_ON_ALARM" in group["AutoRollbackConfiguration"]["Events"]


@pytest.mark.parametrize("deployment_type", CODEDEPLOY_TYPES)
def test_deployment_config_is_the_deployment_type_parameter(translated, deployment_type):
    group = translated[f"type:{deployment_type}"]["Resources"]["ApiFunctionDeploymentGroup"]["Properties"]
    assert group["DeploymentConfigName"] == {
        "Fn::Sub": ["CodeDeployDefault.Lambda${ConfigName}", {"ConfigName": deployment_type}]
    }


def test_deployment_type_parameter_offers_the_codedeploy_types_and_defaults_to_all_at_once():
    parameters = decode(str(TEMPLATE))[0]["Parameters"]
    assert parameters["DeploymentType"]["AllowedValues"] == CODEDEPLOY_TYPES
    assert parameters["DeploymentType"]["Default"] == "AllAtOnce"


def test_only_the_new_version_alarms_stop_and_roll_back_a_deployment(cfn):
    group = cfn["Resources"]["ApiFunctionDeploymentGroup"]["Properties"]
    assert group["AlarmConfiguration"] == {
        "Enabled": True,
        "Alarms": [{"Name": {"Ref": a}} for a in NEW_VERSION_ALARMS],
    }
    # The throttles of the whole alias are a capacity signal, not the release's (template comment).
    assert "ThrottlesAlarm" not in json.dumps(group)


def test_live_alias_is_shifted_by_codedeploy_with_both_hooks(cfn):
    _, alias = _alias(cfn)
    assert alias["Properties"]["Name"] == "live"
    update = alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
    assert update == {
        "ApplicationName": {"Ref": "ServerlessDeploymentApplication"},
        "DeploymentGroupName": {"Ref": "ApiFunctionDeploymentGroup"},
        "BeforeAllowTrafficHook": {"Ref": HOOKS["PreTraffic"]},
        "AfterAllowTrafficHook": {"Ref": HOOKS["PostTraffic"]},
    }
    assert alias["Properties"]["FunctionVersion"] == {"Fn::GetAtt": [_version_id(cfn), "Version"]}


def test_prod_shifts_with_a_canary_and_dev_all_at_once(translated):
    assert samconfig_overrides("prod")["DeploymentType"].startswith("Canary")
    assert "DeploymentType" not in samconfig_overrides("default")
    for env, expected in (("prod", samconfig_overrides("prod")["DeploymentType"]), ("defaults", "AllAtOnce")):
        group = translated[env]["Resources"]["ApiFunctionDeploymentGroup"]["Properties"]
        assert group["DeploymentConfigName"]["Fn::Sub"][1] == {"ConfigName": expected}, env


# --- the hook functions -----------------------------------------------------------------------------------


@pytest.mark.parametrize("hook", HOOKS.values())
def test_hook_functions_are_named_for_the_codedeploy_managed_role(cfn, hook):
    properties = cfn["Resources"][hook]["Properties"]
    name = properties["FunctionName"]["Fn::Sub"]
    assert name.startswith("CodeDeployHook_${AWS::StackName}-")
    # Function names end at 64 characters: every stack samconfig.toml deploys fits.
    config = tomllib.loads(SAMCONFIG.read_text())
    for env in ("default", "staging", "prod"):
        stack = config[env]["global"]["parameters"]["stack_name"]
        assert len(name.replace("${AWS::StackName}", stack)) <= 64, (env, stack)
    assert properties["Handler"] == f"handlers.deploy_hooks.{'pre' if 'Pre' in hook else 'post'}_traffic"


@pytest.mark.parametrize("hook", HOOKS.values())
def test_hook_functions_have_no_deployment_of_their_own(cfn, hook):
    # DeploymentPreference.Enabled false: no alias, no version, no deployment group for the hooks.
    text = json.dumps({n: r for n, r in cfn["Resources"].items() if r["Type"] != "AWS::Lambda::Function"})
    assert f"{hook}Alias" not in text and f"{hook}Version" not in text and f"{hook}DeploymentGroup" not in text
    template = decode(str(TEMPLATE))[0]
    assert template["Resources"][hook]["Properties"]["DeploymentPreference"] == {"Enabled": False}


def test_pre_traffic_role_may_invoke_the_new_version_and_report_nothing_else(cfn):
    role = cfn["Resources"][HOOKS["PreTraffic"]]["Properties"]["Role"]["Fn::GetAtt"][0]
    assert _grants(_statements(cfn, role)) == {
        "lambda:InvokeFunction": [{"Ref": _version_id(cfn)}],
        "codedeploy:PutLifecycleEventHookExecutionStatus": [{"Fn::Sub": DEPLOYMENT_GROUP_ARN}],
    }
    # No X-Ray write policy either (Tracing: Disabled); only the logs.
    managed = cfn["Resources"][role]["Properties"]["ManagedPolicyArns"]
    assert managed == ["arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"]


def test_post_traffic_role_may_read_the_alias_and_the_alarms_and_report(cfn):
    role = cfn["Resources"][HOOKS["PostTraffic"]]["Properties"]["Role"]["Fn::GetAtt"][0]
    assert _grants(_statements(cfn, role)) == {
        "lambda:GetAlias": [{"Fn::GetAtt": ["ApiFunction", "Arn"]}, {"Fn::Sub": "${ApiFunction.Arn}:${PublishAlias}"}],
        "cloudwatch:DescribeAlarms": [{"Fn::GetAtt": [alarm, "Arn"]} for alarm in NEW_VERSION_ALARMS],
        "codedeploy:PutLifecycleEventHookExecutionStatus": [{"Fn::Sub": DEPLOYMENT_GROUP_ARN}],
    }
    managed = cfn["Resources"][role]["Properties"]["ManagedPolicyArns"]
    assert managed == ["arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"]


def test_the_deployment_group_in_the_hook_policies_is_the_api_functions(cfn):
    # The Sub names resources SAM generates: they must exist after the transform, and be these.
    resources = cfn["Resources"]
    assert resources["ServerlessDeploymentApplication"]["Type"] == "AWS::CodeDeploy::Application"
    assert resources["ApiFunctionDeploymentGroup"]["Type"] == "AWS::CodeDeploy::DeploymentGroup"


def test_hooks_are_told_the_version_the_alias_is_moved_to(cfn):
    version = {"Ref": _version_id(cfn)}
    for hook in HOOKS.values():
        variables = cfn["Resources"][hook]["Properties"]["Environment"]["Variables"]
        assert variables["NEW_VERSION_ARN"] == version, hook
    # Ref of an AWS::Lambda::Version is its ARN, what the hook invokes; the alias gets the same version.
    assert _alias(cfn)[1]["Properties"]["FunctionVersion"]["Fn::GetAtt"][0] == _version_id(cfn)


def test_post_traffic_checks_the_alias_and_the_alarms_codedeploy_watches(cfn):
    variables = cfn["Resources"][HOOKS["PostTraffic"]]["Properties"]["Environment"]["Variables"]
    assert variables["ALIAS_NAME"] == {"Ref": "PublishAlias"}
    assert variables["ALARM_NAMES"] == {"Fn::Join": [",", [{"Ref": a} for a in NEW_VERSION_ALARMS]]}


def test_pre_traffic_timeout_covers_every_smoke_event_and_the_report():
    properties = decode(str(TEMPLATE))[0]["Resources"][HOOKS["PreTraffic"]]["Properties"]
    needed = len(load_cases(SMOKE)) * DEFAULT_INVOKE_TIMEOUT_S + REPORT_MARGIN_S
    assert properties["Timeout"] >= needed, f"{len(load_cases(SMOKE))} smoke events need {needed} s"


@pytest.mark.parametrize("hook", HOOKS.values())
def test_hooks_log_to_a_group_with_the_stacks_retention(cfn, hook):
    group = cfn["Resources"][hook]["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
    assert cfn["Resources"][group]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_layer_keeps_the_service_models_the_hooks_call():
    # The hooks run on DependencyLayer's botocore, trimmed to AWS_SERVICES: without a model, no client.
    assert {"codedeploy", "lambda", "cloudwatch"} <= set(AWS_SERVICES)
    template = decode(str(TEMPLATE))[0]
    for hook in HOOKS.values():
        assert template["Resources"][hook]["Properties"]["Layers"] == [{"Ref": "DependencyLayer"}], hook


# --- the API invokes live, whoever owns it ------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["defaults", "controller"])
def test_api_invokes_the_live_alias_with_its_role_in_both_modes(translated, mode):
    template = translated[mode]
    paths = template["Resources"]["RestApi"]["Properties"]["Body"]["paths"]
    assert set(paths) == {"/", "/{proxy+}"}
    for path in paths.values():
        integration = path["x-amazon-apigateway-any-method"]["x-amazon-apigateway-integration"]
        assert integration["uri"] == {"Fn::Sub": LIVE_INTEGRATION}
        assert integration["credentials"] == {"Fn::GetAtt": ["ApiInvokeRole", "Arn"]}
    # No resource policy to put on an alias that may not exist yet: the role's identity policy grants it.
    assert not _of_type(template, "AWS::Lambda::Permission")
    assert _grants(_statements(template, "ApiInvokeRole")) == {
        "lambda:InvokeFunction": [{"Fn::Sub": "${ApiFunction.Arn}:live"}]
    }
    trust = template["Resources"]["ApiInvokeRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust == [
        {"Effect": "Allow", "Principal": {"Service": "apigateway.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ]


def test_controller_mode_leaves_live_to_the_controller(translated):
    template = translated["controller"]
    name, alias = _alias(template)
    # CloudFormation owns, and moves on each deploy, only "published"; no resource of the stack is "live".
    assert alias["Properties"]["Name"] == "published"
    assert not [r for r in template["Resources"].values() if r.get("Properties", {}).get("Name") == "live"]
    # The hooks still smoke-test each new version before "published" moves to it, and check it after.
    update = alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
    assert update["BeforeAllowTrafficHook"] == {"Ref": HOOKS["PreTraffic"]}
    assert update["AfterAllowTrafficHook"] == {"Ref": HOOKS["PostTraffic"]}
    # A canary on an alias no request goes through would only wait: CodeDeploy moves it at once.
    group = template["Resources"]["ApiFunctionDeploymentGroup"]["Properties"]
    assert group["DeploymentConfigName"]["Fn::Sub"][1] == {"ConfigName": "AllAtOnce"}
    assert template["Outputs"]["PublishedAliasArn"]["Value"] == {"Ref": name}
    assert template["Outputs"]["ApiFunctionAliasArn"]["Value"] == {"Fn::Sub": "${ApiFunction.Arn}:live"}


def test_codedeploy_mode_owns_live(cfn):
    name, alias = _alias(cfn)
    assert (name, alias["Properties"]["Name"]) == ("ApiFunctionAliaslive", "live")
    assert cfn["Outputs"]["PublishedAliasArn"]["Value"] == {"Ref": "ApiFunctionAliaslive"}


# --- the hooks' artifact ------------------------------------------------------------------------------------

PROBE = """
import json, sys
import handlers.deploy_hooks as entry
from core.deploy.smoke import default_smoke_dir, load_cases
print(json.dumps({
    "file": entry.__file__,
    "smoke_dir": str(default_smoke_dir()),
    "cases": [c.name for c in load_cases(default_smoke_dir())],
    "core_modules": sorted(m for m in sys.modules if m == "core" or m.startswith("core.")),
}))
"""


@pytest.mark.parametrize("hook", HOOKS.values())
def test_hook_artifact_holds_the_handler_its_logic_and_the_smoke_events(hook, tmp_path):
    artifacts = tmp_path / hook
    result = subprocess.run(
        ["make", "--no-print-directory", "--makefile", str(ROOT / "src" / "Makefile"), f"build-{hook}"],
        env={**os.environ, "ARTIFACTS_DIR": str(artifacts)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    files = {str(p.relative_to(artifacts)) for p in artifacts.rglob("*") if p.is_file()}
    expected = {f"core/deploy/{p.name}" for p in (ROOT / "src" / "core" / "deploy").glob("*.py")}
    expected |= {f"events/smoke/{p.name}" for p in SMOKE.glob("*.json")} | {"events/smoke/expectations.toml"}
    # core/aws.py and core/errors.py: the leaves core.deploy.hooks imports (AWS error codes)
    expected |= {"handlers/__init__.py", "handlers/deploy_hooks.py", "core/__init__.py"}
    expected |= {"core/aws.py", "core/errors.py"}
    assert files == expected
    # Imported as Lambda would: only the artifact on the path; an import of another core module would fail.
    probe = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(artifacts), "PYTHONDONTWRITEBYTECODE": "1"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    report = json.loads(probe.stdout.strip().splitlines()[-1])
    assert Path(report["file"]).is_relative_to(artifacts)
    assert report["smoke_dir"] == str(artifacts / "events" / "smoke")
    assert sorted(report["cases"]) == sorted(c.name for c in load_cases(SMOKE))
    assert report["core_modules"] == [
        "core",
        "core.aws",
        "core.deploy",
        "core.deploy.hooks",
        "core.deploy.smoke",
        "core.errors",
    ]


def test_sam_validate_lint_passes():
    if not (SAM_DIR / "sam").exists():
        pytest.skip("no SAM CLI venv (.venv-sam): `make build` installs it")
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "SAM_CLI_TELEMETRY": "0",
    }
    result = subprocess.run(
        [str(SAM_DIR / "sam"), "validate", "--lint", "--template-file", str(TEMPLATE)],
        env=environment,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "is a valid SAM Template" in result.stdout + result.stderr
