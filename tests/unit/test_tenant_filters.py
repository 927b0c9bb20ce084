"""The tenant filter: how it is composed, and which caller filters the policy refuses (and why)."""

import copy

import pytest
from haystack import Document
from haystack.utils.filters import document_matches_filter

from core.api.schemas import QueryRequest
from core.security.filters import (
    DEFAULT_LIMITS,
    TENANT_FIELD,
    FilterLimits,
    FilterPolicyError,
    validate_filters,
    with_tenant_filter,
)

TENANT_A = {"field": "meta.tenant", "operator": "==", "value": "acme"}
MODULE_JSON = {"field": "meta.module", "operator": "==", "value": "json"}


def comparison(i: int = 0) -> dict:
    return {"field": "meta.module", "operator": "==", "value": f"m{i}"}


def nested(depth: int) -> dict:
    """A filter of exactly ``depth`` levels (a comparison is 1)."""
    node = comparison()
    for _ in range(depth - 1):
        node = {"operator": "AND", "conditions": [node]}
    return node


# -- composition -------------------------------------------------------------------------------------


def test_without_caller_filters_the_tenant_condition_is_the_only_one():
    assert with_tenant_filter(None, "acme") == {"operator": "AND", "conditions": [TENANT_A]}
    assert with_tenant_filter({}, "acme") == {"operator": "AND", "conditions": [TENANT_A]}


def test_caller_filter_and_store_filter_are_anded_after_the_tenant_condition():
    store_filter = {"field": "meta.project", "operator": "in", "value": ["alpha"]}
    assert with_tenant_filter(MODULE_JSON, "acme", store_filter) == {
        "operator": "AND",
        "conditions": [TENANT_A, MODULE_JSON, store_filter],
    }


def test_caller_logic_is_kept_whole_as_one_conjunct():
    caller = {"operator": "OR", "conditions": [MODULE_JSON, {"field": "meta.module", "operator": "==", "value": "csv"}]}
    scoped = with_tenant_filter(caller, "acme")
    assert scoped["operator"] == "AND"
    assert scoped["conditions"] == [TENANT_A, caller]


def test_inputs_are_neither_modified_nor_shared():
    caller = {"operator": "OR", "conditions": [MODULE_JSON, {"field": "meta.n", "operator": "in", "value": [1, 2]}]}
    extra = {"field": "meta.project", "operator": "==", "value": "alpha"}
    before = copy.deepcopy((caller, extra))
    scoped = with_tenant_filter(caller, "acme", extra)
    scoped["conditions"][1]["conditions"][1]["value"].append(3)
    scoped["conditions"][2]["value"] = "beta"
    assert (caller, extra) == before


def test_pydantic_filters_from_the_query_body_are_accepted():
    body = QueryRequest.model_validate({"text": "json", "filters": {"operator": "OR", "conditions": [MODULE_JSON]}})
    assert with_tenant_filter(body.filters, "acme")["conditions"][1] == {"operator": "OR", "conditions": [MODULE_JSON]}


@pytest.mark.parametrize("tenant", ["", " acme", "a/b", "a:b", "x" * 65, None, 7, "2024-01-01", "2024-01-01T00"])
def test_unusable_tenant_ids_are_a_programming_error_not_a_422(tenant):
    with pytest.raises(ValueError, match="tenant id") as caught:
        with_tenant_filter(None, tenant)
    assert not isinstance(caught.value, FilterPolicyError)


def test_an_invalid_store_filter_is_a_configuration_error_not_a_422():
    with pytest.raises(ValueError, match="store_filter of tenant 'acme'") as caught:
        with_tenant_filter(None, "acme", {"field": "meta.x", "operator": "~", "value": 1})
    assert not isinstance(caught.value, FilterPolicyError)


def test_the_store_filter_may_name_the_tenant_field_it_only_narrows():
    extra = {"field": TENANT_FIELD, "operator": "==", "value": "acme"}
    assert with_tenant_filter(None, "acme", extra)["conditions"] == [TENANT_A, extra]


