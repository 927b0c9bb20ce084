"""AWS facts read in several places: S3 URIs, the error code behind a failure, the Lambda environment.

Below everything but ``core.errors`` (the cause chain): settings, stores, readiness, the canary
controller and the CodeDeploy hooks all use it, so it imports nothing else of the project and nothing
beyond the standard library (the hooks' artifact ships it beside ``core/deploy/``).

Example:
    >>> split_s3("s3://bucket/path/to/key")
    ('bucket', 'path/to/key')
    >>> on_lambda({"AWS_LAMBDA_FUNCTION_NAME": "api"})
    True
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from core.errors import cause_chain

LAMBDA_FUNCTION_NAME_ENV = "AWS_LAMBDA_FUNCTION_NAME"
"""Set by Lambda in every execution environment: its presence means "running on Lambda"."""
LAMBDA_FUNCTION_VERSION_ENV = "AWS_LAMBDA_FUNCTION_VERSION"
"""The published version the environment runs (``$LATEST`` when unpublished): the metrics' ``version``."""

S3_SCHEME = "s3://"


def on_lambda(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process runs on Lambda (``AWS_LAMBDA_FUNCTION_NAME`` is set)."""
    return bool((os.environ if environ is None else environ).get(LAMBDA_FUNCTION_NAME_ENV))


def is_s3_uri(uri: str) -> bool:
    """Whether ``uri`` names an S3 object or prefix (``s3://…``) rather than a local path."""
    return uri.startswith(S3_SCHEME)


def split_s3(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` → ``(bucket, key)`` (the key may be empty or a prefix)."""
    bucket, _, key = uri.removeprefix(S3_SCHEME).partition("/")
    return bucket, key


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ``ClientError`` anywhere in ``exc``'s cause chain, or ``""``.

    Powertools wraps the ``ClientError`` of a parameter read as its cause, hence the chain.
    """
    for current in cause_chain(exc):
        response = getattr(current, "response", None)
        if isinstance(response, Mapping):
            error = response.get("Error")
            code = error.get("Code") if isinstance(error, Mapping) else None
            if code:
                return str(code)
    return ""
