"""Real ``redis-server`` processes for tests: standalone, TLS-only and a 3-master cluster, on loopback.

Each server runs in its own directory with no persistence (``--save "" --appendonly no``), bound to
127.0.0.1 on a free port, and is ready when it answers PING. Stopping is terminate, wait, then kill.
Every wait is bounded: a server that does not come up raises :class:`RedisServerError` with the tail
of its log. Nothing here talks to any address but 127.0.0.1.

The control commands (PING, CLIENT PAUSE, FLUSHALL, CLUSTER INFO, DBSIZE) go through a tiny RESP
client on a fresh socket, so what a test does to its own redis-py clients never affects them.

``redis-server`` and ``redis-cli`` must be on PATH (``scripts/ensure-redis.sh``, run by ``make test``).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import datetime
import ipaddress
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HOST = "127.0.0.1"
START_TIMEOUT = 10.0  # seconds for a server to answer PING (or a cluster to report cluster_state:ok)
STOP_TIMEOUT = 5.0  # seconds between SIGTERM and SIGKILL
_CONTROL_TIMEOUT = 2.0  # seconds for one control command

_handed_out: set[int] = set()
_live: set[subprocess.Popen] = set()
_live_lock = threading.Lock()


class RedisServerError(RuntimeError):
    """A Redis server (or cluster) did not start, or a control command failed."""


def redis_available() -> bool:
    """Whether ``redis-server`` and ``redis-cli`` are on PATH."""
    return shutil.which("redis-server") is not None and shutil.which("redis-cli") is not None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (never the same one twice in a process)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RedisServerError("no free loopback port found")


# --- a minimal RESP client for control commands -------------------------------------------------


def _read_reply(reader) -> object:
    line = reader.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("connection closed by the server")
    kind, body = line[:1], line[1:-2]
    if kind == b"+":
        return body.decode()
    if kind == b"-":
        raise RedisServerError(body.decode())
    if kind == b":":
        return int(body)
    if kind == b"$":
        size = int(body)
        if size < 0:
            return None
        data = reader.read(size + 2)
        return data[:-2].decode()
    if kind == b"*":
        size = int(body)
        return None if size < 0 else [_read_reply(reader) for _ in range(size)]
    raise RedisServerError(f"unexpected reply {line!r}")


def command(
    port: int,
    *args: str | int,
    password: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    timeout: float = _CONTROL_TIMEOUT,
) -> object:
    """Send one command to 127.0.0.1:port on a new connection (AUTH first when a password is given)."""
    commands = ([("AUTH", password)] if password is not None else []) + [args]
    payload = b"".join(
        b"*%d\r\n" % len(cmd) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in (str(x).encode() for x in cmd))
        for cmd in commands
    )
    with socket.create_connection((HOST, port), timeout=timeout) as raw:
        sock = ssl_context.wrap_socket(raw, server_hostname=HOST) if ssl_context else raw
        with sock, sock.makefile("rb") as reader:
            sock.sendall(payload)
            reply = None
            for _ in commands:
                reply = _read_reply(reader)
            return reply


# --- processes -------------------------------------------------------------------------------------


def _libc_prctl():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _libc_prctl()
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _kill_leftovers() -> None:
    with _live_lock:
        procs = list(_live)
    for proc in procs:
        with contextlib.suppress(OSError):
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=STOP_TIMEOUT)


atexit.register(_kill_leftovers)


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


class RedisServer:
    """One standalone ``redis-server`` on a free loopback port.

    ``stop()`` then ``start()`` brings it back on the same port (an empty server: nothing persists).
    ``kill()`` is SIGKILL; ``pause(ms)`` is ``CLIENT PAUSE ms ALL``. With ``password`` the server
    requires AUTH (``.url`` carries no password; pass it to the client separately).
    """

    scheme = "redis"

    def __init__(
        self,
        workdir: str | os.PathLike | None = None,
        *,
        password: str | None = None,
        port: int | None = None,
        extra_args: list[str] | tuple[str, ...] = (),
    ) -> None:
        self._own_dir = workdir is None
        self.dir = Path(tempfile.mkdtemp(prefix="redis-")) if workdir is None else Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.password = password
        self._fixed_port = port is not None
        self.port = port if port is not None else free_port()
        self.extra_args = list(extra_args)
        self.log_file = self.dir / "redis.log"
        self._out_file = self.dir / "redis.out"
        self.proc: subprocess.Popen | None = None

    # -- what clients need
    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0`` (``rediss://`` for TLS servers)."""
        return f"{self.scheme}://{HOST}:{self.port}/0"

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        """Client TLS context for the control connection (None: plain TCP)."""
        return None

    # -- lifecycle
    def _listen_args(self) -> list[str]:
        return ["--port", str(self.port)]

    def _args(self) -> list[str]:
        args = [
            "redis-server",
            *self._listen_args(),
            "--bind",
            HOST,
            "--dir",
            str(self.dir),
            "--logfile",
            str(self.log_file),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
        ]
        if self.password is not None:
            args += ["--requirepass", self.password]
        return args + self.extra_args

    def start(self) -> RedisServer:
        """Start the server (again, on the same port) and wait until it answers PING."""
        if self.alive:
            return self
        attempts = 1 if self._fixed_port else 3
        for attempt in range(attempts):
            try:
                self._spawn_and_wait()
                return self
            except RedisServerError as exc:
                # Another process took the free port between free_port() and bind: try a new one.
                if "Address already in use" not in str(exc) or attempt == attempts - 1:
                    raise
                self.port = free_port()
        raise AssertionError("unreachable")

    def _spawn_and_wait(self) -> None:
        if shutil.which("redis-server") is None:
            raise RedisServerError("redis-server is not on PATH (run scripts/ensure-redis.sh)")
        self.log_file.write_text("")  # the tail in errors is this start's
        main_thread = threading.current_thread() is threading.main_thread()
        with open(self._out_file, "wb") as out:
            self.proc = subprocess.Popen(
                self._args(),
                cwd=self.dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                # Killed with pytest even if pytest itself is SIGKILLed (the death signal is tied to
                # the starting thread, so only when started from the main thread).
                preexec_fn=_die_with_parent if (_PRCTL and main_thread) else None,  # noqa: PLW1509
            )
        with _live_lock:
            _live.add(self.proc)
        try:
            self._wait_ready()
        except BaseException:
            self.kill()
            raise

    def _wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise self._error(f"exited with status {self.proc.returncode if self.proc else None}")
            try:
                if self.command("PING", timeout=0.5) == "PONG":
                    return
            except (OSError, RedisServerError) as exc:
                last = exc
            time.sleep(0.02)
        raise self._error(f"did not answer PING within {timeout:.0f} s (last error: {last!r})")

    def _error(self, what: str) -> RedisServerError:
        out = _tail(self._out_file, 10)
        return RedisServerError(
            f"redis-server on {HOST}:{self.port} {what}\n--- {self.log_file} ---\n{_tail(self.log_file)}"
            + (f"\n--- {self._out_file} ---\n{out}" if out.strip() not in {"(no log)", "(empty log)"} else "")
        )

    @property
    def alive(self) -> bool:
        """Whether the process is running."""
        return self.proc is not None and self.proc.poll() is None

    def _reap(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            with _live_lock:
                _live.discard(proc)

    def stop(self) -> None:
        """SIGTERM, wait up to 5 s, then SIGKILL. The port and directory are kept for ``start()``."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT)
        self._reap()

    def kill(self) -> None:
        """SIGKILL now (an abrupt crash: open connections are reset)."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)
        self._reap()

    def close(self) -> None:
        """Stop and remove the directory when this object made it."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- control
    def command(self, *args: str | int, timeout: float = _CONTROL_TIMEOUT) -> object:
        """One command on a fresh control connection (with AUTH and TLS as configured)."""
        return command(self.port, *args, password=self.password, ssl_context=self.ssl_context, timeout=timeout)

    def pause(self, ms: int) -> None:
        """``CLIENT PAUSE ms ALL``: every client's commands block for ``ms`` milliseconds.

        Nothing ends it early but time or a restart (``reset()``): under ALL, Redis 7.0 holds back
        CLIENT UNPAUSE like any other command.
        """
        self.command("CLIENT", "PAUSE", int(ms), "ALL")

    def reset(self) -> None:
        """Make the server running, responsive and empty, on the same port.

        Started if stopped or killed; restarted if it does not answer PING within 0.5 s (a
        ``CLIENT PAUSE ... ALL`` blocks every command, CLIENT UNPAUSE included, on Redis 7.0).
        """
        if self.alive:
            try:
                self.command("PING", timeout=0.5)
            except (OSError, RedisServerError):
                self.stop()
        self.start()
        self.flushall()

    def flushall(self) -> None:
        """Delete every key (synchronously)."""
        self.command("FLUSHALL", "SYNC")

    def dbsize(self) -> int:
        """Number of keys in database 0."""
        return int(self.command("DBSIZE"))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url} {'running' if self.alive else 'stopped'}>"


# --- TLS -------------------------------------------------------------------------------------------


def make_certificates(directory: str | os.PathLike, days: int = 2) -> tuple[Path, Path, Path]:
    """A self-signed CA and a server certificate for 127.0.0.1/localhost signed by it.

    Returns ``(ca_file, cert_file, key_file)`` (PEM). Uses the ``cryptography`` package when it is
    installed, else the ``openssl`` command.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ca_file, cert_file, key_file = directory / "ca.crt", directory / "server.crt", directory / "server.key"
    try:
        import cryptography  # noqa: F401
    except ImportError:
        _make_certificates_openssl(directory, ca_file, cert_file, key_file, days)
    else:
        _make_certificates_cryptography(ca_file, cert_file, key_file, days)
    return ca_file, cert_file, key_file


def _make_certificates_cryptography(ca_file: Path, cert_file: Path, key_file: Path, days: int) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "haystack-serverless test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_file.chmod(0o600)


def _make_certificates_openssl(directory: Path, ca_file: Path, cert_file: Path, key_file: Path, days: int) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RedisServerError("neither the cryptography package nor the openssl command is available")
    ca_key, csr, ext = directory / "ca.key", directory / "server.csr", directory / "server.ext"
    ext.write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth,clientAuth\n"
        f"subjectAltName=DNS:localhost,IP:{HOST}\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid\n"
    )
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    steps = [
        [openssl, "req", "-x509", *ec, "-keyout", ca_key, "-out", ca_file, "-days", str(days),
         "-subj", "/CN=haystack-serverless test CA",
         "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        [openssl, "req", *ec, "-keyout", key_file, "-out", csr, "-subj", "/CN=localhost"],
        [openssl, "x509", "-req", "-in", csr, "-CA", ca_file, "-CAkey", ca_key, "-CAcreateserial",
         "-out", cert_file, "-days", str(days), "-sha256", "-extfile", ext],
    ]  # fmt: skip
    for step in steps:
        result = subprocess.run([str(a) for a in step], capture_output=True, text=True, timeout=30, check=False)
        if result.returncode != 0:
            raise RedisServerError(f"{' '.join(map(str, step[:3]))} failed:\n{result.stderr[-2000:]}")
    key_file.chmod(0o600)


class TlsRedisServer(RedisServer):
    """A TLS-only ``redis-server`` (no plain port) with a certificate made here for 127.0.0.1.

    Clients verify it with ``ca_file``; client certificates are not required.
    """

    scheme = "rediss"

    def __init__(self, workdir: str | os.PathLike | None = None, **kwargs) -> None:
        super().__init__(workdir, **kwargs)
        self.ca_file, self.cert_file, self.key_file = make_certificates(self.dir / "tls")
        self._ssl_context = ssl.create_default_context(cafile=str(self.ca_file))

    @property
    def ssl_context(self) -> ssl.SSLContext:
        """Client TLS context that trusts ``ca_file``."""
        return self._ssl_context

    def _listen_args(self) -> list[str]:
        return [
            "--port",
            "0",
            "--tls-port",
            str(self.port),
            "--tls-cert-file",
            str(self.cert_file),
            "--tls-key-file",
            str(self.key_file),
            "--tls-ca-cert-file",
            str(self.ca_file),
            "--tls-auth-clients",
            "no",
        ]


# --- cluster ---------------------------------------------------------------------------------------


class RedisCluster:
    """Three masters (no replicas) in cluster mode on free loopback ports.

    ``nodes`` are :class:`RedisServer` objects (stop/start/kill/pause one of them for fault tests; a
    restarted node keeps its ``nodes-PORT.conf``, so it rejoins with its slots: then ``wait_ok()``).
    """

    def __init__(self, workdir: str | os.PathLike | None = None, *, size: int = 3, node_timeout_ms: int = 2000):
        self._own_dir = workdir is None
        self.dir = Path(tempfile.mkdtemp(prefix="redis-cluster-")) if workdir is None else Path(workdir)
        self.size = size
        self.node_timeout_ms = node_timeout_ms
        self.created = False
        self.nodes: list[RedisServer] = self._new_nodes()

    def _new_nodes(self) -> list[RedisServer]:
        nodes = []
        for _ in range(self.size):
            port = free_port()
            # The cluster bus gets its own free port (the default, port + 10000, may be taken or > 65535).
            args = [
                "--cluster-enabled", "yes",
                "--cluster-config-file", f"nodes-{port}.conf",
                "--cluster-node-timeout", str(self.node_timeout_ms),
                "--cluster-port", str(free_port()),
            ]  # fmt: skip
            nodes.append(RedisServer(self.dir / str(port), port=port, extra_args=args))
        return nodes

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        """``[(host, port), ...]`` of every node."""
        return [(HOST, node.port) for node in self.nodes]

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:P1`` (the first node; cluster clients discover the rest)."""
        return f"redis://{HOST}:{self.nodes[0].port}"

    def start(self) -> RedisCluster:
        """Start every node, create the cluster (the first time) and wait for ``cluster_state:ok``.

        After ``stop()``, ``start()`` brings the same cluster back (each node keeps its nodes-PORT.conf).
        """
        try:
            self._start_nodes()
            if not self.created:
                self._create()
            self.wait_ok()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_nodes(self) -> None:
        for attempt in range(3):
            try:
                for node in self.nodes:
                    node.start()
                return
            except RedisServerError as exc:
                # A port was taken between free_port() and bind: new ports for every node, before creation only.
                if self.created or "Address already in use" not in str(exc) or attempt == 2:
                    raise
                self.stop()
                self.nodes = self._new_nodes()

    def _create(self) -> None:
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RedisServerError("redis-cli is not on PATH (run scripts/ensure-redis.sh)")
        addresses = [f"{host}:{port}" for host, port in self.startup_nodes]
        create = [cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"]
        try:
            result = subprocess.run(create, capture_output=True, text=True, timeout=30, check=False)
        except subprocess.TimeoutExpired as exc:
            raise RedisServerError(f"redis-cli --cluster create timed out:\n{exc.stdout}") from exc
        if result.returncode != 0:
            raise RedisServerError(f"redis-cli --cluster create failed:\n{result.stdout}\n{result.stderr}")
        self.created = True

    def cluster_info(self, node: RedisServer) -> dict[str, str]:
        """``CLUSTER INFO`` of one node as a dict."""
        text = str(node.command("CLUSTER", "INFO"))
        return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)

    def wait_ok(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until every node reports ``cluster_state:ok`` and knows every other node."""
        deadline = time.monotonic() + timeout
        info: dict[str, str] = {}
        while time.monotonic() < deadline:
            try:
                infos = [self.cluster_info(node) for node in self.nodes]
            except (OSError, RedisServerError) as exc:
                info = {"error": repr(exc)}
            else:
                if all(
                    i.get("cluster_state") == "ok" and i.get("cluster_known_nodes") == str(len(self.nodes))
                    for i in infos
                ):
                    return
                info = next((i for i in infos if i.get("cluster_state") != "ok"), infos[0])
            time.sleep(0.05)
        logs = "\n".join(f"--- {n.log_file} ---\n{_tail(n.log_file, 10)}" for n in self.nodes)
        raise RedisServerError(f"cluster not ok within {timeout:.0f} s (last CLUSTER INFO: {info})\n{logs}")

    def flushall(self) -> None:
        """FLUSHALL on every node."""
        for node in self.nodes:
            node.flushall()

    def dbsizes(self) -> list[int]:
        """DBSIZE of every node, in ``nodes`` order."""
        return [node.dbsize() for node in self.nodes]

    def stop(self) -> None:
        """Stop every node (terminate, wait, kill)."""
        for node in self.nodes:
            node.stop()

    def close(self) -> None:
        """Stop and remove the directory when this object made it."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<RedisCluster {', '.join(f'{h}:{p}' for h, p in self.startup_nodes)}>"
