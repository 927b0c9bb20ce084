"""Helpers shared by tests (fixtures live in conftest.py)."""

import socket


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
