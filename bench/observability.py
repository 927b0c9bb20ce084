"""Observability overhead: warm request latency with logs, metrics and tracing on vs off, in one run.

Five configurations of the service, each its own container: its own runtime (``build_runtime`` +
``create_app``) behind its own Lambda entry point (``runtime.telemetry.lambda_handler(Mangum(app,
lifespan="off"))``, as ``handlers/api.py`` builds it), all in this one process:

1. ``baseline``: ``LOG_LEVEL=WARNING``, ``POWERTOOLS_METRICS_DISABLED``, ``TRACING_BACKEND=off``, and the
   audit line silenced here (``logging.getLogger("core.audit").disabled``): no setting turns it off, it
   is written at INFO whatever ``LOG_LEVEL`` says;
2. ``logs``: the audit line at INFO; no metrics, no tracing;
3. ``logs+metrics``: the audit line and the EMF documents (the production default minus tracing);
4. ``logs+metrics+xray``: Powertools ``Tracer`` and the Haystack X-Ray bridge, sampled, sending over UDP;
5. ``logs+metrics+otel``: ``OtelTracing`` on an SDK ``TracerProvider`` with a ``BatchSpanProcessor``
   flushed after every invocation (as the ADOT Lambda wrapper does), into an exporter that only
   serializes each span to JSON (``ReadableSpan.to_json``) and sends nothing.

Three kinds of request, REST v1 events (``events/api-search-run.json``'s shape): ``POST
/pipelines/search/run`` with ``Cache-Control: no-cache`` and rotating queries (the cache is not read:
``BYPASS``, the pipeline runs every time); the same route with one fixed query and no header (an L1
hit); ``GET /health`` (where the fixed per-request cost dominates).

Lambda, outside Lambda:
- ``LAMBDA_TASK_ROOT`` is set before the X-Ray SDK is imported: Powertools 3 enables its tracer only
  where that variable is set (``AWS_LAMBDA_FUNCTION_NAME`` alone is not enough), and the SDK then uses
  its Lambda context, whose facade segment comes from ``_X_AMZN_TRACE_ID``, which is set here before
  each invocation (``Sampled=1``, a new trace id each time) as the Lambda runtime does. The SDK's UDP
  emitter streams the subsegments to a socket bound here and read only between timed requests (the
  X-Ray daemon's place); what it received is counted.
- The global OpenTelemetry tracer provider is set only while the otel container serves (the ADOT
  layer's provider), unset for the others: FastAPI (>= 0.165) traces every request itself whenever a
  global provider is configured, so the other containers would otherwise trace too.
- stdout (EMF) and the log handler write into one line-buffered temporary file on local disk: one
  ``write`` per line, as with the Lambda runtime's unbuffered stdout, so writing the lines is counted.
- Before timing, one request of each kind per container is checked: what it wrote (audit line, EMF
  documents) and the X-Ray subsegments or OpenTelemetry spans it produced. While timed, X-Ray packets
  and exported spans are counted per container: only the tracing containers may produce any.

Timing is request by request: each kind in turn through every container, the containers' order
rotated each step, so that bursts of load from elsewhere on the machine fall on all of them alike.
Before each request its container's process-global state is made current (root log handler and
levels, Haystack's tracer, the global OpenTelemetry provider), as that container would have it.
"""

import contextlib
import io
import json
import logging
import os
import secrets
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Before anything imports the X-Ray SDK: its recorder picks its context at import, Powertools' Tracer at init.
os.environ.setdefault("LAMBDA_TASK_ROOT", os.path.join(os.path.dirname(os.path.dirname(__file__)), "src"))
os.environ.setdefault("AWS_LAMBDA_FUNCTION_NAME", "ApiFunction")
TRACE_HEADER_ENV = "_X_AMZN_TRACE_ID"

from common import ROOT, require_snapshot, summary, write_result  # noqa: E402
from handler import NO_CACHE, rest_event  # noqa: E402
from quality import QUERIES  # noqa: E402

sys.path.insert(0, str(ROOT))
from scripts.invoke import LambdaContext  # noqa: E402

STEPS = 400  # timed requests of each kind per configuration
KINDS = ("search_miss", "search_hit", "health")
HIT_QUERY = "how do I parse JSON"
EXPECTED_CACHE = {"search_miss": "BYPASS", "search_hit": "HIT-L1", "health": None}


