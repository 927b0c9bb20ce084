"""Chat generator backends chosen by ``GENERATOR``, and how to tell whether one is reachable.

Backends are imported only when chosen: the Bedrock integration pulls boto3 and aiobotocore,
the OpenAI one the ``openai`` client.
"""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one readiness check: ✓ (``ok``), ⚠ (``ok`` with ``warning``) or ✗ (not ``ok``).

    A check reports a failure as ``ok=False``; ``core.readiness`` turns the failures of non-critical
    checks into warnings, so in a finished report ``ok=False`` means a critical failure (``/ready`` 503).
    """

    name: str
    ok: bool
    detail: str
    warning: bool = False
    recommendation: str | None = None

    @property
    def severity(self) -> str:
        """``ok``, ``warning`` or ``critical``."""
        if not self.ok:
            return "critical"
        return "warning" if self.warning else "ok"

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of ``/ready`` and ``python -m core.readiness --json``."""
        return {
            "name": self.name,
            "ok": self.ok,
            "severity": self.severity,
            "detail": self.detail,
            "recommendation": self.recommendation,
        }


def check_generator(settings: Settings, backend: Any | None) -> CheckResult | None:
    """Whether the configured generator can be reached; ``None`` when none is configured.

    OpenAI-compatible servers: ``GET {base}/models`` answers. Bedrock: credentials and a region
    resolve (a model call would cost money on every probe).
    """
    if settings.generator == "none":
        return None
    if settings.generator == "openai":
        import httpx  # noqa: PLC0415

        url = str(settings.openai_base_url).rstrip("/") + "/models"
        headers = {}
        if settings.openai_api_key:
            headers["Authorization"] = f"Bearer {settings.openai_api_key.get_secret_value()}"
        try:
            response = httpx.get(url, timeout=settings.readiness_timeout_s, headers=headers)
        except httpx.HTTPError as exc:
            return CheckResult("generator", False, f"{settings.openai_base_url} unreachable: {type(exc).__name__}")
        if response.status_code >= 400:
            return CheckResult("generator", False, f"{url} answered {response.status_code}")
        return CheckResult("generator", True, f"openai-compatible server at {settings.openai_base_url}")
    client = getattr(backend, "client", None)
    if client is None:
        return CheckResult("generator", False, "Bedrock client not created (warm-up failed)")
    credentials = client._request_signer._credentials  # noqa: SLF001 - boto3 exposes no public accessor
    if credentials is None or not client.meta.region_name:
        return CheckResult("generator", False, "no AWS credentials or region for Bedrock")
    return CheckResult("generator", True, f"bedrock {settings.bedrock_model_id} in {client.meta.region_name}")
