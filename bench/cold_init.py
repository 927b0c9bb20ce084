"""Cold init of the built x86_64 artifact as Lambda runs it, vs the naive build and a bare Haystack import.

Every run is a fresh ``python3.13 -S`` process (``-S``: the build machine's site-packages and its .pth
hooks stay out, as they are not in Lambda) on read-only copies of the code trees, with no bytecode
writes (``PYTHONDONTWRITEBYTECODE=1``; the trees are compared before and after the runs), HOME in a
scratch folder and the default settings (the bundled snapshot, ``GENERATOR=none``). Measured: the wall
time from spawning the process to the end of ``import handlers.api`` (Lambda's init: interpreter start,
imports, settings, store load, pipelines, warm-up). The process then serves one event, not timed, to
prove the init worked.

- optimised: ``dist/function/`` and both layers of ``dist/`` merged into one folder, as Lambda extracts
  them into /opt/python (``make package ARCH=x86_64``: trimmed, bytecode for python3.13);
- naive: the same pinned dependencies installed for this machine with ``pip install --target
  --no-compile`` (no trimming, no bytecode; cached in ``.cache/bench/`` by the requirements' hash), the
  same function code without ``__pycache__``, and eager imports: ``naive_handler.py`` imports at the top
  everything the optimised path imports only when configured (boto3, the Bedrock and OpenAI generators,
  httpx, redis and its cluster client, Powertools Parameters, snapshot_restore_py), then the handler;
- bare: ``from haystack import Pipeline`` alone, in the optimised read-only tree.

The three are interleaved: one warm-up run each, then RUNS rounds; the median of the rounds is reported.

Targets (issue 3): cold init >= 3x faster than the naive build, and <= 1.5x the bare Haystack import.
"""

import hashlib
import json
import os
import platform
import shutil
import stat
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, run, summary, write_result

sys.path.insert(0, str(ROOT))
from scripts.package import LAYER_PARTS, REQUIREMENTS, find_target_python, host_arch

DIST = ROOT / "dist"
CACHE = ROOT / ".cache" / "bench"
EVENT = ROOT / "events" / "api-query.json"
ARCH = "x86_64"
WARMUP = 1
RUNS = 7

# Everything src/ imports lazily (only when a setting asks for it), imported up front.
NAIVE_HANDLER = '''"""The naive build's handler: every optional dependency imported eagerly, then the app."""

import boto3
import httpx
import openai
import redis
import redis.cluster
from aws_lambda_powertools.utilities.parameters import get_parameter, get_secret
from botocore.exceptions import BotoCoreError, ClientError
from haystack.components.generators.chat import OpenAIChatGenerator
from haystack.utils import Secret
from haystack_integrations.components.generators.amazon_bedrock import AmazonBedrockChatGenerator
from snapshot_restore_py import register_after_restore, register_before_snapshot

from core.cache.redis_l2 import RedisL2
from handlers.api import handler
'''

# Run in each measured process: the import under test, the time it ended, then one untimed event.
CHILD = """
import importlib.util, json, sys, time
kind, event, invoke_script = sys.argv[1], sys.argv[2], sys.argv[3]
if kind == "bare":
    from haystack import Pipeline
elif kind == "naive":
    from naive_handler import handler
else:
    from handlers.api import handler
print(f"@@init_done_ns={time.monotonic_ns()} modules={len(sys.modules)}", flush=True)
if kind != "bare":
    # The Lambda context of `make invoke`, loaded by path: the repository is not on this process's path.
    spec = importlib.util.spec_from_file_location("lambda_context", invoke_script)
    invoke = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(invoke)
    with open(event) as f:
        response = handler(json.load(f), invoke.LambdaContext())
    print(f"@@status={response['statusCode']}", flush=True)
"""


