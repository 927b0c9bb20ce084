"""Tenant isolation in retrieval: the tenant's filter forced into every query, and what a caller's filter may be.

``with_tenant_filter`` builds the only filter a retriever should ever see for a tenant::

    {"operator": "AND", "conditions": [
        {"field": "meta.tenant", "operator": "==", "value": <tenant_id>},   # always, always first
        <the caller's filter, validated>,                                   # when given
        <the tenant record's store_filter>,                                 # when set
    ]}

Haystack's ``AND`` is a conjunction (``haystack.utils.filters``), and the tenant comparison is a direct child
of the root, so nothing inside the caller's part can widen the result: an ``OR`` naming another tenant, a
``NOT``, a tautology, all only narrow what the tenant comparison already allows. Every chunk carries
``meta.tenant`` (``core.store.base.META_TENANT``); a chunk without it matches no tenant.

Caller filters are checked first (``validate_filters`` with ``FilterLimits``) and a violation raises
``FilterPolicyError`` (→ 422 ``invalid_filters``):

- structure: comparisons ``{"field", "operator", "value"}`` and logic nodes ``{"operator", "conditions"}``
  only, no other keys, no empty ``conditions`` (Haystack reads an empty ``OR`` as "nothing" and an empty
  ``AND`` as "everything", which is never what a caller meant);
- size: nesting depth (a comparison is 1; default 5, ``MAX_FILTER_DEPTH`` below) and comparisons
  in the whole tree (default 32);
- fields: ``meta.<key>``, ``id`` or ``content`` (as ``core.api.schemas.Comparison``), optionally an explicit
  allowlist; a bare name such as ``tenant`` is refused because Haystack reads it as ``meta.tenant``;
- operators: Haystack's, optionally fewer; values: scalars (strings up to 1,000 characters), lists of
  scalars (up to 100) for ``in`` / ``not in``, no ``NaN``, no objects.

Decision on ``meta.tenant`` in a caller's filter: **rejected** (``FilterPolicyError``) by default. ANDing it
would be just as safe (a test proves it), but a request that names a tenant is either a mistake or a probe,
and a clear 422 tells both apart from "no documents". ``FilterLimits(allow_tenant_field=True)`` accepts and
ANDs it instead.

Tenant ids that look like ISO dates (``2024-01-01``) are refused: Haystack's ``==`` compares two such strings
as dates, so ``"2024-01-01"`` would equal a tenant named ``"2024-01-01T00"``.

Example:
    >>> scoped = with_tenant_filter({"field": "meta.module", "operator": "==", "value": "json"}, "acme")
    >>> scoped["operator"], scoped["conditions"][0]
    ('AND', {'field': 'meta.tenant', 'operator': '==', 'value': 'acme'})
    >>> store.bm25_retrieval("parse JSON", filters=scoped)  # acme's json chunks only
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from core.store.base import META_TENANT

TENANT_FIELD = f"meta.{META_TENANT}"
MAX_FILTER_DEPTH = 5
"""Deepest nesting of AND/OR/NOT a caller's filter may have (the request models refuse deeper ones too)."""
COMPARISON_OPERATORS = frozenset({"==", "!=", ">", ">=", "<", "<=", "in", "not in"})
LOGICAL_OPERATORS = frozenset({"AND", "OR", "NOT"})
_LIST_OPERATORS = frozenset({"in", "not in"})
_ORDERING_OPERATORS = frozenset({">", ">=", "<", "<="})
_FIELD = re.compile(r"^(content|id|meta(\.[A-Za-z0-9_\-]+)+)$")  # the same as core.pipelines.schemas.Comparison.field
# The ingestion's tenant rule (core.ingestion.events), minus names Haystack would compare as dates.
_TENANT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_ISO_DATE_PREFIX = re.compile(r"^\d{4}-\d{2}-\d{2}")


class FilterPolicyError(ValueError):
    """A caller's filter breaks the policy; the message is short, names where, and is safe to return (422)."""

    status = 422
    code = "invalid_filters"


