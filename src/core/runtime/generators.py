"""Chat generator backends chosen by ``GENERATOR`` (whether one is reachable: ``core.readiness.connectivity``).

Backends are imported only when chosen: the Bedrock integration pulls boto3 and aiobotocore,
the OpenAI one the ``openai`` client.
"""

from __future__ import annotations

from typing import Any

from core.settings import Settings


def build_chat_generator(settings: Settings) -> Any | None:
    """The chat generator for ``settings.generator``, or ``None`` for ``none``."""
    if settings.generator == "bedrock":
        from haystack_integrations.components.generators.amazon_bedrock import (  # noqa: PLC0415
            AmazonBedrockChatGenerator,
        )

        timeout = settings.generator_timeout_s
        return AmazonBedrockChatGenerator(
            model=settings.bedrock_model_id,
            boto3_config={"read_timeout": timeout, "connect_timeout": min(timeout, 5), "retries": {"mode": "standard"}},
        )
    if settings.generator == "openai":
        from haystack.components.generators.chat import OpenAIChatGenerator  # noqa: PLC0415
        from haystack.utils import Secret  # noqa: PLC0415

        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else "not-needed"
        return OpenAIChatGenerator(
            api_key=Secret.from_token(key),
            model=settings.openai_model,
            api_base_url=str(settings.openai_base_url),
            timeout=settings.generator_timeout_s,
            max_retries=1,
        )
    return None
