"""Haystack YAML pipelines: loaded and warmed once per container, each with a typed API contract.

A pipeline file is a Haystack pipeline YAML with three optional top-level keys (Hayhooks' contract):

- ``description``: one line shown by ``GET /pipelines``;
- ``inputs``: public input name → ``component.socket`` or a list of them (one value feeds all);
- ``outputs``: public output name → ``component.socket``.

Without ``inputs``/``outputs`` every unconnected socket is exposed under its socket name
(``component_socket`` where two components share a name).

Request and response models are derived from the sockets' types. Conventions by input name:
``filters`` is validated as a Haystack metadata filter, ``top_k`` is 1-50, and every text input is
limited to ``MAX_QUERY_CHARS`` characters.

Every component that takes a ``document_store`` gets the store chosen in settings (one named in the
YAML is replaced), and every
``core.components.generators.ConfiguredChatGenerator`` gets the generator chosen by ``GENERATOR``:
the YAML does not change between environments.

Example:
    >>> served = load_pipelines(Path("pipelines"), store, chat_generator=None, max_text_chars=5000)
    >>> served["search"].run({"query": "parse JSON", "top_k": 3})["documents"][0]["meta"]["module"]
    'json'
"""

from __future__ import annotations

import hashlib
import inspect
import re
import time
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import yaml
from haystack import Document, Pipeline
from haystack.core.errors import DeserializationError, PipelineError
from haystack.core.serialization import DeserializationCallbacks
from haystack.dataclasses import ChatMessage
from pydantic import BaseModel, Field, create_model

from core.components.generators import ConfiguredChatGenerator, GeneratorNotConfiguredError
from core.names import PIPELINE_NAME
from core.pipelines.schemas import (
    MAX_TOP_K,
    ChatMessageIO,
    Comparison,
    DocumentIn,
    DocumentOut,
    Filters,
    Logic,
    Strict,
)

ALLOWED_MODULES = ["core.components.*"]
"""Project modules YAML may name; extend with ``HAYSTACK_DESERIALIZATION_ALLOWLIST``."""

_CONTRACT_KEYS = ("description", "inputs", "outputs")
RESERVED_OUTPUT = "cached"


class PipelineLoadError(RuntimeError):
    """A pipeline file is invalid; the message names the file."""


@dataclass
class ServedPipeline:
    """A loaded pipeline with its public contract.

    Attributes:
        unavailable: Why it cannot run (``None`` when it can).
        by_design: ``True`` when it is unavailable because a dependency is not configured
            (e.g. ``GENERATOR=none``), not because something failed.
    """

    name: str
    description: str
    version: str
    pipeline: Pipeline
    inputs: dict[str, list[tuple[str, str]]]
    outputs: dict[str, tuple[str, str]]
    request_model: type[BaseModel]
    response_model: type[BaseModel]
    unavailable: str | None = None
    by_design: bool = False
    warm_up_ms: float = 0.0
    _include: set[str] = field(default_factory=set)

    @property
    def available(self) -> bool:
        """Whether the pipeline can run."""
        return self.unavailable is None

    def input_schema(self) -> dict[str, Any]:
        """JSON schema of the request body."""
        return self.request_model.model_json_schema()

    def run(self, values: dict[str, Any]) -> dict[str, Any]:
        """Run with public input values (as validated by ``request_model``); returns public outputs as JSON data.

        Inputs left out (``None``) are not passed, so components keep their own defaults.
        """
        data: dict[str, dict[str, Any]] = {}
        for name, value in values.items():
            if value is None:
                continue
            for component, socket in self.inputs[name]:
                data.setdefault(component, {})[socket] = to_haystack(value)
        result = self.pipeline.run(data, include_outputs_from=self._include)
        return {
            name: to_api(result.get(component, {}).get(socket)) for name, (component, socket) in self.outputs.items()
        }


def to_haystack(value: Any) -> Any:
    """API value → what components take (documents, chat messages, plain filter dicts)."""
    if isinstance(value, DocumentIn):
        return Document(content=value.content, meta=value.meta, **({"id": value.id} if value.id else {}))
    if isinstance(value, ChatMessageIO):
        factory = {"user": ChatMessage.from_user, "assistant": ChatMessage.from_assistant}
        return factory.get(value.role, ChatMessage.from_system)(value.text or "")
    if isinstance(value, (Comparison, Logic)):
        return value.model_dump()
    if isinstance(value, BaseModel):
        return value.model_dump()
    if isinstance(value, list):
        return [to_haystack(v) for v in value]
    return value


