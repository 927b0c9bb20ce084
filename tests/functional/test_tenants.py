"""Tenants end to end: identity from real API Gateway events, records from SSM / Secrets Manager (moto),
caching counted at the botocore level, failures that fail closed, and isolation in the real embedded store.
"""

import copy
import json
import re
import time
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from haystack import Document
from mangum import Mangum
from moto import mock_aws

from core.components.embedders import StaticDocumentEmbedder, StaticTextEmbedder
from core.names import DEFAULT_TENANT
from core.security import tenants
from core.security.filters import FilterLimits, FilterPolicyError, with_tenant_filter
from core.security.tenants import (
    DEV_TENANT,
    Identity,
    IdentityMissingError,
    IdentityResolver,
    PipelineNotAllowedError,
    SecretTenantSource,
    SsmTenantSource,
    TenantDisabledError,
    TenantError,
    TenantRecord,
    TenantRecordError,
    TenantRegistry,
    TenantRegistryUnavailableError,
    TenantUnknownError,
)
from core.store.embedded import EmbeddedDocumentStore
from scripts.invoke import LambdaContext
from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
PREFIX = "/haystack-serverless/tenants"
API_KEY_ID = "a1b2c3d4e5"
API_KEY_VALUE = "Zq8v1mS4kx7Rb2nTc9Lw0pYe5dHj3gFa6uKiO1tQ"  # the secret key itself: never an identity


def record(tenant_id: str = "acme", **changes) -> dict:
    data = {
        "tenant_id": tenant_id,
        "enabled": True,
        "allowed_pipelines": ["search", "rag"],
        "rate_limit": {"rate_per_s": 5, "burst": 10, "pipelines": {"rag": {"rate_per_s": 1, "burst": 2}}},
    }
    data.update(changes)
    return data


# -- events ------------------------------------------------------------------------------------------


def rest_event(*, api_key: bool = False, authorizer: dict | None = None) -> dict:
    """``events/api-query.json`` (REST v1) with what API Gateway adds for an API key / an authorizer."""
    event = json.loads((EVENTS / "api-query.json").read_text())
    context = event["requestContext"]
    if api_key:
        context["identity"].update(apiKey=API_KEY_VALUE, apiKeyId=API_KEY_ID)
    if authorizer is not None:
        context["authorizer"] = authorizer
    return event


def http_api_event(authorizer: dict | None = None) -> dict:
    """``events/api-query-v2.json`` (HTTP API v2) with an authorizer's context."""
    event = json.loads((EVENTS / "api-query-v2.json").read_text())
    if authorizer is not None:
        event["requestContext"]["authorizer"] = authorizer
    return event


LAMBDA_AUTHORIZER = {"principalId": "user-42", "integrationLatency": 37, "tenant": "acme", "plan": "gold"}
COGNITO = {
    "claims": {
        "sub": "7d4c1a2e-5b3f-4e6a-9c8d-1f2e3a4b5c6d",
        "cognito:username": "ada",
        "custom:tenant": "acme",
        "email": "ada@example.com",
        "token_use": "id",
        "iss": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Ab12Cd34E",
    }
}
HTTP_LAMBDA = {"lambda": {"tenant": "acme", "user": "ada"}}
HTTP_JWT = {"jwt": {"claims": {"sub": "ada", "custom:tenant": "acme"}, "scopes": ["query"]}}


