"""Security: who the caller is and what it may reach.

- ``tenants``: the API Gateway identity (authorizer tenant or claim, principal, API key id) → a tenant
  record (allowed pipelines, rate limits, store filter) from SSM or Secrets Manager, cached; the local
  development tenant;
- ``ratelimit``: rate limits per tenant and pipeline: an atomic token bucket in Redis/Valkey (one Lua
  script per request), ``X-RateLimit-*`` / ``Retry-After`` headers, fail-open or fail-closed;
- ``filters``: tenant isolation in retrieval: the tenant's filter ANDed with the caller's, and the policy a
  caller's filter must meet (``FilterPolicyError`` → 422).
"""