def new_trace_header() -> str:
    """What Lambda puts in ``_X_AMZN_TRACE_ID`` for a sampled invocation."""
    return f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)};Parent={secrets.token_hex(8)};Sampled=1"


class SerializingExporter:
    """An OpenTelemetry span exporter that serializes each span to JSON and sends nothing."""

    def __init__(self) -> None:
        self.spans = 0
        self.capture: list[dict] | None = None

    def export(self, spans: Any) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        for span in spans:
            text = span.to_json(indent=None)
            self.spans += 1
            if self.capture is not None:
                self.capture.append(json.loads(text))
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing to release."""

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Nothing buffered here."""
        return True


class UdpDaemon:
    """A bound UDP socket in the X-Ray daemon's place: nothing reads it while a request is timed."""

    def __init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.setblocking(False)
        self.address = f"127.0.0.1:{self.socket.getsockname()[1]}"
        self.packets = self.bytes = 0

    def drain(self) -> int:
        """Read what arrived; returns the number of datagrams."""
        count = 0
        while True:
            try:
                self.bytes += len(self.socket.recv(65536))
            except BlockingIOError:
                self.packets += count
                return count
            count += 1


@dataclass
class Config:
    """One container: its settings, its entry point, and the process-global state it needs current."""

    name: str
    settings: Any
    runtime: Any = None
    handler: Callable[[dict, Any], dict] | None = None
    powertools_logger: Any = None
    haystack_tracer: Any = None
    content_tracing: bool = False
    samples: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    requests: int = 0
    stdout_bytes: int = 0
    xray_packets: int = 0
    otel_spans: int = 0

    @property
    def backend(self) -> str:
        return self.settings.tracing_backend

    def activate(self, otel_provider: Any) -> None:
        """Make this container's process-global state current.

        The root log handler and levels (what ``configure_logging`` left), Haystack's tracer (what
        ``build_tracing`` left), and the global OpenTelemetry provider: the ADOT layer's in the otel
        container, none elsewhere. ``configure_logging`` itself runs once per container, in ``build``:
        the entry point's ``inject_lambda_context`` holds the Powertools logger it returned, so it is
        that logger's handler that goes back on the root logger here.
        """
        from haystack import tracing as haystack_tracing
        from opentelemetry import trace

        from core.observability.logs import AUDIT_LOGGER, LevelSampler

        logging.getLogger().handlers = [self.powertools_logger.logger_handler]
        self.powertools_logger.setLevel(self.settings.log_level)
        LevelSampler(self.settings).apply(sampled=False)
        # No setting turns the audit line off (it is written at INFO whatever LOG_LEVEL says): the baseline,
        # "telemetry off", silences its logger here. ``disabled`` survives the per-request setLevel calls.
        logging.getLogger(AUDIT_LOGGER).disabled = self.name == "baseline"
        haystack_tracing.tracer.actual_tracer = self.haystack_tracer
        haystack_tracing.tracer.is_content_tracing_enabled = self.content_tracing
        trace._TRACER_PROVIDER = otel_provider if self.backend == "otel" else None  # noqa: SLF001


def make_configs() -> list[Config]:
    from core.settings import load_settings

    def settings(**overrides: Any) -> Any:
        return load_settings(powertools_dev=False, haystack_content_tracing_enabled=False, **overrides)

    return [
        Config("baseline", settings(log_level="WARNING", powertools_metrics_disabled=True)),
        Config("logs", settings(log_level="INFO", powertools_metrics_disabled=True)),
        Config("logs+metrics", settings(log_level="INFO", powertools_metrics_disabled=False)),
        Config(
            "logs+metrics+xray", settings(log_level="INFO", powertools_metrics_disabled=False, tracing_backend="xray")
        ),
        Config(
            "logs+metrics+otel", settings(log_level="INFO", powertools_metrics_disabled=False, tracing_backend="otel")
        ),
    ]