# -- identity ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "key", "source"),
    [
        (rest_event(api_key=True), f"api-key:{API_KEY_ID}", "requestContext.identity.apiKeyId"),
        (
            rest_event(authorizer={"principalId": "user-42", "integrationLatency": 37}),
            "principal:user-42",
            "requestContext.authorizer.principalId",
        ),
        (rest_event(authorizer=LAMBDA_AUTHORIZER), "claim:acme", "requestContext.authorizer.tenant"),
        (rest_event(authorizer=COGNITO), "claim:acme", "requestContext.authorizer.claims.custom:tenant"),
        (http_api_event(HTTP_LAMBDA), "claim:acme", "requestContext.authorizer.lambda.tenant"),
        (http_api_event(HTTP_JWT), "claim:acme", "requestContext.authorizer.jwt.claims.custom:tenant"),
        # REST events without an authorizer may carry {"claims": null, "scopes": null}.
        (
            rest_event(api_key=True, authorizer={"claims": None, "scopes": None}),
            f"api-key:{API_KEY_ID}",
            "requestContext.identity.apiKeyId",
        ),
    ],
    ids=["rest-api-key", "rest-principal", "rest-authorizer-tenant", "rest-cognito", "v2-lambda", "v2-jwt", "nulls"],
)
def test_identity_from_sample_events(event, key, source):
    identity = IdentityResolver().resolve(event)
    assert (identity.key, identity.source) == (key, source)


def test_the_api_key_value_is_never_the_identity():
    identity = IdentityResolver().resolve(rest_event(api_key=True))
    assert API_KEY_VALUE not in repr(identity)


def test_precedence_authorizer_tenant_then_claim_then_principal_then_api_key():
    everything = rest_event(api_key=True, authorizer={**LAMBDA_AUTHORIZER, **COGNITO})
    resolver = IdentityResolver()
    assert [i.key for i in resolver.identities(everything)] == ["claim:acme", "principal:user-42", "api-key:a1b2c3d4e5"]
    assert resolver.resolve(everything).source == "requestContext.authorizer.tenant"  # context key before JWT claim
    no_tenant_key = rest_event(api_key=True, authorizer={"principalId": "user-42", **COGNITO})
    assert resolver.resolve(no_tenant_key).source == "requestContext.authorizer.claims.custom:tenant"
    assert resolver.resolve(rest_event(api_key=True, authorizer={"principalId": "user-42"})).kind == "principal"


def test_order_and_names_are_configurable():
    everything = rest_event(api_key=True, authorizer={**LAMBDA_AUTHORIZER, "org": "beta"})
    assert IdentityResolver(order=("api-key", "claim")).resolve(everything).key == f"api-key:{API_KEY_ID}"
    assert IdentityResolver(context_key="org").resolve(everything).key == "claim:beta"
    jwt = http_api_event({"jwt": {"claims": {"tenant_id": "gamma"}}})
    assert IdentityResolver(claim_name="tenant_id").resolve(jwt).key == "claim:gamma"
    with pytest.raises(IdentityMissingError):
        IdentityResolver().resolve(jwt)  # the default claim name is custom:tenant
    for bad in [(), ("claim", "claim"), ("apikey",)]:
        with pytest.raises(ValueError, match="identity order"):
            IdentityResolver(order=bad)


def test_http_api_has_no_principal_or_api_key_kinds():
    # An HTTP API authorizer context without the tenant key names nobody (v2 has neither principalId nor API keys).
    event = http_api_event({"lambda": {"principalId": "user-42", "user": "ada"}})
    event["requestContext"]["identity"] = {"apiKeyId": API_KEY_ID}
    with pytest.raises(IdentityMissingError):
        IdentityResolver().resolve(event)


@pytest.mark.parametrize(
    "event",
    [
        rest_event(),
        http_api_event(),
        rest_event(authorizer={"claims": None, "scopes": None}),
        rest_event(authorizer={"principalId": "   ", "tenant": ""}),
        rest_event(authorizer={"tenant": True, "claims": {"custom:tenant": ["acme"]}}),
        http_api_event({"jwt": {"claims": {"sub": "ada"}}}),
        {},
        None,
    ],
    ids=["rest", "v2", "rest-null-claims", "blank", "wrong-types", "v2-jwt-without-claim", "empty", "none"],
)
def test_missing_identity_is_a_401(event):
    with pytest.raises(IdentityMissingError) as caught:
        IdentityResolver().resolve(event)
    assert (caught.value.status, caught.value.code) == (401, "unauthorized")


# -- records -----------------------------------------------------------------------------------------