# -- Haystack semantics of the composed filter (the store-level proof is in tests/functional) ----------


@pytest.mark.parametrize(
    "crafted",
    [
        {"operator": "OR", "conditions": [{"field": "meta.tenant", "operator": "==", "value": "beta"}, MODULE_JSON]},
        {"operator": "NOT", "conditions": [{"field": "meta.tenant", "operator": "==", "value": "acme"}]},
        {"field": "meta.tenant", "operator": "in", "value": ["acme", "beta"]},
        {"field": "meta.tenant", "operator": "!=", "value": "acme"},
    ],
)
def test_no_crafted_clause_makes_another_tenants_document_match(crafted):
    scoped = with_tenant_filter(crafted, "acme", limits=FilterLimits(allow_tenant_field=True))
    beta = Document(content="secret", meta={"tenant": "beta", "module": "json"})
    assert document_matches_filter(crafted, beta)  # alone, the clause would reach beta's document
    assert not document_matches_filter(scoped, beta)
    assert document_matches_filter(scoped, Document(content="mine", meta={"tenant": "acme", "module": "json"})) == (
        document_matches_filter(crafted, Document(content="mine", meta={"tenant": "acme", "module": "json"}))
    )


# -- the policy --------------------------------------------------------------------------------------


def test_depth_at_the_limit_passes_one_more_level_fails():
    assert validate_filters(nested(DEFAULT_LIMITS.max_depth)) == nested(DEFAULT_LIMITS.max_depth)
    with pytest.raises(FilterPolicyError, match=f"nested deeper than {DEFAULT_LIMITS.max_depth} levels"):
        validate_filters(nested(DEFAULT_LIMITS.max_depth + 1))


def test_the_condition_count_is_over_the_whole_tree_not_per_group():
    limits = FilterLimits(max_conditions=4)
    two_groups = {
        "operator": "OR",
        "conditions": [
            {"operator": "AND", "conditions": [comparison(1), comparison(2)]},
            {"operator": "AND", "conditions": [comparison(3), comparison(4)]},
        ],
    }
    assert validate_filters(two_groups, limits) == two_groups
    two_groups["conditions"][1]["conditions"].append(comparison(5))
    with pytest.raises(FilterPolicyError, match="more than 4 conditions"):
        validate_filters(two_groups, limits)