def _set_writable(root: Path, writable: bool) -> None:
    for path in [root, *root.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode | stat.S_IWUSR if writable else mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _listing(root: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def built_artifact() -> dict:
    """dist/'s size report, after checking it holds an x86_64 build this machine can run."""
    if host_arch() != ARCH:
        sys.exit(f"cold init measures the {ARCH} artifact, which this {host_arch()} machine cannot run")
    sizes = DIST / "sizes.json"
    report = json.loads(sizes.read_text()) if sizes.is_file() else {}
    trees = [DIST / "function", *(DIST / f"layer-{part}" / "python" for part in LAYER_PARTS)]
    if report.get("arch") != ARCH or not all(tree.is_dir() for tree in trees):
        sys.exit(f"dist/ holds no {ARCH} build: run `make package ARCH={ARCH}` first (make bench does)")
    return report


def naive_install(target_python: str) -> Path:
    """The pinned dependencies for this machine, untrimmed and without bytecode (cached by requirements)."""
    version = subprocess.run(
        [target_python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if f"{sys.version_info[0]}.{sys.version_info[1]}" != version:
        sys.exit(f"run this with a python{version} venv (pip installs for the interpreter that runs it)")
    key_text = REQUIREMENTS.read_bytes() + f"\0{version}\0{platform.machine()}".encode()
    cached = CACHE / f"naive-{hashlib.sha256(key_text).hexdigest()[:16]}"
    if cached.is_dir():
        return cached
    CACHE.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".naive-", dir=CACHE))
    print(f"pip install --target (naive build, no bytecode) into {cached.relative_to(ROOT)}")
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    command += ["--target", str(scratch), "--no-compile", "-r", str(REQUIREMENTS)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        shutil.rmtree(scratch, ignore_errors=True)
        sys.exit(f"pip install failed:\n{result.stderr[-3000:]}")
    for stale in CACHE.glob("naive-*"):
        shutil.rmtree(stale, ignore_errors=True)
    scratch.rename(cached)
    return cached


def _no_bytecode(_directory: str, names: list[str]) -> list[str]:
    return [n for n in names if n == "__pycache__" or n.endswith(".pyc")]


def prepare(scratch: Path, naive_site: Path) -> dict[str, tuple[Path, Path]]:
    """Read-only copies of both builds: name → (function folder, layer folder)."""
    optimised = scratch / "optimised"
    shutil.copytree(DIST / "function", optimised / "function")
    for part in LAYER_PARTS:  # Lambda extracts every layer into /opt: one python/ folder
        shutil.copytree(DIST / f"layer-{part}" / "python", optimised / "python", dirs_exist_ok=True)
    naive = scratch / "naive"
    shutil.copytree(DIST / "function", naive / "function", ignore=_no_bytecode)
    (naive / "function" / "naive_handler.py").write_text(NAIVE_HANDLER)
    shutil.copytree(naive_site, naive / "python", symlinks=True)
    if list((naive / "python").rglob("*.pyc")):
        sys.exit("the naive install holds bytecode: it must not (pip --no-compile)")
    return {
        "optimised": (optimised / "function", optimised / "python"),
        "naive": (naive / "function", naive / "python"),
        "bare_haystack": (optimised / "function", optimised / "python"),
    }


def run_once(target_python: str, kind: str, trees: tuple[Path, Path], home: Path) -> tuple[float, int]:
    """One fresh process: milliseconds from spawn to the end of the import, and the modules loaded."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "PYTHONPATH": os.pathsep.join(str(t) for t in trees),
        "PYTHONDONTWRITEBYTECODE": "1",
        "HAYSTACK_TELEMETRY_ENABLED": "False",
        "GENERATOR": "none",
    }
    child_kind = "bare" if kind == "bare_haystack" else kind
    started = time.monotonic_ns()
    result = subprocess.run(
        [target_python, "-S", "-c", CHILD, child_kind, str(EVENT), str(ROOT / "scripts" / "invoke.py")],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    marks = dict(
        part.split("=", 1) for line in result.stdout.splitlines() if line.startswith("@@") for part in line[2:].split()
    )
    if result.returncode != 0 or "init_done_ns" not in marks:
        sys.exit(f"{kind}: the process failed:\n{result.stderr[-3000:]}")
    if kind != "bare_haystack" and marks.get("status") != "200":
        sys.exit(f"{kind}: the event after init answered {marks.get('status')}:\n{result.stderr[-3000:]}")
    return (int(marks["init_done_ns"]) - started) / 1e6, int(marks["modules"])


def main() -> int:
    artifact = built_artifact()
    target_python = find_target_python()
    naive_site = naive_install(target_python)
    timings: dict[str, list[float]] = {"optimised": [], "naive": [], "bare_haystack": []}
    modules: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="cold-init-") as tmp:
        scratch = Path(tmp)
        variants = prepare(scratch / "code", naive_site)
        home = scratch / "home"
        home.mkdir()
        _set_writable(scratch / "code", writable=False)
        before = _listing(scratch / "code")
        try:
            for round_ in range(WARMUP + RUNS):
                for kind, trees in variants.items():
                    elapsed, loaded = run_once(target_python, kind, trees, home)
                    modules[kind] = loaded
                    if round_ >= WARMUP:
                        timings[kind].append(elapsed)
            after = _listing(scratch / "code")
        finally:
            _set_writable(scratch / "code", writable=True)
    if after != before:
        sys.exit("files appeared or changed in the read-only code trees: the measurement is void")

    results: dict = {}
    for kind, values in timings.items():
        results[kind] = {
            "median_ms": round(statistics.median(values), 1),
            "runs_ms": [round(v, 1) for v in values],
            "modules_loaded": modules[kind],
            **summary(values),
        }
    optimised, naive, bare = (results[k]["median_ms"] for k in ("optimised", "naive", "bare_haystack"))
    ratios = {"naive_over_optimised": round(naive / optimised, 2), "optimised_over_bare": round(optimised / bare, 2)}
    targets = {
        "naive_over_optimised_ge_3": ratios["naive_over_optimised"] >= 3,
        "optimised_over_bare_le_1_5": ratios["optimised_over_bare"] <= 1.5,
    }
    results.update(
        ratios=ratios,
        targets=targets,
        runs=RUNS,
        warmup_runs=WARMUP,
        artifact={"arch": artifact["arch"], "total_unzipped_bytes": artifact["total_unzipped_bytes"]},
        interpreter=target_python,
        method="wall time from spawn to the end of the import, fresh python3.13 -S process, read-only trees, "
        "PYTHONDONTWRITEBYTECODE=1, GENERATOR=none, bundled snapshot; one untimed event after",
    )
    for kind in ("optimised", "naive", "bare_haystack"):
        r = results[kind]
        print(
            f"{kind:14s} median {r['median_ms']:7.1f} ms (min {min(r['runs_ms']):7.1f}, max {max(r['runs_ms']):7.1f}; "
            f"{r['modules_loaded']} modules)"
        )
    print(f"naive / optimised  {ratios['naive_over_optimised']:.2f}x (target >= 3x)")
    print(f"optimised / bare   {ratios['optimised_over_bare']:.2f}x (target <= 1.5x)")
    print("targets:", ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in targets.items()))
    write_result("cold_init", results)
    return 0


if __name__ == "__main__":
    run(main)