def test_the_documented_record_example_parses():
    doc = tenants.__doc__
    example = doc[doc.index("Records (") :].split("::", 1)[1].split("\n\n")[1]
    parsed = TenantRecord.parse(json.loads(example))
    assert parsed.tenant_id == "acme"
    assert parsed.limit_for("rag").burst == 2 and parsed.limit_for("search").burst == 10
    assert parsed.store_filter == {"field": "meta.project", "operator": "in", "value": ["alpha", "beta"]}


def test_pipelines_and_limits():
    acme = TenantRecord.parse(record())
    assert acme.allows("search") and not acme.allows("summarise")
    with pytest.raises(PipelineNotAllowedError, match="'summarise' is not enabled") as caught:
        acme.require_pipeline("summarise")
    assert (caught.value.status, caught.value.code) == (403, "forbidden")
    assert (acme.limit_for("rag").rate_per_s, acme.limit_for("rag").burst) == (1, 2)
    assert (acme.limit_for("search").rate_per_s, acme.limit_for("search").burst) == (5, 10)
    everything = TenantRecord.parse(record(allowed_pipelines="*"))
    assert everything.allows("anything-new")


def test_scope_filters_ands_the_store_filter():
    scoped = TenantRecord.parse(record(store_filter={"field": "meta.project", "operator": "==", "value": "alpha"}))
    assert scoped.scope_filters({"field": "meta.module", "operator": "==", "value": "json"}) == {
        "operator": "AND",
        "conditions": [
            {"field": "meta.tenant", "operator": "==", "value": "acme"},
            {"field": "meta.module", "operator": "==", "value": "json"},
            {"field": "meta.project", "operator": "==", "value": "alpha"},
        ],
    }


@pytest.mark.parametrize(
    ("changes", "detail"),
    [
        ({"tenant_id": "a/b"}, "tenant_id: tenant id 'a/b' is not a plain name"),
        ({"tenant_id": "2024-01-01"}, "reads as a date"),
        ({"allowed_pipelines": ["Search"]}, "allowed_pipelines: not pipeline names: 'Search'"),
        ({"allowed_pipelines": "all"}, "allowed_pipelines"),
        ({"rate_limit": {"rate_per_s": 0, "burst": 1}}, "rate_limit.rate_per_s: Input should be greater than 0"),
        ({"rate_limit": {"rate_per_s": 1, "burst": 0}}, "rate_limit.burst: Input should be greater than or equal to 1"),
        ({"rate_limit": {"rate": 1, "burst": 1}}, "rate_limit.rate_per_s: Field required"),
        (
            {"rate_limit": {"rate_per_s": 1, "burst": 1, "pipelines": {"RAG": {"rate_per_s": 1, "burst": 1}}}},
            "rate_limit.pipelines: not pipeline names: 'RAG'",
        ),
        ({"store_filter": {"field": "meta.x", "operator": "like", "value": 1}}, "store_filter: filters.operator"),
        ({"enabled": "maybe"}, "enabled: Input should be a valid boolean"),
        ({"tenant": "acme"}, "tenant: Extra inputs are not permitted"),
    ],
)
def test_invalid_records_fail_with_one_line(changes, detail):
    with pytest.raises(TenantRecordError) as caught:
        TenantRecord.parse(record(**changes), where="api-key:k1")
    error = caught.value
    assert (error.status, error.code, error.message) == (
        500,
        "tenant_misconfigured",
        "the tenant's configuration is invalid",
    )
    assert error.detail.startswith("api-key:k1: ") and detail in error.detail
    assert "\n" not in error.detail


def test_a_missing_field_is_named():
    data = record()
    del data["rate_limit"]
    with pytest.raises(TenantRecordError, match=r"^the tenant's configuration is invalid$") as caught:
        TenantRecord.parse(data)
    assert "rate_limit: Field required" in caught.value.detail


# -- the registry on SSM and Secrets Manager (moto) ------------------------------------------------------


@pytest.fixture
def aws_env(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)


@pytest.fixture
def aws(aws_env):
    with mock_aws():
        yield