def to_api(value: Any) -> Any:
    """Component output → JSON data (documents without embeddings, messages as role + text)."""
    if isinstance(value, Document):
        return {"id": value.id, "content": value.content, "score": value.score, "meta": to_api(value.meta)}
    if isinstance(value, ChatMessage):
        return {"role": value.role.value, "text": value.text, "meta": to_api(value.meta)}
    if isinstance(value, dict):
        return {str(k): to_api(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_api(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _api_type(kind: Any, direction: str) -> Any:
    """Map a socket type to a type pydantic can validate and describe in OpenAPI."""
    if kind is Document:
        return DocumentIn if direction == "in" else DocumentOut
    if kind is ChatMessage:
        return ChatMessageIO
    if kind in (str, int, float, bool):
        return kind
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        mapped = [_api_type(a, direction) for a in args if a is not type(None)]
        result = mapped[0] if len(mapped) == 1 else typing.Union[tuple(mapped)]  # noqa: UP007
        return result | None if type(None) in args else result
    if origin in (list, Sequence, typing.Sequence) or kind in (list, Sequence):
        return list[_api_type(args[0], direction) if args else Any]
    if origin is dict or kind is dict:
        return dict[str, Any]
    return Any


def _field(name: str, kind: Any, required: bool, max_text_chars: int) -> tuple[Any, Any]:
    if name == "filters":
        return Filters | None, None
    if name == "top_k" and kind in (int, int | None):
        constraint = Field(ge=1, le=MAX_TOP_K, description=f"Documents to return (1-{MAX_TOP_K}).")
        return (
            Annotated[int, constraint] if required else Annotated[int, constraint] | None
        ), ... if required else None
    if kind in (str, str | None):
        limited = Annotated[str, Field(min_length=1, max_length=max_text_chars)]
        return (limited if required else limited | None), ... if required else None
    return (kind if required else kind | None), ... if required else None


def _parse_contract(path: Path, pipeline: Pipeline, contract: dict[str, Any]) -> tuple[dict, dict]:
    """Resolve ``inputs``/``outputs`` into socket lists, checking every reference."""
    sockets_in = pipeline.inputs(include_components_with_connected_inputs=True)
    sockets_out = pipeline.outputs(include_components_with_connected_outputs=True)

    def ref(value: Any, available: dict) -> tuple[str, str]:
        if not isinstance(value, str) or "." not in value:
            raise PipelineLoadError(f"{path.name}: expected 'component.socket', got {value!r}")
        component, socket = value.split(".", 1)
        if socket not in available.get(component, {}):
            raise PipelineLoadError(f"{path.name}: no socket {value!r} in this pipeline")
        return component, socket

    declared_in = contract.get("inputs")
    if declared_in is None:
        free = pipeline.inputs()
        counts: dict[str, int] = {}
        for sockets in free.values():
            for s in sockets:
                counts[s] = counts.get(s, 0) + 1
        inputs = {(s if counts[s] == 1 else f"{c}_{s}"): [(c, s)] for c, sockets in free.items() for s in sockets}
    elif isinstance(declared_in, dict):
        inputs = {
            str(name): [ref(r, sockets_in) for r in (refs if isinstance(refs, list) else [refs])]
            for name, refs in declared_in.items()
        }
    else:
        raise PipelineLoadError(f"{path.name}: 'inputs' must be a mapping")

    declared_out = contract.get("outputs")
    if declared_out is None:
        free_out = pipeline.outputs()
        names = [s for sockets in free_out.values() for s in sockets]
        outputs = {
            (s if names.count(s) == 1 else f"{c}_{s}"): (c, s) for c, sockets in free_out.items() for s in sockets
        }
    elif isinstance(declared_out, dict):
        outputs = {str(name): ref(r, sockets_out) for name, r in declared_out.items()}
    else:
        raise PipelineLoadError(f"{path.name}: 'outputs' must be a mapping")
    return inputs, outputs


def _models(
    name: str, pipeline: Pipeline, inputs: dict, outputs: dict, max_text_chars: int
) -> tuple[type[BaseModel], type[BaseModel]]:
    sockets_in = pipeline.inputs(include_components_with_connected_inputs=True)
    sockets_out = pipeline.outputs(include_components_with_connected_outputs=True)
    title = "".join(part.capitalize() for part in re.split(r"[-_]", name))
    request_fields = {}
    for public, refs in inputs.items():
        first = sockets_in[refs[0][0]][refs[0][1]]
        required = any(sockets_in[c][s]["is_mandatory"] for c, s in refs)
        kind = _api_type(first["type"], "in")
        request_fields[public] = _field(public, kind, required, max_text_chars)
    response_fields: dict[str, Any] = {
        public: (_api_type(sockets_out[c][s]["type"], "out") | None, None) for public, (c, s) in outputs.items()
    }
    response_fields["cached"] = (bool, Field(description="Whether a cache answered (see the X-Cache header)."))
    request = create_model(f"{title}RunRequest", __base__=Strict, **request_fields)
    response = create_model(f"{title}RunResponse", **response_fields)
    return request, response


def load_pipeline_file(
    path: Path, document_store: Any, chat_generator: Any | None, max_text_chars: int
) -> ServedPipeline:
    """Load, check and warm up one pipeline file.

    Raises:
        PipelineLoadError: The file is not a valid pipeline or its contract names unknown sockets.
    """
    name = path.stem
    if not PIPELINE_NAME.match(name):
        raise PipelineLoadError(f"{path.name}: pipeline names are lower-case letters, digits, '-' and '_'")
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PipelineLoadError(f"{path.name}: invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise PipelineLoadError(f"{path.name}: expected a mapping at the top level")
    contract = {key: data.pop(key) for key in _CONTRACT_KEYS if key in data}

    def inject(_component_name: str, component_cls: type, init_params: dict[str, Any]) -> None:
        if "document_store" in init_params or "document_store" in inspect.signature(component_cls.__init__).parameters:
            init_params["document_store"] = document_store
        if component_cls is ConfiguredChatGenerator:
            init_params["backend"] = chat_generator

    try:
        pipeline = Pipeline.from_dict(
            data, callbacks=DeserializationCallbacks(component_pre_init=inject), allowed_modules=ALLOWED_MODULES
        )
    except (DeserializationError, PipelineError, TypeError, ValueError, ImportError) as exc:
        raise PipelineLoadError(f"{path.name}: {exc}") from None

    inputs, outputs = _parse_contract(path, pipeline, contract)
    if RESERVED_OUTPUT in outputs:
        raise PipelineLoadError(f"{path.name}: the output name {RESERVED_OUTPUT!r} is reserved (the cache flag)")
    request_model, response_model = _models(name, pipeline, inputs, outputs, max_text_chars)
    served = ServedPipeline(
        name=name,
        description=str(contract.get("description") or (data.get("metadata") or {}).get("description") or ""),
        version=hashlib.sha256(text.encode()).hexdigest()[:12],
        pipeline=pipeline,
        inputs=inputs,
        outputs=outputs,
        request_model=request_model,
        response_model=response_model,
        # Only outputs that feed another component need include_outputs_from (it costs a deep copy);
        # a leaf output is in the result anyway.
        _include={c for c, socket in outputs.values() if socket not in pipeline.outputs().get(c, {})},
    )
    started = time.perf_counter()
    try:
        pipeline.warm_up()
    except GeneratorNotConfiguredError as exc:
        served.unavailable, served.by_design = str(exc), True
    except Exception as exc:  # noqa: BLE001 - any warm-up failure makes this pipeline unavailable, not the service
        served.unavailable = f"warm-up failed: {type(exc).__name__}: {exc}"
    served.warm_up_ms = round((time.perf_counter() - started) * 1000, 1)
    return served


def load_pipelines(
    directory: Path, document_store: Any, chat_generator: Any | None, max_text_chars: int
) -> dict[str, ServedPipeline]:
    """Load every ``*.yml``/``*.yaml`` in ``directory``, sorted by name.

    Raises:
        PipelineLoadError: The folder is missing or empty, or any file is invalid.
    """
    if not directory.is_dir():
        raise PipelineLoadError(f"pipelines folder {directory} does not exist")
    files = sorted([*directory.glob("*.yml"), *directory.glob("*.yaml")])
    if not files:
        raise PipelineLoadError(f"no pipeline files (*.yml, *.yaml) in {directory}")
    served: dict[str, ServedPipeline] = {}
    for path in files:
        pipeline = load_pipeline_file(path, document_store, chat_generator, max_text_chars)
        if pipeline.name in served:
            raise PipelineLoadError(f"{path.name}: a pipeline named {pipeline.name!r} is already loaded")
        served[pipeline.name] = pipeline
    return served
