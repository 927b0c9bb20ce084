"""core.aws: the shared AWS helpers, including the examples in its docstring."""

import doctest

from botocore.exceptions import ClientError

from core import aws


def test_the_module_examples_run():
    assert doctest.testmod(aws).failed == 0


def test_error_code_reads_a_client_error_wrapped_as_a_cause():
    inner = ClientError({"Error": {"Code": "ParameterNotFound", "Message": "no"}}, "GetParameter")
    try:
        try:
            raise inner
        except ClientError as exc:
            raise RuntimeError("powertools wrapper") from exc
    except RuntimeError as outer:
        assert aws.error_code(outer) == "ParameterNotFound"
    assert aws.error_code(ValueError("not AWS")) == ""


def test_split_s3_keeps_a_prefix_and_an_empty_key():
    assert aws.split_s3("s3://bucket/a/b/") == ("bucket", "a/b/")
    assert aws.split_s3("s3://bucket") == ("bucket", "")
    assert aws.is_s3_uri("s3://b/k") and not aws.is_s3_uri("/data/s3://x")