def build(config: Config, store: Any, sink: io.TextIOBase, otel_provider: Any) -> None:
    """Build the container as ``core.runtime.boot`` and ``handlers/api.py`` do, its log handler writing to ``sink``."""
    from haystack import tracing as haystack_tracing
    from mangum import Mangum
    from opentelemetry import trace

    from core.api.app import create_app
    from core.observability.logs import configure_logging
    from core.runtime.container import build_runtime

    trace._TRACER_PROVIDER = otel_provider if config.backend == "otel" else None  # noqa: SLF001 - as activate()
    config.powertools_logger = configure_logging(config.settings, stream=sink)
    runtime = build_runtime(config.settings, store=store)
    runtime.telemetry.logger = config.powertools_logger
    asgi_handler = Mangum(create_app(runtime), lifespan="off", api_gateway_base_path=runtime.settings.api_base_path)
    entry = runtime.telemetry.lambda_handler(asgi_handler)
    if config.backend == "otel":
        # The ADOT Lambda wrapper flushes the tracer provider at the end of every invocation.
        def flushed(event: dict, context: Any) -> dict:
            try:
                return entry(event, context)
            finally:
                otel_provider.force_flush()

        config.handler = flushed
    else:
        config.handler = entry
    config.runtime = runtime
    config.haystack_tracer = haystack_tracing.tracer.actual_tracer
    config.content_tracing = haystack_tracing.tracer.is_content_tracing_enabled


def counting_emitter(configs: list[Config], daemon: UdpDaemon) -> Any:
    """Check that X-Ray really traces here, and put a counting UDP emitter into the SDK's recorder."""
    import aws_xray_sdk
    from aws_xray_sdk.core import xray_recorder
    from aws_xray_sdk.core.emitters.udp_emitter import UDPEmitter

    tracer = next(c for c in configs if c.backend == "xray").runtime.telemetry.tracing.tracer
    if tracer.disabled or not aws_xray_sdk.global_sdk_config.sdk_enabled():
        sys.exit("the Powertools tracer is disabled: the xray configuration would measure nothing")
    if type(xray_recorder.context).__name__ != "LambdaContext":
        sys.exit(f"the X-Ray recorder uses {type(xray_recorder.context).__name__}, not the SDK's LambdaContext")

    class CountingEmitter(UDPEmitter):
        """The SDK's UDP emitter (serialize + sendto), counting what it sends; captures documents on demand."""

        sent = 0
        capture: list[dict] | None = None

        def send_entity(self, entity: Any) -> None:
            self.sent += 1
            super().send_entity(entity)
            if self.capture is not None:
                self.capture.append(json.loads(entity.serialize()))

    emitter = CountingEmitter(daemon.address)
    xray_recorder.configure(emitter=emitter)
    return emitter


class Requests:
    """The events, a Lambda context, and one invocation with its checks."""

    def __init__(self) -> None:
        self.context = LambdaContext()
        self.queries = list(QUERIES)
        self.events = {
            "search_miss": [
                rest_event("POST", "/pipelines/search/run", {"query": q, "top_k": 5}, f"obs-miss-{i}", NO_CACHE)
                for i, q in enumerate(self.queries)
            ],
            "search_hit": [rest_event("POST", "/pipelines/search/run", {"query": HIT_QUERY, "top_k": 5}, "obs-hit")],
            "health": [rest_event("GET", "/health", None, "obs-health")],
        }

    def invoke(self, config: Config, kind: str, index: int) -> float:
        """Milliseconds of one invocation; exits on an unexpected answer."""
        event = self.events[kind][index % len(self.events[kind])]
        os.environ[TRACE_HEADER_ENV] = new_trace_header()  # set by the Lambda runtime before the handler runs
        started = time.perf_counter()
        response = config.handler(event, self.context)
        elapsed = (time.perf_counter() - started) * 1000
        cache = response.get("headers", {}).get("x-cache")
        if response["statusCode"] != 200 or cache != EXPECTED_CACHE[kind]:
            sys.exit(f"{config.name} {kind}: {response['statusCode']} x-cache={cache} {response.get('body')}")
        return elapsed


def tree(nodes: list[tuple[str, str | None, str, Any]]) -> str:
    """``parent(child, child)`` from (id, parent id, name, start) tuples; roots are nodes without a known parent."""
    ids = {n[0] for n in nodes}
    children: dict[str | None, list] = {}
    for node in sorted(nodes, key=lambda n: n[3]):
        children.setdefault(node[1] if node[1] in ids else None, []).append(node)

    def render(node: tuple) -> str:
        kids = children.get(node[0], [])
        return node[2] + (f"({', '.join(render(k) for k in kids)})" if kids else "")

    return " | ".join(render(n) for n in children.get(None, []))


def xray_nodes(document: dict, parent: str | None = None) -> list[tuple]:
    """Every subsegment of an emitted X-Ray document (a streamed subsegment names its ``parent_id``)."""
    out = [(document["id"], document.get("parent_id", parent), document["name"], document.get("start_time", 0))]
    for child in document.get("subsegments", []):
        out += xray_nodes(child, document["id"])
    return out


