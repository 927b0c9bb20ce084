"""Ingestion and the pgvector option in the template (issue 7), checked on what CloudFormation would create.

S3 (documents bucket) → SQS (ingestion queue, DLQ) → IndexerFunction → the store (the live snapshot in
StoreBucket, or Aurora PostgreSQL behind DocumentStore=pgvector). The template is read with cfn-lint's
decoder, and translated by the SAM CLI's samtranslator (`.venv-sam`) once per parameter set that matters;
`Stack` then evaluates that CloudFormation for the set's values (conditions, Fn::If, Sub, Select, ...)
the way CloudFormation would, so each check looks at the resources, roles and environment a deploy with
those values gets. Every checker used on the whole template is shown failing on a planted mistake.
"""

import copy
import fnmatch
import json
import os
import re
import subprocess
import typing
from pathlib import Path

import pytest
from botocore.loaders import Loader
from cfnlint.decode import decode

from core.ingestion.telemetry import FAILED, INDEXED, IndexerTelemetry, ObjectOutcome
from core.observability import names
from core.settings import Settings, load_settings
from tests.infra.sam import Stack, translate

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
SAM_PYTHON = ROOT / ".venv-sam" / "bin" / "python"

# Set for the runtime, not read by core.settings (as in tests/infra/test_template.py).
NON_SETTINGS_ENV = {"HAYSTACK_TELEMETRY_ENABLED", "HOME", "AWS_LAMBDA_EXEC_WRAPPER"}
# AWS managed policies SAM attaches to a function's role. Their statements use Resource "*" where AWS
# offers nothing narrower: CloudWatch Logs writes (the LoggingConfig group has no resource-level
# CreateLogStream ARN SAM could know), X-Ray segments (no resource-level permissions at all), and the
# ENI management of a VPC function (ec2:Create/Describe/DeleteNetworkInterface: no resource scoping for
# Describe*). SAM adds the VPC policy whenever VpcConfig is present, even inside a false Fn::If.
ALLOWED_MANAGED_POLICIES = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
    "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole",
}
# The role SAM makes for CodeDeploy (ApiFunction's deployments, tests/infra/test_deployment_template.py).
CODEDEPLOY_POLICY = "arn:aws:iam::aws:policy/service-role/AWSCodeDeployRoleForLambda"
FUNCTIONS = ("ApiFunction", "IndexerFunction")
DATABASE_RESOURCES = {
    "DatabaseCluster",
    "DatabaseInstance",
    "DatabaseSubnetGroup",
    "DatabaseSecurityGroup",
    "FunctionToDatabaseEgress",
}
NETWORK = {"VpcId": "vpc-0abc", "SubnetIds": "subnet-a,subnet-b"}
EXTERNAL_URI = "s3://other-bucket/snaps/live.snapshot"
DOCUMENTS_BUCKET = "haystack-docs-123456789012-us-east-1-51af3dc0"
PARAMETER_SETS = {
    "defaults": {},
    "pgvector": {"DocumentStore": "pgvector", **NETWORK},
    "served": {"StoreSnapshotUri": EXTERNAL_URI, "DocumentsPrefix": "tenants/"},
    "pgvector+uri": {"DocumentStore": "pgvector", "StoreSnapshotUri": EXTERNAL_URI, **NETWORK},
    "cache": {"EnableCache": "true", **NETWORK},
    # Someone points the live snapshot into the documents bucket: the indexer must still not write there.
    "hostile": {"StoreSnapshotUri": f"s3://{DOCUMENTS_BUCKET}/live.snapshot"},
}


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _role_of(resources: dict, function: str) -> dict:
    role = resources[function]["Properties"]["Role"]
    name = re.fullmatch(r"<(\w+)\.Arn>", role)[1]
    return resources[name]["Properties"]


def _grants(role: dict) -> set[tuple[str, str, str]]:
    """(effect, action, resource) of every inline statement of an evaluated role."""
    found = set()
    for policy in role.get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            for action in _as_list(statement["Action"]):
                for resource in _as_list(statement["Resource"]):
                    found.add((statement["Effect"], action, resource))
    return found


