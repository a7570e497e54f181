"""The node's OpenAPI description of what it really takes and answers.

``POST /v1/chat/completions`` and ``POST /v1/embeddings`` read their raw body themselves (the attestation
hashes the body exactly as sent, see :mod:`app.proxy.node.chat_request`), so Litestar cannot infer their
schema: :class:`ChatOperation` and :class:`EmbeddingsOperation` write the request body (the OpenAI subset
the node accepts), the x402 headers, the 200 media types (for chat: JSON, or server-sent events with
``"stream": true``) and the errors, all in OpenAI's shape ``{"error": {"message", "type", "param", "code"}}``
but for the x402 402.
"""

from __future__ import annotations

from dataclasses import dataclass

from litestar.openapi.spec import (
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    RequestBody,
    Schema,
)

from app.proxy.node.chat_request import MAX_STOP_SEQUENCES, MESSAGE_ROLES
from app.proxy.node.embeddings_request import MAX_DIMENSIONS, MAX_INPUTS

STRING, INTEGER, NUMBER, BOOLEAN, OBJECT, ARRAY, NULL = (
    OpenAPIType.STRING,
    OpenAPIType.INTEGER,
    OpenAPIType.NUMBER,
    OpenAPIType.BOOLEAN,
    OpenAPIType.OBJECT,
    OpenAPIType.ARRAY,
    OpenAPIType.NULL,
)
JSON = "application/json"


def _nullable(schema: Schema) -> Schema:
    return Schema(one_of=[schema, Schema(type=NULL)])


ERROR = Schema(
    type=OBJECT,
    required=["error"],
    title="OpenAIError",
    description="OpenAI's error shape: the OpenAI SDKs raise their usual exceptions from it",
    properties={
        "error": Schema(
            type=OBJECT,
            required=["message", "type", "param", "code"],
            properties={
                "message": Schema(type=STRING),
                "type": Schema(
                    type=STRING, description="invalid_request_error, payment_required, server_busy, upstream_error, …"
                ),
                "param": _nullable(Schema(type=STRING, description="the offending field, e.g. messages[2].role")),
                "code": _nullable(Schema(type=STRING)),
            },
        )
    },
)

PAYMENT_REQUIRED = Schema(
    type=OBJECT,
    required=["x402Version", "accepts"],
    title="PaymentRequired",
    description="x402 v2 payment terms, also base64-encoded in the PAYMENT-REQUIRED header; ``error`` "
    "says why the payment sent (if any) was refused",
    properties={
        "x402Version": Schema(type=INTEGER),
        "error": Schema(type=STRING),
        "resource": Schema(type=OBJECT),
        "accepts": Schema(
            type=ARRAY, items=Schema(type=OBJECT, required=["scheme", "network", "amount", "asset", "payTo"])
        ),
        "extensions": Schema(type=OBJECT),
    },
)

_TEXT_PART = Schema(
    type=OBJECT,
    required=["type", "text"],
    properties={"type": Schema(type=STRING, enum=["text"]), "text": Schema(type=STRING)},
)
MESSAGE = Schema(
    type=OBJECT,
    required=["role"],
    description="content is required but for an assistant message with tool_calls; a tool message needs tool_call_id",
    properties={
        "role": Schema(type=STRING, enum=list(MESSAGE_ROLES)),
        "content": Schema(one_of=[Schema(type=STRING), Schema(type=ARRAY, items=_TEXT_PART), Schema(type=NULL)]),
        "tool_call_id": Schema(type=STRING),
        "tool_calls": Schema(type=ARRAY, items=Schema(type=OBJECT)),
        "name": Schema(type=STRING),
    },
)
_STOP = Schema(type=STRING, min_length=1)
_POSITIVE_INT = Schema(type=INTEGER, minimum=1, description="at most the node's max_completion_tokens")
CHAT_REQUEST = Schema(
    type=OBJECT,
    required=["model", "messages"],
    title="ChatCompletionRequest",
    description="OpenAI's chat-completions request, the subset this node serves; other OpenAI fields are "
    "passed over (and hashed into the attestation as sent)",
    properties={
        "model": Schema(type=STRING, min_length=1, description="one of GET /v1/models", examples=["twin-offline-demo"]),
        "messages": Schema(type=ARRAY, min_items=1, items=MESSAGE),
        "stream": _nullable(Schema(type=BOOLEAN)),
        "temperature": _nullable(Schema(type=NUMBER, minimum=0, maximum=2)),
        "top_p": _nullable(Schema(type=NUMBER, minimum=0, maximum=1)),
        "max_tokens": _nullable(_POSITIVE_INT),
        "max_completion_tokens": _nullable(_POSITIVE_INT),
        "stop": Schema(
            one_of=[_STOP, Schema(type=ARRAY, max_items=MAX_STOP_SEQUENCES, items=_STOP), Schema(type=NULL)]
        ),
        "n": _nullable(Schema(type=INTEGER, enum=[1])),
        "tools": _nullable(Schema(type=ARRAY, items=Schema(type=OBJECT))),
        "web_search": Schema(
            type=BOOLEAN,
            enum=[False],
            description="refused: a reply built on what a search fetched could not be attested",
        ),
    },
)
CHAT_EXAMPLE = {"model": "twin-offline-demo", "messages": [{"role": "user", "content": "Hello"}]}

