"""Observability: Powertools logs, EMF metrics and traces of every request, down to each Haystack component.

- ``names``: metric, dimension and environment names (the template's alarms read the same).
- ``logs``: the Powertools JSON handler for every logger, level sampling, query fingerprints.
- ``metrics``: request and pipeline EMF documents with a ``version`` dimension.
- ``tracing``: the backend seam (off | xray | otel); ``xray`` and ``otel`` implement it.
- ``context``: the record of the request being served.
- ``telemetry``: all of it per container, and the audit line of each request.
"""