def _wildcards(grants: set[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """Allow grants of every action of a service or every resource."""
    return [g for g in grants if g[0] == "Allow" and (g[1] == "*" or g[1].endswith(":*") or g[2] == "*")]


def _writes_into(grants: set[tuple[str, str, str]], bucket: str) -> list[str]:
    """Object ARNs in `bucket` the role may write or delete, after its explicit Deny statements."""
    writes = {"s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"}
    allowed = [(a, r) for e, a, r in grants if e == "Allow" and a in writes and r.startswith(f"arn:aws:s3:::{bucket}/")]
    denied = [(a, r) for e, a, r in grants if e == "Deny"]
    return [r for a, r in allowed if not any(a == da and fnmatch.fnmatchcase(r, dr) for da, dr in denied)]


def _environment(resources: dict, function: str) -> dict[str, str]:
    return resources[function]["Properties"].get("Environment", {}).get("Variables", {})


def _references(node) -> set[str]:
    """Resources and parameters a template fragment names (Ref, GetAtt, Sub)."""
    found = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref":
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add((value if isinstance(value, list) else value.split("."))[0])
            elif key == "Fn::Sub":
                text = value if isinstance(value, str) else value[0]
                found |= {m.split(".")[0] for m in re.findall(r"\$\{([^!}][^}]*)\}", text)}
            found |= _references(value)
    elif isinstance(node, list):
        for value in node:
            found |= _references(value)
    return found


def _cycle(template: dict) -> list[str] | None:
    """A dependency cycle among the resources (Ref, GetAtt, Sub, DependsOn), or None."""
    resources = template["Resources"]
    edges = {
        name: (_references(r.get("Properties", {})) | set(_as_list(r.get("DependsOn", [])))) & set(resources)
        for name, r in resources.items()
    }
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> list[str] | None:
        state[name] = "open"
        for target in sorted(edges[name]):
            if state.get(target) == "open":
                return [*path[path.index(target) :], target] if target in path else [name, target]
            if target not in state and (found := visit(target, [*path, target])):
                return found
        state[name] = "done"
        return None

    for name in resources:
        if name not in state and (found := visit(name, [name])):
            return found
    return None


# --- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def template() -> dict:
    data, matches = decode(str(TEMPLATE))
    assert not matches, [m.message for m in matches]
    return data


@pytest.fixture(scope="module")
def translated(tmp_path_factory) -> dict[str, dict]:
    """Each parameter set's CloudFormation, from one run of the SAM CLI's samtranslator."""
    return translate(PARAMETER_SETS, tmp_path_factory.mktemp("sam"))


@pytest.fixture(scope="module")
def deployed(translated) -> dict[str, dict[str, dict]]:
    """Parameter set → the resources CloudFormation would create, evaluated."""
    return {name: Stack(translated[name], PARAMETER_SETS[name]).resources() for name in PARAMETER_SETS}


# --- the documents bucket and its notifications ----------------------------------------------------------


def test_documents_bucket_is_versioned_private_encrypted_and_expires_old_versions(template):
    bucket = template["Resources"]["DocumentsBucket"]
    properties = bucket["Properties"]
    assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
    assert set(properties["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(properties["PublicAccessBlockConfiguration"]) == 4
    (encryption,) = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"AES256", "aws:kms"}
    rules = properties["LifecycleConfiguration"]["Rules"]
    expiring = [r for r in rules if "NoncurrentVersionExpiration" in r]
    assert [r["NoncurrentVersionExpiration"] for r in expiring] == [
        {"NoncurrentDays": {"Ref": "NoncurrentVersionDays"}}
    ]
    assert template["Parameters"]["NoncurrentVersionDays"]["Type"] == "Number"
    # The source of truth outlives the stack.
    assert bucket["DeletionPolicy"] == bucket["UpdateReplacePolicy"] == "Retain"


def _notifications(resources: dict) -> list[dict]:
    return resources["DocumentsBucket"]["Properties"]["NotificationConfiguration"]["QueueConfigurations"]


@pytest.mark.parametrize(("parameter_set", "prefix"), [("defaults", None), ("served", "tenants/")])
def test_bucket_notifies_the_queue_of_created_and_removed_objects(deployed, parameter_set, prefix):
    notifications = _notifications(deployed[parameter_set])
    assert sorted(n["Event"] for n in notifications) == ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]
    for notification in notifications:
        assert notification["Queue"] == "<IngestionQueue.Arn>"
        if prefix is None:
            assert "Filter" not in notification
        else:
            assert notification["Filter"] == {"S3Key": {"Rules": [{"Name": "prefix", "Value": prefix}]}}
    # The indexer reads tenants from the same prefix (INGEST_KEY_PREFIX).
    assert _environment(deployed[parameter_set], "IndexerFunction")["INGEST_KEY_PREFIX"] == (prefix or "")


def test_queue_policy_lets_only_the_documents_bucket_send(deployed):
    resources = deployed["defaults"]
    bucket = resources["DocumentsBucket"]["Properties"]["BucketName"]
    assert bucket == DOCUMENTS_BUCKET
    policy = resources["IngestionQueuePolicy"]["Properties"]
    assert policy["Queues"] == ["<IngestionQueue>"]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Resource"] == "<IngestionQueue.Arn>"
    assert statement["Condition"] == {
        "ArnEquals": {"aws:SourceArn": f"arn:aws:s3:::{bucket}"},
        "StringEquals": {"aws:SourceAccount": "123456789012"},
    }


def test_bucket_waits_for_the_queue_policy_without_a_cycle(translated):
    template = translated["defaults"]
    # S3 checks that it may send to the queue when the notification is created: the policy comes first.
    assert "IngestionQueuePolicy" in _as_list(template["Resources"]["DocumentsBucket"]["DependsOn"])
    # ... so the policy names the bucket by its fixed name, never by a reference to it.
    assert "DocumentsBucket" not in _references(template["Resources"]["IngestionQueuePolicy"])
    assert _cycle(template) is None


def test_the_cycle_check_finds_the_classic_notification_cycle(translated):
    planted = copy.deepcopy(translated["defaults"])
    statement = planted["Resources"]["IngestionQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    statement["Condition"]["ArnEquals"]["aws:SourceArn"] = {"Fn::GetAtt": ["DocumentsBucket", "Arn"]}
    assert set(_cycle(planted)) == {"DocumentsBucket", "IngestionQueuePolicy"}


def test_documents_bucket_name_is_valid_in_every_region(template):
    regions = {r for p in Loader().load_data("endpoints")["partitions"] for r in p["regions"]}
    longest = max(regions, key=len)
    name = Stack(template)(template["Resources"]["DocumentsBucket"]["Properties"]["BucketName"])
    name = name.replace("us-east-1", longest)
    # S3: 3-63 characters, lower-case letters, digits, hyphens (the stack name may have capitals: unused).
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]", name), name
    assert "haystack-serverless-test" not in name


# --- the queues ------------------------------------------------------------------------------------------


def test_dead_letter_queue_after_max_receive_count(template):
    resources = template["Resources"]
    queue = resources["IngestionQueue"]["Properties"]
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["IngestionDeadLetterQueue", "Arn"]},
        "maxReceiveCount": {"Ref": "IngestionMaxReceiveCount"},
    }
    parameter = template["Parameters"]["IngestionMaxReceiveCount"]
    assert 3 <= parameter["Default"] <= 5
    assert parameter["MinValue"] >= 1
    dlq = resources["IngestionDeadLetterQueue"]["Properties"]
    assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600
    # A message keeps its first enqueue time in a standard DLQ: it must outlive the source's retention.
    assert dlq["MessageRetentionPeriod"] > queue["MessageRetentionPeriod"]
    for name in ("IngestionQueue", "IngestionDeadLetterQueue"):
        assert resources[name]["Properties"]["SqsManagedSseEnabled"] is True, name
        assert "FifoQueue" not in resources[name]["Properties"], name


