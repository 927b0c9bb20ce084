"""Two-tier result cache: L1 in the process, L2 in Redis/Valkey (ElastiCache), never a cause of failure.

- ``keys``: cache keys that cannot serve a wrong answer (namespace, tenant, pipeline, version, inputs);
- ``memory``: L1, bounded by entries and bytes, with TTLs;
- ``breaker``: a circuit breaker that skips L2 for a cool-down after repeated failures;
- ``redis_l2``: L2 on redis-py (standalone or cluster, TLS, AUTH), imported only when configured;
- ``tiered``: the read-through flow (L1 → L2 → compute → write both) with a stampede guard;
- ``invalidate``: SCAN-based invalidation by pipeline or tenant (``python -m core.cache``).
"""
