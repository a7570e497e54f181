"""Per-reply attestation: the one canonicalisation and verifier every party uses.

Byte-compatible with OpenGradient's TEE gateway and its SDK's ``tee_verify`` module, so their
clients can check our replies and we can check theirs:

* canonical request: ``model``; ``messages`` (system/developer → system, user, assistant with
  its tool calls, tool); ``temperature`` as a float (0.0 when absent); and ``max_tokens``,
  ``stop``, ``tools``, ``response_format`` when present;
* ``request_hash = keccak256(json.dumps(canonical, sort_keys=True))``;
* ``output_hash = keccak256(assistant text)``, or of ``json.dumps(tool_calls, sort_keys=True)``
  when the reply finished with ``finish_reason == "tool_calls"`` (any other finish hashes the text,
  as OpenGradient's verifier does);
* signature: RSA-PSS (SHA-256, MGF1-SHA-256, salt 32 bytes) over
  ``keccak256(request_hash ‖ output_hash ‖ uint256(timestamp))``;
* ``tee_id = 0x + keccak256(DER SubjectPublicKeyInfo of the signing key)``.

A reply carries ``tee_signature`` (base64), ``tee_request_hash`` and ``tee_output_hash`` (hex,
no ``0x``), ``tee_timestamp`` (unix seconds) and ``tee_id``. :func:`verify_reply` recomputes
both hashes from what was really sent and received and checks the signature against the key
the caller trusts (pinned from the node registry); any failure raises
:class:`AttestationError`, and a reply that fails is never to be shown.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from eth_hash.auto import keccak

ATTESTATION_FIELDS = ("tee_signature", "tee_request_hash", "tee_output_hash", "tee_timestamp", "tee_id")
PSS_PADDING = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)


class AttestationError(Exception):
    """A reply's attestation is missing or does not verify; the reply must be rejected."""


@dataclass(frozen=True, slots=True)
class Attestation:
    """The ``tee_*`` fields of one reply."""

    signature: str
    request_hash: str
    output_hash: str
    timestamp: int
    tee_id: str

    @classmethod
    def from_reply(cls, reply: Mapping[str, Any]) -> Attestation:
        """Read the fields from a non-streaming body or a stream's final chunk."""
        missing = [name for name in ATTESTATION_FIELDS if reply.get(name) in (None, "")]
        if missing:
            raise AttestationError(f"the reply carries no attestation (missing {', '.join(missing)})")
        timestamp = reply["tee_timestamp"]
        if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
            raise AttestationError(f"tee_timestamp must be a non-negative integer (got {timestamp!r})")
        strings = [reply[name] for name in ("tee_signature", "tee_request_hash", "tee_output_hash", "tee_id")]
        if not all(isinstance(value, str) for value in strings):
            raise AttestationError("tee_signature, tee_request_hash, tee_output_hash and tee_id must be strings")
        signature, request_hash, output_hash, tee_id = strings
        return cls(signature, request_hash, output_hash, timestamp, tee_id)

    def as_fields(self) -> dict[str, Any]:
        return {
            "tee_signature": self.signature,
            "tee_request_hash": self.request_hash,
            "tee_output_hash": self.output_hash,
            "tee_timestamp": self.timestamp,
            "tee_id": self.tee_id,
        }


# ---------------------------------------------------------------------------------------------
# Canonicalisation
# ---------------------------------------------------------------------------------------------


def canonical_request(body: Mapping[str, Any]) -> dict[str, Any]:
    """The subset of an OpenAI chat-completions (or embeddings) body that the signature commits to."""
    if "messages" not in body and "input" in body:
        return canonical_embeddings_request(body)
    canonical: dict[str, Any] = {
        "model": body["model"],
        "messages": [_canonical_message(message) for message in body["messages"]],
        "temperature": float(body["temperature"]) if body.get("temperature") is not None else 0.0,
    }
    if body.get("max_tokens") is not None:
        canonical["max_tokens"] = body["max_tokens"]
    for optional in ("stop", "tools", "response_format"):
        if body.get(optional):
            canonical[optional] = body[optional]
    return canonical


def _canonical_message(message: Mapping[str, Any]) -> dict[str, Any]:
    role = message.get("role")
    if role in ("system", "developer"):
        return {"role": "system", "content": message.get("content")}
    if role == "user":
        return {"role": "user", "content": _canonical_user_content(message.get("content"))}
    if role == "assistant":
        canonical: dict[str, Any] = {"role": "assistant", "content": message.get("content") or ""}
        if message.get("tool_calls"):
            canonical["tool_calls"] = [_canonical_tool_call(call) for call in message["tool_calls"]]
        return canonical
    if role == "tool":
        return {"role": "tool", "content": message.get("content"), "tool_call_id": message.get("tool_call_id")}
    raise ValueError(f"unknown message role: {role!r}")


