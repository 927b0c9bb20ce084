"""Observability in the template, checked against what the code really writes.

The alarms and the dashboard read EMF metrics and the saved Logs Insights queries read the audit line:
both are contracts with the code. So the real Lambda entry point (Powertools' decorators around Mangum
around the app) runs in-process with the settings the template gives the function, the EMF documents
and log lines it writes are captured, and every metric, dimension and field the template names is
looked up in them. The template is resolved with its parameter defaults (or chosen values), its
conditions evaluated here; the version the canary alarms watch is checked in the SAM translator's output.
"""

import contextlib
import copy
import io
import json
import logging
import re
import shlex
import tomllib
import typing
from dataclasses import dataclass
from pathlib import Path

import pytest
from cfnlint.decode import decode
from cfnlint.schema import PROVIDER_SCHEMA_MANAGER
from haystack.components.generators.chat import MockChatGenerator
from mangum import Mangum

from core.api.app import create_app
from core.aws import LAMBDA_FUNCTION_VERSION_ENV
from core.observability import names
from core.observability.logs import configure_logging
from core.runtime.container import build_runtime
from core.settings import Settings, load_settings
from scripts.invoke import LambdaContext
from tests.infra.sam import NO_VALUE, PSEUDO, Stack, translate

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
SAMCONFIG = ROOT / "samconfig.toml"
# samtranslator lives with the SAM CLI (`make build` installs it), not in the project's venv.
SAM_PYTHON = ROOT / ".venv-sam" / "bin" / "python"
EVENT = ROOT / "events" / "api-query.json"

FUNCTION_NAME = "haystack-serverless-test-ApiFunction-AbC123"
VERSION = "7"
VERSION_ARN = f"arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION_NAME}:{VERSION}"
LOG_GROUP = "haystack-serverless-test-ApiFunctionLogGroup-XyZ789"
CANARY_ALARMS = ("NewVersion5xxRateAlarm", "NewVersionP99LatencyAlarm", "NewVersionErrorsAlarm")
ALARMS = (*CANARY_ALARMS, "ThrottlesAlarm")
# The ingestion path's alarms (AWS/SQS, and the indexer's AWS/Lambda Errors): tests/infra/test_ingestion_template.py.
INGESTION_ALARMS = ("IngestionDlqAlarm", "IndexerErrorsAlarm")
# AWS/Lambda dimension sets that exist (FIELD-NOTES): per function, per alias or version (Resource),
# and per version executed through an alias (ExecutedVersion, only for Errors and Duration).
LAMBDA_DIMENSION_SETS = (
    {"FunctionName"},
    {"FunctionName", "Resource"},
    {"FunctionName", "Resource", "ExecutedVersion"},
)
EXECUTED_VERSION_METRICS = {"Errors", "Duration"}

# Logs Insights words that are not fields.
INSIGHTS_KEYWORDS = {
    "fields", "filter", "stats", "sort", "limit", "display", "parse", "dedup", "by", "as", "asc", "desc",
    "and", "or", "not", "in", "like", "SOURCE",
}  # fmt: skip


# --- the template, resolved -------------------------------------------------------------------------


def _load_template() -> dict:
    template, matches = decode(str(TEMPLATE))
    assert not matches, [m.message for m in matches]
    return template


def _of_type(template: dict, resource_type: str) -> dict[str, dict]:
    return {name: r for name, r in template["Resources"].items() if r.get("Type") == resource_type}


class Resolver(Stack):
    """``Stack`` with the names the observability checks compare against (the function's name, its
    version's ARN, the log group), and alarm ARNs for ``<Alarm>.Arn``."""

    def __init__(self, template: dict, parameters: dict[str, str] | None = None, refs: dict[str, str] | None = None):
        super().__init__(template, parameters)
        self.refs = {
            **PSEUDO,
            "ApiFunction": FUNCTION_NAME,
            "ApiFunction.Version": VERSION_ARN,
            "ApiFunction.Alias": f"arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION_NAME}:live",
            "ApiFunctionLogGroup": LOG_GROUP,
            **(refs or {}),
        }

    def ref(self, name: str):
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.parameters:
            return self.parameters[name]
        if name in self.refs:
            return self.refs[name]
        if name.endswith(".Arn"):
            return f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{name.removesuffix('.Arn')}"
        assert name in self.template["Resources"] or "." in name, f"unknown reference {name}"
        return f"<{name}>"

    def get_att(self, name: str, attribute: str) -> str:
        return self.ref(f"{name}.{attribute}")


def _function_environment(template: dict, resolve: Resolver, function: str = "ApiFunction") -> dict[str, str]:
    """The function's environment as Lambda gets it: Globals' variables, then the function's own."""
    variables = dict(template["Globals"]["Function"]["Environment"]["Variables"])
    variables.update(template["Resources"][function]["Properties"].get("Environment", {}).get("Variables", {}))
    return resolve(variables)