@pytest.mark.parametrize(
    ("crafted", "message"),
    [
        ({"operator": "OR", "conditions": []}, r"filters\.conditions: must be a non-empty list"),
        ({"operator": "AND", "conditions": MODULE_JSON}, r"filters\.conditions: must be a non-empty list"),
        ({"operator": "XOR", "conditions": [MODULE_JSON]}, r"filters\.operator: must be one of AND, OR, NOT"),
        ({"operator": "AND"}, r"a group has operator, conditions"),
        ({"meta.module": "json"}, r"a group has operator, conditions"),  # Haystack's legacy syntax
        ({"operator": "AND", "conditions": [MODULE_JSON], "field": "x"}, r"exactly field, operator, value"),
        ({**MODULE_JSON, "extra": 1}, r"exactly field, operator, value"),
        ({"field": "meta.module", "operator": "=="}, r"exactly field, operator, value"),
        ({"operator": "AND", "conditions": ["meta.module"]}, r"filters\.conditions\[0\]: must be an object"),
        ({"field": "meta.module", "operator": "~=", "value": "j"}, r"filters\.operator: must be one of"),
        ({"field": "module", "operator": "==", "value": "json"}, r"filters\.field: must be meta.<key>, id or content"),
        ({"field": "tenant", "operator": "==", "value": "beta"}, r"must be meta.<key>"),  # Haystack reads meta.tenant
        ({"field": "meta.", "operator": "==", "value": 1}, r"must be meta.<key>"),
        ({"field": "meta.a b", "operator": "==", "value": 1}, r"must be meta.<key>"),
        ({"field": "meta.tenant", "operator": "==", "value": "beta"}, r"meta\.tenant is set by the server"),
        ({"field": "meta.tenant.id", "operator": "==", "value": "beta"}, r"meta\.tenant is set by the server"),
        ({"field": "meta.module", "operator": "in", "value": "json"}, r"'in' needs a list"),
        ({"field": "meta.module", "operator": "in", "value": list(range(101))}, r"at most 100 items"),
        ({"field": "meta.module", "operator": "==", "value": {"$ne": 1}}, r"string, number, boolean or null"),
        ({"field": "meta.module", "operator": "in", "value": [["a"]]}, r"value\[0\]: must be a string"),
        ({"field": "meta.module", "operator": "==", "value": "x" * 1001}, r"at most 1000 characters"),
        ({"field": "meta.n", "operator": ">", "value": float("nan")}, r"finite number"),
        ({"field": "meta.n", "operator": ">", "value": None}, r"'>' needs a number or a date string"),
        ({"field": "meta.n", "operator": "<=", "value": True}, r"'<=' needs a number or a date string"),
        ([MODULE_JSON], r"filters: must be an object"),
    ],
)
def test_policy_violations_are_422_with_a_short_message_naming_the_place(crafted, message):
    with pytest.raises(FilterPolicyError, match=message) as caught:
        with_tenant_filter(crafted, "acme")
    assert (caught.value.status, caught.value.code) == (422, "invalid_filters")
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 120


def test_the_error_path_points_into_nested_groups():
    crafted = {"operator": "AND", "conditions": [MODULE_JSON, {"operator": "OR", "conditions": [MODULE_JSON, 3]}]}
    with pytest.raises(FilterPolicyError, match=r"^filters\.conditions\[1\]\.conditions\[1\]: must be an object$"):
        validate_filters(crafted)


def test_allowed_fields_restrict_to_an_explicit_list():
    limits = FilterLimits(allowed_fields=frozenset({"meta.module"}))
    assert validate_filters(MODULE_JSON, limits) == MODULE_JSON
    with pytest.raises(FilterPolicyError, match=r"'content' cannot be filtered on"):
        validate_filters({"field": "content", "operator": "==", "value": "x"}, limits)


def test_allowed_operators_restrict_comparisons():
    limits = FilterLimits(allowed_operators=frozenset({"==", "in"}))
    assert validate_filters({"field": "meta.n", "operator": "in", "value": [1]}, limits)
    with pytest.raises(FilterPolicyError, match=r"must be one of ==, in$"):
        validate_filters({"field": "meta.n", "operator": ">", "value": 1}, limits)


def test_the_tenant_field_is_anded_when_the_policy_allows_it():
    limits = FilterLimits(allow_tenant_field=True)
    other = {"field": "meta.tenant", "operator": "==", "value": "beta"}
    assert with_tenant_filter(other, "acme", limits=limits)["conditions"] == [TENANT_A, other]


@pytest.mark.parametrize(
    "accepted",
    [
        {"field": "id", "operator": "!=", "value": ""},
        {"field": "content", "operator": "==", "value": "x"},
        {"field": "meta.a.b-c_d", "operator": "not in", "value": [None, 1, 2.5, True, "s"]},
        {"field": "meta.date", "operator": ">=", "value": "2024-01-01"},
        {"field": "meta.n", "operator": "<", "value": 3},
        {"field": "meta.flag", "operator": "==", "value": None},
        {"operator": "NOT", "conditions": [{"operator": "OR", "conditions": [MODULE_JSON]}]},
    ],
)
def test_ordinary_filters_pass_unchanged(accepted):
    assert validate_filters(accepted) == accepted
    assert with_tenant_filter(accepted, "acme")["conditions"][1] == accepted