def count_calls(client) -> list[str]:
    """Every API call the client makes from now on (botocore's ``before-call`` event), by operation name."""
    calls: list[str] = []
    client.meta.events.register("before-call", lambda model, **_: calls.append(model.name))
    return calls


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def ssm_registry(client, *, cache_ttl_s: int = 300, negative_ttl_s: float = 30, clock=None) -> TenantRegistry:
    source = SsmTenantSource(PREFIX, max_age_s=cache_ttl_s, boto3_client=client)
    return TenantRegistry(source, negative_ttl_s=negative_ttl_s, clock=clock or FakeClock())


def put(key_path: str, value: dict | str, kind: str = "String") -> None:
    """Write a record as an operator would (its own client: the registry's counts only the registry's calls)."""
    body = value if isinstance(value, str) else json.dumps(value)
    boto3.client("ssm").put_parameter(Name=f"{PREFIX}/{key_path}", Value=body, Type=kind, Overwrite=True)


API_KEY = Identity("api-key", API_KEY_ID, "test")
ACME_CLAIM = Identity("claim", "acme", "test")


def test_ssm_lookup_is_cached_per_container(aws):
    ssm = boto3.client("ssm")
    put(f"api-key/{API_KEY_ID}", record())
    registry = ssm_registry(ssm)
    calls = count_calls(ssm)
    first = registry.lookup(API_KEY)
    second = registry.lookup(API_KEY)
    assert first == second and first.tenant_id == "acme"
    assert calls == ["GetParameter"]


def test_secure_string_records_are_decrypted(aws):
    ssm = boto3.client("ssm")
    put("claim/acme", record(), kind="SecureString")
    assert ssm_registry(ssm).lookup(ACME_CLAIM).tenant_id == "acme"


def test_a_changed_record_is_seen_after_the_cache_ttl(aws):
    ssm = boto3.client("ssm")
    put(f"api-key/{API_KEY_ID}", record())
    registry = ssm_registry(ssm, cache_ttl_s=1)
    calls = count_calls(ssm)
    assert registry.lookup(API_KEY).enabled
    put(f"api-key/{API_KEY_ID}", record(enabled=False))
    assert registry.lookup(API_KEY).enabled  # still cached
    time.sleep(1.1)
    with pytest.raises(TenantDisabledError):
        registry.lookup(API_KEY)
    assert calls == ["GetParameter", "GetParameter"]


def test_unknown_identities_are_cached_negatively_for_a_shorter_time(aws):
    ssm = boto3.client("ssm")
    clock = FakeClock()
    registry = ssm_registry(ssm, negative_ttl_s=30, clock=clock)
    calls = count_calls(ssm)
    for _ in range(3):
        with pytest.raises(TenantUnknownError) as caught:
            registry.lookup(API_KEY)
    assert (caught.value.status, caught.value.code) == (403, "forbidden")
    assert calls == ["GetParameter"]
    put(f"api-key/{API_KEY_ID}", record())  # registered meanwhile: unknown until the negative entry ends
    clock.now += 29
    with pytest.raises(TenantUnknownError):
        registry.lookup(API_KEY)
    clock.now += 2
    assert registry.lookup(API_KEY).tenant_id == "acme"
    assert calls == ["GetParameter", "GetParameter"]


def test_forget_unknown_drops_negative_entries(aws):
    ssm = boto3.client("ssm")
    registry = ssm_registry(ssm)
    with pytest.raises(TenantUnknownError):
        registry.lookup(API_KEY)
    put(f"api-key/{API_KEY_ID}", record())
    registry.forget_unknown()
    assert registry.lookup(API_KEY).tenant_id == "acme"


def test_parameter_names_per_kind_and_values_ssm_cannot_name(aws):
    ssm = boto3.client("ssm")
    source = SsmTenantSource(PREFIX + "/", boto3_client=ssm)
    assert source.parameter_name(API_KEY) == f"{PREFIX}/api-key/{API_KEY_ID}"
    assert source.parameter_name(Identity("principal", "user-42", "t")) == f"{PREFIX}/principal/user-42"
    assert source.parameter_name(ACME_CLAIM) == f"{PREFIX}/claim/acme"
    registry = TenantRegistry(source)
    calls = count_calls(ssm)
    for value in ["ada@example.com", "../api-key/a1b2c3d4e5", "a/b", "..", "x" * 257, "tab\there"]:
        with pytest.raises(TenantUnknownError):
            registry.lookup(Identity("principal", value, "t"))
    assert calls == []  # refused before any AWS call


