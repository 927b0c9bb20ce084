"""The SAM template, its environments and the function artifact `sam build` makes from `src/Makefile`.

Offline: cfn-lint for the template, the template's own values for what the design requires, and each
function's handler imported from its CodeUri in a fresh interpreter, as Lambda would at init.
"""

import json
import os
import shlex
import shutil
import subprocess
import sys
import tomllib
import typing
from pathlib import Path

import pytest
from cfnlint.api import ManualArgs, lint_file
from cfnlint.decode import decode

from core.deploy.hooks import ENVIRONMENT as HOOK_ENV
from core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
SAMCONFIG = ROOT / "samconfig.toml"
SRC_MAKEFILE = ROOT / "src" / "Makefile"
# The dependency layers, in ApiFunction's order: logical ID → (ContentUri, scripts/package.py --part).
LAYERS = {"DependencyLayer": ("layers/deps", "app"), "NumericLayer": ("layers/numeric", "numeric")}
# Attached only with DocumentStore=pgvector (its Condition, the functions' !If): ID → (folder, part, condition).
CONDITIONAL_LAYERS = {"PgvectorLayer": ("layers/pgvector", "pgvector", "UsePgvector")}
ENVIRONMENTS = ("default", "staging", "prod")
# Set in the template for the runtime, not read by core.settings (the ADOT layer's wrapper for Lambda).
NON_SETTINGS_ENV = {"HAYSTACK_TELEMETRY_ENABLED", "HOME", "AWS_LAMBDA_EXEC_WRAPPER"}
HOOK_FUNCTIONS = {"CodeDeployHookPreTraffic", "CodeDeployHookPostTraffic"}

# Runs in a fresh interpreter: import the handler's module, report what Lambda's init would have built.
PROBE = """
import importlib, json, sys
module_name, _, attribute = sys.argv[1].rpartition(".")
module = importlib.import_module(module_name)
settings = getattr(module, "settings", None) or getattr(getattr(module, "runtime", None), "settings", None)
print(json.dumps({
    "file": module.__file__,
    "callable": callable(getattr(module, attribute)),
    "pipelines_dir": str(getattr(settings, "pipelines_dir", "")),
    "store_snapshot_uri": str(getattr(settings, "store_snapshot_uri", "")),
}))
"""


def _load_template(path: Path = TEMPLATE) -> dict:
    template, matches = decode(str(path))
    assert not matches, [m.message for m in matches]
    return template


def _of_type(template: dict, resource_type: str) -> dict[str, dict]:
    return {name: r for name, r in template["Resources"].items() if r.get("Type") == resource_type}


def _function_property(template: dict, function: dict, name: str):
    """A function property as SAM sees it: the function's own value, else Globals.Function's."""
    own = function.get("Properties", {})
    return own[name] if name in own else template.get("Globals", {}).get("Function", {}).get(name)


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _allow_statements(node):
    """Every IAM Allow statement anywhere in a template fragment (inside Fn::If branches too)."""
    if isinstance(node, dict):
        if node.get("Effect") == "Allow" and ("Action" in node or "NotAction" in node):
            yield node
        for value in node.values():
            yield from _allow_statements(value)
    elif isinstance(node, list):
        for value in node:
            yield from _allow_statements(value)


def _full_wildcards(template: dict) -> list[dict]:
    return [
        s
        for s in _allow_statements(template["Resources"])
        if "*" in _as_list(s.get("Action")) and "*" in _as_list(s.get("Resource"))
    ]


def _probe_handler(handler: str, code_root: Path, home: Path, **env: str) -> subprocess.CompletedProcess:
    """Import `handler` with only `code_root` on the path and a clean environment (no developer settings)."""
    clean_env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(code_root),
        "PYTHONDONTWRITEBYTECODE": "1",
        "HAYSTACK_TELEMETRY_ENABLED": "False",
        "HOME": str(home),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-c", PROBE, handler],
        env=clean_env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _checkout(root: Path, snapshot: Path | None) -> Path:
    """A copy of the parts of the repository the build reads, with the clutter a working tree collects."""
    shutil.copytree(ROOT / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "pipelines", root / "pipelines")
    (root / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "package.py", root / "scripts" / "package.py")
    for clutter in ("core/__pycache__/settings.cpython-313.pyc", "handlers/.DS_Store", "core/.pytest_cache/x"):
        (root / "src" / clutter).parent.mkdir(parents=True, exist_ok=True)
        (root / "src" / clutter).write_text("clutter")
    if snapshot is not None:
        (root / "data").mkdir()
        (root / "data" / "stdlib.snapshot").symlink_to(snapshot)
    return root


