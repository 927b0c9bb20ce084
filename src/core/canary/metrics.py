"""The new version's own metrics over a bake window, from CloudWatch ``get_metric_data``.

Two sources, because each misses failures the other sees:

- EMF (namespace ``POWERTOOLS_METRICS_NAMESPACE``, dimensions ``service``, ``version``): ``Requests`` and
  ``Errors5xx`` (Sum), ``Latency`` (p99). Mangum answers an app exception with a 500, so only these see it.
- ``AWS/Lambda`` (dimensions ``FunctionName``, ``Resource=<fn>:<alias>``, ``ExecutedVersion``):
  ``Invocations`` and ``Errors`` (Sum): timeouts, out-of-memory and init failures, which end the
  invocation before any EMF document is written.

Error rate = (Errors5xx + Lambda Errors) / max(Requests, Invocations), in %, capped at 100. The two
numerators count disjoint failures (an invocation that answered 500 did not fail for Lambda; one that
crashed wrote no EMF). The denominator is the larger count because both normally count the same
requests, but each can lag the other by a minute, and ``Requests`` also counts direct invocations of the
version that bypass the alias.

The window starts at the minute the step began (CloudWatch rounds ``StartTime`` down to the minute
anyway) and is read as one period, so p99 is over the whole window; if CloudWatch answers several
periods, sums are added and the worst period's p99 is kept.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from core.observability import names

LAMBDA_NAMESPACE = "AWS/Lambda"
MINUTE_S = 60
PERCENT = 100.0
P99 = "p99"
ARN_NAME_FIELD = 6


@dataclass(frozen=True)
class VersionMetrics:
    """What one version did in one window."""

    requests: float
    errors_5xx: float
    invocations: float
    lambda_errors: float
    p99_ms: float | None
    start: datetime
    end: datetime

    @property
    def traffic(self) -> float:
        """Requests seen: the larger of EMF ``Requests`` and Lambda ``Invocations``."""
        return max(self.requests, self.invocations)

    @property
    def error_rate_pct(self) -> float:
        """(5xx + Lambda errors) / traffic, %; 0 without traffic (no evidence against the version)."""
        if self.traffic <= 0:
            return 0.0
        return min(PERCENT, PERCENT * (self.errors_5xx + self.lambda_errors) / self.traffic)

    def as_dict(self) -> dict[str, Any]:
        """For the decision log: counts, rate and p99, window as ISO timestamps."""
        data = asdict(self)
        data["start"], data["end"] = self.start.isoformat(), self.end.isoformat()
        data["traffic"] = self.traffic
        data["error_rate_pct"] = round(self.error_rate_pct, 4)
        return data


class MetricsReader:
    """Reads one version's metrics through an injected CloudWatch client.

    Example:
        >>> reader = MetricsReader(boto3.client("cloudwatch"), function="api", alias="live",
        ...                        namespace="HaystackServerless", service="haystack-serverless")
        >>> reader.read("8", start, end).error_rate_pct
        0.0
    """

    def __init__(self, client: Any, *, function: str, alias: str, namespace: str, service: str) -> None:
        self.client = client
        # Lambda's metrics name the function, never its ARN (arn:aws:lambda:region:account:function:NAME).
        self.function = function.split(":")[ARN_NAME_FIELD] if function.startswith("arn:") else function
        self.alias = alias
        self.namespace = namespace
        self.service = service

    def read(self, version: str, start: datetime, end: datetime) -> VersionMetrics:
        """Sums and p99 of ``version`` between ``start`` (rounded down to the minute) and ``end``."""
        start = start.replace(second=0, microsecond=0)
        end = max(end, start + timedelta(seconds=1))
        period = MINUTE_S * max(1, math.ceil((end - start).total_seconds() / MINUTE_S))
        queries = self._queries(version, period)
        values: dict[str, list[float]] = {query["Id"]: [] for query in queries}
        token: str | None = None
        while True:
            extra = {"NextToken": token} if token else {}
            answer = self.client.get_metric_data(
                MetricDataQueries=queries, StartTime=start, EndTime=end, ScanBy="TimestampAscending", **extra
            )
            for result in answer.get("MetricDataResults", []):
                values[result["Id"]].extend(float(v) for v in result.get("Values", []))
            token = answer.get("NextToken")
            if not token:
                break
        return VersionMetrics(
            requests=sum(values["requests"]),
            errors_5xx=sum(values["errors5xx"]),
            invocations=sum(values["invocations"]),
            lambda_errors=sum(values["lambdaerrors"]),
            p99_ms=max(values["latency"]) if values["latency"] else None,
            start=start,
            end=end,
        )

    def _queries(self, version: str, period: int) -> list[dict[str, Any]]:
        emf = [
            {"Name": names.DIM_SERVICE, "Value": self.service},
            {"Name": names.DIM_VERSION, "Value": version},
        ]
        lambda_dims = [
            {"Name": "FunctionName", "Value": self.function},
            {"Name": "Resource", "Value": f"{self.function}:{self.alias}"},
            {"Name": "ExecutedVersion", "Value": version},
        ]
        wanted = (
            ("requests", self.namespace, names.REQUESTS, emf, "Sum"),
            ("errors5xx", self.namespace, names.ERRORS_5XX, emf, "Sum"),
            ("latency", self.namespace, names.LATENCY, emf, P99),
            ("invocations", LAMBDA_NAMESPACE, "Invocations", lambda_dims, "Sum"),
            ("lambdaerrors", LAMBDA_NAMESPACE, "Errors", lambda_dims, "Sum"),
        )
        return [
            {
                "Id": query_id,
                "MetricStat": {
                    "Metric": {"Namespace": namespace, "MetricName": metric, "Dimensions": dimensions},
                    "Period": period,
                    "Stat": stat,
                },
                "ReturnData": True,
            }
            for query_id, namespace, metric, dimensions, stat in wanted
        ]