# --- the metrics the template reads ------------------------------------------------------------------


@dataclass(frozen=True)
class MetricRef:
    """One metric an alarm or a dashboard widget reads: dimension values are None where SEARCH leaves them open."""

    where: str
    namespace: str
    name: str
    dimensions: tuple[tuple[str, str | None], ...]

    @property
    def dimension_names(self) -> frozenset[str]:
        return frozenset(name for name, _ in self.dimensions)


_SEARCH = re.compile(
    r"SEARCH\(\s*'\{(?P<schema>[^}]*)\}(?P<terms>[^']*)'\s*,\s*'(?P<stat>[^']+)'\s*,\s*(?P<period>\d+)\s*\)"
)


def _search_refs(where: str, expression: str) -> list[MetricRef]:
    refs = []
    for match in _SEARCH.finditer(expression):
        namespace, *dimensions = [part.strip().strip('"') for part in match["schema"].split(",")]
        terms = dict(re.findall(r'(\w+)\s*=\s*"([^"]*)"', match["terms"]))
        metric = terms.pop("MetricName")
        assert set(terms) <= set(dimensions), f"{where}: filters on {sorted(terms)} outside the schema {dimensions}"
        refs.append(MetricRef(where, namespace, metric, tuple(sorted((d, terms.get(d)) for d in dimensions))))
    return refs


def _alarm_refs(name: str, properties: dict) -> list[MetricRef]:
    def ref(metric: dict) -> MetricRef:
        dimensions = tuple(sorted((d["Name"], d["Value"]) for d in metric.get("Dimensions", [])))
        return MetricRef(name, metric["Namespace"], metric["MetricName"], dimensions)

    if "Metrics" in properties:
        return [ref(m["MetricStat"]["Metric"]) for m in properties["Metrics"] if "MetricStat" in m]
    return [ref(properties)]


def _dashboard_body(resolve: Resolver) -> dict:
    (dashboard,) = _of_type(resolve.template, "AWS::CloudWatch::Dashboard").values()
    return json.loads(resolve(dashboard["Properties"]["DashboardBody"]))


def _dashboard_refs(body: dict) -> list[MetricRef]:
    refs = []
    for index, widget in enumerate(body["widgets"]):
        if widget["type"] != "metric":
            continue
        where = f"dashboard widget {index} ({widget['properties'].get('title')})"
        for line in widget["properties"]["metrics"]:
            if isinstance(line[0], dict):
                refs.extend(_search_refs(where, line[0].get("expression", "")))
                continue
            strings = [item for item in line if isinstance(item, str)]
            assert "." not in strings and "..." not in strings, f"{where}: spell metrics out, no shorthand"
            namespace, metric, *pairs = strings
            dimensions = tuple(sorted(zip(pairs[::2], pairs[1::2], strict=True)))
            refs.append(MetricRef(where, namespace, metric, dimensions))
    return refs


def _metric_refs(template: dict, resolve: Resolver) -> list[MetricRef]:
    refs = []
    for name, alarm in _of_type(template, "AWS::CloudWatch::Alarm").items():
        refs.extend(_alarm_refs(name, resolve(alarm["Properties"])))
    return refs + _dashboard_refs(_dashboard_body(resolve))


# --- what the code writes ----------------------------------------------------------------------------


@dataclass
class Emitted:
    """What the service wrote for a few requests: EMF documents, audit lines, and the settings it ran with."""

    documents: list[dict]
    audit_lines: list[dict]
    settings: Settings

    def metrics(self) -> dict[tuple[str, str, frozenset[str]], list[dict[str, str]]]:
        """(namespace, metric, dimension names) → the dimension values of each document that carried it."""
        found: dict[tuple[str, str, frozenset[str]], list[dict[str, str]]] = {}
        for document in self.documents:
            for directive in document["_aws"]["CloudWatchMetrics"]:
                for dimension_set in directive["Dimensions"]:
                    values = {d: document[d] for d in dimension_set}
                    for metric in directive["Metrics"]:
                        key = (directive["Namespace"], metric["Name"], frozenset(dimension_set))
                        found.setdefault(key, []).append(values)
        return found

    def values(self, metric: str) -> list[float]:
        return [v for d in self.documents if metric in d for v in d[metric]]


def _mismatches(refs: list[MetricRef], emitted: Emitted, namespace: str) -> list[str]:
    """Every reference in `namespace` that no emitted document matches (name, exact dimension set, values)."""
    found = emitted.metrics()
    problems = []
    for ref in refs:
        if ref.namespace != namespace:
            continue
        documents = found.get((ref.namespace, ref.name, ref.dimension_names))
        if documents is None:
            carried = sorted(sorted(k[2]) for k in found if k[1] == ref.name)
            problems.append(
                f"{ref.where}: {ref.name} {sorted(ref.dimension_names)} not emitted (emitted with {carried})"
            )
            continue
        wanted = {d: v for d, v in ref.dimensions if v is not None}
        if not any(all(doc.get(d) == v for d, v in wanted.items()) for doc in documents):
            problems.append(f"{ref.where}: {ref.name} {wanted} never emitted with these values: {documents[:3]}")
    return problems