def _run_build_target(checkout: Path, artifacts: Path, cwd: Path) -> subprocess.CompletedProcess:
    """What `sam build` runs for ApiFunction: `make --makefile <repo>/src/Makefile build-ApiFunction`."""
    return subprocess.run(
        ["make", "--no-print-directory", "--makefile", str(checkout / "src" / "Makefile"), "build-ApiFunction"],
        env={**os.environ, "ARTIFACTS_DIR": str(artifacts), "PACKAGE_PYTHON": sys.executable},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


TEMPLATE_DATA = _load_template()
FUNCTIONS = sorted(_of_type(TEMPLATE_DATA, "AWS::Serverless::Function"))


@pytest.fixture(scope="module")
def template() -> dict:
    return _load_template()


# --- lint -------------------------------------------------------------------------------------------


def test_cfn_lint_reports_nothing():
    matches = lint_file(TEMPLATE, config=ManualArgs(regions=["us-east-1"]))
    assert not matches, "\n".join(f"{m.rule.id} line {m.linenumber}: {m.message}" for m in matches)


def test_cfn_lint_check_catches_a_broken_template(tmp_path):
    broken = tmp_path / "template.yaml"
    broken.write_text(TEMPLATE.read_text().replace("MemorySize: 1024", "MemorySize: 1"))
    matches = lint_file(broken, config=ManualArgs(regions=["us-east-1"]))
    assert any(m.rule.id.startswith("E") for m in matches)


# --- handlers ---------------------------------------------------------------------------------------


def test_template_has_functions():
    assert "ApiFunction" in FUNCTIONS


@pytest.mark.parametrize("name", FUNCTIONS)
def test_handler_imports_from_its_code_uri(name, small_snapshot, tmp_path):
    function = TEMPLATE_DATA["Resources"][name]
    code_uri = _function_property(TEMPLATE_DATA, function, "CodeUri")
    handler = _function_property(TEMPLATE_DATA, function, "Handler")
    assert isinstance(code_uri, str), f"{name}: CodeUri must be a local folder, got {code_uri!r}"
    code_root = (ROOT / code_uri).resolve()
    assert code_root.is_dir(), f"{name}: CodeUri {code_uri} is not a folder"

    result = _probe_handler(handler, code_root, tmp_path, STORE_SNAPSHOT_URI=str(small_snapshot))

    assert result.returncode == 0, f"{name}: {handler} did not import from {code_uri}:\n{result.stderr[-3000:]}"
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["callable"], f"{name}: {handler} is not callable"
    assert Path(report["file"]).resolve().is_relative_to(code_root)


def test_handler_probe_fails_for_a_missing_handler(small_snapshot, tmp_path):
    result = _probe_handler("handlers.missing.handler", ROOT / "src", tmp_path, STORE_SNAPSHOT_URI=str(small_snapshot))
    assert result.returncode != 0
    assert "ModuleNotFoundError" in result.stderr


# --- what the design requires -----------------------------------------------------------------------


def test_runtime_is_python313_everywhere(template):
    assert template["Globals"]["Function"]["Runtime"] == "python3.13"
    for name, function in _of_type(template, "AWS::Serverless::Function").items():
        assert _function_property(template, function, "Runtime") == "python3.13", name
    for name, layer in _of_type(template, "AWS::Serverless::LayerVersion").items():
        assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"], name


def test_layers_are_built_by_their_makefile(template):
    # scripts/package.py builds the layer (wheels for the Lambda platform, trimmed, bytecode), like make package.
    for name, layer in _of_type(template, "AWS::Serverless::LayerVersion").items():
        assert layer["Metadata"]["BuildMethod"] == "makefile", name
        makefile = ROOT / layer["Properties"]["ContentUri"] / "Makefile"
        text = makefile.read_text()
        assert f"build-{name}:" in text, name
        assert "scripts/package.py" in text, name
        assert '--into "$(ARTIFACTS_DIR)/python"' in text, name


def test_api_function_publishes_a_live_alias_on_any_change(template):
    properties = template["Resources"]["ApiFunction"]["Properties"]
    # live unless traffic shifting is handed to the controller (tests/infra/test_deployment_template.py).
    assert properties["AutoPublishAlias"] == {"Ref": "PublishAlias"}
    assert template["Parameters"]["PublishAlias"]["Default"] == "live"
    assert properties["AutoPublishAliasAllProperties"] is True


def test_globals_environment(template):
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["HAYSTACK_TELEMETRY_ENABLED"] == "False"
    assert variables["HOME"] == "/tmp"
    assert variables["LOG_LEVEL"] == {"Ref": "LogLevel"}


def test_environment_variables_are_settings(template):
    known = {name.upper() for name in Settings.model_fields} | NON_SETTINGS_ENV
    functions = _of_type(template, "AWS::Serverless::Function")
    sources = {"Globals": template["Globals"]["Function"], **{n: f["Properties"] for n, f in functions.items()}}
    for name, source in sources.items():
        # The CodeDeploy hooks read their own few variables (core.deploy.hooks), not the service's settings.
        readable = known | set(HOOK_ENV) if name in HOOK_FUNCTIONS else known
        names = set(source.get("Environment", {}).get("Variables", {}))
        assert names <= readable, f"{name}: not read by its code: {sorted(names - readable)}"


def test_parameters_match_the_settings(template):
    parameters = template["Parameters"]
    generators = typing.get_args(Settings.model_fields["generator"].annotation)
    assert set(parameters["Generator"]["AllowedValues"]) == set(generators)
    assert parameters["Generator"]["Default"] == "bedrock"
    log_levels = typing.get_args(Settings.model_fields["log_level"].annotation)
    assert set(parameters["LogLevel"]["AllowedValues"]) <= set(log_levels)
    assert parameters["BedrockModelId"]["Default"] == "amazon.nova-micro-v1:0"
    assert parameters["StageName"]["Default"] == "v1"


def test_openai_generator_needs_its_server(template):
    variables = template["Resources"]["ApiFunction"]["Properties"]["Environment"]["Variables"]
    for name, parameter in (("OPENAI_BASE_URL", "OpenAIBaseUrl"), ("OPENAI_MODEL", "OpenAIModel")):
        assert variables[name] == {"Fn::If": ["UseOpenAI", {"Ref": parameter}, {"Ref": "AWS::NoValue"}]}
    rule = template["Rules"]["OpenAINeedsServer"]
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "Generator"}, "openai"]}
    asserted = json.dumps([a["Assert"] for a in rule["Assertions"]])
    assert "OpenAIBaseUrl" in asserted
    assert "OpenAIModel" in asserted