def xray_annotations(document: dict, name: str) -> dict | None:
    """The annotations of the subsegment called ``name`` in an emitted X-Ray document."""
    if document.get("name") == name:
        return document.get("annotations", {})
    for child in document.get("subsegments", []):
        if (found := xray_annotations(child, name)) is not None:
            return found
    return None


def trace_facts(documents: list[dict], spans: list[dict]) -> dict:
    """The X-Ray subsegment tree or the OpenTelemetry span tree of one request."""
    facts: dict[str, Any] = {"xray_packets": len(documents), "otel_spans": len(spans)}
    if documents:
        nodes = [n for d in documents for n in xray_nodes(d)]
        facts["xray"] = {
            "subsegments": len(nodes),
            "tree": tree(nodes),
            "handler_annotations": next(
                (a for d in documents if (a := xray_annotations(d, "## handler")) is not None), None
            ),
            "trace_ids": sorted({d.get("trace_id") for d in documents}),
        }
    if spans:
        nodes = [
            (
                s["context"]["span_id"],
                s["parent_id"],
                s["name"] + (f"[{c}]" if (c := s["attributes"].get("haystack.component.name")) else ""),
                s["start_time"],
            )
            for s in spans
        ]
        facts["otel"] = {"tree": tree(nodes), "trace_ids": sorted({s["context"]["trace_id"] for s in spans})}
    return facts


@dataclass
class Rig:
    """Where the containers' output goes: the stdout sink, the OpenTelemetry provider and exporter, X-Ray's UDP."""

    sink: Any
    provider: Any
    exporter: SerializingExporter
    emitter: Any
    daemon: UdpDaemon


def verify(configs: list[Config], requests: Requests, rig: Rig) -> dict:
    """What one request of each kind writes and traces, per container."""
    sink, provider, exporter, emitter = rig.sink, rig.provider, rig.exporter, rig.emitter
    provider.force_flush()
    verification: dict[str, dict] = {}
    for config in configs:
        config.activate(provider)
        facts: dict[str, Any] = {}
        for kind in KINDS:
            buffer = io.StringIO()
            config.powertools_logger.logger_handler.setStream(buffer)
            emitter.capture, exporter.capture = [], []
            try:
                with contextlib.redirect_stdout(buffer):
                    requests.invoke(config, kind, 0)
            finally:
                config.powertools_logger.logger_handler.setStream(sink)
            provider.force_flush()  # spans of any other container would show here
            lines = [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]
            facts[kind] = {
                "audit_lines": sum(1 for line in lines if line.get("audit") is True),
                "emf_documents": sum(1 for line in lines if "_aws" in line),
                "other_lines": [line.get("message") for line in lines if "_aws" not in line and not line.get("audit")],
                "bytes": len(buffer.getvalue().encode()),
                **trace_facts(emitter.capture, exporter.capture),
            }
        emitter.capture, exporter.capture = None, None
        verification[config.name] = facts
    return verification


def problems_in(verification: dict, configs: list[Config]) -> list[str]:
    """The baseline writes nothing, logs write one audit line, metrics add EMF, only the tracers trace."""
    problems = []
    for config in configs:
        miss = verification[config.name]["search_miss"]
        if config.name == "baseline" and miss["bytes"]:
            problems.append(f"baseline wrote {miss['bytes']} bytes: {miss['other_lines']}")
        if config.name != "baseline" and miss["audit_lines"] != 1:
            problems.append(f"{config.name}: {miss['audit_lines']} audit lines per request")
        if ("metrics" in config.name) != (miss["emf_documents"] > 0):
            problems.append(f"{config.name}: {miss['emf_documents']} EMF documents")
        if (config.backend == "xray") != bool(miss["xray_packets"]) or (config.backend == "otel") != bool(
            miss["otel_spans"]
        ):
            problems.append(f"{config.name}: {miss['xray_packets']} X-Ray packets, {miss['otel_spans']} spans")
    xray = verification["logs+metrics+xray"]["search_miss"].get("xray", {})
    if xray.get("subsegments", 0) < 3 or "haystack.pipeline.run(" not in xray.get("tree", ""):
        problems.append(f"no X-Ray subsegment tree: {xray}")
    otel = verification["logs+metrics+otel"]["search_miss"].get("otel", {})
    if "haystack.pipeline.run(" not in otel.get("tree", ""):
        problems.append(f"no OpenTelemetry span tree: {otel}")
    return problems


