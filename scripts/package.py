"""Build the Lambda deploy artifact (``make package``): function code + three dependency layers, for the target.

The target is Lambda's python3.13 on ``--arch`` (arm64 default, or x86_64). Output, by default in ``dist/``::

    dist/function/               handlers/, core/, pipelines/*.y*ml, data/stdlib.snapshot, sources + bytecode
    dist/layer-app/python/       the pinned dependencies but those of the other parts, trimmed, bytecode, marker
    dist/layer-numeric/python/   numpy, tokenizers, safetensors, wordllama, bm25s (NUMERIC_DISTS), the same way
    dist/layer-pgvector/python/  pgvector-haystack, pgvector, psycopg, psycopg-binary (PGVECTOR_DISTS), the same way
    dist/function.zip            the trees zipped (deterministic order and timestamps, deflate 9)
    dist/layer-app.zip           (a layer zip's members start with python/, as Lambda layers need)
    dist/layer-numeric.zip
    dist/layer-pgvector.zip
    dist/sizes.json              every zip against 50 MB; each deployment's total (DEPLOYMENTS) against its budget

Layer parts, one Lambda layer each (LAYER_PARTS), split by distribution so that no file is in two:

- ``app`` (DependencyLayer) and ``numeric`` (NumericLayer): ApiFunction and IndexerFunction always attach
  both; two, because one zip of them all is over the 50 MB a zip may have when uploaded directly.
- ``pgvector`` (PgvectorLayer): what only ``DOCUMENT_STORE=pgvector`` imports, above all psycopg-binary's
  bundled libpq and OpenSSL (10.8 MB on x86_64, 13.5 MB on arm64). The template attaches it only with
  ``DocumentStore=pgvector``, so the default artifact (function + app + numeric) keeps to issue 3's 150 MB.

Lambda extracts a function's layers into the same /opt, so the python/ folders merge into /opt/python and
the app sees one site-packages folder, as before. Lambda's 250 MB limit counts the function and all its
layers unzipped (and allows 5 layers: app, numeric, pgvector and the ADOT layer of TracingBackend=otel fit).
The size report holds each deployment to its budget: the default one (function + app + numeric) to issue
3's 150 MB, the pgvector one (function + all three) to Lambda's 250 MB.

``sam build`` builds each part alone into its ARTIFACTS_DIR (``--only function --into DIR``, ``--only layer
--part app|numeric|pgvector --into DIR``): src/Makefile, layers/deps/Makefile (DependencyLayer, the app
part), layers/numeric/Makefile (NumericLayer) and layers/pgvector/Makefile (PgvectorLayer) call this
script, so ``sam deploy`` ships the same trees.

The check that the artifact runs (``verify``, when the build is for this machine's architecture) runs the
app from the built trees stacked as each deployment stacks them (DEPLOYMENTS): function + app + numeric
serves every sample event in every GENERATOR mode and imports every CONFIGURED_IMPORTS module but those
only the pgvector layer provides (PART_IMPORTS); function + all three layers serves the events again
(GENERATOR=none: the other modes differ only in code of the app part, checked by the first run) and
imports every configured module, ``core.store.pgvector``, psycopg and its libpq among them.

Steps of the layers: ``pip install --target`` with the Lambda platform's wheels (``--platform``,
``--python-version 3.13``, ``--only-binary=:all:``; the install is cached under ``.cache/package/``
keyed by the requirements, the platform and pip's version) → an import trace of the real app in the
dev venv (``scripts/package_trace.py``, once per GENERATOR mode) → trimming rules, each justified
below, none of which deletes a file the trace saw imported or opened → the split into parts, by
distribution → a marker file per part → bytecode.

Bytecode: compiled by python3.13 (the target's magic number) with ``--invalidation-mode
unchecked-hash``: Lambda's unzip gives files new mtimes, so timestamp-checked .pyc would be stale,
and the code directories are read-only, so Python could not rewrite them: without valid bytecode
every cold start compiles everything again (2.4-2.8 s instead of 0.7-0.8 s, FIELD-NOTES).

Sources (``--sources auto``, the default): the function keeps its .py files (the project's code: its
tracebacks and FastAPI's endpoint context read them). A dependency ships as legacy bytecode only
(``foo.pyc`` in place of ``foo.py``; Python imports it without a source) unless it needs its sources at
run time. Measured on x86_64: 37 MB less unzipped and 10 MB less zipped than ``--sources all``.
Which distributions need them:

- the import trace records every .py file opened by anything but the import system, and who asked
  (``source_reads``): the distribution owning such a file keeps its sources. A read made only to
  print a traceback or a warning (through ``traceback`` or ``warnings``) does not count;
- ``KEEP_SOURCES`` names the known cases, whatever the trace sees (anyio);
- a static scan looks for source-reading calls (``inspect.getsource``, ``getsourcelines``,
  ``findsource``, ``linecache``) in every distribution about to lose its sources: each one found was
  reviewed and is explained in ``SOURCE_READS_REVIEWED``, and a new one stops the build until it is.

What is lost without sources: the source lines in tracebacks of frames inside those packages (file,
line and function stay). ``--sources all`` keeps every .py (tracebacks with source everywhere).

Measured and not done: stripping the DWARF debug sections (``strip --strip-debug``) of the 11
extension modules that carry them (aiohttp's 4, multidict's 2, propcache, frozenlist, PyYAML, wrapt,
markupsafe) would save 10 MB on either architecture, and the stripped x86_64 artifact served every
sample event here; but the libraries ship those sections on purpose (aiohttp's maintainers declined
to strip them by default, aiohttp#6399), stripping numpy's bundled libraries has broken numpy in
Lambda layers before (awslabs/aws-data-wrangler#884), and arm64 builds cannot run on this machine to
be checked. Nothing is stripped.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import functools
import hashlib
import io
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "layers" / "deps" / "requirements.txt"
SNAPSHOT = ROOT / "data" / "stdlib.snapshot"
TRACE_SCRIPT = ROOT / "scripts" / "package_trace.py"
CACHE = ROOT / ".cache" / "package"

PYTHON_VERSION = "3.13"
ARCHES = ("arm64", "x86_64")
# Lambda's python3.13 runs on Amazon Linux 2023 (glibc 2.34): any of these manylinux wheels loads there.
PLATFORMS = {
    "arm64": ("manylinux2014_aarch64", "manylinux_2_28_aarch64", "manylinux_2_34_aarch64"),
    "x86_64": ("manylinux2014_x86_64", "manylinux_2_28_x86_64", "manylinux_2_34_x86_64"),
}
MB = 1024 * 1024
# Lambda quotas: function + all its layers unzipped; a zip uploaded directly (not through S3).
UNZIPPED_LIMIT = 250 * MB
ZIPPED_LIMIT = 50 * MB
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
# Issue 3's target for function + layers unzipped (Lambda's own limit is UNZIPPED_LIMIT).
TARGET_UNZIPPED = 150 * MB
# The layer parts (one Lambda layer each) and the distributions of the parts but app: the native numeric
# libraries and the embedding model (numpy and its OpenBLAS, tokenizers, safetensors, WordLlama's
# weights, bm25s); the pgvector store's (Haystack's integration, pgvector's psycopg adapter, psycopg and
# psycopg-binary with libpq and OpenSSL), imported only with DOCUMENT_STORE=pgvector. Everything else is
# in the app part. Each part's zip must stay under ZIPPED_LIMIT.
LAYER_PARTS = ("app", "numeric", "pgvector")
NUMERIC_DISTS = ("numpy", "tokenizers", "safetensors", "wordllama", "bm25s")
PGVECTOR_DISTS = ("pgvector-haystack", "pgvector", "psycopg", "psycopg-binary")
PART_DISTS = {"numeric": NUMERIC_DISTS, "pgvector": PGVECTOR_DISTS}
# The layers each deployment attaches (template.yaml: PgvectorLayer only with DocumentStore=pgvector) and the
# unzipped budget of function + those layers: issue 3's target for the default, Lambda's limit with pgvector.
DEPLOYMENTS = {
    "default": {"layers": ("app", "numeric"), "when": "DocumentStore=memory", "budget": TARGET_UNZIPPED},
    "pgvector": {"layers": LAYER_PARTS, "when": "DocumentStore=pgvector", "budget": UNZIPPED_LIMIT},
}


def layer_marker(part: str) -> str:
    """The marker file of a layer part (one per part: both land in /opt/python)."""
    return f"haystack_serverless_layer_{part}.json"


# Distributions that keep their .py sources whatever the trace sees, and why. The trace adds any
# distribution whose .py files the app reads at run time (see the module docstring).
KEEP_SOURCES = {
    "anyio": "anyio/_lazyimport.py reads the package's own source (inspect.getsource) to set up its lazy "
    "imports; without it anyio imports every submodule eagerly",
}
# Distributions shipped without sources whose code calls a source-reading API (the static scan finds
# these calls): why it is safe. A call found in a distribution not listed here stops the build.
SOURCE_READS_REVIEWED = {
    "docstring-parser": "attrdoc.add_attribute_docstrings reads a class's source; haystack calls only "
    "parse() on __doc__ strings, which bytecode keeps",
    "fastapi": "routing._extract_endpoint_context reads the endpoint function's source: the app's own "
    "handlers, in the function tree, whose sources stay",
    "lazy-imports": "util.module_source reads a module's source; LazyImporter, what haystack uses, never calls it",
    "posthog": "exception_utils reads source lines of captured exceptions for telemetry, which is off "
    "(HAYSTACK_TELEMETRY_ENABLED=False); without sources the lines are just left out",
    "pydantic": "_docs_extraction reads a model class's source only with use_attribute_docstrings=True; "
    "no model the app builds sets it (the trace would see the read)",
}
# A call that reads source text: inspect.getsource/getsourcelines/findsource, or linecache.<any>(.
SOURCE_READING_CALL = re.compile(r"\b(?:getsource|getsourcelines|findsource)\s*\(|\blinecache\.\w+\s*\(")
# Where the trees land in Lambda: the paths written into the bytecode (what tracebacks show).
LAYER_PREFIX = "/opt/python"
FUNCTION_PREFIX = "/var/task"

# The AWS services this project calls or will call (S3 snapshots, Bedrock, STS/SSO credentials, SSM and
# Secrets Manager settings, DynamoDB idempotency, SQS ingestion, CloudWatch metrics and logs, Lambda
# alias weights, CodeDeploy hooks, ElastiCache; X-Ray: the X-Ray SDK's sampling connector creates its
# client, unused on Lambda, when its recorder is set up under TRACING_BACKEND=xray). botocore needs a
# service's model to create its client: add a service here before calling it. Services the import trace
# opens are kept as well.
AWS_SERVICES = (
    "bedrock",
    "bedrock-runtime",
    "cloudwatch",
    "codedeploy",
    "dynamodb",
    "elasticache",
    "lambda",
    "logs",
    "s3",
    "secretsmanager",
    "sqs",
    "ssm",
    "sso",
    "sso-oidc",
    "sts",
    "xray",
)
# Files at the top of botocore/data that every client reads (endpoint resolution, retries, defaults).
BOTOCORE_DATA_FILES = ("endpoints.json", "partitions.json", "sdk-default-configuration.json", "_retry.json")
SERVICE_MODEL_DIRS = ("botocore/data", "boto3/data")

# GENERATOR modes the import trace runs the app in: every backend's imports are kept.
TRACE_MODES = ("none", "openai", "bedrock")
# The configured imports (below) that only a part other than app and numeric provides: a deployment
# without that layer never imports them (the verify run of the default layers leaves them out).
PART_IMPORTS = {
    "pgvector": (
        "core.store.pgvector",
        "haystack_integrations.document_stores.pgvector",
        "psycopg",
        "pgvector.psycopg",
    ),
}
# Modules the app imports only when a setting enables a feature the sample events cannot reach here.
# The trace imports them after serving the events, so their distributions (and what they import) stay.
# Every pin in layers/deps/requirements.txt must be used by the trace or the build fails: add the
# feature's modules here when a new optional dependency is pinned.
CONFIGURED_IMPORTS = (
    "redis",  # REDIS_URL: the L2 cache client (ElastiCache Serverless, cluster mode)
    "redis.cluster",
    "aws_lambda_powertools.utilities.parameters",  # REDIS_AUTH_SECRET: the cache's credentials
    "core.observability.xray",  # TRACING_BACKEND=xray: Powertools Tracer, the X-Ray SDK and its patches
    "aws_xray_sdk.core",
    "aws_xray_sdk.ext.botocore.patch",
    "aws_xray_sdk.ext.httpx.patch",
    "core.observability.otel",  # TRACING_BACKEND=otel: opentelemetry-haystack over the ADOT layer's SDK
    *PART_IMPORTS["pgvector"],  # DOCUMENT_STORE=pgvector: pgvector-haystack over psycopg (binary libpq)
    "core.ingestion.runtime",  # the indexer function (handlers/indexer.py): the API's trace never imports it
    "core.components.converters",  # its HTML converter; the Haystack components its YAML names:
    "haystack.components.routers.file_type_router",
    "haystack.components.converters.txt",
    "haystack.components.converters.markdown",  # markdown-it-py, mdit-plain
    "haystack.components.converters.pypdf",  # pypdf
    "haystack.components.converters.json",
    "haystack.components.joiners.document_joiner",
    "haystack.components.preprocessors.document_cleaner",
    "haystack.components.preprocessors.document_splitter",
    "aws_lambda_powertools.utilities.batch",  # SQS partial batch responses
    "aws_lambda_powertools.utilities.idempotency.persistence.dynamodb",  # IDEMPOTENCY_TABLE
)


class PackageError(RuntimeError):
    """A build step failed; the message is one line saying what to do."""


_STARTED = time.monotonic()


def _log(message: str) -> None:
    """Print with the time since the start (each step's cost shows in the log)."""
    print(f"[{time.monotonic() - _STARTED:5.1f}s] {message}", flush=True)


def _mb(size: int) -> str:
    return f"{size / MB:.1f} MB"


def _tree_size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _canonical(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return "-".join(part for part in name.lower().replace("_", "-").replace(".", "-").split("-") if part)


def _clean_dir(path: Path) -> None:
    """Empty ``path`` (create it), refusing folders that hold the repository or its sources."""
    path = path.resolve()
    home = Path.home().resolve()
    protected = ROOT.is_relative_to(path) or path == home
    inside_repo = path.is_relative_to(ROOT) and not any(
        path.is_relative_to(ROOT / allowed) for allowed in ("dist", ".aws-sam", ".cache")
    )
    if protected or inside_repo:
        raise PackageError(f"refusing to clean {path}: choose an output folder under dist/ or outside the repository")
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)


# --- the target interpreter ---------------------------------------------------------------------------


def _python_version(executable: str) -> str | None:
    try:
        result = subprocess.run(
            [executable, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except OSError:
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def find_target_python(explicit: str | None = None) -> str:
    """python3.13, to compile bytecode the target accepts: ``--python``, then PATH, then pyenv.

    Raises:
        PackageError: No python3.13 found.
    """
    candidates = [explicit] if explicit else []
    if not explicit:
        on_path = shutil.which(f"python{PYTHON_VERSION}")
        if on_path:
            candidates.append(on_path)
        pyenv = shutil.which("pyenv")
        if pyenv:
            listed = subprocess.run([pyenv, "versions", "--bare"], capture_output=True, text=True, check=False)
            for version in sorted(listed.stdout.split(), reverse=True):
                if version.startswith(f"{PYTHON_VERSION}."):
                    prefix = subprocess.run([pyenv, "prefix", version], capture_output=True, text=True, check=False)
                    candidates.append(str(Path(prefix.stdout.strip()) / "bin" / f"python{PYTHON_VERSION}"))
    for candidate in candidates:
        # A pyenv shim on PATH fails unless 3.13 is selected: ask each candidate what it is.
        if candidate and _python_version(candidate) == PYTHON_VERSION:
            return candidate
    raise PackageError(
        f"python{PYTHON_VERSION} (the Lambda runtime) not found on PATH or in pyenv: "
        f"install it (e.g. pyenv install {PYTHON_VERSION}) or pass --python"
    )


# Run by the target Python: compile the files it is given (JSON on stdin: tree, prefix, [[file, legacy]])
# in parallel, unchecked-hash, with the path of each file in Lambda written into its bytecode.
_COMPILE = """
import compileall, concurrent.futures, json, multiprocessing, os, py_compile, sys
job = json.load(sys.stdin)
def one(item):
    rel, legacy = item
    ok = compileall.compile_file(
        os.path.join(job["tree"], rel), force=True, quiet=1, legacy=legacy,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        stripdir=job["tree"], prependdir=job["prefix"],
    )
    return None if ok else rel
context = multiprocessing.get_context("fork")
with concurrent.futures.ProcessPoolExecutor(os.cpu_count(), mp_context=context) as pool:
    failed = [rel for rel in pool.map(one, job["files"], chunksize=32) if rel]
sys.exit("failed: " + ", ".join(failed[:20]) if failed else 0)
"""


def compile_tree(target_python: str, tree: Path, prefix: str, *, sourceless: set[str] = frozenset()) -> None:
    """Compile every .py under ``tree`` with the target Python (unchecked-hash .pyc).

    A file in ``sourceless`` (paths relative to ``tree``) becomes legacy bytecode in its place
    (``foo.py`` → ``foo.pyc``, the source removed); any other keeps its source and gets
    ``__pycache__/foo.cpython-313.pyc``.

    Raises:
        PackageError: A file failed to compile.
    """
    files = sorted(_rel(p, tree) for p in tree.rglob("*.py"))
    job = {"tree": str(tree), "prefix": prefix, "files": [[rel, rel in sourceless] for rel in files]}
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [target_python, "-S", "-c", _COMPILE],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if result.returncode != 0:
        raise PackageError(f"bytecode compilation failed in {tree}:\n{(result.stdout + result.stderr)[-3000:]}")
    for rel in files:
        if rel in sourceless:
            (tree / rel).unlink()


# --- the import trace ---------------------------------------------------------------------------------


@dataclass
class Trace:
    """What the app used in the dev venv: distributions, site-packages files (relative paths), and the
    .py files it read other than by importing them (file → who asked, through which stdlib modules)."""

    dists: dict[str, str] = field(default_factory=dict)
    files: set[str] = field(default_factory=set)
    source_reads: dict[str, dict] = field(default_factory=dict)


def run_app(
    python: Path | str,
    pythonpath: list[Path],
    what: str,
    flags: tuple[str, ...] = (),
    *,
    modes: tuple[str, ...] = TRACE_MODES,
    imports: tuple[str, ...] = CONFIGURED_IMPORTS,
    **env: str,
) -> dict[str, dict]:
    """Run ``scripts/package_trace.py`` once per GENERATOR mode of ``modes``, in parallel; its report per mode.

    Each run serves every sample event, then imports ``imports`` (a failed import fails the run).

    Raises:
        PackageError: The app failed in a way that leaves part of it unexercised.
    """
    with tempfile.TemporaryDirectory(prefix="package-app-") as home:
        base_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": home,
            "PYTHONPATH": os.pathsep.join(str(p) for p in pythonpath),
            "HAYSTACK_TELEMETRY_ENABLED": "False",
            "LOG_LEVEL": "WARNING",
            "TRACE_IMPORTS": ",".join(imports),
            **env,
        }
        processes = {
            mode: subprocess.Popen(
                [str(python), *flags, str(TRACE_SCRIPT)],
                env={**base_env, "GENERATOR": mode},
                cwd=home,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for mode in modes
        }
        outputs = {mode: process.communicate(timeout=600) for mode, process in processes.items()}
    reports = {}
    for mode, (stdout, stderr) in outputs.items():
        if processes[mode].returncode != 0 or not stdout.strip():
            raise PackageError(f"{what} (GENERATOR={mode}) failed:\n{stderr[-3000:]}")
        report = json.loads(stdout.strip().splitlines()[-1])
        # 503 is rag without a generator (by design); any other 5xx means part of the app did not run.
        failed = {name: status for name, status in report["statuses"].items() if status >= 500 and status != 503}
        if failed:
            raise PackageError(f"{what} (GENERATOR={mode}): the app failed on {failed}:\n{stderr[-3000:]}")
        reports[mode] = report
    return reports


def _trace_key(trace_python: Path) -> str:
    """Hash of everything that decides what the trace sees: code, pipelines, events, modes, the dev venv."""
    digest = hashlib.sha256(json.dumps([TRACE_MODES, CONFIGURED_IMPORTS]).encode())
    inputs = [TRACE_SCRIPT, REQUIREMENTS]
    for folder in (ROOT / "src", ROOT / "pipelines", ROOT / "events"):
        inputs += sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    for path in inputs:
        digest.update(_rel(path, ROOT).encode() + b"\0" + path.read_bytes() + b"\0")
    venv = trace_python.parent.parent
    installed = sorted(p.name for p in venv.glob("lib/python*/site-packages/*.dist-info"))
    digest.update("\n".join(installed).encode())
    return digest.hexdigest()[:16]


def run_trace(trace_python: Path, *, use_cache: bool) -> Trace:
    """The import trace: the app from src/ in the dev venv (same pinned versions), every GENERATOR mode.

    Cached in ``.cache/package/`` by :func:`_trace_key`: any change to the code, pipelines, events or
    the dev venv's distributions runs it again.

    Raises:
        PackageError: The dev venv or the snapshot is missing, or the app failed.
    """
    if not trace_python.exists():
        raise PackageError(f"the import trace runs the app in the dev venv: {trace_python} is missing (make venv)")
    if not SNAPSHOT.is_file():
        raise PackageError(f"{SNAPSHOT.relative_to(ROOT)} is missing: run make index first")
    cached = CACHE / f"trace-{_trace_key(trace_python)}.json"
    if use_cache and cached.is_file():
        data = json.loads(cached.read_text())
        _log(f"  import trace: cached in {cached.relative_to(ROOT)}")
        return Trace(dists=data["dists"], files=set(data["files"]), source_reads=data.get("source_reads", {}))
    trace = Trace()
    for report in run_app(trace_python, [ROOT / "src"], "import trace").values():
        trace.dists.update(report["dists"])
        trace.files.update(report["files"])
        trace.source_reads.update(report["source_reads"])
    CACHE.mkdir(parents=True, exist_ok=True)
    for stale in CACHE.glob("trace-*.json"):
        if stale != cached:
            stale.unlink(missing_ok=True)
    scratch = cached.with_suffix(f".{os.getpid()}.tmp")
    data = {"dists": trace.dists, "files": sorted(trace.files), "source_reads": trace.source_reads}
    scratch.write_text(json.dumps(data, sort_keys=True))
    scratch.replace(cached)
    return trace


def merge_layers(layers: list[Path], dest: Path) -> None:
    """Put the layers' python/ trees together in ``dest``, as Lambda extracts them all into /opt (hard links).

    Raises:
        PackageError: Two layers hold the same file (the later one would silently win in Lambda).
    """
    seen: dict[str, Path] = {}
    for layer in layers:
        for path in sorted(layer.rglob("*")):
            rel = _rel(path, layer)
            if path.is_dir():
                (dest / rel).mkdir(parents=True, exist_ok=True)
                continue
            if rel in seen:
                raise PackageError(f"{rel} is in two layers ({seen[rel]} and {layer})")
            seen[rel] = layer
            os.link(path, dest / rel)


def verify_plan() -> dict[str, dict]:
    """What :func:`verify` runs for each deployment: its layers, GENERATOR modes and configured imports.

    The default layers run every mode and import every configured module but those only a layer they
    lack provides (PART_IMPORTS); a deployment with more layers imports those too. Its GENERATOR modes
    beyond ``none`` would run again only code of the default layers, already run in every mode.
    """
    plan = {}
    for name, deployment in DEPLOYMENTS.items():
        missing = [
            module for part, modules in PART_IMPORTS.items() if part not in deployment["layers"] for module in modules
        ]
        plan[name] = {
            "layers": deployment["layers"],
            "modes": TRACE_MODES if name == "default" else ("none",),
            "imports": tuple(module for module in CONFIGURED_IMPORTS if module not in missing),
        }
    return plan


def verify(out: Path, target_python: str) -> dict[str, dict]:
    """Run the app from the built trees with the target Python, read-only style (no bytecode writes).

    Once per deployment (:func:`verify_plan`), in parallel: its layers are merged into one folder first,
    as Lambda extracts them into /opt/python.

    Returns:
        The plan that ran, per deployment.

    Raises:
        PackageError: The built artifact does not serve the sample events, or an import fails.
    """
    plan = verify_plan()
    with tempfile.TemporaryDirectory(prefix=".verify-", dir=out) as scratch:
        runs = {}
        for name, job in plan.items():
            opt_python = Path(scratch) / name / "python"
            merge_layers([out / f"layer-{part}" / "python" for part in job["layers"]], opt_python)
            # -S: the build machine's interpreter brings its own site-packages and .pth hooks; neither
            # belongs in the check, and a hook must not write into the artifact under test.
            runs[name] = functools.partial(
                run_app,
                target_python,
                [out / "function", opt_python],
                f"the built artifact ({name}: function + {' + '.join(job['layers'])})",
                flags=("-S",),
                modes=job["modes"],
                imports=job["imports"],
                PYTHONDONTWRITEBYTECODE="1",
            )
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(runs)) as pool:
            for done in [pool.submit(run) for run in runs.values()]:
                done.result()
    return plan


def host_arch() -> str:
    """This machine's CPU in Lambda's words (only that architecture's build can run here)."""
    machine = platform.machine().lower()
    return {"aarch64": "arm64", "arm64": "arm64", "x86_64": "x86_64", "amd64": "x86_64"}.get(machine, machine)


# --- the dependency layer -----------------------------------------------------------------------------


def _pip_version() -> str:
    result = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PackageError(f"pip is not available to {sys.executable}: run the script with the dev venv's python")
    return result.stdout.split()[1]


def requirements_sha256() -> str:
    """SHA-256 of layers/deps/requirements.txt (the layer marker records it)."""
    return hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()


def install_dependencies(arch: str, dest: Path, *, use_cache: bool) -> None:
    """``pip install --target`` the requirements for the Lambda platform into ``dest``.

    The pristine install is kept in ``.cache/package/`` keyed by everything that decides its content,
    so a rebuild copies it instead of downloading and unpacking every wheel again.

    Raises:
        PackageError: pip failed (no wheel for the platform, network, ...).
    """
    platforms = PLATFORMS[arch]
    key_text = json.dumps([requirements_sha256(), arch, platforms, PYTHON_VERSION, _pip_version()])
    key = hashlib.sha256(key_text.encode()).hexdigest()[:16]
    cached = CACHE / f"layer-{arch}-{key}"
    if not (use_cache and cached.is_dir()):
        CACHE.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".layer-{arch}-", dir=CACHE))
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        command += ["--target", str(scratch), "--implementation", "cp", "--python-version", PYTHON_VERSION]
        command += [f"--platform={platform}" for platform in platforms]
        # --no-compile: pip would compile with this machine's Python and timestamp checks; we compile later.
        command += ["--only-binary=:all:", "--no-compile", "-r", str(REQUIREMENTS)]
        _log(f"pip install for {arch} ({', '.join(platforms)})")
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            shutil.rmtree(scratch, ignore_errors=True)
            raise PackageError(f"pip install for {arch} failed:\n{result.stderr[-3000:]}")
        for stale in CACHE.glob(f"layer-{arch}-*"):
            if stale != cached:
                shutil.rmtree(stale, ignore_errors=True)
        try:
            scratch.rename(cached)
        except OSError:  # another build (sam builds the layers in parallel) cached the same install first
            shutil.rmtree(scratch, ignore_errors=True)
    else:
        _log(f"pip install for {arch}: cached in {cached.relative_to(ROOT)}")
    shutil.copytree(cached, dest, symlinks=True, dirs_exist_ok=True)


