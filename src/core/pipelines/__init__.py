"""Served pipelines: Haystack YAML loaded and warmed once per container, each with a typed API contract."""
