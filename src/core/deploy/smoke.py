"""Smoke tests of one Lambda version: API Gateway events in, status codes and JSON shapes checked.

``events/smoke/`` holds plain API Gateway (REST v1) proxy events, usable as they are with
``sam local invoke -e`` or ``make invoke EVENT=...``, and ``expectations.toml``, which says what the
answer to each event file must be::

    ["query.json"]
    status = 200
    keys = ["documents.0.id"]
    non_empty = ["documents"]

``keys``: JSON paths that must exist (``error.code`` looks inside ``error``, ``documents.0`` at the first
item); ``values``: paths and the exact value each must have; ``non_empty``: paths whose list, object or
string must not be empty. Every event file needs an expectation and every expectation its file. TOML, not
JSON: every ``*.json`` under ``events/`` is an API Gateway event (the package trace serves them all).

The PreTraffic hook runs the cases against the new version (``core.deploy.hooks``); anything else that
can invoke a version (the progressive controller's pre-check) can run the same ones. It invokes the version
directly, so it first gives each event what API Gateway would have added (``as_sent_by_api_gateway``): the
id of the API key the request came with (the stack's smoke tenant) and the API's own host.

Example:
    >>> cases = load_cases(default_smoke_dir())
    >>> results = run_cases(cases, invoke, Deadline.after(60), invoke_timeout_s=45)
    >>> all(r.ok for r in results)
    True
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import threading
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

EXPECTATIONS_FILE = "expectations.toml"
_CODE_ROOT = Path(__file__).resolve().parents[2]


def default_smoke_dir() -> Path:
    """``events/smoke``: beside ``core/`` in the hook's artifact, at the repository root in a checkout.

    The same rule as ``core.settings.bundled_path``, repeated so that this package needs no pydantic.
    """
    beside = _CODE_ROOT / "events" / "smoke"
    return beside if beside.exists() else _CODE_ROOT.parent / "events" / "smoke"


class SmokeConfigError(ValueError):
    """The smoke folder is missing, unreadable or inconsistent; the message names the file."""


Invoke = Callable[[dict[str, Any], float], Mapping[str, Any]]
"""Invokes the version under test with one event, within ``timeout_s``.

Returns what boto3's ``Lambda.Client.invoke`` returns: ``StatusCode``, ``FunctionError`` when the function
failed, ``Payload`` (a stream with ``read()``, or bytes).
"""


class _Context(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


class Deadline:
    """A point in time (``time.monotonic``) after which nothing new starts."""

    def __init__(self, at: float) -> None:
        self.at = at

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        """The deadline ``seconds`` from now."""
        return cls(time.monotonic() + seconds)

    @classmethod
    def from_context(cls, context: _Context, margin_s: float) -> Deadline:
        """The Lambda invocation's own end minus ``margin_s``, kept for reporting the verdict."""
        return cls.after(context.get_remaining_time_in_millis() / 1000 - margin_s)

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.at - time.monotonic())


@dataclass(frozen=True)
class Expectation:
    """What the answer to one event must be."""

    status: int
    keys: tuple[str, ...] = ()
    values: Mapping[str, Any] = field(default_factory=dict)
    non_empty: tuple[str, ...] = ()

    @property
    def needs_json(self) -> bool:
        """Whether the body must be JSON (anything beyond the status code is checked)."""
        return bool(self.keys or self.values or self.non_empty)


@dataclass(frozen=True)
class SmokeCase:
    """One event file and its expectation."""

    name: str
    event: dict[str, Any]
    expect: Expectation


@dataclass(frozen=True)
class SmokeResult:
    """The outcome of one case: ``detail`` says what was wrong, or what was seen."""

    case: str
    ok: bool
    detail: str
    status: int | None = None
    elapsed_ms: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """For logs and the hook's return value."""
        return {
            "case": self.case,
            "ok": self.ok,
            "status": self.status,
            "detail": self.detail,
            "elapsed_ms": round(self.elapsed_ms, 1),
        }


def _expectation(name: str, raw: object) -> Expectation:
    if not isinstance(raw, dict) or not isinstance(raw.get("status"), int):
        raise SmokeConfigError(f"{EXPECTATIONS_FILE}: {name} needs at least an integer 'status'")
    unknown = set(raw) - {"status", "keys", "values", "non_empty"}
    if unknown:
        raise SmokeConfigError(f"{EXPECTATIONS_FILE}: {name} has unknown fields {sorted(unknown)}")
    keys, values, non_empty = raw.get("keys", []), raw.get("values", {}), raw.get("non_empty", [])
    if not (isinstance(keys, list) and isinstance(values, dict) and isinstance(non_empty, list)):
        raise SmokeConfigError(f"{EXPECTATIONS_FILE}: {name}: keys and non_empty are lists, values an object")
    return Expectation(raw["status"], tuple(keys), dict(values), tuple(non_empty))


