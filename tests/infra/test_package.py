"""The deploy artifact `make package` builds (scripts/package.py), checked the way Lambda would run it.

The package is built once per session for this machine's architecture (x86_64 here), so that it can
run: from a read-only copy of its trees, with python3.13 and no bytecode writes, as in /var/task and
/opt/python. Deselect with `-m "not package"`.
"""

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from scripts.package import (
    AWS_SERVICES,
    BOTOCORE_DATA_FILES,
    LAYER_MARKER,
    UNZIPPED_LIMIT,
    ZIPPED_LIMIT,
    find_target_python,
    host_arch,
    write_zip,
)

pytestmark = pytest.mark.package

ROOT = Path(__file__).resolve().parents[2]
ARCH = host_arch()
HASH_BASED_UNCHECKED = 0b01  # PEP 552 flags: hash-based, check_source off

# Lambda's init, in a fresh interpreter: import the handler, invoke it once with an event file.
INVOKE = """
import json, os, sys, uuid

class Context:
    function_name = "ApiFunction"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:ApiFunction"
    memory_limit_in_mb = 1024
    aws_request_id = str(uuid.uuid4())
    log_group_name = "/aws/lambda/ApiFunction"
    log_stream_name = "test"
    def get_remaining_time_in_millis(self):
        return 29_000

from handlers.api import handler

response = handler(json.load(open(sys.argv[1])), Context())
# Modules loaded from source files of the tree (lazy-import proxies in sys.modules have no spec).
specs = [getattr(m, "__spec__", None) for m in list(sys.modules.values())]
loaded = [s for s in specs if s and s.has_location and (s.origin or "").startswith(sys.argv[2])]
print(json.dumps({
    "status": response["statusCode"],
    "documents": len(json.loads(response["body"]).get("documents", [])),
    "handler_file": sys.modules["handlers.api"].__file__,
    "modules_from_tree": len(loaded),
    "without_bytecode": sorted(s.name for s in loaded if s.origin.endswith(".py") and not (
        s.cached and os.path.exists(s.cached))),
}))
"""


@dataclass(frozen=True)
class Built:
    out: Path
    log: str
    target_python: str

    @property
    def function(self) -> Path:
        return self.out / "function"

    @property
    def layer(self) -> Path:
        return self.out / "layer" / "python"


@pytest.fixture(scope="session")
def package(tmp_path_factory, full_snapshot) -> Built:
    if ARCH not in ("x86_64", "arm64"):
        pytest.skip(f"no Lambda architecture for this machine ({ARCH})")
    out = tmp_path_factory.mktemp("package")
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "package.py"), "--arch", ARCH, "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return Built(out, result.stdout, find_target_python())


def _canonical(name: str) -> str:
    return "-".join(part for part in name.lower().replace("_", "-").replace(".", "-").split("-") if part)


def _listing(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): p.stat().st_size for p in root.rglob("*")}