def _canonical_user_content(content: Any) -> Any:
    """Strings pass through; a list of parts keeps text verbatim and reduces attachments to their type."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return str(content)
    parts: list[Any] = []
    for part in content:
        if not isinstance(part, dict):
            parts.append({"type": "text", "text": str(part)})
        elif part.get("type") == "text":
            parts.append({"type": "text", "text": part.get("text", "") or ""})
        else:
            entry = {"type": part.get("type")}
            attached = part.get("file")
            filename = attached.get("filename") if isinstance(attached, dict) else None
            filename = filename or part.get("filename")
            if filename:
                entry["filename"] = filename
            parts.append(entry)
    return parts


def _canonical_tool_call(call: Mapping[str, Any]) -> dict[str, Any]:
    function = call.get("function") or {}
    return {
        "id": call.get("id", ""),
        "type": call.get("type", "function"),
        "function": {"name": function.get("name", ""), "arguments": function.get("arguments", "")},
    }


def canonical_embeddings_request(body: Mapping[str, Any]) -> dict[str, Any]:
    """An embeddings body's model, inputs (a single string as a list of one) and dimensions; not its
    ``encoding_format``, which changes how the vectors travel, not what they are."""
    inputs = body["input"]
    canonical: dict[str, Any] = {"model": body["model"], "input": [inputs] if isinstance(inputs, str) else inputs}
    if body.get("dimensions") is not None:
        canonical["dimensions"] = body["dimensions"]
    return canonical


def embeddings_output_for_hash(vectors: Sequence[Sequence[float]]) -> str:
    """What the output hash covers for embeddings: each vector as little-endian float32 (the precision they are
    served at), base64, one line per input in order, so float and base64 replies hash alike."""
    return "\n".join(base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode() for vector in vectors)


def canonical_request_bytes(canonical: Mapping[str, Any]) -> bytes:
    return json.dumps(canonical, sort_keys=True).encode("utf-8")


def output_for_hash(
    text: str, tool_calls: Sequence[Mapping[str, Any]] | None = None, finish_reason: str | None = "tool_calls"
) -> str:
    """What the output hash covers: the tool calls when the reply finished as a tool call, else the text."""
    return json.dumps(list(tool_calls), sort_keys=True) if tool_calls and finish_reason == "tool_calls" else text


def request_hash(body: Mapping[str, Any]) -> str:
    return keccak(canonical_request_bytes(canonical_request(body))).hex()


def output_hash(output: str) -> str:
    return keccak(output.encode("utf-8")).hex()


def signed_digest(request_hash_hex: str, output_hash_hex: str, timestamp: int) -> bytes:
    """``keccak256(request_hash ‖ output_hash ‖ uint256(timestamp))``, the bytes RSA-PSS signs."""
    return keccak(bytes.fromhex(request_hash_hex) + bytes.fromhex(output_hash_hex) + timestamp.to_bytes(32, "big"))


# ---------------------------------------------------------------------------------------------
# Keys
# ---------------------------------------------------------------------------------------------


def public_key_der(key: RSAPublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def public_key_pem(key: RSAPublicKey) -> str:
    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem.decode()


def tee_id_for(key: RSAPublicKey) -> str:
    return "0x" + keccak(public_key_der(key)).hex()


def load_public_key(key: RSAPublicKey | bytes | str) -> RSAPublicKey:
    """An RSA public key from a key object, DER bytes (as the registry stores it) or PEM text."""
    if isinstance(key, RSAPublicKey):
        return key
    try:
        loaded = (
            serialization.load_pem_public_key(key.encode())
            if isinstance(key, str)
            else serialization.load_der_public_key(bytes(key))
        )
    except ValueError as error:
        raise AttestationError(f"the signing key cannot be read: {error}") from None
    if not isinstance(loaded, RSAPublicKey):
        raise AttestationError("the signing key is not an RSA key")
    return loaded


# ---------------------------------------------------------------------------------------------
# Signing (the node) and verifying (everyone else)
# ---------------------------------------------------------------------------------------------


def sign_reply(key: RSAPrivateKey, body: Mapping[str, Any], output: str, timestamp: int) -> Attestation:
    """Attest that ``output`` answered ``body`` at ``timestamp``; runs inside the node only."""
    request_hex = request_hash(body)
    output_hex = output_hash(output)
    signature = key.sign(signed_digest(request_hex, output_hex, timestamp), PSS_PADDING, hashes.SHA256())
    return Attestation(
        base64.b64encode(signature).decode(), request_hex, output_hex, timestamp, tee_id_for(key.public_key())
    )


def verify_reply(
    *,
    body: Mapping[str, Any],
    output: str,
    attestation: Attestation,
    public_key: RSAPublicKey | bytes | str,
    expected_tee_id: str | None = None,
) -> Attestation:
    """Check a reply against the request really sent and the output really received.

    ``public_key`` is the key the caller trusts for this node (pinned from the registry); the
    reply's ``tee_id`` must be that key's, and ``expected_tee_id`` (the registry's) too when given.
    Returns the attestation, with hashes recomputed locally; raises AttestationError otherwise.
    """
    key = load_public_key(public_key)
    key_tee_id = tee_id_for(key)
    if _bare(attestation.tee_id) != _bare(key_tee_id):
        raise AttestationError(
            f"signed by another key: the reply names {attestation.tee_id}, the pinned key is {key_tee_id}"
        )
    if expected_tee_id is not None and _bare(expected_tee_id) != _bare(key_tee_id):
        raise AttestationError(f"the pinned key is {key_tee_id}, the registry names {expected_tee_id}")
    request_hex = request_hash(body)
    if request_hex != _bare(attestation.request_hash):
        raise AttestationError(f"request hash mismatch: sent {request_hex}, signed {attestation.request_hash}")
    output_hex = output_hash(output)
    if output_hex != _bare(attestation.output_hash):
        raise AttestationError(f"output hash mismatch: received {output_hex}, signed {attestation.output_hash}")
    try:
        signature = base64.b64decode(attestation.signature, validate=True)
        key.verify(
            signature, signed_digest(request_hex, output_hex, attestation.timestamp), PSS_PADDING, hashes.SHA256()
        )
    except (InvalidSignature, binascii.Error, ValueError):
        raise AttestationError("the RSA-PSS signature does not verify") from None
    return Attestation(attestation.signature, request_hex, output_hex, attestation.timestamp, key_tee_id)


def _bare(hex_value: str) -> str:
    return hex_value.lower().removeprefix("0x")