def load_cases(folder: Path) -> list[SmokeCase]:
    """Every event of ``folder`` with its expectation, in the order ``expectations.toml`` lists them.

    Raises:
        SmokeConfigError: No expectations file, an event without an expectation or the reverse, a file
            that is not a JSON object.
    """
    expectations_path = folder / EXPECTATIONS_FILE
    try:
        expectations = tomllib.loads(expectations_path.read_text())
    except (OSError, ValueError) as exc:
        raise SmokeConfigError(f"cannot read {expectations_path}: {exc}") from exc
    if not isinstance(expectations, dict) or not expectations:
        raise SmokeConfigError(f"{expectations_path}: expected a table per event file")
    events = {p.name for p in folder.glob("*.json")}
    if events != set(expectations):
        raise SmokeConfigError(
            f"{folder}: events without an expectation {sorted(events - set(expectations))}, "
            f"expectations without an event {sorted(set(expectations) - events)}"
        )
    cases = []
    for name, raw in expectations.items():
        try:
            event = json.loads((folder / name).read_text())
        except (OSError, ValueError) as exc:
            raise SmokeConfigError(f"cannot read {folder / name}: {exc}") from exc
        if not isinstance(event, dict):
            raise SmokeConfigError(f"{folder / name}: an API Gateway event is a JSON object")
        cases.append(SmokeCase(name, event, _expectation(name, raw)))
    return cases


def as_sent_by_api_gateway(event: Mapping[str, Any], api_key_id: str | None = None, host: str | None = None) -> dict:
    """A copy of a smoke event with the identity and host API Gateway gives a request it forwards.

    ``api_key_id`` goes to ``requestContext.identity.apiKeyId``, where the function reads the caller's API
    key id (``core.security.tenants``); ``host`` replaces the ``Host`` header (``headers`` and
    ``multiValueHeaders``), which the function checks against ``TRUSTED_HOSTS``. ``None`` leaves either as
    it is; everything else in the event is kept.

    The synthetic key id (``codedeploy-smoke-<stack>``, whose tenant record the template creates) cannot be
    forged from outside: API Gateway sets ``identity.apiKeyId`` itself, to the id of the key it verified
    (ids are API Gateway's, never a caller's choice), whatever the request carries; and an event reaches a
    version without API Gateway only through ``lambda:InvokeFunction`` on it, which only the hook's role has.
    """
    sent = copy.deepcopy(dict(event))
    if api_key_id is not None:
        context = sent.setdefault("requestContext", {})
        identity = context.get("identity")
        context["identity"] = {**(identity if isinstance(identity, dict) else {}), "apiKeyId": api_key_id}
    if host is not None:
        for name, value in (("headers", host), ("multiValueHeaders", [host])):
            headers = sent.get(name)
            if isinstance(headers, dict):
                for key in [k for k in headers if k.lower() == "host"]:
                    del headers[key]
                headers["Host"] = value
    return sent


def with_identity(cases: list[SmokeCase], api_key_id: str | None = None, host: str | None = None) -> list[SmokeCase]:
    """``cases`` with each event passed through ``as_sent_by_api_gateway``."""
    return [SmokeCase(case.name, as_sent_by_api_gateway(case.event, api_key_id, host), case.expect) for case in cases]


_MISSING = object()


def _lookup(document: object, path: str) -> object:
    """The value at a dotted path (``error.code``, ``documents.0.id``), or ``_MISSING``."""
    value = document
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def _payload_bytes(payload: object) -> bytes:
    if hasattr(payload, "read"):
        payload = payload.read()
    if isinstance(payload, str):
        return payload.encode()
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    raise TypeError(f"unexpected Payload of type {type(payload).__name__}")


