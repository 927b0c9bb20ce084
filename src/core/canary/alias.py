"""A Lambda alias read and written only with the ``RevisionId`` of the last read: no silent overwrite.

Each write first re-reads the alias and refuses to go on when its revision, version or weights are not
what this process last saw (someone else wrote in between), then writes with that ``RevisionId``, so a
change landing between the re-read and the write fails in Lambda (``PreconditionFailedException``)
instead of being overwritten. Both raise :class:`ConcurrentChange`.

Example:
    >>> alias = Alias(boto3.client("lambda"), "api", "live")
    >>> state = alias.read()                       # AliasState(version='7', weights={}, revision='…')
    >>> state = alias.write(state, "7", {"8": 0.05})
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from core.aws import error_code

# Lambda's answers to a write that lost a race: a stale RevisionId (412), or an update in progress (409).
CONFLICT_CODES = frozenset({"PreconditionFailedException", "ResourceConflictException"})
FULL = 100.0
# Weights travel as floats (0.05); two that differ by less than this are the same weight.
WEIGHT_TOLERANCE = 1e-9


@dataclass(frozen=True)
class AliasState:
    """What an alias routes to: its primary version, extra versions' weights (0-1), and its revision."""

    version: str
    weights: dict[str, float] = field(default_factory=dict)
    revision: str = ""

    @classmethod
    def from_response(cls, response: dict[str, Any]) -> AliasState:
        """Build from a ``get_alias`` / ``update_alias`` answer (an empty routing config is no routing)."""
        routing = (response.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
        weights = {str(version): float(weight) for version, weight in routing.items() if weight}
        return cls(str(response["FunctionVersion"]), weights, str(response.get("RevisionId", "")))

    def share(self, version: str) -> float:
        """Percentage of invocations this alias sends to ``version``."""
        if version in self.weights:
            return FULL * self.weights[version]
        if version == self.version:
            return FULL * (1 - sum(self.weights.values()))
        return 0.0

    def routes_like(self, other: AliasState) -> bool:
        """Same primary version and the same weights (revisions aside)."""
        return (
            self.version == other.version
            and self.weights.keys() == other.weights.keys()
            and all(math.isclose(w, other.weights[v], abs_tol=WEIGHT_TOLERANCE) for v, w in self.weights.items())
        )

    def describe(self) -> str:
        """``7 (95%) + 8 (5%)`` or ``8 (100%)``."""
        parts = [self.version, *self.weights]
        return " + ".join(f"{version} ({self.share(version):g}%)" for version in parts)

    def as_dict(self) -> dict[str, Any]:
        """For the decision log and ``status --json``."""
        return {"version": self.version, "weights": dict(self.weights), "revision": self.revision}


class ConcurrentChange(Exception):
    """The alias is not as this process left it: someone else changed it, and nothing was overwritten."""

    def __init__(self, message: str, current: AliasState | None = None) -> None:
        super().__init__(message)
        self.current = current


class Alias:
    """One alias of one function, read and written with revision checks."""

    def __init__(self, client: Any, function: str, name: str) -> None:
        self.client = client
        self.function = function
        self.name = name

    def read(self) -> AliasState:
        """The alias as Lambda has it now."""
        return AliasState.from_response(self.client.get_alias(FunctionName=self.function, Name=self.name))

    def write(self, expected: AliasState, version: str, weights: dict[str, float]) -> AliasState:
        """Route the alias to ``version`` plus ``weights``, if it is still as ``expected``.

        Args:
            expected: The state this process last read or wrote.
            version: The new primary version.
            weights: Extra versions and their weights (0-1); empty clears the routing config.

        Returns:
            The alias after the write (with its new revision).

        Raises:
            ConcurrentChange: The alias changed since ``expected``, before or during this write.
        """
        current = self.read()
        if current.revision != expected.revision or not current.routes_like(expected):
            raise ConcurrentChange(
                f"alias {self.name} changed by someone else: expected {expected.describe()} "
                f"(revision {expected.revision}), found {current.describe()} (revision {current.revision})",
                current,
            )
        try:
            response = self.client.update_alias(
                FunctionName=self.function,
                Name=self.name,
                FunctionVersion=version,
                # An empty map clears the routing; leaving RoutingConfig out would keep the old weights.
                RoutingConfig={"AdditionalVersionWeights": weights},
                # The revision this process last saw (equal to the re-read's): any write since fails.
                RevisionId=expected.revision,
            )
        except ClientError as exc:
            if error_code(exc) not in CONFLICT_CODES:
                raise
            raise ConcurrentChange(
                f"alias {self.name} changed by someone else during the write "
                f"({error_code(exc)}: {exc.response.get('Error', {}).get('Message', '')}); it was not overwritten"
            ) from exc
        return AliasState.from_response(response)