def test_disabled_tenant_is_a_403(aws):
    ssm = boto3.client("ssm")
    put(f"api-key/{API_KEY_ID}", record(enabled=False))
    with pytest.raises(TenantDisabledError) as caught:
        ssm_registry(ssm).lookup(API_KEY)
    assert (caught.value.status, caught.value.message) == (403, "this tenant is disabled")


@pytest.mark.parametrize(
    ("stored", "detail"),
    [("{not json", "not JSON"), (json.dumps(record(rate_limit={"rate_per_s": 1})), "rate_limit.burst: Field required")],
)
def test_an_invalid_stored_record_is_a_500_not_unknown(aws, stored, detail):
    put(f"api-key/{API_KEY_ID}", stored)
    registry = ssm_registry(boto3.client("ssm"))
    for _ in range(2):  # never turned into a remembered "unknown"
        with pytest.raises(TenantRecordError) as caught:
            registry.lookup(API_KEY)
        assert detail in caught.value.detail


def test_a_record_that_is_not_json_is_not_cached(aws):
    put(f"api-key/{API_KEY_ID}", "{not json")
    registry = ssm_registry(boto3.client("ssm"))
    with pytest.raises(TenantRecordError):
        registry.lookup(API_KEY)
    put(f"api-key/{API_KEY_ID}", record())
    assert registry.lookup(API_KEY).tenant_id == "acme"  # fixed: the next request sees it


@pytest.mark.parametrize("code", ["AccessDeniedException", "ThrottlingException", "InternalServerError"])
def test_ssm_errors_fail_closed_and_are_not_unknown(aws_env, code):
    ssm = boto3.client("ssm")
    registry = ssm_registry(ssm)
    with Stubber(ssm) as stubber:
        stubber.add_client_error("get_parameter", service_error_code=code, http_status_code=400)
        stubber.add_client_error("get_parameter", service_error_code="ParameterNotFound", http_status_code=400)
        with pytest.raises(TenantRegistryUnavailableError) as caught:
            registry.lookup(API_KEY)
        assert (caught.value.status, caught.value.code) == (503, "tenant_registry_unavailable")
        assert code in caught.value.detail
        with pytest.raises(TenantUnknownError):  # the failure was not remembered: the next request asks again
            registry.lookup(API_KEY)
        stubber.assert_no_pending_responses()


def test_ssm_unreachable_fails_closed(aws_env):
    ssm = boto3.client(
        "ssm",
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        config=Config(connect_timeout=1, read_timeout=1, retries={"max_attempts": 1, "mode": "standard"}),
    )
    registry = ssm_registry(ssm)
    calls = count_calls(ssm)
    for _ in range(2):
        with pytest.raises(TenantRegistryUnavailableError, match="retry later"):
            registry.lookup(API_KEY)
    assert calls == ["GetParameter", "GetParameter"]  # neither cached as unknown nor as a record


def secret_registry(client, registry_id: str = "haystack-serverless/tenants") -> TenantRegistry:
    return TenantRegistry(SecretTenantSource(registry_id, boto3_client=client), clock=FakeClock())


def test_secret_map_is_read_once_for_every_identity(aws):
    sm = boto3.client("secretsmanager")
    records = {f"api-key:{API_KEY_ID}": record(), "claim:beta": record("beta", allowed_pipelines="*")}
    sm.create_secret(Name="haystack-serverless/tenants", SecretString=json.dumps(records))
    registry = secret_registry(sm)
    calls = count_calls(sm)
    assert registry.lookup(API_KEY).tenant_id == "acme"
    assert registry.lookup(Identity("claim", "beta", "t")).tenant_id == "beta"
    with pytest.raises(TenantUnknownError):
        registry.lookup(ACME_CLAIM)
    assert registry.lookup(API_KEY).tenant_id == "acme"
    assert calls == ["GetSecretValue"]


