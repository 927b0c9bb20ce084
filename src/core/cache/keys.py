"""Cache keys: everything that changes an answer is in the key, nothing that does not.

A key is ``<namespace>:<kind>:<tenant>:<pipeline>:<version>:<digest>`` where ``version`` is the
pipeline's YAML hash (a canary and the stable version never share entries) and ``digest`` is the
SHA-256 of the canonical JSON of the inputs: key order, JSON whitespace and equivalent numbers
(``5`` and ``5.0``) do not change it. The readable prefix lets ``SCAN MATCH`` invalidate by tenant or
pipeline; no hash tag, so entries spread over every cluster shard.

Example:
    >>> result_key("hs", kind="results", tenant="acme", pipeline="search", version="d05188", inputs={"query": "json"})
    'hs:results:acme:search:d05188:...'
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any

_UNSAFE = re.compile(rb"[^A-Za-z0-9_.\-]")


def canonical(value: Any) -> Any:
    """Inputs in a normal form: sorted keys (by ``json.dumps``), integral floats as ints, tuples as lists."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return int(value)
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if hasattr(value, "model_dump"):
        return canonical(value.model_dump())
    return str(value)


def digest(inputs: dict[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of ``inputs``."""
    text = json.dumps(canonical(inputs), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def segment(value: str) -> str:
    """A key segment: anything but ``[A-Za-z0-9_.-]`` percent-encoded (UTF-8).

    Injective, so two tenants can never share a segment, and free of ``:`` and of the ``*?[]``
    of ``SCAN MATCH`` patterns.
    """
    encoded = _UNSAFE.sub(lambda m: f"%{m.group()[0]:02X}".encode(), value.encode("utf-8")).decode("ascii")
    return encoded or "%"


def result_key(namespace: str, *, kind: str, tenant: str, pipeline: str, version: str, inputs: dict[str, Any]) -> str:
    """The key of one cached answer."""
    parts = (namespace, kind, tenant, pipeline, version)
    return ":".join(segment(p) for p in parts) + ":" + digest(inputs)


def pattern(namespace: str, *, tenant: str | None = None, pipeline: str | None = None) -> str:
    """A ``SCAN MATCH`` pattern for every entry of a tenant and/or a pipeline (all kinds, all versions)."""
    return ":".join(
        [segment(namespace), "*", segment(tenant) if tenant else "*", segment(pipeline) if pipeline else "*", "*", "*"]
    )
