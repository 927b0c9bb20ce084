"""Before any traffic moves: the new version exists and is ``Active``; optionally, it passes the smoke cases.

The smoke check (``--smoke``) runs the PreTraffic hook's cases (``events/smoke/*.json`` with
``expectations.json``: status code and response shape per event, :mod:`core.deploy.smoke`) against the
version itself (``Qualifier=<version>``, not the alias). Without that folder, or with no event in it, the
smoke check is skipped with a warning.

Example:
    >>> version_problem(boto3.client("lambda"), "api", "8")      # None: fine
    >>> smoke(boto3.client("lambda"), "api", "8", Path("events/smoke"))
    SmokeOutcome(ran=6, problems=[], warning=None)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

ACTIVE = "Active"
LATEST = "latest"
# One invocation may pay a cold start (SnapStart restore or a full init) on top of the 29 s API timeout.
SMOKE_INVOKE_TIMEOUT_S = 45.0
SMOKE_BUDGET_S = 300.0


class VersionNotFound(LookupError):
    """The function or the version does not exist (a usage error, not a bad release)."""


class SmokeSetupError(ValueError):
    """The smoke folder exists but cannot be used (events and expectations disagree, unreadable file)."""


def resolve_version(client: Any, function: str, spec: str) -> str:
    """The version number ``spec`` names: a number as is, ``latest`` (highest published), or an alias name.

    An alias name (``published``: what ``sam deploy`` published when the controller owns ``live``) stands
    for the version that alias routes everything to.

    Raises:
        VersionNotFound: No published version, no such alias, or an alias that splits its traffic.
    """
    if spec.isdigit():
        return spec
    if spec == LATEST:
        numbers = [
            int(v["Version"])
            for page in client.get_paginator("list_versions_by_function").paginate(FunctionName=function)
            for v in page.get("Versions", [])
            if v["Version"].isdigit()
        ]
        if not numbers:
            raise VersionNotFound(f"{function} has no published version")
        return str(max(numbers))
    try:
        alias = client.get_alias(FunctionName=function, Name=spec)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            raise VersionNotFound(f"{function} has no alias {spec} to take the version from") from None
        raise
    if (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights"):
        raise VersionNotFound(f"alias {spec} splits its traffic: name the version to shift to")
    return str(alias["FunctionVersion"])


def version_problem(client: Any, function: str, version: str) -> str | None:
    """Why ``version`` cannot take traffic (not ``Active``, last update failed), or None.

    Raises:
        VersionNotFound: No such function or version.
    """
    try:
        config = client.get_function_configuration(FunctionName=function, Qualifier=version)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            raise VersionNotFound(f"version {version} of {function} does not exist") from None
        raise
    state = config.get("State", ACTIVE)
    if state != ACTIVE:
        return f"version {version} is {state}, not {ACTIVE} ({config.get('StateReason', 'no reason given')})"
    if config.get("LastUpdateStatus") == "Failed":
        return f"version {version}'s last update failed ({config.get('LastUpdateStatusReason', '')})"
    return None


@dataclass(frozen=True)
class SmokeOutcome:
    """How many smoke cases ran, which failed and why, and why the check was skipped (if it was)."""

    ran: int = 0
    problems: list[str] = field(default_factory=list)
    warning: str | None = None


def smoke(client: Any, function: str, version: str, folder: Path) -> SmokeOutcome:
    """Run the PreTraffic hook's smoke cases (:mod:`core.deploy.smoke`) against ``version`` itself.

    Raises:
        SmokeSetupError: The folder exists but its events and expectations disagree.
    """
    # The hook's package: the same events and expectations, loaded only when --smoke asks for them.
    from core.deploy.smoke import Deadline, SmokeConfigError, load_cases, run_cases  # noqa: PLC0415

    if not folder.is_dir() or not any(folder.glob("*.json")):
        return SmokeOutcome(warning=f"no smoke events in {folder}: smoke check skipped")
    try:
        cases = load_cases(folder)
    except SmokeConfigError as exc:
        raise SmokeSetupError(str(exc)) from exc

    def invoke(event: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        return client.invoke(FunctionName=function, Qualifier=version, Payload=json.dumps(event).encode())

    results = run_cases(cases, invoke, Deadline.after(SMOKE_BUDGET_S), invoke_timeout_s=SMOKE_INVOKE_TIMEOUT_S)
    return SmokeOutcome(ran=len(results), problems=[f"{r.case}: {r.detail}" for r in results if not r.ok])
