"""The deploy artifact `make package` builds (scripts/package.py), checked the way Lambda would run it.

The package is built once per session for this machine's architecture (x86_64 here), so that it can
run: from a read-only copy of its trees (the layers of a deployment merged, as Lambda extracts them into
/opt/python), with python3.13 and no bytecode writes, as in /var/task and /opt/python. The default
deployment attaches the app and numeric layers; DocumentStore=pgvector adds the pgvector layer
(scripts/package.py: DEPLOYMENTS). Deselect with `-m "not package"` (the tests of the source policy,
compilation, RECORDs, merging and the deployment plan build nothing and stay fast).

Every artifact probe runs python3.13 with -S, as the build's own check does: pyenv's 3.13 here carries a
.pth hook in its site-packages that imports certifi at startup and appends a CA bundle to certifi's
cacert.pem. With site enabled it would find the layer's certifi on PYTHONPATH and write into the
artifact under test; -S keeps the interpreter's site-packages and its hooks out (PYTHONPATH still counts).
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
    CONFIGURED_IMPORTS,
    DEPLOYMENTS,
    KEEP_SOURCES,
    LAYER_PARTS,
    NUMERIC_DISTS,
    PART_DISTS,
    PART_IMPORTS,
    PGVECTOR_DISTS,
    SOURCE_READS_REVIEWED,
    TARGET_UNZIPPED,
    TRACE_MODES,
    UNZIPPED_LIMIT,
    ZIPPED_LIMIT,
    PackageError,
    Trace,
    choose_sources,
    compile_tree,
    find_target_python,
    host_arch,
    layer_marker,
    merge_layers,
    owners,
    part_of,
    pinned_names,
    rewrite_records,
    verify_plan,
    write_zip,
)

# Tests that build the package carry this mark; the others build nothing.
built = pytest.mark.package

ROOT = Path(__file__).resolve().parents[2]
ARCH = host_arch()
HASH_BASED_UNCHECKED = 0b01  # PEP 552 flags: hash-based, check_source off

# Lambda's init, in a fresh interpreter: import the handler, invoke it once with an event file.
INVOKE = """
import importlib.util, json, os, sys

# The Lambda context of `make invoke`, loaded by path: only the built trees are on this process's path.
spec = importlib.util.spec_from_file_location("lambda_context", sys.argv[3])
invoke = importlib.util.module_from_spec(spec)
spec.loader.exec_module(invoke)

from handlers.api import handler