def _set_writable(root: Path, writable: bool) -> None:
    for path in [root, *root.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode | stat.S_IWUSR if writable else mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _read_only_mount_works(directory: Path) -> bool:
    """Whether this process may bind-mount a folder read-only in its own mount namespace (root here)."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", 'mount --bind -o ro "$0" "$0" && ! touch "$0/probe" 2>/dev/null', directory],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


# --- the artifact runs as Lambda runs it ------------------------------------------------------------


def test_build_log_reports_trimming_verification_and_sizes(package):
    assert "import trace:" in package.log
    assert "trimmed" in package.log
    assert f"verified: the built {ARCH} artifact" in package.log
    assert "total unzipped" in package.log


def test_app_answers_from_a_read_only_tree_without_writing_bytecode(package, tmp_path):
    code = tmp_path / "code"
    shutil.copytree(package.function, code / "function")
    shutil.copytree(package.layer, code / "layer")
    home = tmp_path / "home"
    home.mkdir()
    _set_writable(code, writable=False)
    before = _listing(code)
    # -S: the build machine's own site-packages (and its .pth hooks) stay out of the artifact's run.
    command = [package.target_python, "-S", "-c", INVOKE, str(ROOT / "events" / "api-query.json"), str(code)]
    # chmod does not stop root: as root, the tree is also mounted read-only (EROFS, as in Lambda).
    if _read_only_mount_works(tmp_path):
        command = ["unshare", "-m", "sh", "-c", 'mount --bind -o ro "$0" "$0" && exec "$@"', str(code), *command]
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "PYTHONPATH": f"{code / 'function'}{os.pathsep}{code / 'layer'}",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "HAYSTACK_TELEMETRY_ENABLED": "False",
        "GENERATOR": "none",
    }
    try:
        result = subprocess.run(command, env=env, cwd=home, capture_output=True, text=True, timeout=300, check=False)
        after = _listing(code)
    finally:
        _set_writable(code, writable=True)

    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["status"] == 200, result.stderr[-3000:]
    assert report["documents"] > 0
    assert Path(report["handler_file"]).is_relative_to(code / "function")
    assert report["modules_from_tree"] > 500
    assert report["without_bytecode"] == []
    assert after == before, "files appeared or changed in the code tree"


def test_every_source_has_unchecked_hash_bytecode_for_the_target(package):
    magic = subprocess.run(
        [package.target_python, "-c", "import importlib.util; print(importlib.util.MAGIC_NUMBER.hex())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    problems = []
    for tree in (package.function, package.layer):
        sources = list(tree.rglob("*.py"))
        assert sources, tree
        for source in sources:
            cached = source.parent / "__pycache__" / f"{source.stem}.cpython-313.pyc"
            if not cached.is_file():
                problems.append(f"missing {cached}")
                continue
            header = cached.read_bytes()[:16]
            if header[:4].hex() != magic or int.from_bytes(header[4:8], "little") != HASH_BASED_UNCHECKED:
                problems.append(f"not unchecked-hash for this Python: {cached}")
        for compiled in tree.rglob("*.pyc"):
            stem, _, tag = compiled.name.partition(".")
            if tag != "cpython-313.pyc" or not (compiled.parent.parent / f"{stem}.py").is_file():
                problems.append(f"stray bytecode {compiled}")
    assert not problems, problems[:20]


def test_function_tree_holds_the_code_the_pipelines_and_the_snapshot(package, full_snapshot):
    assert {p.name for p in package.function.iterdir()} == {"handlers", "core", "pipelines", "data"}
    shipped = sorted(p.name for p in (package.function / "pipelines").iterdir())
    assert shipped == sorted(p.name for p in (ROOT / "pipelines").glob("*.y*ml"))
    assert (package.function / "data" / "stdlib.snapshot").read_bytes() == full_snapshot.read_bytes()


# --- trimming ----------------------------------------------------------------------------------------


def test_trimmed_payload_is_gone(package):
    layer = package.layer
    assert not [p for p in (layer / "numpy").rglob("*") if p.is_dir() and p.name in ("tests", "test")]
    assert not list(layer.rglob("*.pyi"))
    assert not list(layer.glob("*-stubs"))
    assert not (layer / "bin").exists()
    assert not list(layer.rglob("conftest.py"))


def test_only_the_listed_aws_service_models_remain(package):
    data = package.layer / "botocore" / "data"
    services = {p.name for p in data.iterdir() if p.is_dir()}
    assert services <= set(AWS_SERVICES)
    assert {"s3", "bedrock-runtime", "sts"} <= services
    assert {p.name for p in data.iterdir() if p.is_file()} == set(BOTOCORE_DATA_FILES)
    boto3_models = package.layer / "boto3" / "data"
    if boto3_models.is_dir():
        assert {p.name for p in boto3_models.iterdir()} <= set(AWS_SERVICES)


def test_unused_distributions_are_gone_but_their_metadata_stays(package):
    report = json.loads((package.out / "sizes.json").read_text())
    unused = report["unused_distributions"]
    assert unused
    for name in unused:
        infos = [
            p
            for p in package.layer.glob("*.dist-info")
            if _canonical(p.name.removesuffix(".dist-info").rsplit("-", 1)[0]) == name
        ]
        assert len(infos) == 1, name
        record = (infos[0] / "RECORD").read_text().splitlines()
        leftovers = [
            line.split(",")[0]
            for line in record
            if not line.startswith(infos[0].name) and (package.layer / line.split(",")[0]).is_file()
        ]
        assert not leftovers, (name, leftovers[:5])


def test_data_files_read_by_native_code_are_kept(package):
    # tokenizers and safetensors open WordLlama's files from Rust: no Python open event, still kept.
    assert list((package.layer / "wordllama" / "weights").glob("*.safetensors"))
    assert list((package.layer / "wordllama" / "tokenizers").glob("*.json"))


# --- marker, sizes, zips -----------------------------------------------------------------------------


def test_layer_marker_names_the_architecture(package):
    marker = json.loads((package.layer / LAYER_MARKER).read_text())
    requirements = (ROOT / "layers" / "deps" / "requirements.txt").read_bytes()
    assert marker == {
        "arch": ARCH,
        "python": "3.13",
        "requirements_sha256": hashlib.sha256(requirements).hexdigest(),
    }


def _tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def test_size_report_matches_the_artifact_and_lambda_limits(package):
    report = json.loads((package.out / "sizes.json").read_text())
    assert report["arch"] == ARCH
    assert report["function"]["unzipped_bytes"] == _tree_bytes(package.function)
    assert report["layer"]["unzipped_bytes"] == _tree_bytes(package.out / "layer")
    assert report["function"]["zipped_bytes"] == (package.out / "function.zip").stat().st_size
    assert report["layer"]["zipped_bytes"] == (package.out / "layer.zip").stat().st_size
    total = report["function"]["unzipped_bytes"] + report["layer"]["unzipped_bytes"]
    assert report["total_unzipped_bytes"] == total
    assert report["limits"] == {"unzipped_bytes": UNZIPPED_LIMIT, "zipped_bytes": ZIPPED_LIMIT}
    # Lambda refuses more than 250 MB unzipped, whatever the upload path.
    assert total <= UNZIPPED_LIMIT
    assert report["checks"]["total_unzipped"] == "OK"
    assert report["function"]["zipped_bytes"] <= ZIPPED_LIMIT
    assert report["checks"]["function_zip"] == "OK"
    # The layer zip only has to fit the direct-upload limit when it is uploaded directly: reported honestly.
    layer_ok = report["layer"]["zipped_bytes"] <= ZIPPED_LIMIT
    assert report["checks"]["layer_zip"] == ("OK" if layer_ok else "OVER")


def test_zips_hold_the_trees(package):
    for archive, tree, prefix in (
        (package.out / "function.zip", package.function, ""),
        (package.out / "layer.zip", package.out / "layer", ""),
    ):
        with zipfile.ZipFile(archive) as opened:
            assert opened.testzip() is None
            names = opened.namelist()
            assert names == sorted(names)
            assert set(names) == {prefix + p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file()}
    with zipfile.ZipFile(package.out / "layer.zip") as opened:
        assert all(name.startswith("python/") for name in opened.namelist())


def test_zips_are_deterministic(tmp_path):
    tree = tmp_path / "tree"
    (tree / "pkg").mkdir(parents=True)
    (tree / "pkg" / "b.py").write_text("B = 2\n")
    (tree / "a.txt").write_text("a\n")
    write_zip(tree, tmp_path / "one.zip")
    os.utime(tree / "a.txt", (0, 0))
    (tree / "pkg" / "b.py").chmod(0o600)
    write_zip(tree, tmp_path / "two.zip")
    assert (tmp_path / "one.zip").read_bytes() == (tmp_path / "two.zip").read_bytes()


def test_samconfig_architecture_is_what_make_build_uses():
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "package.py"), "--samconfig-arch", "default"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() in ("arm64", "x86_64")
