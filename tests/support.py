"""Helpers shared by tests (fixtures live in conftest.py)."""

import socket
import sys

from core.settings import Settings

# Variables the API handler reads at import: cleared so the developer's shell cannot change a test's outcome.
HANDLER_ENV = [name.upper() for name in Settings.model_fields]


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def forget_handler_module() -> None:
    """Drop ``handlers.api`` so that the next import builds a new runtime from the environment."""
    sys.modules.pop("handlers.api", None)
    handlers = sys.modules.get("handlers")
    if handlers is not None and hasattr(handlers, "api"):
        delattr(handlers, "api")
