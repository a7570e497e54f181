"""Parse and validate an OpenAI ``/v1/embeddings`` body into an :class:`EmbeddingsRequest`.

Like chat, the validated request keeps the client's own ``body``: the attestation hashes it
(``verify.canonical_embeddings_request``). Only text inputs are accepted (not token arrays).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.proxy.node.chat_request import parse_model
from app.proxy.node.errors import InvalidRequest

MAX_INPUTS = 2_048  # OpenAI's own limit per request
MAX_DIMENSIONS = 8_192


@dataclass(frozen=True, slots=True)
class EmbeddingsRequest:
    body: dict[str, Any]
    model: str
    inputs: list[str]
    dimensions: int | None
    encoding_format: str  # "float" or "base64"


def parse_embeddings_request(body: dict[str, Any], *, known_models: Mapping[str, Any]) -> EmbeddingsRequest:
    model = parse_model(body, known_models)
    inputs = body.get("input")
    if inputs is None:
        raise InvalidRequest("'input' is required", param="input", code="missing_field")
    listed = [inputs] if isinstance(inputs, str) else inputs
    if not isinstance(listed, list) or not 1 <= len(listed) <= MAX_INPUTS:
        raise InvalidRequest(
            f"'input' must be a string or a list of 1 to {MAX_INPUTS} strings", param="input", code="invalid_type"
        )
    for index, text in enumerate(listed):
        if not isinstance(text, str) or not text:
            raise InvalidRequest(
                f"input[{index}] must be a non-empty string", param=f"input[{index}]", code="invalid_value"
            )
    dimensions = body.get("dimensions")
    if dimensions is not None and (
        isinstance(dimensions, bool) or not isinstance(dimensions, int) or not 1 <= dimensions <= MAX_DIMENSIONS
    ):
        raise InvalidRequest(
            f"'dimensions' must be a whole number from 1 to {MAX_DIMENSIONS}", param="dimensions", code="invalid_value"
        )
    encoding_format = body.get("encoding_format") or "float"
    if encoding_format not in ("float", "base64"):
        raise InvalidRequest(
            "'encoding_format' must be 'float' or 'base64'", param="encoding_format", code="invalid_value"
        )
    return EmbeddingsRequest(body, model, listed, dimensions, encoding_format)