def measure(configs: list[Config], requests: Requests, rig: Rig) -> None:
    """Request by request: each kind through every container, the containers' order rotated every step."""
    sink, provider, exporter, emitter = rig.sink, rig.provider, rig.exporter, rig.emitter
    for step in range(STEPS):
        shift = step % len(configs)
        for kind in KINDS:
            for config in configs[shift:] + configs[:shift]:
                config.activate(provider)
                position, sent, spans = sink.tell(), emitter.sent, exporter.spans
                config.samples[kind].append(requests.invoke(config, kind, step))
                provider.force_flush()  # spans of a container that should not trace would show here
                config.requests += 1
                config.stdout_bytes += sink.tell() - position
                config.xray_packets += emitter.sent - sent
                config.otel_spans += exporter.spans - spans
        rig.daemon.drain()


def report(configs: list[Config], verification: dict, extra: dict) -> dict:
    """Print the table and the checks; return the results document."""
    base = configs[0]
    header = f"{'config':<18}" + "".join(f"| {kind:<12} p50 / p99 ms  x base  +ms p50 " for kind in KINDS)
    print(header)
    print("-" * len(header))
    results: dict[str, Any] = {"configs": {}, **extra, "verification": verification}
    for config in configs:
        entry: dict[str, Any] = {
            "tracing_backend": config.backend,
            "log_level": config.settings.log_level,
            "metrics_enabled": config.runtime.telemetry.metrics.enabled,
            "stdout_bytes_per_request": round(config.stdout_bytes / config.requests, 1),
            "xray_packets_measured": config.xray_packets,
            "otel_spans_measured": config.otel_spans,
        }
        row = f"{config.name:<18}"
        for kind in KINDS:
            stats, base_stats = summary(config.samples[kind]), summary(base.samples[kind])
            stats["ratio_p50"] = round(stats["p50_ms"] / base_stats["p50_ms"], 3)
            stats["ratio_p99"] = round(stats["p99_ms"] / base_stats["p99_ms"], 3)
            stats["added_p50_ms"] = round(stats["p50_ms"] - base_stats["p50_ms"], 3)
            entry[kind] = stats
            row += (
                f"| {stats['p50_ms']:>8.3f} / {stats['p99_ms']:<8.3f} "
                f"{stats['ratio_p50']:>5.2f}x {stats['added_p50_ms']:>+7.3f} "
            )
        results["configs"][config.name] = entry
        print(row)
    print()
    print(
        f"n={STEPS} per cell: request by request, each kind through every container in an order rotated each "
        "step; x base and +ms are vs baseline at p50."
    )
    print(
        f"search_miss: Cache-Control: no-cache, {len(QUERIES)} rotating queries (x-cache BYPASS: the pipeline "
        f"runs); search_hit: {HIT_QUERY!r} without the header (x-cache HIT-L1)."
    )
    print(
        "stdout + log bytes per request: " + ", ".join(f"{c.name} {c.stdout_bytes / c.requests:.0f}" for c in configs)
    )
    for config in configs:
        facts = verification[config.name]
        print(
            f"checked {config.name}: "
            + "; ".join(
                f"{kind} {facts[kind]['audit_lines']} audit + {facts[kind]['emf_documents']} EMF"
                + (
                    f" + {len(facts[kind]['other_lines'])} other {sorted(set(facts[kind]['other_lines']))}"
                    if facts[kind]["other_lines"]
                    else ""
                )
                for kind in KINDS
            )
        )
    xray = verification["logs+metrics+xray"]
    print(
        "X-Ray packets per request: "
        + ", ".join(f"{kind} {xray[kind]['xray_packets']}" for kind in KINDS)
        + f"; the subsegments of a search miss ({xray['search_miss']['xray']['subsegments']}):"
    )
    print(f"  {xray['search_miss']['xray']['tree']}")
    print(f"  '## handler' annotations: {xray['search_miss']['xray']['handler_annotations']}")
    print(
        f"X-Ray while timed: {extra['xray']['packets_sent_timed']} packets sent, "
        f"{extra['xray']['packets_received_timed']} received by the socket ({extra['xray']['bytes_received_timed']} "
        "bytes); the other containers sent " + str(sum(c.xray_packets for c in configs if c.backend != "xray"))
    )
    otel = verification["logs+metrics+otel"]
    print("OpenTelemetry spans per request: " + ", ".join(f"{kind} {otel[kind]['otel_spans']}" for kind in KINDS))
    miss = otel["search_miss"]["otel"]
    print(f"  search miss, {len(miss['trace_ids'])} trace id(s): {miss['tree']}")
    print(
        f"OpenTelemetry while timed: {extra['otel']['spans_timed']} spans serialized (BatchSpanProcessor, "
        "force_flush per invocation, exporter = ReadableSpan.to_json(), nothing sent); the other containers "
        + str(sum(c.otel_spans for c in configs if c.backend != "otel"))
    )
    return results