def test_architecture_parameter_drives_function_and_layer(template):
    parameter = template["Parameters"]["Architecture"]
    assert parameter["Default"] == "arm64"
    assert set(parameter["AllowedValues"]) == {"arm64", "x86_64"}
    ref = {"Ref": "Architecture"}
    assert template["Globals"]["Function"]["Architectures"] == [ref]
    for name in LAYERS:
        layer = template["Resources"][name]
        assert layer["Properties"]["CompatibleArchitectures"] == [ref], name
        # SAM CLI resolves this from the parameters, so the wheels follow the deployed architecture.
        assert layer["Metadata"]["BuildArchitecture"] == ref, name


def test_api_function_uses_both_dependency_layers(template):
    # The pinned dependencies in two layers (each zip under 50 MB), built by the same script from the
    # same requirements file: each layer's Makefile names its part.
    assert set(_of_type(template, "AWS::Serverless::LayerVersion")) == set(LAYERS) | set(CONDITIONAL_LAYERS)
    parts = {name: (folder, part) for name, (folder, part, *_) in {**LAYERS, **CONDITIONAL_LAYERS}.items()}
    for name, (folder, part) in parts.items():
        layer = template["Resources"][name]
        assert Path(layer["Properties"]["ContentUri"]) == Path(folder), name
        assert f"--only layer --part {part} " in (ROOT / folder / "Makefile").read_text(), name
    for name, (_, _, condition) in CONDITIONAL_LAYERS.items():
        assert template["Resources"][name]["Condition"] == condition
    assert (ROOT / "layers" / "deps" / "requirements.txt").is_file()
    for function in ("ApiFunction", "IndexerFunction"):
        layers = template["Resources"][function]["Properties"]["Layers"]
        assert layers[: len(LAYERS)] == [{"Ref": name} for name in LAYERS]
        # Then the pgvector layer when that store is on, and last the ADOT layer (later files win in /opt).
        assert layers[len(LAYERS) :] == [
            {"Fn::If": [cond, {"Ref": name}, {"Ref": "AWS::NoValue"}]}
            for name, (_, _, cond) in CONDITIONAL_LAYERS.items()
        ] + [{"Fn::If": ["UseOtel", {"Ref": "AdotLayerArn"}, {"Ref": "AWS::NoValue"}]}]
        # Lambda allows 5 layers per function.
        assert len(layers) <= 5


