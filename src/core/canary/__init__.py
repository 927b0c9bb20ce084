"""Progressive traffic shifting for a Lambda alias, judged on the new version's own metrics.

For schedules CodeDeploy cannot express (5/10/25/50/100 %) and blue/green with a pre-check:
``python -m core.canary init|shift|rollback|status`` (:mod:`core.canary.__main__`). Pieces: the plan
(:mod:`~core.canary.config`), revision-checked alias writes (:mod:`~core.canary.alias`), the version's
metrics (:mod:`~core.canary.metrics`), the rule (:mod:`~core.canary.judge`), the pre-check
(:mod:`~core.canary.precheck`), the decision log (:mod:`~core.canary.decisions`) and the loop
(:mod:`~core.canary.controller`). Only boto3/botocore, injected, so tests pass moto-backed clients.
"""

from core.canary.config import Outcome, Plan, Thresholds, load_plan
from core.canary.controller import Controller, init, rollback, status

__all__ = ["Controller", "Outcome", "Plan", "Thresholds", "init", "load_plan", "rollback", "status"]