def main() -> int:
    require_snapshot()
    if "aws_xray_sdk.core" in sys.modules:
        sys.exit("the X-Ray SDK was imported before LAMBDA_TASK_ROOT was set")
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from core.store.load import load_store

    configs = make_configs()
    daemon = UdpDaemon()
    exporter = SerializingExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": configs[0].settings.powertools_service_name}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # OtelTracing requires a configured global provider; activate() toggles it

    sink_file = tempfile.NamedTemporaryFile("w", prefix="bench-observability-", suffix=".log", buffering=1)  # noqa: SIM115
    sink = sink_file.file
    requests = Requests()
    started = time.perf_counter()
    with contextlib.redirect_stdout(sink):
        store = load_store(configs[0].settings)
        for config in configs:
            build(config, store, sink, provider)
    init_s = time.perf_counter() - started
    emitter = counting_emitter(configs, daemon)

    # Warm every container (the first call also pays Powertools' cold start; the hit fills each L1).
    with contextlib.redirect_stdout(sink):
        for config in configs:
            config.activate(provider)
            for kind in KINDS:
                for i in range(3):
                    requests.invoke(config, kind, i)
    provider.force_flush()
    daemon.drain()

    rig = Rig(sink, provider, exporter, emitter, daemon)
    verification = verify(configs, requests, rig)
    daemon.drain()
    if problems := problems_in(verification, configs):
        sys.exit("verification failed: " + "; ".join(problems))

    daemon.packets = daemon.bytes = 0
    started = time.perf_counter()
    with contextlib.redirect_stdout(sink):
        measure(configs, requests, rig)
    measured_s = time.perf_counter() - started
    daemon.drain()
    sink_bytes = os.path.getsize(sink_file.name)
    sink_file.close()
    for config in configs:
        if (config.backend == "xray") != bool(config.xray_packets) or (config.backend == "otel") != bool(
            config.otel_spans
        ):
            sys.exit(f"{config.name} traced wrongly: {config.xray_packets} X-Ray packets, {config.otel_spans} spans")

    xray_config = next(c for c in configs if c.backend == "xray")
    otel_config = next(c for c in configs if c.backend == "otel")
    extra = {
        "steps": STEPS,
        "search_miss": "Cache-Control: no-cache, rotating queries: x-cache BYPASS, the pipeline runs",
        "search_hit": f"{HIT_QUERY!r} without the header, warmed: x-cache HIT-L1",
        "xray": {
            "setup": "LAMBDA_TASK_ROOT set (the SDK's LambdaContext; Powertools' tracer enabled); _X_AMZN_TRACE_ID "
            "with Sampled=1 and a new trace id per invocation; the SDK's UDP emitter to a bound socket read only "
            "between timed requests",
            "packets_sent_timed": xray_config.xray_packets,
            "packets_received_timed": daemon.packets,
            "bytes_received_timed": daemon.bytes,
        },
        "otel": {
            "setup": "SDK TracerProvider, global only while the otel container serves; BatchSpanProcessor flushed "
            "after every invocation (as the ADOT Lambda wrapper does); the exporter serializes each span with "
            "ReadableSpan.to_json() and sends nothing",
            "spans_timed": otel_config.otel_spans,
        },
        "stdout_sink": "one line-buffered temporary file on local disk, for stdout (EMF) and the log handler",
        "stdout_sink_bytes_total": sink_bytes,
        "init_s": round(init_s, 1),
        "measured_s": round(measured_s, 1),
    }
    results = report(configs, verification, extra)
    print(f"init of {len(configs)} containers {init_s:.1f} s, timed requests {measured_s:.1f} s")
    write_result("observability", results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
