"""Who is calling, and what their tenant may do: the API Gateway identity → a ``TenantRecord``.

Identity (``IdentityResolver``), read from the Lambda event Mangum puts in ``scope["aws.event"]``. The
first kind present in ``order`` wins; kinds are never merged. Default order:

1. ``claim:<value>``: a tenant *named by the authenticator*. The Lambda authorizer's context key
   (``context_key``, default ``tenant``: REST ``requestContext.authorizer.tenant``, HTTP API
   ``requestContext.authorizer.lambda.tenant``), else a JWT claim (``claim_name``, default
   ``custom:tenant``: REST Cognito ``requestContext.authorizer.claims``, HTTP API
   ``requestContext.authorizer.jwt.claims``).
2. ``principal:<id>``: the REST Lambda authorizer's ``requestContext.authorizer.principalId``.
3. ``api-key:<id>``: the REST API key's id, ``requestContext.identity.apiKeyId`` (set when the method
   requires a key; the id, not the secret key value).

Why this order: an authorizer runs on every request and speaks for the end user, so what it asserts is
the most specific; an API key identifies the calling application (its usage plan throttles it) and is
the identity when no authorizer is configured. None present → ``IdentityMissingError`` (401).

Records (``TenantRecord``), JSON as stored::

    {"tenant_id": "acme", "enabled": true, "allowed_pipelines": ["search", "rag"],
     "rate_limit": {"rate_per_s": 5, "burst": 10, "pipelines": {"rag": {"rate_per_s": 1, "burst": 2}}},
     "store_filter": {"field": "meta.project", "operator": "in", "value": ["alpha", "beta"]}}

Where they live (``TenantRegistry.from_reference``):

- ``ssm:<prefix>``: one parameter per identity, ``<prefix>/<kind>/<value>`` (String or SecureString), e.g.
  ``/haystack-serverless/tenants/api-key/a1b2c3d4e5``, ``.../claim/acme``, ``.../principal/user-42``.
  Parameter names allow only ``a-zA-Z0-9_.-``: an identity value with any other character is unknown.
- ``secretsmanager:<secret id>``: one secret, a JSON object from identity key to record,
  ``{"api-key:a1b2c3d4e5": {...}, "claim:acme": {...}}`` (a secret holds 64 KB: SSM suits many tenants).

Caching: values come through Powertools Parameters with ``max_age=cache_ttl_s``, so a container reads a
parameter (or the whole secret) at most once per ``cache_ttl_s`` and sees a changed record within that
time. An unknown identity is remembered for ``negative_ttl_s`` (shorter): no AWS call per request for a
stranger. A failed read (throttled, denied, unreachable, the secret missing) is not cached and fails
closed (``TenantRegistryUnavailableError``, 503), distinct from "unknown" (403).

Errors carry ``status``, ``code`` (for the error body), ``message`` (safe to return) and ``detail`` (for
the log: it names the identity, which may be a user id): 401 ``unauthorized`` (no identity), 403
``forbidden`` (unknown, disabled, pipeline not allowed), 503 ``tenant_registry_unavailable``, 500
``tenant_misconfigured`` (a record that does not validate).

Local development: ``TenantRegistry(..., local_dev=True)`` answers a request that carries *no* API Gateway
event (uvicorn, TestClient) with ``DEV_TENANT`` (``default``: every pipeline, generous limits; ``default``
is the tenant ingestion gives documents outside a tenant folder). A request with an event is resolved
normally, and ``local_dev`` is refused where ``AWS_LAMBDA_FUNCTION_NAME`` is set (on Lambda).

Example:
    >>> registry = TenantRegistry.from_reference("ssm:/haystack-serverless/tenants", cache_ttl_s=300)
    >>> record = registry.for_event(request.scope.get("aws.event"))
    >>> record.require_pipeline("search")
    >>> filters = record.scope_filters(body.filters)  # core.security.filters.with_tenant_filter
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core.aws import LAMBDA_FUNCTION_NAME_ENV, error_code, on_lambda
from core.names import DEFAULT_TENANT, PIPELINE_NAME
from core.security.filters import (
    DEFAULT_LIMITS,
    TRUSTED_LIMITS,
    FilterLimits,
    check_tenant_id,
    validate_filters,
    with_tenant_filter,
)

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider, SSMProvider

IdentityKind = Literal["claim", "principal", "api-key"]
IDENTITY_KINDS: tuple[IdentityKind, ...] = ("claim", "principal", "api-key")
DEFAULT_ORDER: tuple[IdentityKind, ...] = IDENTITY_KINDS
DEFAULT_CLAIM = "custom:tenant"
DEFAULT_CONTEXT_KEY = "tenant"
DEFAULT_SSM_PREFIX = "/haystack-serverless/tenants"
MAX_IDENTITY_CHARS = 256
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SSM_SEGMENT = re.compile(r"^(?!\.+$)[A-Za-z0-9_.\-]{1,256}$")
_SSM_PREFIX = re.compile(r"^(/[A-Za-z0-9_.\-]+)+$")


# -- errors ------------------------------------------------------------------------------------------


class TenantError(Exception):
    """A request cannot be given a tenant; ``status``/``code``/``message`` make the error body.

    Args:
        message: Safe to return to the caller.
        detail: For the log (may name the identity); the message when omitted.
    """

    status = 500
    code = "tenant_error"
    default_message = "the tenant could not be determined"

    def __init__(self, message: str | None = None, detail: str | None = None) -> None:
        self.message = message or self.default_message
        self.detail = detail or self.message
        super().__init__(self.message)


class IdentityMissingError(TenantError):
    """The event carries no identity this service accepts (→ 401)."""

    status = 401
    code = "unauthorized"
    default_message = "no credentials identify a tenant"


class TenantUnknownError(TenantError):
    """An identity is present, but no tenant is registered for it (→ 403)."""

    status = 403
    code = "forbidden"
    default_message = "these credentials are not registered for any tenant"


class TenantDisabledError(TenantUnknownError):
    """The tenant's record says ``enabled: false`` (→ 403)."""

    default_message = "this tenant is disabled"