def _api_event(body: str) -> dict:
    event = json.loads(EVENT.read_text())
    event["body"] = body
    return event


def _fail_on_explode(messages) -> str:
    if "explode" in messages[-1].text:
        raise RuntimeError("generator down")
    return "Use json.loads to parse a JSON string."


@pytest.fixture(scope="module")
def template() -> dict:
    return _load_template()


@pytest.fixture(scope="module")
def emitted(template, small_snapshot, small_store) -> Emitted:
    """The real Lambda entry point, in-process, with the environment the template gives the function.

    Requests: a rag query (a miss, with a generator), the same again (a hit), one the app rejects (422),
    and one whose generator fails (502). Version and function name are the ones the template resolves to.
    """
    environment = _function_environment(template, Resolver(template))
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    saved_levels = {n: logging.getLogger(n).level for n in ("haystack", "mangum")}
    stdout, log_stream = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        for name in Settings.model_fields:
            patch.delenv(name.upper(), raising=False)
        patch.setenv(LAMBDA_FUNCTION_VERSION_ENV, VERSION)
        # Powertools' cold start flags (metrics and logger): another test may have used them up.
        patch.setattr("aws_lambda_powertools.metrics.provider.cold_start.is_cold_start", True)
        patch.setattr("aws_lambda_powertools.logging.logger.is_cold_start", True)
        settings = load_settings(
            store_snapshot_uri=str(small_snapshot),
            powertools_service_name=environment["POWERTOOLS_SERVICE_NAME"],
            powertools_metrics_namespace=environment["POWERTOOLS_METRICS_NAMESPACE"],
            powertools_logger_sample_rate=float(environment["POWERTOOLS_LOGGER_SAMPLE_RATE"]),
            log_level=environment["LOG_LEVEL"],
            generator="bedrock",
            # Metrics and logs do not depend on the tracing backend; X-Ray's SDK has no daemon here.
            tracing_backend="off",
        )
        try:
            with contextlib.redirect_stdout(stdout):
                runtime = build_runtime(
                    settings,
                    store=small_store,
                    chat_generator_factory=lambda s: MockChatGenerator(response_fn=_fail_on_explode),
                )
                runtime.telemetry.logger = configure_logging(settings, stream=log_stream)
                runtime.telemetry.metrics.discard()  # nothing from earlier tests in Powertools' shared metric set
                handler = runtime.telemetry.lambda_handler(Mangum(create_app(runtime), lifespan="off"))
                statuses = [
                    handler(_api_event(body), LambdaContext(FUNCTION_NAME))["statusCode"]
                    for body in (
                        '{"text": "how do I parse JSON"}',
                        '{"text": "how do I parse JSON"}',
                        '{"text": 5}',
                        '{"text": "explode, please"}',
                    )
                ]
        finally:  # configure_logging rewired the root logger for the whole process
            root.handlers = saved_handlers
            root.setLevel(saved_level)
            for name, level in saved_levels.items():
                logging.getLogger(name).setLevel(level)
    assert statuses == [200, 200, 422, 502], statuses
    documents = [json.loads(line) for line in stdout.getvalue().splitlines() if line.startswith('{"_aws"')]
    lines = [json.loads(line) for line in log_stream.getvalue().splitlines() if line.startswith("{")]
    audit = [line for line in lines if (line.get("name"), line.get("message")) == ("core.audit", "request")]
    return Emitted(documents, audit, settings)


# --- metrics: the template reads what the code writes ------------------------------------------------


def test_the_run_wrote_request_pipeline_and_cold_start_documents(emitted):
    assert emitted.values(names.REQUESTS) == [1.0, 1.0, 1.0, 1.0]
    assert sorted(emitted.values(names.ERRORS_4XX)) == [0.0, 0.0, 0.0, 1.0]
    assert sorted(emitted.values(names.ERRORS_5XX)) == [0.0, 0.0, 0.0, 1.0]
    # The repeated query was answered from the cache.
    assert 1.0 in emitted.values(names.CACHE_HITS)
    assert 1.0 in emitted.values(names.CACHE_MISSES)
    assert emitted.values(names.COLD_START) == [1.0]
    assert emitted.values(names.PIPELINE_LATENCY)
    assert len(emitted.audit_lines) == 4


