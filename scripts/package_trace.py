"""Run the real app once and print which modules it imported (the import trace of ``make package``).

``scripts/package.py`` runs this in a fresh dev-venv interpreter per ``GENERATOR`` mode, with
``src/`` on ``PYTHONPATH``. It imports ``handlers.api`` as Lambda's init does and serves every sample
event in ``events/`` plus the other routes through the Lambda handler, so that lazy imports on the
request path (the generator's client, OpenAPI generation, error handlers) are seen as well.

Then it imports the modules named in ``TRACE_IMPORTS`` (comma-separated): features behind settings
that the sample events cannot switch on here (see ``CONFIGURED_IMPORTS`` in package.py).

For ``openai`` and ``bedrock`` a stub server on loopback answers like the real backend, so the rag
pipeline runs its success path (parsing a real-shaped reply) without leaving this machine. Bedrock is
pointed at it with ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``.

Every file the process opens from Python is recorded by an audit hook (``open`` events: imported modules,
and data files read without an import, like botocore's service models). Files opened by native code do
not raise that event (``tokenizers`` and ``safetensors`` read the WordLlama files from Rust): packages
located with ``importlib.util.find_spec`` (how ``core.components.wordllama`` finds those files) and files mapped
into the process (``/proc/self/maps``: shared libraries, mmapped weights) are recorded too. Files under
site-packages are mapped to their distribution by its RECORD. A distribution counts as used when a file
of it outside its ``.dist-info`` was opened (metadata lookups alone do not need its code).

Sources read at run time: a ``.py`` file opened by anything but the import system (``inspect.getsource``
through ``linecache``, a package reading its own file as data) is recorded in ``source_reads`` with who
asked (the innermost frame outside the standard library) and through which standard-library modules
(``via``). ``make package`` keeps the sources of the distributions whose files are read that way, and
ships the others as bytecode only; a read made only to display a traceback or a warning (``via``
``traceback`` or ``warnings``) is reported but needs no sources.

Output, on the last line of stdout: ``{"mode", "statuses", "dists": {name: version}, "files": [...],
"source_reads": {file: {"by": ..., "via": [...]}}}``, files relative to site-packages.
"""

import copy
import importlib.metadata
import importlib.util
import json
import os
import sys
import sysconfig
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"


class _StubBackend(BaseHTTPRequestHandler):
    """Answers an OpenAI-compatible ``/v1/models`` + ``/v1/chat/completions`` and Bedrock ``converse``."""

    def _reply(self, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._reply({"object": "list", "data": [{"id": "stub", "object": "model", "owned_by": "trace"}]})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        request = json.loads(self.rfile.read(length) or b"{}")
        if self.path.endswith("/converse"):
            self._reply(
                {
                    "output": {"message": {"role": "assistant", "content": [{"text": "Use json.loads."}]}},
                    "stopReason": "end_turn",
                    "usage": {"inputTokens": 10, "outputTokens": 3, "totalTokens": 13},
                    "metrics": {"latencyMs": 1},
                }
            )
            return
        self._reply(
            {
                "id": "chatcmpl-trace",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": request.get("model", "stub"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "Use json.loads."},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13},
            }
        )

    def log_message(self, *args: object) -> None:
        """Quiet."""


class _Context:
    """The attributes Lambda's Python runtime gives a handler's context."""

    function_name = "ApiFunction"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:ApiFunction"
    memory_limit_in_mb = 1024
    log_group_name = "/aws/lambda/ApiFunction"
    log_stream_name = "trace"

    def __init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


def _start_stub(mode: str) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StubBackend)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    if mode == "openai":
        os.environ["OPENAI_BASE_URL"] = f"{base}/v1"
        os.environ["OPENAI_MODEL"] = "stub"
    elif mode == "bedrock":
        # Dummy credentials: the only endpoint is the loopback stub.
        dummy = "trace"
        os.environ.update(
            AWS_ENDPOINT_URL_BEDROCK_RUNTIME=base,
            AWS_ACCESS_KEY_ID=dummy,
            AWS_SECRET_ACCESS_KEY=dummy,
            AWS_DEFAULT_REGION="us-east-1",
            AWS_MAX_ATTEMPTS="1",
        )


def _rest_event(template: dict, method: str, path: str, body: str | None = None) -> dict:
    event = copy.deepcopy(template)
    event.update(httpMethod=method, path=path, body=body, pathParameters={"proxy": path.lstrip("/")})
    event["requestContext"] = {**event["requestContext"], "httpMethod": method, "path": f"/v1{path}"}
    return event


def _events() -> list[tuple[str, dict]]:
    """Every sample API Gateway event, then the routes no sample covers (REST v1 shape).

    The indexer's SQS events (``events/indexer/``) are not API events; its modules are in CONFIGURED_IMPORTS.
    """
    samples = sorted(p for p in EVENTS.rglob("*.json") if "indexer" not in p.relative_to(EVENTS).parts)
    events = [(str(p.relative_to(ROOT)), json.loads(p.read_text())) for p in samples]
    base = json.loads((EVENTS / "api-query.json").read_text())
    extra = [
        ("GET", "/ready", None),
        ("GET", "/pipelines", None),
        ("GET", "/openapi.json", None),
        ("GET", "/docs", None),
        ("POST", "/pipelines/rag/run", json.dumps({"query": "how do I parse JSON", "top_k": 2})),
        ("POST", "/query", json.dumps({"text": ""})),
        ("POST", "/query", "{not json"),
        ("GET", "/missing", None),
    ]
    events += [
        (f"{i}: {method} {path}", _rest_event(base, method, path, body)) for i, (method, path, body) in enumerate(extra)
    ]
    return events