class PipelineNotAllowedError(TenantError):
    """The tenant may not run this pipeline (→ 403)."""

    status = 403
    code = "forbidden"


class TenantRegistryUnavailableError(TenantError):
    """The registry could not be read (throttled, denied, unreachable, missing): fail closed (→ 503)."""

    status = 503
    code = "tenant_registry_unavailable"
    default_message = "the tenant registry did not answer; retry later"


class TenantRecordError(TenantError):
    """A stored record does not validate; ``detail`` is one line naming the field (→ 500)."""

    status = 500
    code = "tenant_misconfigured"
    default_message = "the tenant's configuration is invalid"


# -- identity ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """Who the caller is, as API Gateway vouches for it.

    Attributes:
        kind: ``claim``, ``principal`` or ``api-key``.
        value: The claim value, principal id or API key id.
        source: Where in the event it was found (for logs).
    """

    kind: IdentityKind
    value: str
    source: str

    @property
    def key(self) -> str:
        """The registry key, ``<kind>:<value>``."""
        return f"{self.kind}:{self.value}"


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: object) -> str | None:
    """A usable identity value: a non-blank string (or an integer, as authorizer contexts may hold)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value)
    return text if text.strip() else None


@dataclass(frozen=True)
class IdentityResolver:
    """Reads the identity from an API Gateway event (REST v1 or HTTP API v2); see the module docstring.

    Args:
        claim_name: JWT / Cognito claim naming the tenant.
        context_key: Lambda authorizer context key naming the tenant.
        order: Kinds to look for, most trusted first.

    Example:
        >>> IdentityResolver().resolve({"requestContext": {"identity": {"apiKeyId": "a1b2c3"}}}).key
        'api-key:a1b2c3'
    """

    claim_name: str = DEFAULT_CLAIM
    context_key: str = DEFAULT_CONTEXT_KEY
    order: tuple[IdentityKind, ...] = DEFAULT_ORDER

    def __post_init__(self) -> None:
        """Refuse an empty or unknown order (a typo must not silently drop a kind)."""
        unknown = [k for k in self.order if k not in IDENTITY_KINDS]
        if not self.order or unknown or len(set(self.order)) != len(self.order):
            raise ValueError(f"identity order must list distinct kinds of {', '.join(IDENTITY_KINDS)}")
        if not self.claim_name or not self.context_key:
            raise ValueError("claim_name and context_key must not be empty")

    def identities(self, event: Mapping[str, Any] | None) -> list[Identity]:
        """Every identity present in ``event``, in ``order``."""
        context = _mapping(_mapping(event).get("requestContext"))
        authorizer = _mapping(context.get("authorizer"))
        v2 = _mapping(event).get("version") == "2.0"
        found: list[Identity] = []
        for kind in self.order:
            identity = self._find(kind, context, authorizer, v2)
            if identity is not None:
                found.append(identity)
        return found

    def resolve(self, event: Mapping[str, Any] | None) -> Identity:
        """The identity that counts: the first present in ``order``.

        Raises:
            IdentityMissingError: None is present.
        """
        found = self.identities(event)
        if not found:
            raise IdentityMissingError(detail="no authorizer tenant, principal or API key id in the event")
        return found[0]

    def _find(
        self, kind: IdentityKind, context: Mapping[str, Any], authorizer: Mapping[str, Any], v2: bool
    ) -> Identity | None:
        candidates: list[tuple[object, str]]
        if kind == "claim":
            if v2:
                candidates = [
                    (_mapping(authorizer.get("lambda")).get(self.context_key), f"authorizer.lambda.{self.context_key}"),
                    (
                        _mapping(_mapping(authorizer.get("jwt")).get("claims")).get(self.claim_name),
                        f"authorizer.jwt.claims.{self.claim_name}",
                    ),
                ]
            else:
                candidates = [
                    (authorizer.get(self.context_key), f"authorizer.{self.context_key}"),
                    (_mapping(authorizer.get("claims")).get(self.claim_name), f"authorizer.claims.{self.claim_name}"),
                ]
        elif kind == "principal":
            candidates = [] if v2 else [(authorizer.get("principalId"), "authorizer.principalId")]
        else:
            candidates = [] if v2 else [(_mapping(context.get("identity")).get("apiKeyId"), "identity.apiKeyId")]
        for raw, where in candidates:
            value = _text(raw)
            if value is not None:
                return Identity(kind, value, f"requestContext.{where}")
        return None