def _dist_infos(site: Path) -> dict[str, Path]:
    infos = {}
    for info in site.glob("*.dist-info"):
        metadata = (info / "METADATA").read_text(encoding="utf-8", errors="replace")
        name = next((line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Name:")), "")
        infos[_canonical(name or info.name.removesuffix(".dist-info").rsplit("-", 1)[0])] = info
    return infos


def _record_files(info: Path) -> set[str]:
    record = info / "RECORD"
    if not record.is_file():
        return set()
    return {line.split(",", 1)[0] for line in record.read_text(encoding="utf-8").splitlines() if line}


def _version(info: Path) -> str:
    for line in (info / "METADATA").read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("Version:"):
            return line.split(":", 1)[1].strip()
    return ""


@dataclass
class Trimmer:
    """Deletes paths under ``site`` rule by rule, never one the trace saw used; counts bytes per rule."""

    site: Path
    used: set[str]
    saved: dict[str, int] = field(default_factory=dict)
    kept: dict[str, list[str]] = field(default_factory=dict)
    unused_dists: list[str] = field(default_factory=list)

    def _in_use(self, rel: str, is_dir: bool) -> bool:
        if rel in self.used:
            return True
        return is_dir and any(u.startswith(rel + "/") for u in self.used)

    def remove(self, rule: str, paths: list[Path]) -> None:
        """Delete ``paths`` (files or folders) for ``rule``, except those in use."""
        total = self.saved.setdefault(rule, 0)
        for path in sorted(set(paths)):
            if not (path.exists() or path.is_symlink()):
                continue
            rel = _rel(path, self.site)
            is_dir = path.is_dir() and not path.is_symlink()
            if self._in_use(rel, is_dir):
                self.kept.setdefault(rule, []).append(rel)
                continue
            if is_dir:
                total += _tree_size(path)
                shutil.rmtree(path)
            else:
                total += path.stat().st_size
                path.unlink()
        self.saved[rule] = total

    def prune_empty_dirs(self) -> None:
        """Remove folders left empty by the rules."""
        for directory in sorted((p for p in self.site.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            if not any(directory.iterdir()):
                directory.rmdir()


def _package_dirs(site: Path, names: tuple[str, ...]) -> list[Path]:
    """Folders with one of ``names`` inside a package (never the top level, never in .dist-info)."""
    found = []
    for path in site.rglob("*"):
        rel = path.relative_to(site)
        if path.is_dir() and path.name in names and len(rel.parts) > 1 and not rel.parts[0].endswith(".dist-info"):
            found.append(path)
    return found


def trim_layer(site: Path, trace: Trace) -> Trimmer:
    """Apply every trimming rule to the installed layer; returns what each saved."""
    trimmer = Trimmer(site, used=trace.files)
    infos = _dist_infos(site)
    present = {rel for rel in trace.files if (site / rel).is_file()}

    # Bytecode shipped inside wheels was compiled by and for other Pythons, with timestamp checks:
    # useless on the target. The layer is compiled afterwards with python3.13.
    trimmer.remove("bytecode from wheels", [*site.rglob("__pycache__"), *site.rglob("*.py[co]")])

    # Console scripts: Lambda puts /opt/bin on PATH, not /opt/python/bin, and their shebangs name the
    # build machine's Python. The app calls none of them.
    trimmer.remove("console scripts (bin/)", [site / "bin"])

    # Distributions the app never imports nor reads a file of, in any GENERATOR mode (import trace).
    # Their .dist-info stays (a few KB; metadata lookups keep answering); files a kept distribution
    # also lists (shared namespace folders) stay.
    unused = sorted(name for name in infos if name not in trace.dists)
    trimmer.unused_dists = unused
    kept_files = set().union(*(_record_files(infos[name]) for name in infos if name in trace.dists))
    doomed = [
        site / rel
        for name in unused
        for rel in _record_files(infos[name]) - kept_files
        if not rel.startswith((infos[name].name + "/", ".."))
    ]
    trimmer.remove("unused distributions", doomed)
    # Their SBOMs (software bills of materials: hf-xet's lists the crates of a binary) describe code the
    # layer no longer ships.
    trimmer.remove("SBOMs of unused distributions", [infos[name] / "sboms" for name in unused])
    trimmer.prune_empty_dirs()

    # Test suites inside packages (numpy, networkx, posthog, ...): never imported by the app; a test
    # folder a package imports at runtime is seen by the trace and kept.
    trimmer.remove("tests inside packages", [*_package_dirs(site, ("tests", "test")), *site.rglob("conftest.py")])

    # Type stubs are read by type checkers only, never by the interpreter.
    stubs = [*site.rglob("*.pyi"), *(p for p in site.glob("*-stubs") if p.is_dir())]
    trimmer.remove("type stubs (*.pyi, *-stubs)", stubs)

    # Documentation and examples shipped inside packages (botocore.docs is imported: the trace keeps it).
    trimmer.remove("docs and examples", _package_dirs(site, ("doc", "docs", "examples", "example", "benchmarks")))

    # Powertools' Swagger UI bundle (JS and CSS, 1.7 MB): read only by the REST resolver of
    # aws_lambda_powertools.event_handler when enable_swagger() serves it offline. The app's API is
    # FastAPI's (its /docs page loads Swagger UI from a CDN) and never imports that resolver; a file the
    # trace saw opened would stay.
    swagger_ui = site / "aws_lambda_powertools" / "event_handler" / "openapi" / "swagger_ui"
    trimmer.remove("Powertools' Swagger UI bundle", [*swagger_ui.glob("*.js"), *swagger_ui.glob("*.css")])

    # Build tools inside numpy: f2py (Fortran wrapper generator, loaded only on access to numpy.f2py) and
    # the PyInstaller hooks. numpy's own hook (numpy/_pyinstaller/hook-numpy.py) leaves f2py out of frozen
    # apps as "building code ... not really dependencies".
    trimmer.remove(
        "numpy build tools (f2py, PyInstaller hook)", [site / "numpy" / "f2py", site / "numpy" / "_pyinstaller"]
    )

    # C headers and Cython sources are for compiling against a package (numpy's include/), not for running.
    sources = [p for pattern in ("*.h", "*.hpp", "*.c", "*.cpp", "*.pyx", "*.pxd") for p in site.rglob(pattern)]
    trimmer.remove("C headers and Cython sources", sources)

    # AWS service models: botocore ships ~400 services; a client needs only its own service's folder and
    # the shared endpoint/retry/default files. Keep the services in AWS_SERVICES and any the trace read.
    models = [
        entry
        for data in SERVICE_MODEL_DIRS
        for entry in (site / data).glob("*")
        if (entry.is_dir() and entry.name not in AWS_SERVICES)
        or (entry.is_file() and data == "botocore/data" and entry.name not in BOTOCORE_DATA_FILES)
    ]
    trimmer.remove("AWS service models not used", models)
    trimmer.prune_empty_dirs()

    # Every file the app used that the install had is still there (the rules' guard at work).
    missing = sorted(rel for rel in present if not (site / rel).is_file())
    if missing:
        raise PackageError(f"trimming removed files the app uses: {missing[:10]}")
    return trimmer


def pinned_names() -> set[str]:
    """Canonical names of the distributions layers/deps/requirements.txt pins."""
    names = set()
    for raw in REQUIREMENTS.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            for stop in "=<>!~[; ":
                line = line.split(stop, 1)[0]
            names.add(_canonical(line))
    return names


def check_versions(site: Path, trace: Trace) -> list[str]:
    """Distributions whose dev-venv version (what the trace ran) differs from the layer's."""
    infos = _dist_infos(site)
    return sorted(
        f"{name}: dev venv {version}, layer {_version(infos[name])}"
        for name, version in trace.dists.items()
        if name in infos and _version(infos[name]) != version
    )


def owners(site: Path) -> dict[str, str]:
    """Which distribution installed each file under ``site`` (relative path → canonical name), by RECORD."""
    owned = {}
    for name, info in _dist_infos(site).items():
        for rel in _record_files(info):
            owned.setdefault(rel, name)
        for path in info.rglob("*"):
            owned[_rel(path, site)] = name
    return owned


@dataclass
class Sources:
    """Which distributions keep their .py files (and why), and which ship as bytecode only."""

    kept: dict[str, str] = field(default_factory=dict)
    sourceless: list[str] = field(default_factory=list)
    reviewed: dict[str, list[str]] = field(default_factory=dict)
    display_only_reads: list[str] = field(default_factory=list)


def _is_display_read(reader: dict) -> bool:
    """A source read made to print a traceback or a warning (the source line is cosmetic there)."""
    return bool({"traceback", "warnings"} & set(reader.get("via", [])))


def _source_reading_calls(site: Path, files: list[str]) -> list[str]:
    """``file:line`` of every source-reading call (SOURCE_READING_CALL) in ``files``, comments aside."""
    hits = []
    for rel in files:
        for number, line in enumerate((site / rel).read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if SOURCE_READING_CALL.search(line) and not line.lstrip().startswith("#"):
                hits.append(f"{rel}:{number}")
    return hits


def choose_sources(site: Path, trace: Trace, owned: dict[str, str], mode: str) -> Sources:
    """Decide, per distribution, whether the layer keeps its .py files (see the module docstring).

    Raises:
        PackageError: A distribution about to lose its sources calls a source-reading API that
            SOURCE_READS_REVIEWED does not explain.
    """
    with_sources = sorted({owned[rel] for rel in owned if rel.endswith(".py") and (site / rel).is_file()})
    if mode == "all":
        return Sources(kept=dict.fromkeys(with_sources, "--sources all"))
    sources = Sources(kept={name: reason for name, reason in KEEP_SOURCES.items() if name in with_sources})
    for rel, reader in sorted(trace.source_reads.items()):
        name = owned.get(rel)
        if name is None or not (site / rel).is_file():
            continue
        if _is_display_read(reader):
            sources.display_only_reads.append(rel)
        else:
            via = " → ".join(reversed(reader.get("via", [])))
            sources.kept.setdefault(name, f"the app reads {rel} at run time ({reader['by']} via {via})")
    sources.sourceless = [name for name in with_sources if name not in sources.kept]
    by_dist: dict[str, list[str]] = {}
    for rel, name in owned.items():
        if name in sources.sourceless and rel.endswith(".py") and (site / rel).is_file():
            by_dist.setdefault(name, []).append(rel)
    unreviewed = {}
    for name in sources.sourceless:
        hits = _source_reading_calls(site, sorted(by_dist[name]))
        if hits and name in SOURCE_READS_REVIEWED:
            sources.reviewed[name] = hits
        elif hits:
            unreviewed[name] = hits
    if unreviewed:
        raise PackageError(
            f"these distributions would ship without sources but call source-reading APIs: {unreviewed}; "
            "review each call, then add the distribution to KEEP_SOURCES (it needs them) or to "
            "SOURCE_READS_REVIEWED (why it does not) in scripts/package.py"
        )
    return sources


def part_of(name: str | None) -> str:
    """The layer part a distribution goes to (files no RECORD lists go to the app part)."""
    return next((part for part, dists in PART_DISTS.items() if name in dists), "app")


def split_layer(site: Path, owned: dict[str, str], dests: dict[str, Path]) -> dict[str, list[str]]:
    """Move the files of ``site`` into the part folders of ``dests`` (parts not in it are dropped).

    Returns:
        The distributions in each part.

    Raises:
        PackageError: A distribution PART_DISTS names is not installed (renamed or unpinned?).
    """
    installed = set(_dist_infos(site))
    for part, dists in PART_DISTS.items():
        missing = sorted(set(dists) - installed)
        if missing:
            raise PackageError(
                f"the {part} part names {', '.join(missing)} ({part.upper()}_DISTS), which the layer does not install"
            )
    unowned = []
    for path in sorted(p for p in site.rglob("*") if p.is_file() or p.is_symlink()):
        rel = _rel(path, site)
        name = owned.get(rel)
        if name is None:
            unowned.append(rel)
        dest = dests.get(part_of(name))
        if dest is not None:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.move(path, dest / rel)
    if unowned:
        _log(f"  files no RECORD lists (app part): {', '.join(unowned[:8])}")
    return {part: sorted(name for name in installed if part_of(name) == part) for part in LAYER_PARTS}


def rewrite_records(tree: Path) -> int:
    """Make every RECORD in ``tree`` list the files the layer ships; returns the bytes this saved.

    Rows of trimmed files go (``importlib.metadata.files()`` then lists only what exists), and a source
    shipped as legacy bytecode is listed as its ``.pyc``, without hash and size (the wheel spec allows
    that for .pyc files). Console scripts (``../../bin/...``) are gone with bin/.
    """
    saved = 0
    for record in tree.glob("*.dist-info/RECORD"):
        text = record.read_text(encoding="utf-8")
        rows = []
        for row in csv.reader(io.StringIO(text)):
            if not row:
                continue
            rel = row[0]
            if rel.startswith(".."):
                continue
            if (tree / rel).is_file():
                rows.append(row)
            elif rel.endswith(".py") and (tree / f"{rel}c").is_file():
                rows.append([f"{rel}c", "", ""])
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(rows)
        record.write_text(out.getvalue(), encoding="utf-8")
        saved += len(text.encode()) - len(out.getvalue().encode())
    return saved


@dataclass
class LayerBuild:
    """What the layer build did: trimming, sources, the distributions of each part."""

    trimmer: Trimmer
    sources: Sources
    parts: dict[str, list[str]]


def build_layers(arch: str, dests: dict[str, Path], target_python: str, *, sources: str, use_cache: bool) -> LayerBuild:
    """The layer parts' ``python/`` folders (``dests``: part → folder): install, trace, trim, split, mark, compile."""
    CACHE.mkdir(parents=True, exist_ok=True)
    site = Path(tempfile.mkdtemp(prefix=".site-", dir=CACHE))
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            # The trace runs three app processes while pip unpacks wheels.
            tracing = pool.submit(run_trace, ROOT / ".venv" / "bin" / "python", use_cache=use_cache)
            install_dependencies(arch, site, use_cache=use_cache)
            _log(f"  installed: {_mb(_tree_size(site))}")
            trace = tracing.result()
        _log(f"  import trace: {len(trace.dists)} distributions used ({', '.join(TRACE_MODES)})")
        unseen = sorted(pinned_names() - set(trace.dists))
        if unseen:
            raise PackageError(
                f"requirements.txt pins {', '.join(unseen)} but the import trace never uses it: if the app imports "
                "it only when configured, add the module to CONFIGURED_IMPORTS in scripts/package.py; else unpin it"
            )
        for mismatch in check_versions(site, trace):
            _log(f"  warning: version differs, the trace may not match the layer ({mismatch}); run make venv")
        outside = sorted(set(trace.dists) - set(_dist_infos(site)))
        if outside:
            _log(f"  used in the dev venv but not in the layer (optional imports): {', '.join(outside)}")
        trimmer = trim_layer(site, trace)
        for rule, size in trimmer.saved.items():
            _log(f"  trimmed {_mb(size):>9}  {rule}")
        _log(f"  unused distributions: {', '.join(trimmer.unused_dists)}")
        for rule, paths in trimmer.kept.items():
            _log(f"  kept (used at runtime) despite rule {rule!r}: {', '.join(paths[:8])}")
        owned = owners(site)
        chosen = choose_sources(site, trace, owned, sources)
        for name, reason in chosen.kept.items():
            _log(f"  sources kept: {name} ({reason})")
        _log(f"  bytecode only: {len(chosen.sourceless)} distributions ({', '.join(chosen.sourceless)})")
        if chosen.display_only_reads:
            _log(f"  read only to print tracebacks or warnings: {', '.join(chosen.display_only_reads[:8])}")
        sourceless = {rel for rel, name in owned.items() if name in chosen.sourceless and rel.endswith(".py")}
        for dest in dests.values():
            _clean_dir(dest)
        parts = split_layer(site, owned, dests)
    finally:
        shutil.rmtree(site, ignore_errors=True)
    for part, dest in dests.items():
        marker = {"arch": arch, "part": part, "python": PYTHON_VERSION, "requirements_sha256": requirements_sha256()}
        (dest / layer_marker(part)).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")
        compile_tree(target_python, dest, LAYER_PREFIX, sourceless=sourceless)
        records = rewrite_records(dest)
        trimmer.saved["RECORD rows of files not shipped"] = (
            trimmer.saved.get("RECORD rows of files not shipped", 0) + records
        )
        holds = ", ".join(parts[part]) if part in PART_DISTS else "the other distributions"
        _log(f"  layer {part}: {_mb(_tree_size(dest))} ({holds}); RECORD rows of files not shipped: -{records} bytes")
    return LayerBuild(trimmer, chosen, parts)


# --- the function code --------------------------------------------------------------------------------


def _clutter(_directory: str, names: list[str]) -> list[str]:
    return [n for n in names if n.startswith(".") or n == "__pycache__" or n.endswith((".pyc", ".pyo"))]


def build_function(dest: Path, target_python: str) -> None:
    """The function's code root in ``dest``: handlers/, core/, pipelines/, data/, sources and bytecode.

    The layout beside ``core/`` is what ``core.settings.bundled_path`` looks for in /var/task.

    Raises:
        PackageError: The snapshot or the pipelines are missing.
    """
    if not SNAPSHOT.is_file():
        raise PackageError(f"{SNAPSHOT.relative_to(ROOT)} is missing: run make index first")
    pipelines = sorted(p for p in (ROOT / "pipelines").glob("*") if p.is_file() and p.suffix in {".yml", ".yaml"})
    if not pipelines:
        raise PackageError(f"no pipelines (*.yml, *.yaml) in {ROOT / 'pipelines'}")
    _clean_dir(dest)
    for package in ("handlers", "core"):
        shutil.copytree(ROOT / "src" / package, dest / package, ignore=_clutter)
    (dest / "pipelines").mkdir()
    for pipeline in pipelines:
        shutil.copyfile(pipeline, dest / "pipelines" / pipeline.name)
    (dest / "data").mkdir()
    # copyfile follows a symlinked snapshot: the artifact holds the file itself.
    shutil.copyfile(SNAPSHOT, dest / "data" / SNAPSHOT.name)
    compile_tree(target_python, dest, FUNCTION_PREFIX)


# --- zips and the size report -------------------------------------------------------------------------


def write_zip(tree: Path, archive: Path, prefix: str = "") -> None:
    """Zip ``tree`` with members in sorted order, fixed timestamps and modes: same input, same bytes."""
    files = sorted((_rel(p, tree), p) for p in tree.rglob("*") if p.is_file())
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as out:
        for rel, path in files:
            info = zipfile.ZipInfo(prefix + rel, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
            info.external_attr = (0o100000 | mode) << 16
            out.writestr(info, path.read_bytes(), compresslevel=9)


def size_report(out: Path, arch: str, build: LayerBuild) -> dict:
    """Sizes of every tree and zip, and each deployment's total against its budget; printed, and in sizes.json.

    ``deployments`` holds each deployment's total (the function and the layers it attaches, DEPLOYMENTS)
    against its budget: the default one against issue 3's 150 MB, the pgvector one against Lambda's
    250 MB. ``total_unzipped_bytes`` is the default deployment's (what issue 3 and the benchmarks count).
    """

    def sizes(tree: str) -> dict:
        return {"unzipped_bytes": _tree_size(out / tree), "zipped_bytes": (out / f"{tree}.zip").stat().st_size}

    function = sizes("function")
    layers = {part: {**sizes(f"layer-{part}"), "distributions": build.parts[part]} for part in LAYER_PARTS}
    deployments = {}
    for name, deployment in DEPLOYMENTS.items():
        total = function["unzipped_bytes"] + sum(layers[part]["unzipped_bytes"] for part in deployment["layers"])
        deployments[name] = {
            "when": deployment["when"],
            "layers": list(deployment["layers"]),
            "unzipped_bytes": total,
            "budget_unzipped_bytes": deployment["budget"],
        }
    largest = max(deployment["unzipped_bytes"] for deployment in deployments.values())
    checks = {
        # Lambda refuses a function whose code and layers exceed UNZIPPED_LIMIT: every deployment must fit.
        "total_unzipped": "OK" if largest <= UNZIPPED_LIMIT else "OVER",
        **{
            f"{name}_unzipped": "OK" if deployment["unzipped_bytes"] <= deployment["budget_unzipped_bytes"] else "OVER"
            for name, deployment in deployments.items()
        },
        "function_zip": "OK" if function["zipped_bytes"] <= ZIPPED_LIMIT else "OVER",
        **{
            f"layer_{part}_zip": "OK" if layer["zipped_bytes"] <= ZIPPED_LIMIT else "OVER"
            for part, layer in layers.items()
        },
    }
    report = {
        "arch": arch,
        "python": PYTHON_VERSION,
        "bytecode": "unchecked-hash; function with sources, layers bytecode-only but for sources.kept",
        "function": function,
        "layers": layers,
        "deployments": deployments,
        "total_unzipped_bytes": deployments["default"]["unzipped_bytes"],
        "limits": {"unzipped_bytes": UNZIPPED_LIMIT, "zipped_bytes": ZIPPED_LIMIT},
        "target_unzipped_bytes": TARGET_UNZIPPED,
        "checks": checks,
        "sources": {
            "kept": build.sources.kept,
            "sourceless": build.sources.sourceless,
            "reviewed_source_reading_calls": build.sources.reviewed,
        },
        "trimmed_bytes": build.trimmer.saved,
        "unused_distributions": build.trimmer.unused_dists,
    }
    (out / "sizes.json").write_text(json.dumps(report, indent=2) + "\n")
    rows = [("function, unzipped", function["unzipped_bytes"], None, None, "")]
    rows += [(f"layer-{part}, unzipped", layer["unzipped_bytes"], None, None, "") for part, layer in layers.items()]
    for name, deployment in deployments.items():
        budget = deployment["budget_unzipped_bytes"]
        against = "issue 3 target" if budget == TARGET_UNZIPPED else "Lambda's limit"
        label = f"{name}: function + {' + '.join(deployment['layers'])}"
        note = f"  ({against}; {deployment['when']})"
        rows.append((label, deployment["unzipped_bytes"], budget, checks[f"{name}_unzipped"], note))
    rows.append(("function.zip", function["zipped_bytes"], ZIPPED_LIMIT, checks["function_zip"], ""))
    rows += [
        (f"layer-{part}.zip", layer["zipped_bytes"], ZIPPED_LIMIT, checks[f"layer_{part}_zip"], "")
        for part, layer in layers.items()
    ]
    width = max(len(row[0]) for row in rows)
    _log(f"sizes ({arch}, python{PYTHON_VERSION}), unzipped totals per deployment:")
    for label, size, limit, verdict, note in rows:
        against = f"  of {_mb(limit):>8}  {verdict}{note}" if limit else ""
        _log(f"  {label:<{width}} {_mb(size):>9}{against}")
    return report


# --- command line -------------------------------------------------------------------------------------


def samconfig_arch(environment: str) -> str:
    """The Architecture parameter samconfig.toml gives ``environment`` (what sam build and deploy use).

    Raises:
        PackageError: The environment or its Architecture is missing.
    """
    import shlex
    import tomllib

    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    overrides = config.get(environment, {}).get("global", {}).get("parameters", {}).get("parameter_overrides", "")
    values = dict(token.split("=", 1) for token in shlex.split(overrides) if "=" in token)
    if values.get("Architecture") not in ARCHES:
        raise PackageError(
            f"samconfig.toml [{environment}.global.parameters] sets no Architecture ({', '.join(ARCHES)})"
        )
    return values["Architecture"]


def build_all(args: argparse.Namespace, target_python: str) -> None:
    """``make package``: every tree, their zips, the size report, and the check that the artifact runs.

    Raises:
        PackageError: A step failed, or the artifact is over Lambda's hard limit.
    """
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    trees = ["function", *(f"layer-{part}" for part in LAYER_PARTS)]
    # Outputs of this build, and of the single-layer layout before it (layer/, layer.zip).
    for stale in (*(f"{tree}.zip" for tree in trees), "layer.zip", "sizes.json"):
        (out / stale).unlink(missing_ok=True)
    if (out / "layer" / "python").is_dir():
        shutil.rmtree(out / "layer")
    _log(f"function code → {out / 'function'}")
    build_function(out / "function", target_python)
    dests = {part: out / f"layer-{part}" / "python" for part in LAYER_PARTS}
    _log(f"dependency layers ({args.arch}) → {', '.join(str(d) for d in dests.values())}")
    build = build_layers(args.arch, dests, target_python, sources=args.sources, use_cache=not args.no_cache)
    _log("zipping")
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(trees)) as pool:
        for done in [pool.submit(write_zip, out / tree, out / f"{tree}.zip") for tree in trees]:
            done.result()
    report = size_report(out, args.arch, build)
    if args.verify or (args.verify is None and args.arch == host_arch()):
        _log(f"verifying: the app from the built trees, stacked as each deployment ({', '.join(DEPLOYMENTS)})")
        plan = verify(out, target_python)
        _log(f"verified: the built {args.arch} artifact serves every sample event with python{PYTHON_VERSION}:")
        imported: tuple[str, ...] = ()
        for name, job in plan.items():
            more = [module for module in job["imports"] if module not in imported]
            _log(
                f"  {name} (function + {' + '.join(job['layers'])}): GENERATOR {', '.join(job['modes'])}; "
                f"imports {'also ' if imported else ''}{', '.join(more)}"
            )
            imported += tuple(more)
    if report["checks"]["total_unzipped"] == "OVER":
        raise PackageError("function + layers exceed Lambda's 250 MB unzipped limit: Lambda would refuse them")
    for name, deployment in report["deployments"].items():
        if report["checks"][f"{name}_unzipped"] == "OVER":
            _log(f"note: the {name} deployment is over its {_mb(deployment['budget_unzipped_bytes'])} budget")
    if "OVER" in (verdict for check, verdict in report["checks"].items() if check.endswith("_zip")):
        _log(
            "note: a zip over 50 MB cannot be uploaded directly (--zip-file); sam deploy uploads through S3 "
            "(resolve_s3), where only the 250 MB unzipped limit applies"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--arch", choices=ARCHES, default=os.environ.get("ARCH") or "arm64", help="default: $ARCH or arm64"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output folder (default: dist/)")
    parser.add_argument(
        "--only",
        choices=("function", "layer"),
        help="build one part alone into --into (what sam build's makefile targets run); no zips",
    )
    parser.add_argument("--part", choices=LAYER_PARTS, help="with --only layer: which layer")
    parser.add_argument("--into", type=Path, help="with --only: the folder to fill (layer: the python/ folder)")
    parser.add_argument("--python", help="python3.13 to compile with (default: from PATH, then pyenv)")
    parser.add_argument(
        "--sources",
        choices=("auto", "all"),
        default="auto",
        help="auto: the layers keep the .py files only of distributions that read them (default); all: keep every one",
    )
    parser.add_argument(
        "--no-cache", action="store_true", help="reinstall the wheels and trace again even if .cache/ has them"
    )
    parser.add_argument(
        "--verify",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run the app from the built trees (default: when --arch is this machine's)",
    )
    parser.add_argument("--samconfig-arch", metavar="ENV", help="print the Architecture samconfig.toml gives ENV")
    args = parser.parse_args(argv)
    if bool(args.only) != bool(args.into):
        parser.error("--only and --into go together")
    if (args.only == "layer") != bool(args.part):
        parser.error("--part goes with --only layer, and --only layer needs it")
    try:
        if args.samconfig_arch:
            print(samconfig_arch(args.samconfig_arch))
            return 0
        target_python = find_target_python(args.python)
        if args.only == "function":
            build_function(args.into, target_python)
            _log(f"function in {args.into}: {_mb(_tree_size(args.into))}")
        elif args.only == "layer":
            dests = {args.part: args.into}
            build_layers(args.arch, dests, target_python, sources=args.sources, use_cache=not args.no_cache)
            _log(f"layer {args.part} ({args.arch}) in {args.into}: {_mb(_tree_size(args.into))}")
        else:
            build_all(args, target_python)
    except PackageError as exc:
        print(f"package: {exc}", file=sys.stderr)
        return 1
    _log("done")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