@dataclass(frozen=True)
class FilterLimits:
    """What a caller's filter may contain.

    Args:
        max_depth: Deepest nesting (a comparison alone is 1, ``AND`` of comparisons is 2).
        max_conditions: Comparisons in the whole tree.
        max_list_items: Items of an ``in`` / ``not in`` list.
        max_value_chars: Characters of one string value.
        allowed_fields: Exact field names allowed; ``None`` allows any ``meta.<key>``, ``id`` and ``content``.
        allowed_operators: Comparison operators allowed.
        allow_tenant_field: Accept (and AND) conditions on ``meta.tenant`` instead of rejecting them.
    """

    max_depth: int = MAX_FILTER_DEPTH
    max_conditions: int = 32
    max_list_items: int = 100
    max_value_chars: int = 1_000
    allowed_fields: frozenset[str] | None = None
    allowed_operators: frozenset[str] = COMPARISON_OPERATORS
    allow_tenant_field: bool = False


DEFAULT_LIMITS = FilterLimits()
# For filters the operator writes (a tenant record's store_filter): structure checked, sizes generous.
TRUSTED_LIMITS = FilterLimits(max_depth=10, max_conditions=1_000, max_list_items=10_000, allow_tenant_field=True)


def check_tenant_id(tenant_id: object) -> str:
    """``tenant_id`` when it can name a tenant in a filter.

    Raises:
        ValueError: Not a plain name (letters, digits, ``_ . -``, at most 64), or it reads as an ISO date.
    """
    if not isinstance(tenant_id, str) or not _TENANT_ID.fullmatch(tenant_id):
        raise ValueError(f"tenant id {tenant_id!r} is not a plain name (letters, digits, _ . -, at most 64)")
    if _ISO_DATE_PREFIX.match(tenant_id):
        raise ValueError(f"tenant id {tenant_id!r} reads as a date; Haystack would compare it as one")
    return tenant_id


def is_tenant_field(field: str) -> bool:
    """Whether ``field`` addresses the tenant (``meta.tenant`` or below it)."""
    return field == TENANT_FIELD or field.startswith(TENANT_FIELD + ".")


def validate_filters(filters: object, limits: FilterLimits = DEFAULT_LIMITS) -> dict[str, Any] | None:
    """Check a caller's filter against ``limits``; returns a fresh copy (``None`` for no filter).

    Accepts a mapping or a pydantic model (``core.api.schemas.Comparison`` / ``Logic``). An empty mapping is no
    filter, as Haystack reads it.

    Raises:
        FilterPolicyError: The filter breaks the policy (the message names the place, e.g. ``filters.conditions[1]``).
    """
    if filters is None:
        return None
    if isinstance(filters, BaseModel):
        filters = filters.model_dump()
    if isinstance(filters, Mapping) and not filters:
        return None
    counter = [0]
    return _node(filters, "filters", 1, limits, counter)


def _node(node: object, where: str, depth: int, limits: FilterLimits, counter: list[int]) -> dict[str, Any]:
    if not isinstance(node, Mapping):
        raise FilterPolicyError(f"{where}: must be an object")
    if depth > limits.max_depth:
        raise FilterPolicyError(f"filters: nested deeper than {limits.max_depth} levels")
    if "field" in node:
        return _comparison(node, where, limits, counter)
    if set(node) != {"operator", "conditions"}:
        raise FilterPolicyError(f"{where}: a condition has field, operator, value; a group has operator, conditions")
    operator = node["operator"]
    if operator not in LOGICAL_OPERATORS:
        raise FilterPolicyError(f"{where}.operator: must be one of AND, OR, NOT")
    conditions = node["conditions"]
    if not isinstance(conditions, list) or not conditions:
        raise FilterPolicyError(f"{where}.conditions: must be a non-empty list")
    return {
        "operator": operator,
        "conditions": [
            _node(c, f"{where}.conditions[{i}]", depth + 1, limits, counter) for i, c in enumerate(conditions)
        ],
    }


