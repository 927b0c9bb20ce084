"""Cache query embeddings: text embedders' outputs, keyed by the embedder's configuration and the text.

A remote embedder (Bedrock Titan, OpenAI, …) costs a network call and money per query; its output for a
text never changes, so it is cached under kind ``embeddings`` for ``CACHE_TTL_EMBEDDINGS_S`` (the seed's
24 h), through the same tiers and breaker as results. Entries are shared by every tenant (an embedding
holds only the caller's own text). A component that is cheaper to compute than to fetch (this project's
in-process ``StaticTextEmbedder``: 0.3 ms, less than a Redis round trip) says so with
``cache_outputs = False`` and is left alone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from haystack import Pipeline
from haystack.core.serialization import component_to_dict

from core.cache.keys import digest, result_key
from core.cache.tiered import TieredCache

SHARED_TENANT = "shared"


def _is_text_embedder(instance: Any) -> bool:
    inputs = getattr(getattr(instance, "__haystack_input__", None), "_sockets_dict", {})
    outputs = getattr(getattr(instance, "__haystack_output__", None), "_sockets_dict", {})
    return "text" in inputs and "embedding" in outputs


def cache_text_embedders(
    pipelines: Mapping[str, Pipeline], cache: TieredCache, namespace: str, ttl_s: int
) -> list[str]:
    """Route every text embedder's ``run(text=...)`` through the cache; returns ``pipeline.component`` names.

    ``pipelines`` maps each served pipeline's name to its Haystack ``Pipeline``.
    """
    if ttl_s <= 0:
        return []
    wrapped = []
    for pipeline_name, pipeline in pipelines.items():
        for name, instance in pipeline.walk():
            if not _is_text_embedder(instance) or not getattr(instance, "cache_outputs", True):
                continue
            # Type and configuration: another model, another key.
            identity = digest(component_to_dict(instance, name))[:16]
            instance.run = _cached_run(instance.run, cache, namespace, identity, ttl_s)
            wrapped.append(f"{pipeline_name}.{name}")
    return wrapped


def _cached_run(run: Any, cache: TieredCache, namespace: str, identity: str, ttl_s: int) -> Any:
    def cached_run(text: str, **kwargs: Any) -> dict[str, Any]:
        if kwargs:  # run-time options change the output: not cached
            return run(text=text, **kwargs)
        key = result_key(
            namespace, kind="embeddings", tenant=SHARED_TENANT, pipeline=identity, version="1", inputs={"text": text}
        )
        value, _ = cache.get_or_compute(key, ttl_s, lambda: json.dumps(run(text=text)).encode())
        return json.loads(value)

    return cached_run