def test_every_metric_of_the_alarms_and_dashboard_is_emitted_with_those_dimensions(template, emitted):
    resolve = Resolver(template)
    namespace = resolve.ref("MetricsNamespace")
    assert emitted.settings.powertools_metrics_namespace == namespace
    # The indexer's metrics are not the API's: tests/infra/test_ingestion_template.py checks them against
    # the document the indexer writes.
    refs = [
        r for r in _metric_refs(template, resolve) if (names.DIM_FUNCTION, names.INDEXER_FUNCTION) not in r.dimensions
    ]
    ours = [r for r in refs if r.namespace == namespace]
    # Every metric of names.py that the dashboard promises is there: nothing silently dropped.
    assert {r.name for r in ours} >= {
        names.REQUESTS, names.LATENCY, names.ERRORS_4XX, names.ERRORS_5XX, names.CACHE_HITS, names.CACHE_MISSES,
        names.COLD_START, names.PIPELINE_LATENCY, names.GENERATOR_LATENCY,
    }  # fmt: skip
    assert not _mismatches(refs, emitted, namespace)


def test_the_metric_check_catches_a_wrong_name_dimension_or_value(template, emitted):
    resolve = Resolver(template)
    namespace = resolve.ref("MetricsNamespace")
    (good,) = [r for r in _metric_refs(template, resolve) if r.where == "NewVersionP99LatencyAlarm"]
    assert not _mismatches([good], emitted, namespace)
    planted = [
        MetricRef("wrong name", namespace, "Error5xx", good.dimensions),
        MetricRef("extra dimension", namespace, good.name, (*good.dimensions, ("pipeline", None))),
        MetricRef("missing dimension", namespace, good.name, (("service", resolve.ref("ServiceName")),)),
        MetricRef("wrong version", namespace, good.name, (("service", resolve.ref("ServiceName")), ("version", "8"))),
        MetricRef("wrong service", namespace, good.name, (("service", "someone-else"), ("version", VERSION))),
    ]
    assert [p.split(":")[0] for p in _mismatches(planted, emitted, namespace)] == [p.where for p in planted]


def test_cold_start_is_powertools_document_per_function_and_service(template, emitted):
    dimension_sets = {k[2] for k in emitted.metrics() if k[1] == names.COLD_START}
    assert dimension_sets == {frozenset(names.COLD_START_DIMENSIONS)}
    (ref,) = [r for r in _metric_refs(template, Resolver(template)) if r.name == names.COLD_START]
    assert dict(ref.dimensions) == {"function_name": FUNCTION_NAME, "service": Resolver(template).ref("ServiceName")}


def test_service_and_namespace_are_defined_once(template):
    # Any chosen values: the function's environment and every alarm and widget follow them.
    resolve = Resolver(template, {"ServiceName": "svc-elsewhere", "MetricsNamespace": "Other/Ns"})
    environment = _function_environment(template, resolve)
    assert environment["POWERTOOLS_SERVICE_NAME"] == "svc-elsewhere"
    assert environment["POWERTOOLS_METRICS_NAMESPACE"] == "Other/Ns"
    refs = _metric_refs(template, resolve)
    ours = [r for r in refs if not r.namespace.startswith("AWS/")]
    assert ours and all(r.namespace == "Other/Ns" for r in ours), {r.namespace for r in ours}
    services = {value for r in ours for name, value in r.dimensions if name == names.DIM_SERVICE}
    assert services == {"svc-elsewhere"}
    assert all(dict(r.dimensions).get(names.DIM_SERVICE) for r in ours), "every widget filters on the service"


def test_parameters_accept_what_the_settings_accept(template):
    parameters = template["Parameters"]

    def pattern(field: str) -> str:
        return next(m.pattern for m in Settings.model_fields[field].metadata if getattr(m, "pattern", None))

    assert parameters["ServiceName"]["AllowedPattern"] == pattern("powertools_service_name")
    assert parameters["MetricsNamespace"]["AllowedPattern"] == pattern("powertools_metrics_namespace")
    assert parameters["ServiceName"]["Default"] == Settings.model_fields["powertools_service_name"].default
    assert parameters["MetricsNamespace"]["Default"] == Settings.model_fields["powertools_metrics_namespace"].default
    sample = parameters["LogSampleRate"]
    assert (sample["Default"], sample["MinValue"], sample["MaxValue"]) == (0, 0, 1)
    backends = typing.get_args(Settings.model_fields["tracing_backend"].annotation)
    assert set(parameters["TracingBackend"]["AllowedValues"]) == set(backends)
    assert parameters["TracingBackend"]["Default"] == "xray"
    for value in parameters["TracingBackend"]["AllowedValues"]:
        environment = _function_environment(template, Resolver(template, {"TracingBackend": value}))
        assert load_settings(tracing_backend=environment["TRACING_BACKEND"]).tracing_backend == value


