"""Names the packages share: the default tenant and the pipeline-name rule.

A leaf module: the pipeline loader, the tenant registry, the indexer and the corpus build agree
through it instead of keeping copies equal by test.
"""

import re

DEFAULT_TENANT = "default"
"""The tenant of the bundled corpus, of unprefixed uploads, and of every caller of a single-tenant deployment."""

PIPELINE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
"""A served pipeline's name (its file or folder name in ``pipelines/``), also as tenant records name them."""