def test_api_function_is_built_by_the_makefile(template):
    function = template["Resources"]["ApiFunction"]
    assert function["Metadata"]["BuildMethod"] == "makefile"
    assert function["Properties"]["CodeUri"].rstrip("/") == "src"
    assert "build-ApiFunction:" in SRC_MAKEFILE.read_text()


def test_rest_api_proxies_every_path_to_the_function(template):
    api = template["Resources"]["RestApi"]
    assert api["Type"] == "AWS::Serverless::Api"
    assert api["Properties"]["StageName"] == {"Ref": "StageName"}
    # An explicit OpenAPI body rather than the function's Api events: those would target the alias SAM
    # publishes, not always live (PublishAlias; tests/infra/test_deployment_template.py).
    assert "Events" not in template["Resources"]["ApiFunction"]["Properties"]
    paths = api["Properties"]["DefinitionBody"]["paths"]
    assert set(paths) == {"/", "/{proxy+}"}
    for path in paths.values():
        # OPTIONS exists only with CORS (the browser's preflight, without an API key: test_security_template.py).
        assert set(path) - {"parameters"} == {"x-amazon-apigateway-any-method", "options"}
        condition, preflight, otherwise = path["options"]["Fn::If"]
        assert (condition, otherwise) == ("HasCorsOrigins", {"Ref": "AWS::NoValue"})
        for method in (path["x-amazon-apigateway-any-method"], preflight):
            integration = method["x-amazon-apigateway-integration"]
            assert (integration["type"], integration["httpMethod"]) == ("aws_proxy", "POST")
            assert integration["uri"]["Fn::Sub"].endswith("/functions/${ApiFunction.Arn}:live/invocations")


def test_outputs(template):
    outputs = template["Outputs"]
    url = outputs["ApiUrl"]["Value"]["Fn::Sub"]
    assert url.startswith("https://${RestApi}.execute-api.${AWS::Region}.")
    assert url.endswith("/${StageName}/")
    assert outputs["ApiFunctionName"]["Value"] == {"Ref": "ApiFunction"}
    # live whoever owns it; the alias CloudFormation moves is PublishedAliasArn (live or published).
    assert outputs["ApiFunctionAliasArn"]["Value"] == {"Fn::Sub": "${ApiFunction.Arn}:live"}
    assert outputs["PublishedAliasArn"]["Value"] == {"Ref": "ApiFunction.Alias"}
    assert outputs["NewVersionArn"]["Value"] == {"Ref": "ApiFunction.Version"}


def test_bedrock_policy_only_with_the_bedrock_generator(template):
    assert template["Conditions"]["UseBedrock"] == {"Fn::Equals": [{"Ref": "Generator"}, "bedrock"]}
    policies = template["Resources"]["ApiFunction"]["Properties"]["Policies"]
    # Other conditional policies are the store's (tests/infra/test_ingestion_template.py).
    conditional = [p["Fn::If"] for p in policies if isinstance(p, dict) and p.get("Fn::If", [None])[0] == "UseBedrock"]
    assert len(conditional) == 1
    condition, document, otherwise = conditional[0]
    assert condition == "UseBedrock"
    assert otherwise == {"Ref": "AWS::NoValue"}
    statements = document["Statement"]
    assert {a for s in statements for a in _as_list(s["Action"])} == {"bedrock:InvokeModel"}
    resources = json.dumps([s["Resource"] for s in statements])
    assert ":foundation-model/" in resources
    assert ":inference-profile/" in resources


def test_no_allow_all_statement(template):
    assert not _full_wildcards(template)


def test_allow_all_check_finds_one_hidden_in_a_condition():
    planted = json.loads(json.dumps(TEMPLATE_DATA))
    planted["Resources"]["ApiFunction"]["Properties"]["Policies"].append(
        {"Fn::If": ["UseBedrock", {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}, {}]}
    )
    assert len(_full_wildcards(planted)) == 1


# --- samconfig.toml ---------------------------------------------------------------------------------


