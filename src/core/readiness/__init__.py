"""Readiness: one checklist behind ``GET /ready``, the PreTraffic hook and ``python -m core.readiness``.

- ``base``: what a check is (``Check``, ``Context``) and how results become ✓ / ⚠ / ✗;
- ``configuration``: settings, dependencies, logging, tracing (fixed for a process: CLI only);
- ``connectivity``: init, the S3 snapshot, store, pipelines, Redis, its AUTH secret, the generator;
- ``checklist``: the one list (``CHECKS``) and its runners; ``report``: text and JSON; ``__main__``: the CLI.
"""

from core.readiness.base import Check, CheckResult, Context, ready
from core.readiness.checklist import CHECKS, prepare, run_checklist, run_checks

__all__ = ["CHECKS", "Check", "CheckResult", "Context", "prepare", "ready", "run_checklist", "run_checks"]