def _comparison(node: Mapping[str, Any], where: str, limits: FilterLimits, counter: list[int]) -> dict[str, Any]:
    if set(node) != {"field", "operator", "value"}:
        raise FilterPolicyError(f"{where}: a condition has exactly field, operator, value")
    counter[0] += 1
    if counter[0] > limits.max_conditions:
        raise FilterPolicyError(f"filters: more than {limits.max_conditions} conditions")
    field, operator, value = node["field"], node["operator"], node["value"]
    if not isinstance(field, str) or not _FIELD.fullmatch(field):
        raise FilterPolicyError(f"{where}.field: must be meta.<key>, id or content")
    if is_tenant_field(field) and not limits.allow_tenant_field:
        raise FilterPolicyError(f"{where}.field: {TENANT_FIELD} is set by the server from your credentials; remove it")
    if limits.allowed_fields is not None and field not in limits.allowed_fields and not is_tenant_field(field):
        raise FilterPolicyError(f"{where}.field: {field!r} cannot be filtered on")
    if operator not in COMPARISON_OPERATORS or operator not in limits.allowed_operators:
        allowed = ", ".join(sorted(limits.allowed_operators & COMPARISON_OPERATORS))
        raise FilterPolicyError(f"{where}.operator: must be one of {allowed}")
    return {"field": field, "operator": operator, "value": _value(value, operator, f"{where}.value", limits)}


def _value(value: object, operator: str, where: str, limits: FilterLimits) -> Any:
    if operator in _LIST_OPERATORS:
        if not isinstance(value, list):
            raise FilterPolicyError(f"{where}: {operator!r} needs a list")
        if len(value) > limits.max_list_items:
            raise FilterPolicyError(f"{where}: at most {limits.max_list_items} items")
        return [_scalar(v, f"{where}[{i}]", limits) for i, v in enumerate(value)]
    scalar = _scalar(value, where, limits)
    if operator in _ORDERING_OPERATORS and (scalar is None or isinstance(scalar, bool)):
        raise FilterPolicyError(f"{where}: {operator!r} needs a number or a date string")
    return scalar


def _scalar(value: object, where: str, limits: FilterLimits) -> str | int | float | bool | None:
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise FilterPolicyError(f"{where}: must be a finite number")
        return value
    if isinstance(value, str):
        if len(value) > limits.max_value_chars:
            raise FilterPolicyError(f"{where}: at most {limits.max_value_chars} characters")
        return value
    raise FilterPolicyError(f"{where}: must be a string, number, boolean or null")


def with_tenant_filter(
    filters: object,
    tenant_id: str,
    extra: Mapping[str, Any] | None = None,
    *,
    limits: FilterLimits = DEFAULT_LIMITS,
) -> dict[str, Any]:
    """The filter a retrieval for ``tenant_id`` must use: the tenant's condition AND the caller's AND ``extra``.

    Args:
        filters: The caller's filter (mapping, pydantic model or ``None``); validated against ``limits``.
        tenant_id: The tenant resolved from the caller's identity (never from the request body).
        extra: The tenant record's ``store_filter`` (trusted; its structure is still checked).
        limits: What the caller's filter may contain.

    Returns:
        A new filter dict; the inputs are not modified and not shared with it.

    Raises:
        FilterPolicyError: The caller's filter breaks the policy (→ 422).
        ValueError: ``tenant_id`` is not a usable tenant name, or ``extra`` is not a valid filter
            (configuration errors, not the caller's).
    """
    conditions: list[dict[str, Any]] = [{"field": TENANT_FIELD, "operator": "==", "value": check_tenant_id(tenant_id)}]
    caller = validate_filters(filters, limits)
    if caller is not None:
        conditions.append(caller)
    try:
        trusted = validate_filters(extra, TRUSTED_LIMITS)
    except FilterPolicyError as exc:
        # Not the caller's fault: a plain ValueError, so it is not answered as a 422.
        raise ValueError(f"store_filter of tenant {tenant_id!r}: {exc}") from None
    if trusted is not None:
        conditions.append(trusted)
    return {"operator": "AND", "conditions": conditions}