def _proxy_answer(response: Mapping[str, Any]) -> tuple[int | None, dict[str, Any] | None, str]:
    """The API Gateway proxy answer in a Lambda invoke response: (statusCode, answer, problem)."""
    if response.get("StatusCode") != 200:
        return None, None, f"Lambda answered the invocation with StatusCode {response.get('StatusCode')}"
    payload = _payload_bytes(response.get("Payload", b""))
    if response.get("FunctionError"):
        return None, None, f"function error ({response['FunctionError']}): {payload[:300].decode(errors='replace')}"
    try:
        answer = json.loads(payload)
    except ValueError:
        return None, None, f"payload is not JSON: {payload[:120]!r}"
    if not isinstance(answer, dict) or not isinstance(answer.get("statusCode"), int):
        return None, None, f"payload is not an API Gateway proxy answer: {str(answer)[:120]}"
    return answer["statusCode"], answer, ""


def _body_json(answer: Mapping[str, Any]) -> object:
    body = answer.get("body") or ""
    if answer.get("isBase64Encoded"):
        body = base64.b64decode(body)
    return json.loads(body)


def check(case: SmokeCase, response: Mapping[str, Any], elapsed_ms: float = 0.0) -> SmokeResult:
    """Judge one invoke response against the case's expectation."""
    status, answer, problem = _proxy_answer(response)
    if answer is None:
        return SmokeResult(case.name, False, problem, None, elapsed_ms)
    expect = case.expect
    if status != expect.status:
        body = str(answer.get("body"))[:200]
        return SmokeResult(case.name, False, f"status {status}, expected {expect.status}: {body}", status, elapsed_ms)
    if not expect.needs_json:
        return SmokeResult(case.name, True, f"status {status}", status, elapsed_ms)
    try:
        document = _body_json(answer)
    except (ValueError, binascii.Error):
        return SmokeResult(case.name, False, f"body is not JSON: {str(answer.get('body'))[:120]}", status, elapsed_ms)
    problems = [f"no {path}" for path in expect.keys if _lookup(document, path) is _MISSING]
    for path, wanted in expect.values.items():
        seen = _lookup(document, path)
        if seen is _MISSING:
            problems.append(f"no {path}")
        elif seen != wanted:
            problems.append(f"{path} is {seen!r}, expected {wanted!r}")
    for path in expect.non_empty:
        seen = _lookup(document, path)
        if not isinstance(seen, list | dict | str) or not seen:
            problems.append(f"{path} is empty or missing")
    if problems:
        return SmokeResult(case.name, False, "; ".join(problems), status, elapsed_ms)
    return SmokeResult(case.name, True, f"status {status}, shape as expected", status, elapsed_ms)


def call_within(function: Callable[[], Any], timeout_s: float) -> Any:
    """``function()``'s result, or ``TimeoutError`` once ``timeout_s`` passed without one.

    The call runs in a daemon thread that is left behind on a timeout: a hung invocation must not keep
    the hook from reporting its verdict (botocore's read timeout bounds the real call as well).

    Raises:
        TimeoutError: No result within ``timeout_s``.
    """
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = function()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread, which re-raises it
            outcome["error"] = exc

    worker = threading.Thread(target=run, name="smoke-invoke", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        raise TimeoutError(f"no answer within {timeout_s:.1f} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def run_case(case: SmokeCase, invoke: Invoke, timeout_s: float) -> SmokeResult:
    """Invoke with one case's event and judge the answer; a failed invocation is a failed case."""
    started = time.monotonic()
    try:
        response = call_within(lambda: invoke(case.event, timeout_s), timeout_s)
    except Exception as exc:  # noqa: BLE001 - any failure to get an answer is this case's verdict
        elapsed = (time.monotonic() - started) * 1000
        return SmokeResult(case.name, False, f"invocation failed: {type(exc).__name__}: {exc}", None, elapsed)
    try:
        return check(case, response, (time.monotonic() - started) * 1000)
    except Exception as exc:  # noqa: BLE001 - an answer the checks cannot read is a failed case too
        return SmokeResult(case.name, False, f"unreadable answer: {type(exc).__name__}: {exc}")


def run_cases(cases: list[SmokeCase], invoke: Invoke, deadline: Deadline, invoke_timeout_s: float) -> list[SmokeResult]:
    """Run every case in order, each bounded by ``invoke_timeout_s`` and by what is left before ``deadline``.

    Cases the deadline leaves no time for are failed results ("not run"), so the caller can still report.
    Sequential on purpose: the first invocation pays the new version's cold start, the rest reuse it.
    """
    results = []
    for case in cases:
        remaining = deadline.remaining()
        if remaining <= 0:
            results.append(SmokeResult(case.name, False, "not run: the hook ran out of time"))
            continue
        results.append(run_case(case, invoke, min(invoke_timeout_s, remaining)))
    return results