def test_dashboard_shows_what_the_issue_asks_for(template):
    resolve = Resolver(template)
    body = _dashboard_body(resolve)
    expressions = []
    for widget in body["widgets"]:
        if widget["type"] == "metric":
            expressions += [line[0] for line in widget["properties"]["metrics"] if isinstance(line[0], dict)]
    searches = {}  # (metric, statistic) → the SEARCH's reference
    for expression in expressions:
        for ref, match in zip(
            _search_refs("", expression["expression"]), _SEARCH.finditer(expression["expression"]), strict=True
        ):
            searches[ref.name, match["stat"]] = ref
    per_version = {name for (name, _), ref in searches.items() if names.DIM_VERSION in ref.dimension_names}
    assert {names.REQUESTS, names.LATENCY, names.ERRORS_4XX, names.ERRORS_5XX, names.PIPELINE_LATENCY} <= per_version
    assert {(names.LATENCY, "p50"), (names.LATENCY, "p99"), (names.REQUESTS, "Sum")} <= set(searches)
    assert names.DIM_PIPELINE in searches[names.PIPELINE_LATENCY, "p99"].dimension_names
    # The cache hit ratio is metric math over the two SEARCH results.
    ids = {e["id"]: e["expression"] for e in expressions}
    (ratio,) = [e for e in ids.values() if "SEARCH" not in e]
    hits, misses = (
        [i for i, e in ids.items() if f'MetricName="{m}"' in e] for m in (names.CACHE_HITS, names.CACHE_MISSES)
    )
    assert re.fullmatch(rf"100 \* SUM\({hits[0]}\) / \(SUM\({hits[0]}\) \+ SUM\({misses[0]}\)\)", ratio), ratio
    lambda_metrics = {
        (r.name, r.dimensions)
        for r in _dashboard_refs(body)
        if r.namespace == "AWS/Lambda" and dict(r.dimensions).get("FunctionName") == FUNCTION_NAME
    }
    assert lambda_metrics == {
        ("ConcurrentExecutions", (("FunctionName", FUNCTION_NAME),)),
        ("Throttles", (("FunctionName", FUNCTION_NAME),)),
    }
    alarms = next(w for w in body["widgets"] if w["type"] == "alarm")["properties"]["alarms"]
    assert len(alarms) == len(ALARMS)


# --- alarms -------------------------------------------------------------------------------------------


def test_alarms_exist_with_missing_data_treatment_and_parameter_thresholds(template):
    alarms = _of_type(template, "AWS::CloudWatch::Alarm")
    assert set(alarms) == {*ALARMS, *INGESTION_ALARMS}
    schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", "AWS::CloudWatch::Alarm").schema
    parameters = template["Parameters"]
    for name, alarm in alarms.items():
        properties = alarm["Properties"]
        assert properties.get("TreatMissingData") in schema["properties"]["TreatMissingData"]["enum"], name
        threshold = properties["Threshold"]
        assert set(threshold) == {"Ref"} and parameters[threshold["Ref"]]["Type"] == "Number", (name, threshold)
        # Judged within a 5-10 minute canary: one-minute periods, at most two of them.
        periods = [properties.get("Period")] + [
            m["MetricStat"]["Period"] for m in properties.get("Metrics", []) if "MetricStat" in m
        ]
        assert {p for p in periods if p is not None} == {60}, name
        assert properties["EvaluationPeriods"] <= 2, name
        assert properties.get("DatapointsToAlarm", properties["EvaluationPeriods"]) <= properties["EvaluationPeriods"]
    # A canary at a fraction of low traffic has quiet minutes: those are not failures.
    for name in CANARY_ALARMS:
        assert alarms[name]["Properties"]["TreatMissingData"] == "notBreaching", name


def _evaluate_math(expression: str, **values: float) -> float:
    """CloudWatch metric math, the subset the alarms use: IF(cond, a, b) and arithmetic."""
    python = re.sub(r"IF\((.+?),(.+?),(.+)\)$", r"((\2) if (\1) else (\3))", expression.strip())
    return eval(python, {"__builtins__": {}}, values)  # noqa: S307 - the template's own expression


def test_5xx_rate_alarm_is_a_guarded_share_of_the_new_versions_requests(template):
    resolve = Resolver(template, {"Alarm5xxMinRequests": "5"})
    properties = resolve(template["Resources"]["NewVersion5xxRateAlarm"]["Properties"])
    metrics = {m["Id"]: m for m in properties["Metrics"]}
    (output,) = [m for m in metrics.values() if m.get("ReturnData", True)]
    inputs = {i: m["MetricStat"] for i, m in metrics.items() if "MetricStat" in m}
    assert {s["Metric"]["MetricName"] for s in inputs.values()} == {names.ERRORS_5XX, names.REQUESTS}
    assert all(s["Stat"] == "Sum" and not metrics[i].get("ReturnData", True) for i, s in inputs.items())
    errors = next(i for i, s in inputs.items() if s["Metric"]["MetricName"] == names.ERRORS_5XX)
    requests = next(i for i, s in inputs.items() if s["Metric"]["MetricName"] == names.REQUESTS)
    assert set(re.findall(r"\b[a-z]\w*\b", output["Expression"])) == {errors, requests}

    def rate(e: float, r: float) -> float:
        return _evaluate_math(output["Expression"], **{errors: e, requests: r})

    assert rate(1, 10) == 10
    assert rate(2, 4) == 0  # below Alarm5xxMinRequests: no verdict from two requests
    assert rate(0, 50) == 0
    assert template["Resources"]["NewVersion5xxRateAlarm"]["Properties"]["ComparisonOperator"] == "GreaterThanThreshold"
    assert template["Parameters"]["Alarm5xxRatePercent"]["Default"] == 5