def _samconfig() -> dict:
    return tomllib.loads(SAMCONFIG.read_text())


def _overrides(environment: dict) -> dict[str, str]:
    text = environment.get("global", {}).get("parameters", {}).get("parameter_overrides", "")
    return dict(token.split("=", 1) for token in shlex.split(text))


def test_samconfig_environments():
    config = _samconfig()
    assert config["version"] == 0.1
    assert set(ENVIRONMENTS) <= set(config)
    stacks = [config[env]["global"]["parameters"]["stack_name"] for env in ENVIRONMENTS]
    assert stacks[0] == "haystack-serverless-dev"
    assert len(set(stacks)) == len(stacks), stacks
    for env in ENVIRONMENTS:
        deploy = config[env]["deploy"]["parameters"]
        assert "CAPABILITY_IAM" in _as_list(deploy["capabilities"]), env
        assert deploy["resolve_s3"] is True, env
    assert config["prod"]["deploy"]["parameters"]["confirm_changeset"] is True


def test_samconfig_overrides_are_template_parameters(template):
    parameters = template["Parameters"]
    for env in ENVIRONMENTS:
        environment = _samconfig()[env]
        # Only [env.global] reaches both `sam build` and `sam deploy`: the layer is built for Architecture.
        for command in ("build", "deploy"):
            assert "parameter_overrides" not in environment.get(command, {}).get("parameters", {}), (env, command)
        assert not environment.get("build", {}).get("parameters", {}).get("cached"), env
        overrides = _overrides(environment)
        assert "Architecture" in overrides, env
        for name, value in overrides.items():
            assert name in parameters, (env, name)
            assert value in parameters[name].get("AllowedValues", [value]), (env, name, value)


# --- the artifact src/Makefile builds ---------------------------------------------------------------


@pytest.fixture(scope="module")
def artifact(tmp_path_factory, full_snapshot) -> Path:
    """ApiFunction built like `sam build` does: from another working directory, into ARTIFACTS_DIR."""
    checkout = _checkout(tmp_path_factory.mktemp("repo"), full_snapshot)
    artifacts = tmp_path_factory.mktemp("build") / "ApiFunction"
    result = _run_build_target(checkout, artifacts, cwd=tmp_path_factory.mktemp("scratch"))
    assert result.returncode == 0, result.stderr
    return artifacts


def test_artifact_layout(artifact, full_snapshot):
    assert {p.name for p in artifact.iterdir()} == {"handlers", "core", "pipelines", "data"}
    assert (artifact / "handlers" / "api.py").is_file()
    assert (artifact / "core" / "settings.py").is_file()
    shipped = sorted(p.name for p in (artifact / "pipelines").iterdir())
    assert shipped == sorted(p.name for p in (ROOT / "pipelines").glob("*.y*ml"))
    snapshot = artifact / "data" / "stdlib.snapshot"
    assert not snapshot.is_symlink()
    assert snapshot.stat().st_size == full_snapshot.stat().st_size


def test_artifact_has_no_clutter(artifact):
    assert not [p for p in artifact.rglob("*") if p.name.startswith(".")]
    # Bytecode is built for the target (tests/infra/test_package.py checks it), never copied from the tree.
    assert (artifact / "core" / "__pycache__" / "settings.cpython-313.pyc").read_bytes() != b"clutter"
    sources = {p.with_suffix("") for p in artifact.rglob("*.py")}
    for compiled in artifact.rglob("*.pyc"):
        assert compiled.parent.name == "__pycache__", compiled
        assert compiled.parent.parent / compiled.name.split(".")[0] in sources, f"no source for {compiled}"


@pytest.mark.slow
def test_artifact_handler_uses_what_it_ships(artifact, tmp_path):
    # No STORE_SNAPSHOT_URI and nothing of the checkout on the path: the Lambda situation.
    result = _probe_handler("handlers.api.handler", artifact, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["callable"]
    assert Path(report["pipelines_dir"]) == artifact / "pipelines"
    assert Path(report["store_snapshot_uri"]) == artifact / "data" / "stdlib.snapshot"


def test_build_without_snapshot_says_run_make_index(tmp_path):
    checkout = _checkout(tmp_path / "repo", snapshot=None)
    artifacts = tmp_path / "ApiFunction"
    result = _run_build_target(checkout, artifacts, cwd=tmp_path)
    assert result.returncode != 0
    assert "run make index first" in result.stderr
    assert not (artifacts / "handlers").exists()
