"""A chat generator slot that settings fill, so one YAML serves Bedrock, OpenAI-compatible servers or none.

In YAML the slot carries only generation options::

    llm:
      type: core.components.generators.ConfiguredChatGenerator
      init_parameters: {generation_kwargs: {maxTokens: 512}}

The pipeline loader (``core.pipelines.loader``) hands it the backend chosen by ``GENERATOR``
(``core.runtime.generators.build_chat_generator``). Without a backend the slot reports itself unavailable
at warm-up, and the pipeline is listed but not runnable.
"""

from __future__ import annotations

import time
from typing import Any

from haystack import component, default_to_dict
from haystack.dataclasses import ChatMessage

from core.observability.context import current_request


class GeneratorNotConfiguredError(RuntimeError):
    """No chat generator is configured (``GENERATOR=none``)."""


class GeneratorError(RuntimeError):
    """The configured chat generator failed to answer."""


@component
class ConfiguredChatGenerator:
    """Delegates to the chat generator chosen by settings.

    Args:
        generation_kwargs: Options passed to the backend on every call (backend-specific names).
        backend: The chat generator to delegate to; injected by the pipeline loader, not serialised.
    """

    def __init__(self, generation_kwargs: dict[str, Any] | None = None, backend: Any = None) -> None:
        self.generation_kwargs = generation_kwargs or {}
        self.backend = backend
        self._warm = False

    def to_dict(self) -> dict[str, Any]:
        """Serialise the slot (the backend is configuration, not part of the pipeline)."""
        return default_to_dict(self, generation_kwargs=self.generation_kwargs)

    def warm_up(self) -> None:
        """Warm the backend up (creates its client).

        Raises:
            GeneratorNotConfiguredError: No backend is configured.
        """
        if self.backend is None:
            raise GeneratorNotConfiguredError("no chat generator configured (GENERATOR=none)")
        if not self._warm and hasattr(self.backend, "warm_up"):
            self.backend.warm_up()
        self._warm = True

    def replace_backend(self, backend: Any) -> None:
        """Swap in a new backend (e.g. with fresh network clients after a SnapStart restore) and warm it up."""
        self.backend = backend
        self._warm = False
        if backend is not None:
            self.warm_up()

    @component.output_types(replies=list[ChatMessage])
    def run(self, messages: list[ChatMessage], generation_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
        """Generate replies to ``messages``.

        Raises:
            GeneratorNotConfiguredError: No backend is configured.
            GeneratorError: The backend failed.
        """
        self.warm_up()
        kwargs = {**self.generation_kwargs, **(generation_kwargs or {})}
        started = time.perf_counter()
        try:
            result = self.backend.run(messages=messages, generation_kwargs=kwargs or None)
        except Exception as exc:
            raise GeneratorError(f"{type(self.backend).__name__} failed: {type(exc).__name__}") from exc
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000
        record = current_request()
        if record is not None:
            record.add_generator_call(elapsed_ms, token_usage(result["replies"]))
        return {"replies": result["replies"]}


_INPUT_KEYS = ("prompt_tokens", "input_tokens", "inputTokens")
_OUTPUT_KEYS = ("completion_tokens", "output_tokens", "outputTokens")


def token_usage(replies: list[ChatMessage]) -> dict[str, int | None]:
    """Input and output tokens the backend reported in the replies' ``meta["usage"]`` (``None`` when silent).

    OpenAI-compatible servers and Bedrock's Converse (through amazon-bedrock-haystack) report
    ``prompt_tokens``/``completion_tokens``; the raw Converse names are accepted too.
    """
    usage: dict[str, int | None] = {"input_tokens": None, "output_tokens": None}
    for reply in replies:
        reported = (reply.meta or {}).get("usage") or {}
        for name, keys in (("input_tokens", _INPUT_KEYS), ("output_tokens", _OUTPUT_KEYS)):
            value = next((reported[k] for k in keys if isinstance(reported.get(k), int)), None)
            if value is not None:
                usage[name] = (usage[name] or 0) + value
    return usage