response = handler(json.load(open(sys.argv[1])), invoke.LambdaContext())
# Modules loaded from source files of the tree (lazy-import proxies in sys.modules have no spec).
specs = [getattr(m, "__spec__", None) for m in list(sys.modules.values())]
loaded = [s for s in specs if s and s.has_location and (s.origin or "").startswith(sys.argv[2])]
anyio = sys.modules.get("anyio")
print(json.dumps({
    "status": response["statusCode"],
    # anyio reads its own sources to install its lazy importer (a module __getattr__); see KEEP_SOURCES.
    "anyio_lazy": anyio is not None and "__getattr__" in vars(anyio),
    "documents": len(json.loads(response["body"]).get("documents", [])),
    "handler_file": sys.modules["handlers.api"].__file__,
    "modules_from_tree": len(loaded),
    "without_bytecode": sorted(s.name for s in loaded if s.origin.endswith(".py") and not (
        s.cached and os.path.exists(s.cached))),
    "sourceless_modules": sum(1 for s in loaded if s.origin.endswith(".pyc")),
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

    def layer(self, part: str) -> Path:
        return self.out / f"layer-{part}" / "python"

    @property
    def layers(self) -> list[Path]:
        return [self.layer(part) for part in LAYER_PARTS]

    def deployment_layers(self, deployment: str) -> list[Path]:
        """The layers a deployment attaches (DEPLOYMENTS), in order."""
        return [self.layer(part) for part in DEPLOYMENTS[deployment]["layers"]]

    @property
    def app(self) -> Path:
        return self.layer("app")

    @property
    def numeric(self) -> Path:
        return self.layer("numeric")

    @property
    def pgvector(self) -> Path:
        return self.layer("pgvector")

    @property
    def sizes(self) -> dict:
        return json.loads((self.out / "sizes.json").read_text())


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


@built
def test_build_log_reports_trimming_verification_and_sizes(package):
    assert "import trace:" in package.log
    assert "trimmed" in package.log
    assert "sources kept: anyio" in package.log
    assert f"verified: the built {ARCH} artifact" in package.log
    # The verify step ran the app once per deployment, the pgvector one with the pgvector layer stacked.
    assert f"default (function + app + numeric): GENERATOR {', '.join(TRACE_MODES)}; imports redis" in package.log
    pgvector_run = "pgvector (function + app + numeric + pgvector): GENERATOR none; imports also "
    assert pgvector_run + ", ".join(PART_IMPORTS["pgvector"]) in package.log
    assert "default: function + app + numeric" in package.log
    assert "pgvector: function + app + numeric + pgvector" in package.log


@built
def test_app_answers_from_a_read_only_tree_without_writing_bytecode(package, tmp_path):
    code = tmp_path / "code"
    shutil.copytree(package.function, code / "function")
    # The default deployment: Lambda extracts its layers (app, numeric) into /opt: one python/ folder.
    for layer in package.deployment_layers("default"):
        shutil.copytree(layer, code / "layer", dirs_exist_ok=True)
    home = tmp_path / "home"
    home.mkdir()
    _set_writable(code, writable=False)
    before = _listing(code)
    # -S: the build machine's own site-packages (and its .pth hooks) stay out of the artifact's run.
    command = [
        package.target_python,
        "-S",
        "-c",
        INVOKE,
        str(ROOT / "events" / "api-query.json"),
        str(code),
        str(ROOT / "scripts" / "invoke.py"),
    ]
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
    assert report["sourceless_modules"] > 400
    assert report["anyio_lazy"] is True
    assert after == before, "files appeared or changed in the code tree"


def _target_magic(target_python: str) -> str:
    return subprocess.run(
        [target_python, "-c", "import importlib.util; print(importlib.util.MAGIC_NUMBER.hex())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def _bytecode_problems(tree: Path, magic: str) -> list[str]:
    """Sources without unchecked-hash bytecode for the target; bytecode that fits neither layout."""
    problems = []

    def check(compiled: Path) -> None:
        header = compiled.read_bytes()[:16]
        if header[:4].hex() != magic or int.from_bytes(header[4:8], "little") != HASH_BASED_UNCHECKED:
            problems.append(f"not unchecked-hash for this Python: {compiled}")

    for source in tree.rglob("*.py"):
        cached = source.parent / "__pycache__" / f"{source.stem}.cpython-313.pyc"
        if cached.is_file():
            check(cached)
        else:
            problems.append(f"missing {cached}")
    for compiled in tree.rglob("*.pyc"):
        if compiled.parent.name == "__pycache__":
            stem, _, tag = compiled.name.partition(".")
            if tag != "cpython-313.pyc" or not (compiled.parent.parent / f"{stem}.py").is_file():
                problems.append(f"stray bytecode {compiled}")
        elif compiled.with_suffix(".py").exists():
            problems.append(f"legacy bytecode beside its source {compiled}")
        else:
            check(compiled)  # sourceless: legacy .pyc in place of the .py
    return problems


@built
def test_every_module_has_unchecked_hash_bytecode_for_the_target(package):
    magic = _target_magic(package.target_python)
    problems = []
    for tree in (package.function, *package.layers):
        assert list(tree.rglob("*.py*")), tree
        problems += _bytecode_problems(tree, magic)
    assert not problems, problems[:20]


@built
def test_function_keeps_its_sources(package):
    # The project's own code: its tracebacks, and FastAPI's endpoint context (file, line) read them.
    assert not [p for p in package.function.rglob("*.pyc") if p.parent.name != "__pycache__"]
    assert (package.function / "handlers" / "api.py").is_file()


@built
def test_layers_ship_bytecode_only_but_for_distributions_that_read_their_sources(package):
    sources = package.sizes["sources"]
    assert set(KEEP_SOURCES) <= set(sources["kept"])
    assert "anyio" in sources["kept"]
    sourceless = {"haystack-ai", "fastapi", "pydantic", "numpy", "openai", "starlette", "psycopg"}
    assert sourceless <= set(sources["sourceless"])
    assert not set(sources["kept"]) & set(sources["sourceless"])
    assert set(sources["reviewed_source_reading_calls"]) <= set(SOURCE_READS_REVIEWED)
    assert (package.app / "anyio" / "__init__.py").is_file()
    folders = (
        package.app / "haystack",
        package.app / "fastapi",
        package.numeric / "numpy",
        package.pgvector / "psycopg",
    )
    for folder in folders:
        assert not list(folder.rglob("*.py")), folder
        assert list(folder.rglob("*.pyc")), folder


@built
def test_function_tree_holds_the_code_the_pipelines_and_the_snapshot(package, full_snapshot):
    assert {p.name for p in package.function.iterdir()} == {"handlers", "core", "pipelines", "data"}
    shipped = sorted(p.name for p in (package.function / "pipelines").iterdir())
    assert shipped == sorted(p.name for p in (ROOT / "pipelines").glob("*.y*ml"))
    assert (package.function / "data" / "stdlib.snapshot").read_bytes() == full_snapshot.read_bytes()


# --- trimming ----------------------------------------------------------------------------------------


@built
def test_trimmed_payload_is_gone(package):
    numpy = package.numeric / "numpy"
    assert not [p for p in numpy.rglob("*") if p.is_dir() and p.name in ("tests", "test")]
    assert not (numpy / "f2py").exists()
    for layer in package.layers:
        assert not list(layer.rglob("*.pyi"))
        assert not list(layer.glob("*-stubs"))
        assert not (layer / "bin").exists()
        assert not list(layer.rglob("conftest.py*"))
    # Powertools' Swagger UI bundle (its own REST resolver's; the app's API is FastAPI's) is gone, the
    # rest of Powertools stays.
    swagger_ui = package.app / "aws_lambda_powertools" / "event_handler" / "openapi" / "swagger_ui"
    assert not list(swagger_ui.glob("*.js")) and not list(swagger_ui.glob("*.css"))
    assert package.sizes["trimmed_bytes"]["Powertools' Swagger UI bundle"] > 1_000_000
    assert (package.app / "aws_lambda_powertools" / "utilities" / "batch").is_dir()


@built
def test_only_the_listed_aws_service_models_remain(package):
    data = package.app / "botocore" / "data"
    services = {p.name for p in data.iterdir() if p.is_dir()}
    assert services <= set(AWS_SERVICES)
    assert {"s3", "bedrock-runtime", "sts"} <= services
    assert {p.name for p in data.iterdir() if p.is_file()} == set(BOTOCORE_DATA_FILES)
    boto3_models = package.app / "boto3" / "data"
    if boto3_models.is_dir():
        assert {p.name for p in boto3_models.iterdir()} <= set(AWS_SERVICES)


@built
def test_unused_distributions_are_gone_but_their_metadata_stays(package):
    unused = package.sizes["unused_distributions"]
    assert unused
    for name in unused:
        infos = [
            p
            for p in package.app.glob("*.dist-info")
            if _canonical(p.name.removesuffix(".dist-info").rsplit("-", 1)[0]) == name
        ]
        assert len(infos) == 1, name
        record = (infos[0] / "RECORD").read_text().splitlines()
        leftovers = [
            line.split(",")[0]
            for line in record
            if not line.startswith(infos[0].name) and (package.app / line.split(",")[0]).is_file()
        ]
        assert not leftovers, (name, leftovers[:5])
        assert (infos[0] / "METADATA").is_file()
        assert not (infos[0] / "sboms").exists()


@built
def test_every_record_lists_what_the_layer_ships(package):
    for layer in package.layers:
        for record in layer.glob("*.dist-info/RECORD"):
            listed = [line.split(",")[0] for line in record.read_text().splitlines() if line]
            missing = [rel for rel in listed if not (layer / rel).is_file()]
            assert not missing, (record, missing[:5])


@built
def test_data_files_read_by_native_code_are_kept(package):
    # tokenizers and safetensors open WordLlama's files from Rust: no Python open event, still kept.
    assert list((package.numeric / "wordllama" / "weights").glob("*.safetensors"))
    assert list((package.numeric / "wordllama" / "tokenizers").glob("*.json"))


# --- marker, sizes, zips -----------------------------------------------------------------------------


def _dist_names(layer: Path) -> set[str]:
    return {_canonical(p.name.removesuffix(".dist-info").rsplit("-", 1)[0]) for p in layer.glob("*.dist-info")}


@built
def test_layers_split_by_distribution_with_nothing_in_two(package):
    assert _dist_names(package.numeric) == set(NUMERIC_DISTS)
    assert not _dist_names(package.app) & set(NUMERIC_DISTS)
    for top in ("numpy", "numpy.libs", "tokenizers", "safetensors", "wordllama", "bm25s"):
        assert (package.numeric / top).is_dir(), top
        assert not (package.app / top).exists(), top
    files = {
        part: {p.relative_to(package.layer(part)) for p in package.layer(part).rglob("*") if p.is_file()}
        for part in LAYER_PARTS
    }
    for one in LAYER_PARTS:
        for other in LAYER_PARTS:
            assert one == other or not files[one] & files[other], (one, other)
    report = package.sizes
    assert report["layers"]["numeric"]["distributions"] == sorted(NUMERIC_DISTS)


@built
def test_pgvector_distributions_are_only_in_the_pgvector_part(package):
    assert _dist_names(package.pgvector) == set(PGVECTOR_DISTS)
    assert not _dist_names(package.app) & set(PGVECTOR_DISTS)
    assert not _dist_names(package.numeric) & set(PGVECTOR_DISTS)
    # psycopg-binary's libpq and OpenSSL (psycopg_binary.libs) are what made the default artifact too big.
    for top in ("psycopg", "psycopg_binary", "psycopg_binary.libs", "pgvector"):
        assert (package.pgvector / top).is_dir(), top
        for part in ("app", "numeric"):
            assert not (package.layer(part) / top).exists(), (part, top)
    assert list((package.pgvector / "psycopg_binary.libs").glob("libpq-*.so*"))
    # Haystack's integration shares the haystack_integrations namespace with the app part's Bedrock one:
    # the folders merge in /opt/python, its modules are in the pgvector part only.
    integration = Path("haystack_integrations") / "document_stores" / "pgvector"
    assert list((package.pgvector / integration).glob("*.pyc"))
    assert not (package.app / integration).exists()
    assert (package.app / "haystack_integrations" / "components" / "generators" / "amazon_bedrock").is_dir()
    report = package.sizes
    assert report["layers"]["pgvector"]["distributions"] == sorted(PGVECTOR_DISTS)
    assert report["layers"]["app"]["distributions"] == sorted(
        set(report["layers"]["app"]["distributions"]) - set(NUMERIC_DISTS) - set(PGVECTOR_DISTS)
    )


@built
def test_each_layer_has_its_marker(package):
    requirements = (ROOT / "layers" / "deps" / "requirements.txt").read_bytes()
    for part in LAYER_PARTS:
        marker = json.loads((package.layer(part) / layer_marker(part)).read_text())
        assert marker == {
            "arch": ARCH,
            "part": part,
            "python": "3.13",
            "requirements_sha256": hashlib.sha256(requirements).hexdigest(),
        }
    assert len({layer_marker(part) for part in LAYER_PARTS}) == len(LAYER_PARTS)


def _tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


@built
def test_size_report_matches_the_artifact_and_lambda_limits(package):
    report = package.sizes
    assert report["arch"] == ARCH
    assert report["function"]["unzipped_bytes"] == _tree_bytes(package.function)
    assert report["function"]["zipped_bytes"] == (package.out / "function.zip").stat().st_size
    unzipped = {"function": _tree_bytes(package.function)}
    for part in LAYER_PARTS:
        layer = report["layers"][part]
        unzipped[part] = _tree_bytes(package.out / f"layer-{part}")
        assert layer["unzipped_bytes"] == unzipped[part]
        assert layer["zipped_bytes"] == (package.out / f"layer-{part}.zip").stat().st_size
        # Split so that every zip fits the direct-upload limit.
        assert layer["zipped_bytes"] <= ZIPPED_LIMIT, part
        assert report["checks"][f"layer_{part}_zip"] == "OK"
    assert report["function"]["zipped_bytes"] <= ZIPPED_LIMIT
    assert report["checks"]["function_zip"] == "OK"
    assert report["limits"] == {"unzipped_bytes": UNZIPPED_LIMIT, "zipped_bytes": ZIPPED_LIMIT}
    assert report["target_unzipped_bytes"] == TARGET_UNZIPPED

    # The default deployment (function + app + numeric) meets issue 3's 150 MB.
    default = unzipped["function"] + unzipped["app"] + unzipped["numeric"]
    assert report["deployments"]["default"]["layers"] == ["app", "numeric"]
    assert report["deployments"]["default"]["unzipped_bytes"] == default
    assert report["deployments"]["default"]["budget_unzipped_bytes"] == TARGET_UNZIPPED
    assert report["total_unzipped_bytes"] == default
    assert default <= TARGET_UNZIPPED, f"default artifact {default / 2**20:.1f} MiB"
    assert report["checks"]["default_unzipped"] == "OK"
    # With DocumentStore=pgvector, function + all three layers fit Lambda's 250 MB, whatever the upload path.
    with_pgvector = default + unzipped["pgvector"]
    assert report["deployments"]["pgvector"]["layers"] == ["app", "numeric", "pgvector"]
    assert report["deployments"]["pgvector"]["unzipped_bytes"] == with_pgvector
    assert report["deployments"]["pgvector"]["budget_unzipped_bytes"] == UNZIPPED_LIMIT
    assert with_pgvector <= UNZIPPED_LIMIT
    assert report["checks"]["pgvector_unzipped"] == "OK"
    assert report["checks"]["total_unzipped"] == "OK"


def _import_probe(package: Built, deployment: str, tmp_path: Path, probe: str) -> subprocess.CompletedProcess:
    """Run ``probe`` in a fresh python3.13 -S over a read-only copy of the function and ``deployment``'s layers.

    The copy is in ``tmp_path / "code"``: ``function/`` and ``layer/`` (the layers merged, as in /opt/python).
    """
    code, home = tmp_path / "code", tmp_path / "home"
    shutil.copytree(package.function, code / "function")
    for layer in package.deployment_layers(deployment):  # Lambda extracts the layers into /opt: one folder
        shutil.copytree(layer, code / "layer", dirs_exist_ok=True)
    home.mkdir()
    _set_writable(code, writable=False)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "PYTHONPATH": f"{code / 'function'}{os.pathsep}{code / 'layer'}",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "HAYSTACK_TELEMETRY_ENABLED": "False",
    }
    try:
        # -S: see the module docstring (pyenv's .pth hook would write into the layer's certifi).
        command = [package.target_python, "-S", "-c", probe]
        return subprocess.run(command, env=env, cwd=home, capture_output=True, text=True, timeout=120, check=False)
    finally:
        _set_writable(code, writable=True)


PGVECTOR_PROBE = """
import json, sys
import core.store.pgvector, psycopg, pgvector.psycopg
from haystack_integrations.document_stores.pgvector import PgvectorDocumentStore
print(json.dumps({
    "store": core.store.pgvector.__file__,
    "integration": sys.modules["haystack_integrations.document_stores.pgvector"].__file__,
    "psycopg": psycopg.__file__,
    "adapter": pgvector.psycopg.__file__,
    "impl": psycopg.pq.__impl__,
    "libpq": psycopg.pq.version(),
    "subclass": issubclass(core.store.pgvector.PgvectorStore, PgvectorDocumentStore),
}))
"""


@built
def test_stacked_layers_import_the_pgvector_store(package, tmp_path):
    # Function + app + numeric + pgvector, as Lambda stacks them with DocumentStore=pgvector.
    code = tmp_path / "code"
    result = _import_probe(package, "pgvector", tmp_path, PGVECTOR_PROBE)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert Path(report["store"]).is_relative_to(code / "function")
    for module in ("integration", "psycopg", "adapter"):
        assert Path(report[module]).is_relative_to(code / "layer"), module
        assert report[module].endswith(".pyc"), module  # shipped as bytecode only
    # psycopg-binary's C implementation, with the libpq it bundles (Lambda's runtime has none).
    assert report["impl"] == "binary"
    assert report["libpq"] >= 100000
    assert report["subclass"] is True


@built
def test_default_layers_do_not_carry_the_pgvector_store(package, tmp_path):
    # Function + app + numeric: the pgvector store's dependencies are not there (they come with its layer).
    result = _import_probe(package, "default", tmp_path, "import core.store.pgvector")
    assert result.returncode != 0
    assert "ModuleNotFoundError: No module named 'psycopg'" in result.stderr


@built
def test_zips_hold_the_trees(package):
    trees = ["function", *(f"layer-{part}" for part in LAYER_PARTS)]
    assert sorted(p.name for p in package.out.glob("*.zip")) == sorted(f"{tree}.zip" for tree in trees)
    for tree in trees:
        with zipfile.ZipFile(package.out / f"{tree}.zip") as opened:
            assert opened.testzip() is None
            names = opened.namelist()
            assert names == sorted(names)
            root = package.out / tree
            assert set(names) == {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
            if tree.startswith("layer-"):
                assert all(name.startswith("python/") for name in names)


def test_each_deployment_has_its_layers_and_verify_run():
    # Every stack attaches app + numeric; DocumentStore=pgvector adds the pgvector layer (template.yaml).
    assert DEPLOYMENTS["default"]["layers"] == ("app", "numeric")
    assert DEPLOYMENTS["default"]["budget"] == TARGET_UNZIPPED
    assert DEPLOYMENTS["pgvector"]["layers"] == LAYER_PARTS == ("app", "numeric", "pgvector")
    assert DEPLOYMENTS["pgvector"]["budget"] == UNZIPPED_LIMIT
    # The pgvector distributions go to their part, and they are all pinned.
    assert {part_of(name) for name in PGVECTOR_DISTS} == {"pgvector"}
    assert {part_of(name) for name in NUMERIC_DISTS} == {"numeric"}
    assert part_of("haystack-ai") == part_of(None) == "app"
    assert set(PART_DISTS) == set(LAYER_PARTS) - {"app"}
    assert set(PGVECTOR_DISTS) <= pinned_names()
    # The trace still imports the pgvector modules (so their distributions stay); the artifact's check
    # imports them only with the pgvector layer stacked, and everything else in both stacks.
    pgvector_imports = set(PART_IMPORTS["pgvector"])
    assert {"core.store.pgvector", "psycopg"} <= pgvector_imports <= set(CONFIGURED_IMPORTS)
    plan = verify_plan()
    assert set(plan) == set(DEPLOYMENTS)
    assert plan["default"]["modes"] == TRACE_MODES
    assert set(plan["default"]["imports"]) == set(CONFIGURED_IMPORTS) - pgvector_imports
    assert plan["pgvector"]["layers"] == LAYER_PARTS
    assert plan["pgvector"]["imports"] == CONFIGURED_IMPORTS


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


# --- the rules, on small made-up trees (no build) -------------------------------------------------


def _fake_dist(site: Path, name: str, files: dict[str, str]) -> None:
    """An installed distribution: its files and a .dist-info with METADATA and RECORD."""
    info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    for rel, text in files.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(text)
    rows = [f"{rel},sha256=x,{len(text)}" for rel, text in files.items()]
    rows += [f"{info.name}/METADATA,sha256=x,1", f"{info.name}/RECORD,,", f"../../bin/{name},sha256=x,1"]
    (info / "RECORD").write_text("\n".join(rows) + "\n")


@pytest.fixture
def site(tmp_path) -> Path:
    site = tmp_path / "site"
    _fake_dist(site, "plain", {"plain/__init__.py": "X = 1\n", "plain/data.json": "{}"})
    _fake_dist(site, "reads-itself", {"reads_itself/__init__.py": "import inspect\n"})
    _fake_dist(site, "warns", {"warns/__init__.py": "Y = 2\n"})
    return site


def test_sources_stay_for_a_distribution_the_trace_saw_reading_them(site):
    trace = Trace(
        source_reads={
            "reads_itself/__init__.py": {"by": "reads_itself/__init__.py", "via": ["tokenize", "linecache", "inspect"]},
            # Read to print a warning's source line: cosmetic, the sources may go.
            "warns/__init__.py": {"by": "plain/__init__.py", "via": ["linecache", "warnings"]},
        }
    )
    chosen = choose_sources(site, trace, owners(site), "auto")
    assert set(chosen.kept) == {"reads-itself"}
    assert "reads_itself/__init__.py" in chosen.kept["reads-itself"]
    assert chosen.sourceless == ["plain", "warns"]
    assert chosen.display_only_reads == ["warns/__init__.py"]
    assert choose_sources(site, trace, owners(site), "all").sourceless == []


def test_an_unreviewed_source_reading_call_stops_the_build(site):
    (site / "plain" / "__init__.py").write_text("import inspect\nSOURCE = inspect.getsource(inspect)\n")
    with pytest.raises(PackageError, match=r"plain.*plain/__init__\.py:2"):
        choose_sources(site, Trace(), owners(site), "auto")
    # A comment mentioning the call is not one.
    (site / "plain" / "__init__.py").write_text("# inspect.getsource(x) would read it\n")
    assert "plain" in choose_sources(site, Trace(), owners(site), "auto").sourceless


def test_sourceless_files_become_legacy_bytecode_that_imports(site, tmp_path):
    target = find_target_python()
    compile_tree(target, site, "/opt/python", sourceless={"plain/__init__.py"})
    assert not (site / "plain" / "__init__.py").exists()
    assert (site / "plain" / "__init__.pyc").is_file()
    assert (site / "warns" / "__init__.py").is_file()
    assert (site / "warns" / "__pycache__" / "__init__.cpython-313.pyc").is_file()
    assert _bytecode_problems(site, _target_magic(target)) == []
    probe = "import plain, warns; print(plain.X + warns.Y, plain.__file__)"
    result = subprocess.run(
        [target, "-S", "-c", probe],
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(site), "PYTHONDONTWRITEBYTECODE": "1"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.split() == ["3", str(site / "plain" / "__init__.pyc")]
    assert rewrite_records(site) > 0
    record = next(site.glob("plain-*.dist-info")) / "RECORD"
    assert "plain/__init__.pyc,," in record.read_text().splitlines()
    assert "../../bin" not in record.read_text()
    (site / "plain" / "data.json").unlink()
    rewrite_records(site)
    assert "plain/data.json" not in record.read_text()


def test_layers_merge_like_opt_and_refuse_a_file_in_both(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    for layer, name in ((one, "a"), (two, "b")):
        (layer / "shared").mkdir(parents=True)
        (layer / "shared" / f"{name}.py").write_text(name)
    merge_layers([one, two], tmp_path / "merged")
    assert sorted(p.name for p in (tmp_path / "merged" / "shared").iterdir()) == ["a.py", "b.py"]
    (two / "shared" / "a.py").write_text("again")
    with pytest.raises(PackageError, match=r"shared/a\.py is in two layers"):
        merge_layers([one, two], tmp_path / "again")