def _canonical(name: str) -> str:
    return "-".join(part for part in name.lower().replace("_", "-").replace(".", "-").split("-") if part)


_STDLIB = Path(sysconfig.get_paths()["stdlib"]).resolve()


def _source_reader() -> dict | None:
    """Who opened a .py file now, if not the import system: ``{"by": file, "via": [stdlib modules]}``."""
    via: list[str] = []
    frame = sys._getframe(2)  # noqa: SLF001 (skip this function and the audit hook; cheap, no inspect import)
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename.startswith("<frozen importlib"):
            return None  # an import (or compiling the module for one)
        if filename.startswith("<"):
            module = filename.strip("<>").removeprefix("frozen ")
        else:
            path = Path(filename)
            if not path.is_relative_to(_STDLIB) or "site-packages" in path.parts:
                return {"by": filename, "via": via}
            module = path.stem
        if not via or via[-1] != module:
            via.append(module)
        frame = frame.f_back
    return {"by": "?", "via": via}


def _used(opened: set[str]) -> tuple[dict[str, str], list[str]]:
    """Distributions (name → version) and site-packages files (relative) among ``opened``."""
    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    owners: dict[str, tuple[str, str, bool]] = {}
    for dist in importlib.metadata.distributions():
        name = _canonical(dist.metadata["Name"] or "")
        for entry in dist.files or []:
            rel = Path(entry).as_posix()
            owners[rel] = (name, dist.version, rel.split("/")[0].endswith(".dist-info"))
    dists: dict[str, str] = {}
    files: set[str] = set()
    for raw in opened:
        path = Path(raw).resolve()
        if not path.is_relative_to(site) or not path.is_file():
            continue
        if path.suffix == ".pyc" and path.parent.name == "__pycache__":
            path = Path(importlib.util.source_from_cache(str(path)))
        rel = path.relative_to(site).as_posix()
        files.add(rel)
        owner = owners.get(rel)
        if owner and not owner[2]:
            dists[owner[0]] = owner[1]
    return dists, sorted(files)


def _record_found_specs(opened: set[str]) -> None:
    """Wrap ``importlib.util.find_spec``: a package located without an import counts as used."""
    find_spec = importlib.util.find_spec

    def recording_find_spec(name: str, package: str | None = None) -> object:
        spec = find_spec(name, package)
        if spec is not None and spec.origin and spec.has_location:
            opened.add(spec.origin)
        return spec

    importlib.util.find_spec = recording_find_spec


def _mapped_files() -> set[str]:
    """Files mapped into this process now (shared libraries, mmapped data)."""
    maps = Path("/proc/self/maps")
    if not maps.exists():
        return set()
    fields = (line.split(None, 5) for line in maps.read_text().splitlines())
    return {f[5].strip() for f in fields if len(f) == 6 and f[5].startswith("/")}


def _site_relative(reads: dict[str, dict]) -> dict[str, dict]:
    """``reads`` of files under site-packages, keyed by their path relative to it; ``by`` made relative too."""
    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    out = {}
    for raw, reader in reads.items():
        path = Path(raw).resolve()
        if path.is_relative_to(site) and path.is_file():
            by = Path(reader["by"]).resolve() if reader["by"] != "?" else None
            label = reader["by"]
            for base, prefix in ((site, ""), (ROOT, "project:")):
                if by is not None and by.is_relative_to(base):
                    label = prefix + by.relative_to(base).as_posix()
                    break
            out[path.relative_to(site).as_posix()] = {**reader, "by": label}
    return out


def main() -> int:
    opened: set[str] = set()
    source_reads: dict[str, dict] = {}

    def record(event: str, args: tuple) -> None:
        if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
            path = os.fsdecode(args[0])
            opened.add(path)
            if path.endswith(".py") and path not in source_reads:
                reader = _source_reader()
                if reader is not None:
                    source_reads[path] = reader

    sys.addaudithook(record)
    _record_found_specs(opened)
    mode = os.environ.get("GENERATOR", "none")
    if mode != "none":
        _start_stub(mode)
    # Imported here, not at the top: the point is what importing the handler pulls in.
    import handlers.api

    statuses = {}
    for name, event in _events():
        response = handlers.api.handler(event, _Context())
        statuses[name] = response.get("statusCode")
    # Imports behind settings the events cannot enable here (package.py's CONFIGURED_IMPORTS).
    for module in filter(None, os.environ.get("TRACE_IMPORTS", "").split(",")):
        importlib.import_module(module)
    for module in list(sys.modules.values()):
        if getattr(module, "__file__", None):
            opened.add(module.__file__)
    opened.update(_mapped_files())
    dists, files = _used(opened)
    report = {"mode": mode, "statuses": statuses, "dists": dists, "files": files}
    print(json.dumps({**report, "source_reads": _site_relative(source_reads)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