def test_secret_values_ssm_could_not_name_work(aws):
    sm = boto3.client("secretsmanager")
    sm.create_secret(Name="tenants", SecretString=json.dumps({"principal:ada@example.com": record()}))
    assert secret_registry(sm, "tenants").lookup(Identity("principal", "ada@example.com", "t")).tenant_id == "acme"


def test_missing_secret_fails_closed(aws):
    with pytest.raises(TenantRegistryUnavailableError) as caught:
        secret_registry(boto3.client("secretsmanager"), "nope").lookup(API_KEY)
    assert "ResourceNotFoundException" in caught.value.detail


@pytest.mark.parametrize(("stored", "detail"), [("[1, 2]", "not a JSON object"), ("{oops", "not JSON")])
def test_a_secret_that_is_not_a_map_is_a_500(aws, stored, detail):
    sm = boto3.client("secretsmanager")
    sm.create_secret(Name="tenants", SecretString=stored)
    with pytest.raises(TenantRecordError) as caught:
        secret_registry(sm, "tenants").lookup(API_KEY)
    assert detail in caught.value.detail


def test_from_reference(aws):
    ssm_source = TenantRegistry.from_reference(f"ssm:{PREFIX}", cache_ttl_s=60).source
    assert isinstance(ssm_source, SsmTenantSource) and (ssm_source.prefix, ssm_source.max_age_s) == (PREFIX, 60)
    secret_source = TenantRegistry.from_reference("secretsmanager:haystack/tenants").source
    assert isinstance(secret_source, SecretTenantSource) and secret_source.secret_id == "haystack/tenants"
    refusals = {
        "dynamodb:tenants": "must be ssm:<prefix> or secretsmanager:<secret id>",
        "ssm:relative/path": "SSM prefix must be a path",
        "ssm:": "SSM prefix must be a path",
        "secretsmanager:": "a secret id is required",
    }
    for bad, message in refusals.items():
        with pytest.raises(ValueError, match=re.escape(message)):
            TenantRegistry.from_reference(bad)
    with pytest.raises(ValueError, match="needs a source"):
        TenantRegistry.from_reference(None)


def test_for_event_from_rest_and_http_api_events(aws):
    ssm = boto3.client("ssm")
    put(f"api-key/{API_KEY_ID}", record())
    put("claim/beta", record("beta"))
    registry = ssm_registry(ssm)
    assert registry.for_event(rest_event(api_key=True)).tenant_id == "acme"
    assert registry.for_event(http_api_event({"jwt": {"claims": {"custom:tenant": "beta"}}})).tenant_id == "beta"
    with pytest.raises(TenantUnknownError):
        registry.for_event(rest_event(authorizer=COGNITO))  # claim:acme is not registered
    with pytest.raises(IdentityMissingError):
        registry.for_event(rest_event())
    with pytest.raises(IdentityMissingError):
        registry.for_event(None)  # not behind API Gateway, and local_dev is off


# -- local development -------------------------------------------------------------------------------


def test_local_dev_tenant_only_without_an_api_gateway_event(monkeypatch):
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    registry = TenantRegistry.from_reference(None, local_dev=True)
    assert registry.for_event(None) is DEV_TENANT
    assert DEV_TENANT.tenant_id == DEFAULT_TENANT and DEV_TENANT.allows("anything")
    with pytest.raises(IdentityMissingError):
        registry.for_event(rest_event())  # an API Gateway event is never answered with the dev tenant
    with pytest.raises(TenantUnknownError):
        registry.for_event(rest_event(api_key=True))  # no registry: nobody is known


def test_local_dev_is_refused_on_lambda(monkeypatch):
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "ApiFunction")
    with pytest.raises(ValueError, match="refused on Lambda"):
        TenantRegistry.from_reference(None, local_dev=True)
    with pytest.raises(ValueError, match="refused on Lambda"):
        TenantRegistry(None, local_dev=True, environ={"AWS_LAMBDA_FUNCTION_NAME": "ApiFunction"})