def _visibility_problems(template: dict) -> list[str]:
    """Indexer timeouts whose queue visibility is under 6 x timeout + the longest batching window."""
    parameters = template["Parameters"]
    window = parameters["IndexerBatchingWindowSeconds"]["MaxValue"]
    timeouts = [int(t) for t in parameters["IndexerTimeout"]["AllowedValues"]]
    rows = template["Mappings"]["IndexerTimeouts"]
    problems = [f"no row for {t}" for t in timeouts if str(t) not in rows]
    for timeout in timeouts:
        stack = Stack(template, {"IndexerTimeout": str(timeout)})
        visibility = stack(template["Resources"]["IngestionQueue"]["Properties"]["VisibilityTimeout"])
        function_timeout = stack(template["Resources"]["IndexerFunction"]["Properties"]["Timeout"])
        if int(function_timeout) != timeout:
            problems.append(f"the function's timeout is {function_timeout}, not IndexerTimeout {timeout}")
        if visibility < 6 * timeout + window:
            problems.append(f"timeout {timeout}: visibility {visibility} < 6 x {timeout} + {window}")
        if visibility > 43200:
            problems.append(f"timeout {timeout}: visibility {visibility} is over SQS's 12 hours")
    return problems


def test_visibility_timeout_covers_six_indexer_timeouts_and_the_batching_window(template):
    assert not _visibility_problems(template)
    assert (
        template["Parameters"]["IndexerTimeout"]["Default"] in template["Parameters"]["IndexerTimeout"]["AllowedValues"]
    )


def test_the_visibility_check_catches_a_short_row(template):
    planted = copy.deepcopy(template)
    planted["Mappings"]["IndexerTimeouts"]["300"]["VisibilityTimeout"] = 1800
    assert _visibility_problems(planted) == ["timeout 300: visibility 1800 < 6 x 300 + 60"]


# --- the indexer function ----------------------------------------------------------------------------------


def test_indexer_event_source_reports_batch_item_failures(translated, template):
    mappings = {
        n: r["Properties"]
        for n, r in translated["defaults"]["Resources"].items()
        if r["Type"] == "AWS::Lambda::EventSourceMapping"
    }
    (mapping,) = mappings.values()
    assert mapping["FunctionName"] == {"Ref": "IndexerFunction"}
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["IngestionQueue", "Arn"]}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BatchSize"] == {"Ref": "IndexerBatchSize"}
    assert mapping["MaximumBatchingWindowInSeconds"] == {"Ref": "IndexerBatchingWindowSeconds"}
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "IndexerMaxConcurrency"}}
    parameters = template["Parameters"]
    # Concurrent snapshot writers conflict and retry: few of them by default (2 is SQS's minimum).
    assert parameters["IndexerMaxConcurrency"]["Default"] == parameters["IndexerMaxConcurrency"]["MinValue"] == 2
    # Without a batching window SQS batches hold at most 10 messages.
    assert parameters["IndexerBatchSize"]["MaxValue"] <= 10