def resolve_identity(event: Mapping[str, Any] | None, resolver: IdentityResolver | None = None) -> Identity:
    """``IdentityResolver.resolve`` with the default (or given) resolver."""
    return (resolver or IdentityResolver()).resolve(event)


# -- records -----------------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RateLimit(_Model):
    """A token bucket: ``rate_per_s`` tokens per second, at most ``burst`` at once."""

    rate_per_s: float = Field(gt=0, le=100_000, description="Sustained requests per second (refill rate).")
    burst: int = Field(ge=1, le=1_000_000, description="Bucket size: requests allowed at once.")


class TenantRateLimit(RateLimit):
    """The tenant's default bucket, and per-pipeline buckets that replace it for those pipelines."""

    pipelines: dict[str, RateLimit] = Field(default_factory=dict, description="Pipeline name → its own limit.")

    @field_validator("pipelines")
    @classmethod
    def _pipeline_names(cls, value: dict[str, RateLimit]) -> dict[str, RateLimit]:
        bad = sorted(name for name in value if not PIPELINE_NAME.fullmatch(name))
        if bad:
            raise ValueError(f"not pipeline names: {', '.join(repr(b) for b in bad)}")
        return value


class TenantRecord(_Model):
    """What a tenant may do. Unknown fields are errors, so a typo in a stored record fails loudly.

    Example:
        >>> record = TenantRecord.parse({"tenant_id": "acme", "allowed_pipelines": "*",
        ...                              "rate_limit": {"rate_per_s": 5, "burst": 10}})
        >>> record.allows("search"), record.limit_for("rag").burst
        (True, 10)
    """

    tenant_id: str = Field(description="The tenant; every chunk of its documents has meta.tenant equal to it.")
    enabled: bool = Field(default=True, description="false: every request of the tenant gets 403.")
    allowed_pipelines: Literal["*"] | list[str] = Field(description="Pipeline names it may run, or '*' for all.")
    rate_limit: TenantRateLimit
    store_filter: dict[str, Any] | None = Field(
        default=None, description="A Haystack filter ANDed into every retrieval of the tenant."
    )

    @field_validator("tenant_id")
    @classmethod
    def _tenant_id(cls, value: str) -> str:
        return check_tenant_id(value)

    @field_validator("allowed_pipelines")
    @classmethod
    def _pipelines(cls, value: Literal["*"] | list[str]) -> Literal["*"] | list[str]:
        if isinstance(value, list):
            bad = [name for name in value if not PIPELINE_NAME.fullmatch(name)]
            if bad:
                raise ValueError(f"not pipeline names: {', '.join(repr(b) for b in bad)}")
        return value

    @field_validator("store_filter")
    @classmethod
    def _store_filter(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return validate_filters(value, TRUSTED_LIMITS)

    @classmethod
    def parse(cls, data: object, where: str = "tenant record") -> TenantRecord:
        """Validate stored JSON (already decoded).

        Raises:
            TenantRecordError: One line in ``detail``: ``<where>: <field>: <problem>`` (first three problems).
        """
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise TenantRecordError(detail=f"{where}: {_one_line(exc)}") from None

    def allows(self, pipeline: str) -> bool:
        """Whether the tenant may run ``pipeline``."""
        return self.allowed_pipelines == "*" or pipeline in self.allowed_pipelines

    def require_pipeline(self, pipeline: str) -> None:
        """Raise unless the tenant may run ``pipeline``.

        Raises:
            PipelineNotAllowedError: Not in ``allowed_pipelines`` (→ 403).
        """
        if not self.allows(pipeline):
            raise PipelineNotAllowedError(
                f"pipeline {pipeline!r} is not enabled for this tenant", detail=f"{self.tenant_id}: {pipeline}"
            )

    def limit_for(self, pipeline: str) -> RateLimit:
        """The bucket for ``pipeline``: its override, else the tenant's default."""
        override = self.rate_limit.pipelines.get(pipeline)
        return override or RateLimit(rate_per_s=self.rate_limit.rate_per_s, burst=self.rate_limit.burst)

    def scope_filters(self, filters: object, limits: FilterLimits = DEFAULT_LIMITS) -> dict[str, Any]:
        """``with_tenant_filter(filters, tenant_id, store_filter)``: the filter every retrieval must use.

        Raises:
            FilterPolicyError: The caller's filter breaks ``limits`` (→ 422).
        """
        return with_tenant_filter(filters, self.tenant_id, self.store_filter, limits=limits)


def _one_line(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:3]:
        where = ".".join(str(p) for p in error.get("loc", ())) or "record"
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    more = f" (+{exc.error_count() - 3} more)" if exc.error_count() > 3 else ""
    return "; ".join(parts).replace("\n", " ") + more


DEV_TENANT = TenantRecord(
    tenant_id=DEFAULT_TENANT,
    allowed_pipelines="*",
    rate_limit=TenantRateLimit(rate_per_s=1_000, burst=2_000),
)
"""The local development tenant (``local_dev=True`` and no API Gateway event only)."""


# -- where records live ------------------------------------------------------------------------------


class TenantSource(Protocol):
    """Reads the stored record of an identity."""

    def fetch(self, identity: Identity) -> object | None:
        """The decoded JSON stored for ``identity``; ``None`` when there is none.

        Raises:
            TenantRegistryUnavailableError: The store could not be read.
            TenantRecordError: What is stored is not JSON (or the secret is not a JSON object).
        """
        ...


def _brief(exc: BaseException) -> str:
    return str(exc).replace("\n", " ")[:300]


class SsmTenantSource:
    """Records in SSM Parameter Store, one parameter per identity: ``<prefix>/<kind>/<value>``.

    Args:
        prefix: Path prefix, e.g. ``/haystack-serverless/tenants``.
        max_age_s: Powertools cache age of a parameter (per container).
        provider: A Powertools ``SSMProvider`` (tests pass one with their own client).
        boto3_client: An SSM client for a new provider (when ``provider`` is not given).
    """

    def __init__(
        self,
        prefix: str = DEFAULT_SSM_PREFIX,
        *,
        max_age_s: int = 300,
        provider: SSMProvider | None = None,
        boto3_client: Any = None,
    ) -> None:
        prefix = prefix.rstrip("/")
        if not _SSM_PREFIX.fullmatch(prefix):
            raise ValueError(f"SSM prefix must be a path like {DEFAULT_SSM_PREFIX}, got {prefix!r}")
        if provider is None:
            from aws_lambda_powertools.utilities.parameters import SSMProvider  # noqa: PLC0415 - boto3 only when used

            provider = SSMProvider(boto3_client=boto3_client)
        self.prefix = prefix
        self.max_age_s = max_age_s
        self.provider = provider

    def parameter_name(self, identity: Identity) -> str | None:
        """Where the identity's record is; ``None`` when the value cannot be part of a parameter name."""
        if not _SSM_SEGMENT.fullmatch(identity.value):
            return None
        return f"{self.prefix}/{identity.kind}/{identity.value}"

    def fetch(self, identity: Identity) -> object | None:
        """The record's JSON (see ``TenantSource.fetch``)."""
        from aws_lambda_powertools.utilities.parameters.exceptions import (  # noqa: PLC0415 - loaded with the provider
            GetParameterError,
            TransformParameterError,
        )

        name = self.parameter_name(identity)
        if name is None:
            return None
        try:
            return self.provider.get(name, max_age=self.max_age_s, transform="json", decrypt=True)
        except TransformParameterError:
            raise TenantRecordError(detail=f"SSM {name}: not JSON") from None
        except GetParameterError as exc:
            if error_code(exc) == "ParameterNotFound":
                return None
            raise TenantRegistryUnavailableError(detail=f"SSM {name}: {_brief(exc)}") from None


class SecretTenantSource:
    """Records in one Secrets Manager secret: a JSON object from identity key (``api-key:<id>``) to record.

    Args:
        secret_id: Name or ARN of the secret.
        max_age_s: Powertools cache age of the secret (per container; one read serves every identity).
        provider: A Powertools ``SecretsProvider`` (tests pass one with their own client).
        boto3_client: A Secrets Manager client for a new provider (when ``provider`` is not given).
    """

    def __init__(
        self,
        secret_id: str,
        *,
        max_age_s: int = 300,
        provider: SecretsProvider | None = None,
        boto3_client: Any = None,
    ) -> None:
        if not secret_id:
            raise ValueError("a secret id is required")
        if provider is None:
            from aws_lambda_powertools.utilities.parameters import SecretsProvider  # noqa: PLC0415 - boto3 only when used

            provider = SecretsProvider(boto3_client=boto3_client)
        self.secret_id = secret_id
        self.max_age_s = max_age_s
        self.provider = provider

    def fetch(self, identity: Identity) -> object | None:
        """The record's JSON (see ``TenantSource.fetch``); a missing secret is unavailable, not unknown."""
        from aws_lambda_powertools.utilities.parameters.exceptions import (  # noqa: PLC0415 - loaded with the provider
            GetParameterError,
            TransformParameterError,
        )

        try:
            records = self.provider.get(self.secret_id, max_age=self.max_age_s, transform="json")
        except TransformParameterError:
            raise TenantRecordError(detail=f"secret {self.secret_id}: not JSON") from None
        except GetParameterError as exc:
            raise TenantRegistryUnavailableError(detail=f"secret {self.secret_id}: {_brief(exc)}") from None
        if not isinstance(records, Mapping):
            raise TenantRecordError(detail=f"secret {self.secret_id}: not a JSON object of identity key → record")
        return records.get(identity.key)


# -- the registry ------------------------------------------------------------------------------------


class TenantRegistry:
    """Identity → tenant record, with negative caching and the local development tenant.

    Args:
        source: Where records live (``SsmTenantSource``, ``SecretTenantSource``); ``None`` only with ``local_dev``.
        resolver: How the identity is read from the event.
        negative_ttl_s: How long an unknown identity is remembered (no AWS call meanwhile).
        local_dev: Answer requests without an API Gateway event with ``DEV_TENANT`` (refused on Lambda).
        environ: Environment to check for Lambda (``os.environ`` when omitted).
        clock: Monotonic seconds (tests pass a fake one).
        max_unknown: Unknown identities remembered at most (oldest forgotten first).

    Raises:
        ValueError: ``local_dev`` on Lambda, or no source without ``local_dev``.
    """

    def __init__(
        self,
        source: TenantSource | None,
        *,
        resolver: IdentityResolver | None = None,
        negative_ttl_s: float = 30.0,
        local_dev: bool = False,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_unknown: int = 4096,
    ) -> None:
        if local_dev and on_lambda(environ):
            raise ValueError(f"the local development tenant is refused on Lambda ({LAMBDA_FUNCTION_NAME_ENV} is set)")
        if source is None and not local_dev:
            raise ValueError("a tenant registry needs a source (ssm:<prefix> or secretsmanager:<id>)")
        if negative_ttl_s < 0:
            raise ValueError("negative_ttl_s must be >= 0")
        self.source = source
        self.resolver = resolver or IdentityResolver()
        self.negative_ttl_s = negative_ttl_s
        self.local_dev = local_dev
        self._clock = clock
        self._max_unknown = max_unknown
        self._unknown: OrderedDict[str, float] = OrderedDict()  # key → expiry
        self._lock = threading.Lock()

    @classmethod
    def from_reference(
        cls,
        reference: str | None,
        *,
        cache_ttl_s: int = 300,
        negative_ttl_s: float = 30.0,
        resolver: IdentityResolver | None = None,
        local_dev: bool = False,
        boto3_client: Any = None,
    ) -> TenantRegistry:
        """A registry on ``ssm:<prefix>`` or ``secretsmanager:<secret id>`` (``None``: local development only).

        Raises:
            ValueError: The reference names neither store, or see ``TenantRegistry``.
        """
        source: TenantSource | None = None
        if reference:
            store, _, name = reference.partition(":")
            if store == "ssm":
                source = SsmTenantSource(name, max_age_s=cache_ttl_s, boto3_client=boto3_client)
            elif store == "secretsmanager":
                source = SecretTenantSource(name, max_age_s=cache_ttl_s, boto3_client=boto3_client)
            else:
                raise ValueError(f"tenant registry must be ssm:<prefix> or secretsmanager:<secret id>, got {store!r}")
        return cls(source, resolver=resolver, negative_ttl_s=negative_ttl_s, local_dev=local_dev)

    def for_event(self, event: Mapping[str, Any] | None) -> TenantRecord:
        """The tenant of a request, from its API Gateway event (``scope.get("aws.event")``).

        Raises:
            IdentityMissingError: No identity (401); also without an event unless ``local_dev``.
            TenantUnknownError: Unknown identity or disabled tenant (403).
            TenantRegistryUnavailableError: The registry could not be read (503).
            TenantRecordError: The stored record is invalid (500).
        """
        if event is None:
            if self.local_dev:
                return DEV_TENANT
            raise IdentityMissingError(detail="no API Gateway event (not behind API Gateway, local_dev off)")
        return self.lookup(self.resolver.resolve(event))

    def lookup(self, identity: Identity) -> TenantRecord:
        """The enabled tenant record of ``identity`` (raises as ``for_event``)."""
        key = identity.key
        if len(identity.value) > MAX_IDENTITY_CHARS or _CONTROL.search(identity.value):
            raise TenantUnknownError(detail=f"{identity.kind}: value is not a usable key")
        if self.source is None:
            raise TenantUnknownError(detail=f"{key}: no tenant registry configured (local development)")
        if self._known_unknown(key):
            raise TenantUnknownError(detail=f"{key}: unknown (remembered)")
        data = self.source.fetch(identity)
        if data is None:
            self._remember_unknown(key)
            raise TenantUnknownError(detail=f"{key}: unknown")
        record = TenantRecord.parse(data, where=key)
        if not record.enabled:
            raise TenantDisabledError(detail=f"{key}: tenant {record.tenant_id} is disabled")
        return record

    def forget_unknown(self) -> None:
        """Drop every remembered unknown identity (e.g. right after registering a tenant)."""
        with self._lock:
            self._unknown.clear()

    def _known_unknown(self, key: str) -> bool:
        with self._lock:
            expiry = self._unknown.get(key)
            if expiry is None:
                return False
            if expiry > self._clock():
                return True
            del self._unknown[key]
            return False

    def _remember_unknown(self, key: str) -> None:
        if self.negative_ttl_s <= 0:
            return
        with self._lock:
            self._unknown[key] = self._clock() + self.negative_ttl_s
            self._unknown.move_to_end(key)
            while len(self._unknown) > self._max_unknown:
                self._unknown.popitem(last=False)