# -- through Mangum: the event really reaches scope["aws.event"] ---------------------------------------


class MapSource:
    """A registry source from a dict (the AWS sources are tested above)."""

    def __init__(self, records: dict) -> None:
        self.records = records

    def fetch(self, identity: Identity) -> dict | None:
        return self.records.get(identity.key)


@pytest.mark.filterwarnings("ignore:There is no current event loop:DeprecationWarning")
@pytest.mark.parametrize(
    ("event", "status", "body"),
    [
        (rest_event(api_key=True), 200, {"tenant": "acme"}),
        (http_api_event(HTTP_JWT), 200, {"tenant": "beta"}),
        (rest_event(authorizer={"principalId": "stranger"}), 403, {"code": "forbidden"}),
        (rest_event(), 401, {"code": "unauthorized"}),
    ],
)
def test_tenant_resolved_inside_an_app_behind_mangum(event, status, body):
    registry = TenantRegistry(
        MapSource({f"api-key:{API_KEY_ID}": record(), "claim:acme": record("beta")}), clock=FakeClock()
    )
    app = FastAPI()

    @app.post("/query")
    def query(request: Request) -> JSONResponse:
        try:
            tenant = registry.for_event(request.scope.get("aws.event"))
        except TenantError as exc:
            return JSONResponse({"code": exc.code, "message": exc.message}, status_code=exc.status)
        return JSONResponse({"tenant": tenant.tenant_id})

    response = Mangum(app, lifespan="off")(copy.deepcopy(event), LambdaContext())
    assert response["statusCode"] == status
    assert body.items() <= json.loads(response["body"]).items()


# -- isolation in the real embedded store -------------------------------------------------------------

TEXTS = {
    "json": "Parse JSON documents with json.loads and encode Python objects with json.dumps.",
    "csv": "Read CSV files row by row with csv.reader and write them with csv.writer.",
    "re": "Regular expressions: re.search finds a pattern anywhere, re.match only at the start.",
}


@pytest.fixture(scope="module")
def store() -> EmbeddedDocumentStore:
    """Tenants acme and beta hold the same texts (equal scores), beta has a secret, one chunk has no tenant."""
    documents = [
        Document(content=text, meta={"tenant": tenant, "module": module, "project": project})
        for tenant, project in (("acme", "alpha"), ("beta", "apollo"))
        for module, text in TEXTS.items()
    ]
    documents.append(
        Document(content="Beta's secret: JSON parsing roadmap for Apollo.", meta={"tenant": "beta", "module": "json"})
    )
    documents.append(Document(content="An orphan chunk about JSON parsing.", meta={"module": "json"}))
    embedded = StaticDocumentEmbedder().run(documents=documents)["documents"]
    return EmbeddedDocumentStore.from_documents(embedded, "l2_supercat_256")


@pytest.fixture(scope="module")
def query_embedding() -> list[float]:
    return StaticTextEmbedder().run(text="parse JSON documents")["embedding"]


def retrieve(store, query_embedding, kind: str, filters) -> list[Document]:
    if kind == "bm25":
        return store.bm25_retrieval("parse JSON documents", filters=filters, top_k=100)
    return store.embedding_retrieval(query_embedding, filters=filters, top_k=100)


def tenant_clause(operator: str, value) -> dict:
    return {"field": "meta.tenant", "operator": operator, "value": value}