def test_indexer_function_is_built_and_layered_like_the_api_function(template):
    resources = template["Resources"]
    indexer, api = resources["IndexerFunction"], resources["ApiFunction"]
    properties = indexer["Properties"]
    assert properties["Handler"] == "handlers.indexer.handler"
    assert properties["CodeUri"].rstrip("/") == "src"
    assert indexer["Metadata"]["BuildMethod"] == "makefile"
    assert properties["Layers"] == api["Properties"]["Layers"]
    assert properties["Timeout"] == {"Ref": "IndexerTimeout"}
    assert properties["MemorySize"] == {"Ref": "IndexerMemorySize"}
    # The queue invokes it: no alias, no CodeDeploy deployment of its own.
    assert not {"AutoPublishAlias", "DeploymentPreference", "Events"} & set(properties)
    group = resources[properties["LoggingConfig"]["LogGroup"]["Ref"]]
    assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert "build-IndexerFunction:" in (ROOT / "src" / "Makefile").read_text()


def test_indexer_artifact_ships_the_indexing_pipeline(tmp_path, full_snapshot):
    artifacts = tmp_path / "IndexerFunction"
    result = subprocess.run(
        ["make", "--no-print-directory", "--makefile", str(ROOT / "src" / "Makefile"), "build-IndexerFunction"],
        env={**os.environ, "ARTIFACTS_DIR": str(artifacts)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (artifacts / "handlers" / "indexer.py").is_file()
    assert (artifacts / "core" / "settings.py").is_file()
    shipped = sorted(p.name for p in (artifacts / "pipelines" / "indexing").iterdir())
    assert shipped == sorted(p.name for p in (ROOT / "pipelines" / "indexing").glob("*.y*ml"))
    # Where core.settings looks for it in /var/task by default (INDEXING_PIPELINE).
    default = Settings.model_fields["indexing_pipeline"].default_factory()
    assert (artifacts / default.relative_to(ROOT)).is_file()
    # The pipelines the API serves are the same as ApiFunction's (top of pipelines/ only).
    assert sorted(p.name for p in (artifacts / "pipelines").glob("*.y*ml")) == sorted(
        p.name for p in (ROOT / "pipelines").glob("*.y*ml")
    )


# --- least privilege -----------------------------------------------------------------------------------


def _indexer_expected(parameter_set: str) -> set[tuple[str, str, str]]:
    prefix = PARAMETER_SETS[parameter_set].get("DocumentsPrefix", "")
    uri = PARAMETER_SETS[parameter_set].get("StoreSnapshotUri", "")
    pgvector = PARAMETER_SETS[parameter_set].get("DocumentStore") == "pgvector"
    documents = f"arn:aws:s3:::{DOCUMENTS_BUCKET}"
    expected = {
        *(
            ("Allow", a, "<IngestionQueue.Arn>")
            for a in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")
        ),
        ("Allow", "s3:GetObject", f"{documents}/{prefix}*"),
        ("Allow", "s3:GetObjectVersion", f"{documents}/{prefix}*"),
        # A removed key reads as 404 only with ListBucket (core.ingestion.objects reconciles removals).
        ("Allow", "s3:ListBucket", documents),
        *(
            ("Allow", f"dynamodb:{a}", "<IdempotencyTable.Arn>")
            for a in ("GetItem", "PutItem", "UpdateItem", "DeleteItem")
        ),
        *(("Deny", a, f"{documents}/*") for a in ("s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion")),
    }
    if pgvector:
        expected.add(("Allow", "secretsmanager:GetSecretValue", "<DatabaseCluster.MasterUserSecret.SecretArn>"))
        return expected
    if uri:
        path = uri.removeprefix("s3://")
        snapshot, bucket = f"arn:aws:s3:::{path}", f"arn:aws:s3:::{path.split('/')[0]}"
    else:
        snapshot, bucket = "<StoreBucket.Arn>/live/store.snapshot", "<StoreBucket.Arn>"
    expected |= {("Allow", a, snapshot) for a in ("s3:GetObject", "s3:GetObjectVersion", "s3:PutObject")}
    expected.add(("Allow", "s3:ListBucket", bucket))
    return expected


@pytest.mark.parametrize("parameter_set", list(PARAMETER_SETS))
def test_indexer_role_grants_exactly_what_it_needs(deployed, parameter_set):
    role = _role_of(deployed[parameter_set], "IndexerFunction")
    assert _grants(role) == _indexer_expected(parameter_set)
    # Not AWSLambdaSQSQueueExecutionRole (sqs:ReceiveMessage/DeleteMessage on every queue, "*"): the queue
    # is consumed through an explicit event source mapping and the ConsumeTheIngestionQueue statement.
    assert set(role["ManagedPolicyArns"]) <= ALLOWED_MANAGED_POLICIES


@pytest.mark.parametrize("parameter_set", list(PARAMETER_SETS))
def test_api_role_reads_the_live_snapshot_only_when_it_serves_it(deployed, parameter_set):
    role = _role_of(deployed[parameter_set], "ApiFunction")
    store = {g for g in _grants(role) if g[1].startswith(("s3:", "secretsmanager:"))}
    parameters = PARAMETER_SETS[parameter_set]
    expected = set()
    if parameters.get("DocumentStore") == "pgvector":
        expected.add(("Allow", "secretsmanager:GetSecretValue", "<DatabaseCluster.MasterUserSecret.SecretArn>"))
    elif parameters.get("StoreSnapshotUri"):
        path = parameters["StoreSnapshotUri"].removeprefix("s3://")
        expected = {
            ("Allow", "s3:GetObject", f"arn:aws:s3:::{path}"),
            ("Allow", "s3:GetObjectVersion", f"arn:aws:s3:::{path}"),
            ("Allow", "s3:ListBucket", f"arn:aws:s3:::{path.split('/')[0]}"),
        }
    assert store == expected
    assert set(role["ManagedPolicyArns"]) <= ALLOWED_MANAGED_POLICIES


@pytest.mark.parametrize("parameter_set", list(PARAMETER_SETS))
def test_no_wildcard_grant_in_any_role(deployed, parameter_set):
    resources = deployed[parameter_set]
    roles = {n: r["Properties"] for n, r in resources.items() if r["Type"] == "AWS::IAM::Role"}
    for name, role in roles.items():
        assert not _wildcards(_grants(role)), name
        managed = set(role.get("ManagedPolicyArns", []))
        assert managed <= (
            ALLOWED_MANAGED_POLICIES | {CODEDEPLOY_POLICY}
            if name == "CodeDeployServiceRole"
            else ALLOWED_MANAGED_POLICIES
        ), name


def test_the_wildcard_check_catches_a_service_wildcard_and_a_star_resource():
    grants = {
        ("Allow", "s3:GetObject", "arn:aws:s3:::b/*"),
        ("Allow", "s3:*", "arn:aws:s3:::b/k"),
        ("Allow", "sqs:ReceiveMessage", "*"),
        ("Deny", "s3:*", "*"),
    }
    assert sorted(_wildcards(grants)) == [("Allow", "s3:*", "arn:aws:s3:::b/k"), ("Allow", "sqs:ReceiveMessage", "*")]


@pytest.mark.parametrize("parameter_set", list(PARAMETER_SETS))
def test_snapshot_writes_cannot_trigger_indexing(deployed, parameter_set):
    resources = deployed[parameter_set]
    # Only the documents bucket notifies anyone; the store's bucket never does.
    notifying = {
        n
        for n, r in resources.items()
        if r["Type"] == "AWS::S3::Bucket" and "NotificationConfiguration" in r["Properties"]
    }
    assert notifying == {"DocumentsBucket"}
    assert resources["StoreBucket"]["Properties"]["VersioningConfiguration"] == {"Status": "Enabled"}
    # No function may write into the documents bucket, whatever StoreSnapshotUri names.
    for function in FUNCTIONS:
        assert not _writes_into(_grants(_role_of(resources, function)), DOCUMENTS_BUCKET), function


def test_the_write_check_sees_a_snapshot_in_the_documents_bucket_without_the_deny(deployed):
    grants = _grants(_role_of(deployed["hostile"], "IndexerFunction"))
    assert ("Allow", "s3:PutObject", f"arn:aws:s3:::{DOCUMENTS_BUCKET}/live.snapshot") in grants
    without_deny = {g for g in grants if g[0] != "Deny"}
    assert _writes_into(without_deny, DOCUMENTS_BUCKET) == [f"arn:aws:s3:::{DOCUMENTS_BUCKET}/live.snapshot"]


def test_idempotency_table_key_and_ttl(template):
    table = template["Resources"]["IdempotencyTable"]
    properties = table["Properties"]
    assert table["Type"] == "AWS::DynamoDB::Table"
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    # Powertools' DynamoDBPersistenceLayer defaults: key "id" (string), TTL attribute "expiration".
    assert properties["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert properties["AttributeDefinitions"] == [{"AttributeName": "id", "AttributeType": "S"}]
    assert properties["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}


# --- alarms, dashboard, outputs ----------------------------------------------------------------------------


def test_ingestion_alarms_watch_the_dead_letter_queue_and_the_indexer(deployed, template):
    resources = deployed["defaults"]
    dlq = resources["IngestionDlqAlarm"]["Properties"]
    assert (dlq["Namespace"], dlq["MetricName"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert dlq["Dimensions"] == [{"Name": "QueueName", "Value": "<IngestionDeadLetterQueue.QueueName>"}]
    errors = resources["IndexerErrorsAlarm"]["Properties"]
    assert (errors["Namespace"], errors["MetricName"], errors["Statistic"]) == ("AWS/Lambda", "Errors", "Sum")
    # The indexer has no alias: FunctionName alone is a dimension set Lambda publishes.
    assert errors["Dimensions"] == [{"Name": "FunctionName", "Value": "<IndexerFunction>"}]
    for alarm, parameter in ((dlq, "AlarmDlqMessages"), (errors, "AlarmIndexerErrors")):
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
        assert alarm["Threshold"] == "0" == str(template["Parameters"][parameter]["Default"])
        assert alarm["TreatMissingData"] == "notBreaching"


def test_dashboard_shows_the_queues_and_the_indexer(template):
    body = json.loads(Stack(template)(template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]))
    lines = {
        tuple(item for item in line if isinstance(item, str))
        for widget in body["widgets"]
        if widget["type"] == "metric"
        for line in widget["properties"]["metrics"]
    }
    assert (
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        "QueueName",
        "<IngestionDeadLetterQueue.QueueName>",
    ) in lines
    assert ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", "<IngestionQueue.QueueName>") in lines
    for metric in ("Errors", "Duration"):
        assert ("AWS/Lambda", metric, "FunctionName", "<IndexerFunction>") in lines
    alarms = {a for w in body["widgets"] if w["type"] == "alarm" for a in w["properties"]["alarms"]}
    assert {"<IngestionDlqAlarm.Arn>", "<IndexerErrorsAlarm.Arn>"} <= alarms


def _indexer_lines(template: dict) -> list[tuple[str, ...]]:
    """The dashboard's metric lines in the service's namespace with the indexer's dimension."""
    stack = Stack(template)
    body = json.loads(stack(template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]))
    lines = [
        tuple(item for item in line if isinstance(item, str))
        for widget in body["widgets"]
        if widget["type"] == "metric"
        for line in widget["properties"]["metrics"]
        if not isinstance(line[0], dict)
    ]
    return [line for line in lines if line[0] == stack.ref("MetricsNamespace") and "function" in line[2::2]]


def _not_emitted(lines: list[tuple[str, ...]], document: dict) -> list[tuple[str, ...]]:
    """Lines no directive of `document` carries: metric name, exact dimension set and values."""
    missing = []
    for namespace, metric, *pairs in lines:
        dimensions = dict(zip(pairs[::2], pairs[1::2], strict=True))
        carried = any(
            directive["Namespace"] == namespace
            and metric in {m["Name"] for m in directive["Metrics"]}
            and set(dimensions) in [set(d) for d in directive["Dimensions"]]
            and all(document.get(k) == v for k, v in dimensions.items())
            for directive in document["_aws"]["CloudWatchMetrics"]
        )
        if not carried:
            missing.append((namespace, metric, *pairs))
    return missing


@pytest.fixture(scope="module")
def indexer_document(template) -> dict:
    """The EMF document the indexer writes for an invocation (core.ingestion.telemetry), with the template's names."""
    stack = Stack(template)
    settings = load_settings(
        powertools_metrics_namespace=stack.ref("MetricsNamespace"),
        powertools_service_name=stack.ref("ServiceName"),
        powertools_metrics_disabled=False,
    )
    telemetry = IndexerTelemetry(settings)
    for outcome in (INDEXED, FAILED):
        telemetry.object_done(ObjectOutcome(outcome, "docs", "acme/a.md", "ObjectCreated:Put", "m-1"))
    telemetry.committed(conflicts=1, elapsed_ms=1900.0, wrote=True)
    return telemetry.document()


def test_dashboard_reads_the_metrics_the_indexer_writes(template, indexer_document):
    lines = _indexer_lines(template)
    shown = {line[1] for line in lines}
    assert {names.DOCUMENTS_INDEXED, names.OBJECTS_FAILED, names.SNAPSHOT_CONFLICTS} <= shown
    assert not _not_emitted(lines, indexer_document)


def test_the_emitted_check_catches_a_wrong_name_dimension_or_value(template, indexer_document):
    (good,) = [line for line in _indexer_lines(template) if line[1] == names.OBJECTS_FAILED]
    namespace, _, *pairs = good
    planted = [
        (namespace, "ObjectFailed", *pairs),
        (namespace, names.OBJECTS_FAILED, "function", "indexer"),
        (namespace, names.OBJECTS_FAILED, "function", "api", "service", pairs[-1]),
    ]
    assert _not_emitted([good, *planted], indexer_document) == planted


def test_outputs_name_the_ingestion_resources(template):
    outputs = {name: o["Value"] for name, o in template["Outputs"].items()}
    assert outputs["DocumentsBucketName"] == {"Ref": "DocumentsBucket"}
    assert outputs["IngestionQueueUrl"] == {"Ref": "IngestionQueue"}
    assert outputs["IngestionDeadLetterQueueUrl"] == {"Ref": "IngestionDeadLetterQueue"}
    assert outputs["IdempotencyTableName"] == {"Ref": "IdempotencyTable"}
    assert outputs["IngestionDlqAlarmName"] == {"Ref": "IngestionDlqAlarm"}
    assert outputs["IndexerErrorsAlarmName"] == {"Ref": "IndexerErrorsAlarm"}
    # What to set StoreSnapshotUri to for the API function to serve what the indexer writes.
    live = Stack(template)(template["Outputs"]["LiveSnapshotUri"]["Value"])
    indexer = Stack(template)(template["Resources"]["IndexerFunction"]["Properties"]["Environment"]["Variables"])
    assert live == indexer["STORE_SNAPSHOT_URI"] == "s3://<StoreBucket>/live/store.snapshot"


# --- the snapshot the API function serves --------------------------------------------------------------


@pytest.mark.parametrize(
    ("parameter_set", "api_uri", "indexer_uri"),
    [
        ("defaults", None, "s3://<StoreBucket>/live/store.snapshot"),
        ("served", EXTERNAL_URI, EXTERNAL_URI),
        ("pgvector", None, None),
        ("pgvector+uri", None, None),
    ],
)
def test_api_function_serves_the_bundled_snapshot_unless_a_uri_is_set(deployed, parameter_set, api_uri, indexer_uri):
    api = _environment(deployed[parameter_set], "ApiFunction")
    indexer = _environment(deployed[parameter_set], "IndexerFunction")
    assert api.get("STORE_SNAPSHOT_URI") == api_uri
    assert ("STORE_REFRESH_S" in api) == (api_uri is not None)
    assert indexer.get("STORE_SNAPSHOT_URI") == indexer_uri


# --- pgvector ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("parameter_set", ["defaults", "served", "cache"])
def test_no_database_without_pgvector(deployed, parameter_set):
    resources = deployed[parameter_set]
    assert not DATABASE_RESOURCES & set(resources)
    for function in FUNCTIONS:
        environment = _environment(resources, function)
        assert environment["DOCUMENT_STORE"] == "memory"
        assert not {"PG_CONN_STR", "PG_CONN_SECRET"} & set(environment), function
        assert not [g for g in _grants(_role_of(resources, function)) if g[1].startswith("secretsmanager:")]
    # Only the cache puts a function in the VPC, and only the API function uses the cache.
    in_vpc = {f for f in FUNCTIONS if "VpcConfig" in resources[f]["Properties"]}
    assert in_vpc == ({"ApiFunction"} if parameter_set == "cache" else set())


@pytest.mark.parametrize("parameter_set", ["pgvector", "pgvector+uri"])
def test_pgvector_creates_the_database_and_wires_both_functions_to_it(deployed, parameter_set):
    resources = deployed[parameter_set]

    def named(resources: dict) -> set[str]:
        # Not the API deployment: its name is a new hash on every translation (RestApi's AlwaysDeploy).
        # Nor layer versions: SAM names them after a hash of their content.
        return {
            n
            for n, r in resources.items()
            if r["Type"] not in {"AWS::ApiGateway::Deployment", "AWS::Lambda::LayerVersion"}
        }

    assert named(resources) - named(deployed["defaults"]) == DATABASE_RESOURCES | {"FunctionSecurityGroup"}
    layers = {n for n, r in resources.items() if r["Type"] == "AWS::Lambda::LayerVersion"}
    assert any(n.startswith("PgvectorLayer") for n in layers)  # psycopg & co. come only with this store
    assert not any(
        n.startswith("PgvectorLayer")
        for n, r in deployed["defaults"].items()
        if r["Type"] == "AWS::Lambda::LayerVersion"
    )
    for function in FUNCTIONS:
        properties = resources[function]["Properties"]
        environment = properties["Environment"]["Variables"]
        assert environment["DOCUMENT_STORE"] == "pgvector"
        assert environment["PG_CONN_SECRET"] == "secretsmanager:<DatabaseCluster.MasterUserSecret.SecretArn>"
        assert environment["PG_CONN_STR"] == (
            "host=<DatabaseCluster.Endpoint.Address> port=<DatabaseCluster.Endpoint.Port> "
            "dbname=haystack sslmode=require"
        )
        assert properties["VpcConfig"] == {
            "SecurityGroupIds": ["<FunctionSecurityGroup>"],
            "SubnetIds": ["subnet-a", "subnet-b"],
        }
        secret = ("Allow", "secretsmanager:GetSecretValue", "<DatabaseCluster.MasterUserSecret.SecretArn>")
        assert secret in _grants(_role_of(resources, function)), function


def test_database_environment_is_what_the_settings_and_the_cluster_agree_on(deployed):
    resources = deployed["pgvector"]
    environment = _environment(resources, "IndexerFunction")
    settings = load_settings(
        document_store=environment["DOCUMENT_STORE"],
        pg_conn_str=environment["PG_CONN_STR"],
        pg_conn_secret=environment["PG_CONN_SECRET"],
    )
    conninfo = dict(p.split("=", 1) for p in settings.pg_conn_str.get_secret_value().split())
    assert conninfo["dbname"] == resources["DatabaseCluster"]["Properties"]["DatabaseName"]
    assert conninfo["sslmode"] == "require"
    assert settings.pg_conn_secret.startswith("secretsmanager:")


def test_database_cluster_is_aurora_postgresql_serverless_v2(template):
    resources = template["Resources"]
    cluster = resources["DatabaseCluster"]
    properties = cluster["Properties"]
    assert properties["Engine"] == "aurora-postgresql"
    assert properties["EngineVersion"] == {"Ref": "DbEngineVersion"}
    parameter = template["Parameters"]["DbEngineVersion"]
    for version, accepted in (("16.6", True), ("15", True), ("17.4", True), ("14.9", False), ("16.6; drop", False)):
        assert bool(re.fullmatch(parameter["AllowedPattern"], version)) is accepted, version
    assert int(parameter["Default"].split(".")[0]) >= 15
    # RDS creates, keeps and rotates the password in Secrets Manager; the template never holds it.
    assert properties["ManageMasterUserPassword"] is True
    assert "MasterUserPassword" not in properties
    assert properties["ServerlessV2ScalingConfiguration"] == {
        "MinCapacity": {"Ref": "DbMinCapacity"},
        "MaxCapacity": {"Ref": "DbMaxCapacity"},
    }
    assert properties["StorageEncrypted"] is True
    assert cluster["DeletionPolicy"] == cluster["UpdateReplacePolicy"] == "Snapshot"
    instance = resources["DatabaseInstance"]["Properties"]
    assert (instance["Engine"], instance["DBInstanceClass"]) == ("aurora-postgresql", "db.serverless")
    assert instance["DBClusterIdentifier"] == {"Ref": "DatabaseCluster"}
    assert resources["DatabaseSubnetGroup"]["Properties"]["SubnetIds"] == {"Ref": "SubnetIds"}
    for name in DATABASE_RESOURCES:
        assert resources[name]["Condition"] == "UsePgvector", name


def test_only_the_functions_reach_the_database_on_5432(template):
    resources = template["Resources"]
    assert resources["DatabaseCluster"]["Properties"]["VpcSecurityGroupIds"] == [{"Ref": "DatabaseSecurityGroup"}]
    ingress = resources["DatabaseSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert [{k: v for k, v in rule.items() if k != "Description"} for rule in ingress] == [
        {
            "IpProtocol": "tcp",
            "FromPort": 5432,
            "ToPort": 5432,
            "SourceSecurityGroupId": {"Ref": "FunctionSecurityGroup"},
        }
    ]
    egress = resources["FunctionToDatabaseEgress"]["Properties"]
    assert (egress["FromPort"], egress["ToPort"], egress["IpProtocol"]) == (5432, 5432, "tcp")
    assert egress["GroupId"] == {"Ref": "FunctionSecurityGroup"}
    assert egress["DestinationSecurityGroupId"] == {"Ref": "DatabaseSecurityGroup"}
    # The functions' group exists whenever a function joins the VPC: for the cache or the database.
    assert resources["FunctionSecurityGroup"]["Condition"] == "InVpc"
    assert template["Conditions"]["InVpc"] == {"Fn::Or": [{"Condition": "UseCache"}, {"Condition": "UsePgvector"}]}


def test_pgvector_needs_a_vpc_and_subnets(template):
    assert not Stack(template).rule_failures()
    assert not Stack(template, {"DocumentStore": "pgvector", **NETWORK}).rule_failures()
    failures = Stack(template, {"DocumentStore": "pgvector"}).rule_failures()
    assert len(failures) == 2
    assert any("VpcId" in f for f in failures) and any("SubnetIds" in f for f in failures)
    assert all("pgvector" in f for f in failures)
    assert Stack(template, {"DocumentStore": "pgvector", "VpcId": "vpc-0abc"}).rule_failures() == [failures[1]]


# --- the environment is the settings' ------------------------------------------------------------------


def _unknown_names(environment: dict[str, str]) -> set[str]:
    known = {name.upper() for name in Settings.model_fields} | NON_SETTINGS_ENV
    return set(environment) - known


@pytest.mark.parametrize("parameter_set", list(PARAMETER_SETS))
def test_function_environment_names_are_settings_fields(deployed, parameter_set):
    for function in FUNCTIONS:
        environment = _environment(deployed[parameter_set], function)
        assert not _unknown_names(environment), (function, _unknown_names(environment))


def test_the_name_check_catches_a_variable_no_setting_reads(deployed):
    environment = {**_environment(deployed["defaults"], "IndexerFunction"), "IDEMPOTENCY_TABLE_NAME": "t"}
    assert _unknown_names(environment) == {"IDEMPOTENCY_TABLE_NAME"}


@pytest.mark.parametrize("parameter_set", list(PARAMETER_SETS))
def test_function_environment_values_are_valid_settings(deployed, parameter_set, monkeypatch):
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    for function in FUNCTIONS:
        environment = _environment(deployed[parameter_set], function)
        values = {k.lower(): v for k, v in environment.items() if k not in NON_SETTINGS_ENV}
        settings = load_settings(**values)
        assert settings.document_store == PARAMETER_SETS[parameter_set].get("DocumentStore", "memory")
    indexer = load_settings(
        **{
            k.lower(): v
            for k, v in _environment(deployed[parameter_set], "IndexerFunction").items()
            if k not in NON_SETTINGS_ENV
        }
    )
    assert indexer.idempotency_table == "<IdempotencyTable>"


def test_parameters_accept_what_the_settings_accept(template):
    parameters = template["Parameters"]
    stores = typing.get_args(Settings.model_fields["document_store"].annotation)
    assert set(parameters["DocumentStore"]["AllowedValues"]) == set(stores)
    assert parameters["DocumentStore"]["Default"] == Settings.model_fields["document_store"].default == "memory"

    def pattern(field: str) -> str:
        return next(m.pattern for m in Settings.model_fields[field].metadata if getattr(m, "pattern", None))

    assert parameters["DocumentsPrefix"]["AllowedPattern"] == pattern("ingest_key_prefix")
    assert parameters["StoreRefreshSeconds"]["Default"] == Settings.model_fields["store_refresh_s"].default
    for uri, accepted in ((EXTERNAL_URI, True), ("", True), ("s3://b", False), ("https://x/y", False)):
        assert bool(re.fullmatch(parameters["StoreSnapshotUri"]["AllowedPattern"], uri)) is accepted, uri
        if accepted and uri:
            assert load_settings(store_snapshot_uri=uri).store_snapshot_uri == uri