COMPLETION = Schema(
    type=OBJECT,
    required=["id", "object", "created", "model", "choices"],
    title="ChatCompletion",
    description="OpenAI's chat.completion, with usage and (unless X-Twin-Verification: none) the attestation "
    "fields; PAYMENT-RESPONSE carries the settlement",
    properties={
        "id": Schema(type=STRING),
        "object": Schema(type=STRING, enum=["chat.completion"]),
        "created": Schema(type=INTEGER),
        "model": Schema(type=STRING),
        "choices": Schema(type=ARRAY, items=Schema(type=OBJECT)),
        "usage": Schema(type=OBJECT),
    },
)


def _error(description: str) -> OpenAPIResponse:
    return OpenAPIResponse(description=description, content={JSON: OpenAPIMediaType(schema=ERROR)})


CHAT_RESPONSES = {
    "200": OpenAPIResponse(
        description="The reply: JSON, or server-sent events of chat.completion.chunk "
        'with "stream": true (the last one attested), then [DONE]',
        content={
            JSON: OpenAPIMediaType(schema=COMPLETION),
            "text/event-stream": OpenAPIMediaType(schema=Schema(type=STRING)),
        },
    ),
    "400": _error(
        "Bad request: not JSON, a missing or bad field (param names it), an unknown model, "
        "a bad X-Twin-Verification, a body over the size limit"
    ),
    "402": OpenAPIResponse(
        description="Payment required (x402): the terms, or why the payment was refused; "
        "a payment that failed to settle gets the OpenAI error shape",
        content={JSON: OpenAPIMediaType(schema=Schema(one_of=[PAYMENT_REQUIRED, ERROR]))},
    ),
    "502": _error("Every upstream of the model failed"),
    "503": _error("At capacity, or the payment cannot be checked right now; retry shortly"),
}
CHAT_PARAMETERS = [
    Parameter(
        name="PAYMENT-SIGNATURE",
        param_in="header",
        required=False,
        schema=Schema(type=STRING),
        description="x402 v2 payment (base64 JSON); X-PAYMENT for v1",
    ),
    Parameter(
        name="X-Twin-Verification",
        param_in="header",
        required=False,
        schema=Schema(type=STRING, enum=["none", "signature", "tee"]),
        description="how the reply is attested (default: the node's)",
    ),
]


@dataclass
class ChatOperation(Operation):
    """``POST /v1/chat/completions`` as documented above (Litestar sees only a raw-body handler)."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True, content={JSON: OpenAPIMediaType(schema=CHAT_REQUEST, example=CHAT_EXAMPLE)}
        )
        self.parameters = [*(self.parameters or []), *CHAT_PARAMETERS]
        self.responses = dict(CHAT_RESPONSES)


_INPUT_TEXT = Schema(type=STRING, min_length=1)
EMBEDDINGS_EXAMPLE = {"model": "text-embedding-3-small", "input": "Hello"}
EMBEDDINGS_REQUEST = Schema(
    type=OBJECT,
    required=["model", "input"],
    title="EmbeddingsRequest",
    properties={
        "model": Schema(type=STRING, description="a model the node routes to an upstream that embeds"),
        "input": Schema(one_of=[_INPUT_TEXT, Schema(type=ARRAY, min_items=1, max_items=MAX_INPUTS, items=_INPUT_TEXT)]),
        "encoding_format": _nullable(Schema(type=STRING, enum=["float", "base64"])),
        "dimensions": _nullable(Schema(type=INTEGER, minimum=1, maximum=MAX_DIMENSIONS)),
    },
)
EMBEDDINGS = Schema(
    type=OBJECT,
    required=["object", "data", "model"],
    title="EmbeddingList",
    description="OpenAI's embedding list, with usage and (unless X-Twin-Verification: none) the attestation "
    "fields; PAYMENT-RESPONSE carries the settlement",
    properties={
        "object": Schema(type=STRING, enum=["list"]),
        "data": Schema(type=ARRAY, items=Schema(type=OBJECT)),
        "model": Schema(type=STRING),
        "usage": Schema(type=OBJECT),
    },
)
EMBEDDINGS_RESPONSES = {
    **CHAT_RESPONSES,
    "200": OpenAPIResponse(description="The vectors", content={JSON: OpenAPIMediaType(schema=EMBEDDINGS)}),
    "400": _error(
        "Bad request: not JSON, a missing or bad field (param names it), an unknown model or one no upstream can "
        "embed, a bad X-Twin-Verification, a body over the size limit"
    ),
}


@dataclass
class EmbeddingsOperation(Operation):
    """``POST /v1/embeddings`` as documented above (Litestar sees only a raw-body handler)."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True,
            content={JSON: OpenAPIMediaType(schema=EMBEDDINGS_REQUEST, example=EMBEDDINGS_EXAMPLE)},
        )
        self.parameters = [*(self.parameters or []), *CHAT_PARAMETERS]
        self.responses = dict(EMBEDDINGS_RESPONSES)