JSON_MODULE = {"field": "meta.module", "operator": "==", "value": "json"}
CRAFTED = {
    # naming the tenant field (rejected by default; ANDed when the policy allows it)
    "other-tenant": tenant_clause("==", "beta"),
    "or-other-tenant": {"operator": "OR", "conditions": [tenant_clause("==", "beta"), JSON_MODULE]},
    "tenant-in-both": tenant_clause("in", ["acme", "beta"]),
    "not-own-tenant": {"operator": "NOT", "conditions": [tenant_clause("==", "acme")]},
    "tenant-not-own": tenant_clause("!=", "acme"),
    "tenant-missing": tenant_clause("==", None),
    "deep-not-or": {
        "operator": "NOT",
        "conditions": [
            {"operator": "AND", "conditions": [{"operator": "NOT", "conditions": [tenant_clause("==", "beta")]}]}
        ],
    },
    # never naming it (accepted by default)
    "tautology-or": {
        "operator": "OR",
        "conditions": [JSON_MODULE, {"field": "meta.module", "operator": "!=", "value": "json"}],
    },
    "id-not-empty": {"field": "id", "operator": "!=", "value": ""},
    "content-not-empty": {"field": "content", "operator": "!=", "value": ""},
    "other-project": {"field": "meta.project", "operator": "==", "value": "apollo"},
    "none": None,
}
NAMES_TENANT = {name for name, crafted in CRAFTED.items() if "meta.tenant" in json.dumps(crafted)}
PERMISSIVE = FilterLimits(allow_tenant_field=True)


@pytest.mark.parametrize("kind", ["bm25", "embedding"])
@pytest.mark.parametrize("name", list(CRAFTED))
def test_acme_never_retrieves_another_tenants_documents(store, query_embedding, kind, name):
    crafted = CRAFTED[name]
    alone = retrieve(store, query_embedding, kind, crafted)
    assert any(d.meta.get("tenant") != "acme" for d in alone), "the crafted filter alone must reach other documents"
    scoped = retrieve(store, query_embedding, kind, with_tenant_filter(crafted, "acme", limits=PERMISSIVE))
    assert all(d.meta.get("tenant") == "acme" for d in scoped)
    if name in NAMES_TENANT:
        with pytest.raises(FilterPolicyError, match=r"meta\.tenant is set by the server"):
            with_tenant_filter(crafted, "acme")
    else:
        assert retrieve(store, query_embedding, kind, with_tenant_filter(crafted, "acme")) == scoped


@pytest.mark.parametrize("kind", ["bm25", "embedding"])
def test_acme_still_finds_its_own_documents(store, query_embedding, kind):
    found = retrieve(store, query_embedding, kind, with_tenant_filter(None, "acme"))
    assert found[0].meta == {"tenant": "acme", "module": "json", "project": "alpha"}
    everything = retrieve(store, query_embedding, kind, with_tenant_filter(CRAFTED["tautology-or"], "acme"))
    assert {d.meta["module"] for d in everything} == ({"json"} if kind == "bm25" else set(TEXTS))


@pytest.mark.parametrize("kind", ["bm25", "embedding"])
def test_the_store_filter_narrows_within_the_tenant(store, query_embedding, kind):
    acme = TenantRecord.parse(record(store_filter={"field": "meta.project", "operator": "==", "value": "beta-only"}))
    assert retrieve(store, query_embedding, kind, acme.scope_filters(None)) == []
    own = TenantRecord.parse(record(store_filter={"field": "meta.project", "operator": "==", "value": "alpha"}))
    assert {d.meta["tenant"] for d in retrieve(store, query_embedding, kind, own.scope_filters(None))} == {"acme"}


def test_date_like_tenant_ids_are_refused_because_haystack_compares_them_as_dates():
    documents = [
        Document(content="parse JSON for the first", meta={"tenant": "2024-01-01"}),
        Document(content="parse JSON for the second", meta={"tenant": "2024-01-01T00"}),
    ]
    embedded = StaticDocumentEmbedder().run(documents=documents)["documents"]
    dated = EmbeddedDocumentStore.from_documents(embedded, "l2_supercat_256")
    raw = dated.bm25_retrieval("parse JSON", filters=tenant_clause("==", "2024-01-01"))
    assert {d.meta["tenant"] for d in raw} == {"2024-01-01", "2024-01-01T00"}  # the hazard is real
    for tenant in ("2024-01-01", "2024-01-01T00"):
        with pytest.raises(ValueError, match="reads as a date"):
            with_tenant_filter(None, tenant)
