"""Request ids: API Gateway's when safe, the caller's when safe, else a new one."""

import pytest

from core.api.middleware import request_id_from_scope


def scope(request_id=None, header=None) -> dict:
    headers = [(b"x-request-id", header.encode("latin-1"))] if header is not None else []
    event = {"requestContext": {"requestId": request_id}} if request_id is not None else None
    return {"aws.event": event, "headers": headers} if event else {"headers": headers}


@pytest.mark.parametrize("request_id", ["c6af9ac6-7b61-11e6-9a41-93e8deadbeef", "Vq3TgiBhIAMEYxQ="])
def test_api_gateway_request_ids_are_used(request_id):
    assert request_id_from_scope(scope(request_id, header="caller-id")) == request_id


@pytest.mark.parametrize("bad", ["id\r\nSet-Cookie: x=1", "id\n", "idé€", "x" * 129, ""])
def test_unsafe_ids_are_replaced(bad):
    chosen = request_id_from_scope(scope(bad))
    assert chosen != bad
    assert len(chosen) == 36  # a fresh UUID


def test_caller_header_is_used_locally_when_safe():
    assert request_id_from_scope(scope(header="trace-42")) == "trace-42"
    assert len(request_id_from_scope(scope(header="a b"))) == 36