def test_latency_alarm_is_p99_of_the_new_version(template):
    properties = Resolver(template)(template["Resources"]["NewVersionP99LatencyAlarm"]["Properties"])
    assert (properties["MetricName"], properties["ExtendedStatistic"]) == (names.LATENCY, "p99")
    assert "Statistic" not in properties
    assert {d["Name"]: d["Value"] for d in properties["Dimensions"]} == {
        "service": "haystack-serverless",
        "version": VERSION,
    }
    assert template["Parameters"]["AlarmP99LatencyMs"]["Default"] == 5000


def test_lambda_alarms_use_the_live_alias_and_executed_version_only_where_it_exists(template):
    resolve = Resolver(template)
    lambda_alarms = {
        name: resolve(alarm["Properties"])
        for name, alarm in _of_type(template, "AWS::CloudWatch::Alarm").items()
        if alarm["Properties"].get("Namespace") == "AWS/Lambda" and name not in INGESTION_ALARMS
    }
    assert set(lambda_alarms) == {"NewVersionErrorsAlarm", "ThrottlesAlarm"}
    for name, properties in lambda_alarms.items():
        dimensions = {d["Name"]: d["Value"] for d in properties["Dimensions"]}
        assert set(dimensions) in LAMBDA_DIMENSION_SETS, (name, dimensions)
        assert dimensions["FunctionName"] == FUNCTION_NAME
        assert dimensions["Resource"] == f"{FUNCTION_NAME}:live", name
        if "ExecutedVersion" in dimensions:
            assert properties["MetricName"] in EXECUTED_VERSION_METRICS, name
            assert dimensions["ExecutedVersion"] == VERSION
    assert lambda_alarms["NewVersionErrorsAlarm"]["MetricName"] == "Errors"
    assert "ExecutedVersion" in {d["Name"] for d in lambda_alarms["NewVersionErrorsAlarm"]["Dimensions"]}
    assert lambda_alarms["ThrottlesAlarm"]["MetricName"] == "Throttles"
    # The alias is the one API Gateway invokes (the names must agree), and by default the one SAM publishes.
    for path in template["Resources"]["RestApi"]["Properties"]["DefinitionBody"]["paths"].values():
        uri = path["x-amazon-apigateway-any-method"]["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]
        assert uri.endswith("${ApiFunction.Arn}:live/invocations"), uri
    assert template["Resources"]["ApiFunction"]["Properties"]["AutoPublishAlias"] == {"Ref": "PublishAlias"}
    assert template["Parameters"]["PublishAlias"]["Default"] == "live"


def test_canary_alarms_watch_the_version_in_their_dimensions(template):
    for name in CANARY_ALARMS:
        text = json.dumps(template["Resources"][name]["Properties"])
        expected = json.dumps({"Fn::Select": [7, {"Fn::Split": [":", {"Ref": "ApiFunction.Version"}]}]})
        assert expected in text, name


@pytest.fixture(scope="module")
def translated(tmp_path_factory) -> dict:
    """The template as the SAM transform turns it into CloudFormation (samtranslator of the SAM CLI)."""
    return translate({"defaults": {}}, tmp_path_factory.mktemp("sam"))["defaults"]


def test_version_dimension_is_the_version_the_live_alias_points_to(translated):
    resources = translated["Resources"]
    (alias_id,) = [
        n for n, r in _of_type(translated, "AWS::Lambda::Alias").items() if r["Properties"]["Name"] == "live"
    ]
    alias = resources[alias_id]["Properties"]
    assert alias["FunctionName"] == {"Ref": "ApiFunction"}
    version_id, attribute = alias["FunctionVersion"]["Fn::GetAtt"]
    assert attribute == "Version"
    assert resources[version_id]["Type"] == "AWS::Lambda::Version"
    assert resources[version_id]["Properties"]["FunctionName"] == {"Ref": "ApiFunction"}
    # Ref of an AWS::Lambda::Version is its ARN; the alias's GetAtt .Version is the number in its 8th field.
    resolve = Resolver(translated, refs={version_id: VERSION_ARN, f"{version_id}.Version": VERSION})
    expected = {"Fn::Select": [7, {"Fn::Split": [":", {"Ref": version_id}]}]}
    for name in CANARY_ALARMS:
        properties = resources[name]["Properties"]
        metrics = [m["MetricStat"]["Metric"] for m in properties.get("Metrics", []) if "MetricStat" in m] or [
            properties
        ]
        for metric in metrics:
            dimensions = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
            version = dimensions.get("version", dimensions.get("ExecutedVersion"))
            assert version == expected, (name, version)
            assert resolve(version) == resolve(alias["FunctionVersion"]) == VERSION


def test_the_version_check_catches_a_dimension_on_another_version(translated):
    broken = copy.deepcopy(translated)
    metric = broken["Resources"]["NewVersionP99LatencyAlarm"]["Properties"]
    metric["Dimensions"][1]["Value"] = {"Fn::GetAtt": ["ApiFunctionAliaslive", "FunctionVersion"]}
    with pytest.raises(AssertionError):
        test_version_dimension_is_the_version_the_live_alias_points_to(broken)


# --- tracing -----------------------------------------------------------------------------------------


def test_tracing_is_active_on_functions_and_api(template):
    assert template["Globals"]["Function"]["Tracing"] == "Active"
    assert template["Resources"]["RestApi"]["Properties"]["TracingEnabled"] is True
    assert template["Globals"]["Function"]["Environment"]["Variables"]["TRACING_BACKEND"] == {"Ref": "TracingBackend"}


@pytest.mark.parametrize("backend", ["xray", "otel", "off"])
def test_otel_adds_the_adot_layer_and_its_wrapper_and_nothing_else_does(template, backend):
    arn = "arn:aws:lambda:us-east-1:615299751070:layer:AWSOpenTelemetryDistroPython:16"
    resolve = Resolver(template, {"TracingBackend": backend, "AdotLayerArn": arn if backend == "otel" else ""})
    layers = resolve(template["Resources"]["ApiFunction"]["Properties"]["Layers"])
    environment = _function_environment(template, resolve)
    assert environment["TRACING_BACKEND"] == backend
    if backend == "otel":
        # Last: layers extract into /opt in order, so ADOT's opentelemetry-api wins over the copy in ours.
        assert layers[-1] == arn
        assert environment["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/otel-instrument"
    else:
        assert arn not in layers
        assert "AWS_LAMBDA_EXEC_WRAPPER" not in environment
    assert len(layers) <= 5


def _rule_failures(template: dict, **parameters: str) -> list[str]:
    """The AssertDescriptions CloudFormation would fail the deploy with for these parameter values."""
    resolve = Resolver(template, parameters)
    failures = []
    for rule in template["Rules"].values():
        if "RuleCondition" in rule and not resolve(rule["RuleCondition"]):
            continue
        failures += [a["AssertDescription"] for a in rule["Assertions"] if not resolve(a["Assert"])]
    return failures


def test_otel_without_the_adot_layer_fails_the_deploy(template):
    arn = "arn:aws:lambda:us-east-1:615299751070:layer:AWSOpenTelemetryDistroPython:16"
    (failure,) = _rule_failures(template, TracingBackend="otel", AdotLayerArn="")
    assert "AdotLayerArn" in failure and "otel" in failure
    assert not _rule_failures(template, TracingBackend="otel", AdotLayerArn=arn)
    assert not _rule_failures(template, TracingBackend="xray", AdotLayerArn="")
    pattern = template["Parameters"]["AdotLayerArn"]["AllowedPattern"]
    assert re.fullmatch(pattern, arn) and re.fullmatch(pattern, "")
    assert not re.fullmatch(pattern, "arn:aws:lambda:us-east-1:615299751070:layer:AWSOpenTelemetryDistroPython")


# --- logs --------------------------------------------------------------------------------------------


def test_every_function_logs_to_a_group_the_stack_manages_with_retention(template):
    groups = _of_type(template, "AWS::Logs::LogGroup")
    for name, function in _of_type(template, "AWS::Serverless::Function").items():
        group = function["Properties"]["LoggingConfig"]["LogGroup"]
        assert set(group) == {"Ref"} and group["Ref"] in groups, name
        resource = groups[group["Ref"]]
        assert resource["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        assert resource["DeletionPolicy"] == resource["UpdateReplacePolicy"] == "Retain"
        # A fixed name would collide with the retained group when the stack is created again.
        assert "LogGroupName" not in resource["Properties"]


def test_log_retention_values_are_ones_cloudwatch_accepts(template):
    schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", "AWS::Logs::LogGroup").schema
    valid = set(schema["properties"]["RetentionInDays"]["enum"])
    parameter = template["Parameters"]["LogRetentionDays"]
    assert {int(v) for v in parameter["AllowedValues"]} == valid
    assert int(parameter["Default"]) == 30
    config = tomllib.loads(SAMCONFIG.read_text())
    days = {}
    for env in ("default", "staging", "prod"):
        text = config[env]["global"]["parameters"]["parameter_overrides"]
        overrides = dict(token.split("=", 1) for token in shlex.split(text))
        days[env] = int(overrides.get("LogRetentionDays", parameter["Default"]))
        assert days[env] in valid, env
    assert days["default"] <= days["staging"] <= days["prod"]


def test_prod_logs_the_audit_line(template):
    # core.audit writes at INFO: a stricter LogLevel would leave the saved queries nothing to read.
    config = tomllib.loads(SAMCONFIG.read_text())
    for env in ("default", "staging", "prod"):
        text = config[env]["global"]["parameters"]["parameter_overrides"]
        level = dict(token.split("=", 1) for token in shlex.split(text)).get("LogLevel", "INFO")
        assert logging.getLevelName(level) <= logging.INFO, env


def _insights_fields(query: str) -> set[str]:
    """The log fields a Logs Insights query reads (not its aliases, functions, keywords or @ fields)."""
    text = re.sub(r'"[^"]*"|\'[^\']*\'', " ", query)
    aliases = set(re.findall(r"\bas\s+([A-Za-z_]\w*)", text))
    text = re.sub(r"@\w+", " ", text)
    text = re.sub(r"\b[A-Za-z_]\w*\s*\(", "(", text)
    return set(re.findall(r"\b[A-Za-z_]\w*\b", text)) - INSIGHTS_KEYWORDS - aliases


def _queries(template: dict) -> dict[str, str]:
    resolve = Resolver(template)
    queries = {
        name: q["Properties"]["QueryString"] for name, q in _of_type(template, "AWS::Logs::QueryDefinition").items()
    }
    for index, widget in enumerate(_dashboard_body(resolve)["widgets"]):
        if widget["type"] == "log":
            queries[f"dashboard widget {index}"] = widget["properties"]["query"]
    return queries


def test_saved_queries_read_only_fields_the_audit_line_has(template, emitted):
    keys = set().union(*emitted.audit_lines)
    line = emitted.audit_lines[0]
    assert (line["message"], line["name"], line["audit"]) == ("request", "core.audit", True)
    # On Lambda the line carries the invocation's keys too (Powertools' inject_lambda_context).
    assert {"correlation_id", "cold_start", "version", "function_name"} <= keys
    assert emitted.audit_lines[0]["cold_start"] is True
    assert emitted.audit_lines[0]["version"] == VERSION
    queries = _queries(template)
    assert len(queries) >= 8
    for name, query in queries.items():
        # core.audit also writes DEBUG lines ("request started"): only "request" lines are requests.
        assert 'name = "core.audit" and message = "request"' in query, name
        assert _insights_fields(query) <= keys, (name, sorted(_insights_fields(query) - keys))


def test_the_field_check_catches_a_field_the_code_does_not_write(emitted):
    keys = set().union(*emitted.audit_lines)
    query = 'filter name = "core.audit" | stats count(*) as n, pct(latency_msec, 99) as p99 by executed_version'
    assert _insights_fields(query) - keys == {"latency_msec", "executed_version"}


def test_saved_queries_cover_the_questions_operators_ask(template):
    resources = _of_type(template, "AWS::Logs::QueryDefinition")
    for name, query in resources.items():
        assert query["Properties"]["LogGroupNames"] == [{"Ref": "ApiFunctionLogGroup"}], name
    texts = {name: q["Properties"]["QueryString"] for name, q in resources.items()}

    def one(predicate) -> str:
        found = [n for n, t in texts.items() if predicate(t, _insights_fields(t))]
        assert found, "no saved query for that"
        return found[0]

    one(
        lambda t, f: (
            {"version", "pipeline", "latency_ms"} <= f and "pct(latency_ms, 99)" in t and "pct(latency_ms, 50)" in t
        )
    )
    one(lambda t, f: {"version", "error_code"} <= f and "status >= 500" in t)
    one(lambda t, f: "sort latency_ms desc" in t and "limit" in t)
    one(lambda t, f: {"cached", "pipeline"} <= f and "by pipeline" in t)
    one(lambda t, f: "tenant =" in t)
    one(lambda t, f: "query_sha256 =" in t)
    one(lambda t, f: "cold_start = 1" in t)


# --- outputs -----------------------------------------------------------------------------------------


def test_outputs_name_the_alarms_and_the_dashboard(template):
    outputs = template["Outputs"]
    values = [json.dumps(o["Value"]) for o in outputs.values()]
    for name in ALARMS:
        assert json.dumps({"Ref": name}) in values, name
    assert json.dumps({"Ref": "Dashboard"}) in values
    url = Resolver(template)(outputs["DashboardUrl"]["Value"])
    assert url.endswith("#dashboards:name=<Dashboard>")
    assert outputs["ApiLogGroupName"]["Value"] == {"Ref": "ApiFunctionLogGroup"}
