"""Template options of the performance and cache work: SnapStart and the ElastiCache L2 cache."""

from pathlib import Path

import pytest
from cfnlint.decode import decode

from tests.infra.sam import samconfig_overrides

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def template() -> dict:
    data, problems = decode(str(ROOT / "template.yaml"))
    assert not problems
    return data


def test_snapstart_is_a_parameter_off_by_default_and_on_in_staging_and_prod(template):
    parameter = template["Parameters"]["SnapStart"]
    assert parameter["Default"] == "None"
    assert set(parameter["AllowedValues"]) == {"None", "PublishedVersions"}
    assert template["Resources"]["ApiFunction"]["Properties"]["SnapStart"] == {"ApplyOn": {"Ref": "SnapStart"}}
    assert samconfig_overrides("default").get("SnapStart", "None") == "None"
    assert (
        samconfig_overrides("staging")["SnapStart"] == samconfig_overrides("prod")["SnapStart"] == "PublishedVersions"
    )


def test_cache_is_valkey_serverless_behind_a_condition(template):
    assert template["Conditions"]["UseCache"] == {"Fn::Equals": [{"Ref": "EnableCache"}, "true"]}
    assert template["Parameters"]["EnableCache"]["Default"] == "false"
    cache = template["Resources"]["ResultCache"]
    assert cache["Type"] == "AWS::ElastiCache::ServerlessCache"
    assert cache["Condition"] == "UseCache"
    assert cache["Properties"]["Engine"] == "valkey"
    assert cache["Properties"]["SecurityGroupIds"] == [{"Ref": "CacheSecurityGroup"}]
    for name in ("CacheSecurityGroup", "FunctionToCacheEgress"):
        assert template["Resources"][name]["Condition"] == "UseCache"
    # The functions' group also serves the pgvector database (tests/infra/test_ingestion_template.py).
    assert template["Resources"]["FunctionSecurityGroup"]["Condition"] == "InVpc"
    assert {"Condition": "UseCache"} in template["Conditions"]["InVpc"]["Fn::Or"]


def test_only_the_functions_reach_the_cache_on_6379_and_6380(template):
    ingress = template["Resources"]["CacheSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert ingress == [
        {
            "Description": ingress[0]["Description"],
            "IpProtocol": "tcp",
            "FromPort": 6379,
            "ToPort": 6380,
            "SourceSecurityGroupId": {"Ref": "FunctionSecurityGroup"},
        }
    ]
    egress = template["Resources"]["FunctionToCacheEgress"]["Properties"]
    assert (egress["FromPort"], egress["ToPort"]) == (6379, 6380)
    assert egress["DestinationSecurityGroupId"] == {"Ref": "CacheSecurityGroup"}


def test_function_joins_the_vpc_and_gets_a_tls_cluster_url_only_with_the_cache(template):
    function = template["Resources"]["ApiFunction"]["Properties"]
    vpc = function["VpcConfig"]["Fn::If"]
    # InVpc: the cache or the pgvector database (tests/infra/test_ingestion_template.py).
    assert vpc[0] == "InVpc" and vpc[2] == {"Ref": "AWS::NoValue"}
    assert vpc[1]["SecurityGroupIds"] == [{"Ref": "FunctionSecurityGroup"}]
    variables = function["Environment"]["Variables"]
    url = variables["REDIS_URL"]["Fn::If"]
    assert url[0] == "UseCache"
    assert url[1]["Fn::Sub"].startswith("rediss://${ResultCache.Endpoint.Address}")
    assert variables["REDIS_CLUSTER"]["Fn::If"][:2] == ["UseCache", "true"]


def test_cache_needs_a_vpc_and_subnets(template):
    rule = template["Rules"]["CacheNeedsNetwork"]
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "EnableCache"}, "true"]}
    described = " ".join(a["AssertDescription"] for a in rule["Assertions"])
    assert "VpcId" in described and "SubnetIds" in described
