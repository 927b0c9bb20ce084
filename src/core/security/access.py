"""Who may run what, how often, on which documents: the checks every pipeline request passes first.

In order, before the cache or the pipeline is touched (a refused request costs no retrieval):

1. the tenant: from the API Gateway identity through the tenant registry (``TENANT_REGISTRY``), or, when
   none is configured (local runs, tests), the single tenant ``default``;
2. the pipeline must be one the tenant may run;
3. its rate limit (a token bucket per tenant and pipeline in Redis, ``core.security.ratelimit``): a 429
   with ``Retry-After`` when spent; without Redis there is no shared bucket and no limit (readiness says so);
4. the tenant filter is forced into the pipeline's ``filters`` input: the caller's filters are ANDed
   with ``meta.tenant == <tenant>`` (and the record's ``store_filter``), never replace it. A pipeline
   with a component that reads the store but does not receive ``filters`` cannot be scoped and is
   refused (``core.api.query.admit``).

Example:
    >>> access = authorize(runtime, request.scope.get("aws.event"), "search")
    >>> values["filters"] = access.scope(values.get("filters"))
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.errors import ApiError
from core.observability.context import current_request
from core.security.filters import FilterLimits, FilterPolicyError
from core.security.tenants import DEV_TENANT, TenantError, TenantRecord, TenantRegistry
from core.settings import Settings

if TYPE_CHECKING:  # redis (and the limiter) only when a Redis client exists
    from core.security.ratelimit import RateLimiter

FILTERS_INPUT = "filters"
# What core.security.ratelimit.Decision.headers() sets (CORS exposes them to browsers).
RATE_LIMIT_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


@dataclass
class Security:
    """The container's access objects: the registry (``None``: single tenant) and the rate limiter."""

    registry: TenantRegistry | None
    limiter: RateLimiter | None
    limits: FilterLimits = field(default_factory=FilterLimits)

    @property
    def multi_tenant(self) -> bool:
        """Whether requests are resolved to tenants (``TENANT_REGISTRY`` set)."""
        return self.registry is not None


def build_security(settings: Settings, redis_client: Any = None, breaker: Any = None) -> Security:
    """The registry of ``TENANT_REGISTRY`` and a limiter on the cache's Redis client (if there is one)."""
    registry = None
    # `sam local start-api` sends no API key id (it skips API Gateway's key check): like `make run`, it
    # serves the single local tenant. AWS_SAM_LOCAL is set by the SAM CLI only, never in AWS.
    if settings.tenant_registry and os.environ.get("AWS_SAM_LOCAL") != "true":
        registry = TenantRegistry.from_reference(
            settings.tenant_registry,
            cache_ttl_s=settings.tenant_cache_ttl_s,
            negative_ttl_s=settings.tenant_negative_ttl_s,
        )
    limiter = None
    if redis_client is not None:
        from core.security.ratelimit import RateLimiter  # noqa: PLC0415 - imports redis

        limiter = RateLimiter(
            redis_client,
            namespace=settings.cache_namespace,
            fail_mode=settings.rate_limit_fail_mode,
            breaker=breaker,
        )
    return Security(registry, limiter, FilterLimits(max_depth=settings.max_filter_depth))


@dataclass(frozen=True)
class Access:
    """A request's tenant, its rate-limit headers, and how its filters are scoped."""

    record: TenantRecord
    headers: dict[str, str]
    limits: FilterLimits

    @property
    def tenant(self) -> str:
        """The tenant id (cache keys and the audit line carry it)."""
        return self.record.tenant_id

    def scope(self, filters: Any) -> dict[str, Any]:
        """The caller's filters ANDed with the tenant's.

        Raises:
            ApiError: 422 when the caller's filters break the policy.
        """
        try:
            return self.record.scope_filters(filters, self.limits)
        except FilterPolicyError as exc:
            raise ApiError(exc.status, exc.code, str(exc)) from None


def authorize(security: Security, event: dict | None, pipeline: str, *, scopable: bool = True) -> Access:
    """Resolve the tenant, check the pipeline and the rate limit.

    Args:
        security: The container's access objects.
        event: The API Gateway event (``request.scope.get("aws.event")``), ``None`` outside Lambda.
        pipeline: The pipeline the request runs.
        scopable: Whether every store-reading component takes ``filters`` (else the pipeline cannot be
            limited to one tenant's data).

    Raises:
        ApiError: 401/403 (identity, tenant, pipeline), 429 (rate), 503 (registry unreadable), 500
            (a stored record is invalid).
    """
    try:
        record = security.registry.for_event(event) if security.registry else DEV_TENANT
        record.require_pipeline(pipeline)
    except TenantError as exc:
        raise ApiError(exc.status, exc.code, str(exc)) from None
    observed = current_request()
    if observed is not None:
        observed.tenant = record.tenant_id  # the audit line names the tenant of refused requests too
    if not scopable:
        raise ApiError(
            403,
            "forbidden",
            f"pipeline {pipeline!r} reads the store without taking filters: it cannot be limited to a tenant",
        )
    headers: dict[str, str] = {}
    if security.limiter is not None:
        from core.security.ratelimit import Limit  # noqa: PLC0415 - imports redis, which the limiter has loaded

        rate = record.limit_for(pipeline)
        decision = security.limiter.check(record.tenant_id, pipeline, Limit(rate.rate_per_s, rate.burst))
        if observed is not None:
            observed.rate_limit = decision.source
        headers = decision.headers()
        if not decision.allowed:
            raise ApiError(429, "rate_limited", f"rate limit of pipeline {pipeline!r} reached; retry later", headers)
    return Access(record, headers, security.limits)
