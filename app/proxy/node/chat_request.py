"""Parse and validate an OpenAI ``/v1/chat/completions`` body into a :class:`ChatRequest`.

Every rejection names the offending field (``param``) the way OpenAI does, e.g.
``messages[2].role``. The validated request keeps the client's own ``body`` too, because the
attestation hashes the request exactly as the client sent it (see ``verify.canonical_request``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from app.proxy.node.errors import InvalidRequest

MESSAGE_ROLES = ("system", "developer", "user", "assistant", "tool")
MAX_STOP_SEQUENCES = 4


@dataclass(frozen=True, slots=True)
class ChatRequest:
    body: dict[str, Any]
    model: str
    messages: list[dict[str, Any]]
    stream: bool
    temperature: float | None
    top_p: float | None
    max_tokens: int | None
    stop: list[str]
    tools: list[dict[str, Any]] | None

    @property
    def system_prompt(self) -> str:
        """All system and developer messages, joined: a provider's separate system field."""
        return "\n\n".join(
            content_text(m.get("content")) for m in self.messages if m["role"] in ("system", "developer")
        )

    @property
    def last_user_message(self) -> str:
        users = (m for m in reversed(self.messages) if m["role"] == "user")
        return next((content_text(m.get("content")) for m in users), "")


def content_text(content: Any) -> str:
    """The text of a message's content: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def decode_body(raw: bytes) -> dict[str, Any]:
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError as error:
        raise InvalidRequest(f"the body is not valid JSON: {error}", code="invalid_json") from None
    except RecursionError:  # the decoder's depth guard: the recursion limit (app.hardening)
        raise InvalidRequest("the body nests too deeply", code="invalid_json") from None
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object", code="invalid_json")
    return body


def parse_model(body: dict[str, Any], known_models: Mapping[str, Any]) -> str:
    """The body's ``model``, one this node serves (chat and embeddings alike)."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' is required and must be a string", param="model", code="missing_field")
    if model not in known_models:
        raise InvalidRequest(
            f"model {model!r} is not served by this node; GET /v1/models lists those that are",
            param="model",
            code="model_not_found",
        )
    return model


def parse_chat_request(
    body: dict[str, Any], *, known_models: Mapping[str, Any], max_completion_tokens: int
) -> ChatRequest:
    model = parse_model(body, known_models)
    n = body.get("n")
    if n is not None and n != 1:
        raise InvalidRequest("only n=1 is supported", param="n", code="unsupported_value")
    if body.get("web_search"):  # refused before payment: what a search fetched could not be attested
        raise InvalidRequest(
            "web_search is not offered by this node: a reply built on search results it fetched could not be attested",
            param="web_search",
            code="unsupported_parameter",
        )
    return ChatRequest(
        body=body,
        model=model,
        messages=_parse_messages(body.get("messages")),
        stream=_parse_bool(body, "stream"),
        temperature=_parse_number(body, "temperature", 0.0, 2.0),
        top_p=_parse_number(body, "top_p", 0.0, 1.0),
        max_tokens=_parse_max_tokens(body, max_completion_tokens),
        stop=_parse_stop(body.get("stop")),
        tools=_parse_tools(body.get("tools")),
    )


def _parse_messages(messages: Any) -> list[dict[str, Any]]:
    if messages is None:
        raise InvalidRequest("'messages' is required", param="messages", code="missing_field")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty list", param="messages", code="invalid_type")
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise InvalidRequest(f"{where} must be an object", param=where, code="invalid_type")
        role = message.get("role")
        if role not in MESSAGE_ROLES:
            raise InvalidRequest(
                f"{where}.role must be one of {', '.join(MESSAGE_ROLES)} (got {role!r})",
                param=f"{where}.role",
                code="invalid_value",
            )
        _check_content(message, where, may_be_empty=role == "assistant" and bool(message.get("tool_calls")))
        if role == "tool" and not isinstance(message.get("tool_call_id"), str):
            raise InvalidRequest(
                f"{where}.tool_call_id is required for a tool message",
                param=f"{where}.tool_call_id",
                code="missing_field",
            )
    return messages


def _check_content(message: dict[str, Any], where: str, *, may_be_empty: bool) -> None:
    content = message.get("content")
    if content is None and may_be_empty:
        return
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise InvalidRequest(
            f"{where}.content must be a string or a list of text parts", param=f"{where}.content", code="invalid_type"
        )
    for index, part in enumerate(content):
        if not (isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)):
            raise InvalidRequest(
                f'{where}.content[{index}] must be a text part (type "text"); only text is supported',
                param=f"{where}.content[{index}]",
                code="unsupported_content",
            )


def _parse_bool(body: dict[str, Any], field: str) -> bool:
    value = body.get(field, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidRequest(f"'{field}' must be true or false", param=field, code="invalid_type")
    return value


def _parse_number(body: dict[str, Any], field: str, low: float, high: float) -> float | None:
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise InvalidRequest(f"'{field}' must be a number from {low:g} to {high:g}", param=field, code="invalid_value")
    return float(value)


def _parse_max_tokens(body: dict[str, Any], limit: int) -> int | None:
    field = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
        raise InvalidRequest(f"'{field}' must be a whole number from 1 to {limit}", param=field, code="invalid_value")
    return value


def _parse_stop(stop: Any) -> list[str]:
    if stop is None:
        return []
    sequences = [stop] if isinstance(stop, str) else stop
    if (
        not isinstance(sequences, list)
        or len(sequences) > MAX_STOP_SEQUENCES
        or not all(isinstance(s, str) and s for s in sequences)
    ):
        raise InvalidRequest(
            f"'stop' must be a string or a list of at most {MAX_STOP_SEQUENCES} strings",
            param="stop",
            code="invalid_value",
        )
    return sequences


def _parse_tools(tools: Any) -> list[dict[str, Any]] | None:
    if tools is None:
        return None
    if not isinstance(tools, list) or not all(isinstance(tool, dict) for tool in tools):
        raise InvalidRequest("'tools' must be a list of tool objects", param="tools", code="invalid_type")
    return tools or None
