"""Attestation: OpenGradient's canonicalisation byte for byte, round trips, and tampering."""

from __future__ import annotations

import base64
import dataclasses
import json

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from eth_hash.auto import keccak

from app.proxy.node.attestation import EnclaveIdentity, code_measurement
from app.proxy.verify import (
    Attestation,
    AttestationError,
    canonical_request,
    canonical_request_bytes,
    output_for_hash,
    output_hash,
    public_key_der,
    tee_id_for,
    verify_reply,
)

# A request exercising every rule of OpenGradient's TEE-gateway canonicalisation: developer →
# system, a multimodal user message whose attachment is reduced to its type, an assistant tool
# call with null content, a tool result; fields outside the committed subset (top_p, stream)
# dropped; temperature defaulted to 0.0.
OG_VECTOR_BODY = {
    "model": "gpt-4.1",
    "messages": [
        {"role": "developer", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Hi"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
        },
        {"role": "tool", "content": "42", "tool_call_id": "c1"},
    ],
    "max_tokens": 50,
    "stop": ["\n\n"],
    "top_p": 0.9,
    "stream": True,
}
# json.dumps(canonical, sort_keys=True), written out by hand from the documented algorithm.
OG_VECTOR_CANONICAL = (
    '{"max_tokens": 50, "messages": [{"content": "Be brief.", "role": "system"}, '
    '{"content": [{"text": "Hi", "type": "text"}, {"type": "image_url"}], "role": "user"}, '
    '{"content": "", "role": "assistant", "tool_calls": [{"function": {"arguments": "{}", "name": "f"}, '
    '"id": "c1", "type": "function"}]}, {"content": "42", "role": "tool", "tool_call_id": "c1"}], '
    '"model": "gpt-4.1", "stop": ["\\n\\n"], "temperature": 0.0}'
)
OG_VECTOR_REQUEST_HASH = "be65616a025c6c2e3fcb52ff6cc6431d2b38d153e081d441be88c65b6e687631"
OUTPUT = "Paris is the capital of France."
OG_VECTOR_OUTPUT_HASH = "da1214014dfc0916e3de7d80793c8d8404176da556009db997f8b69f52279860"
BODY = {"model": "twin-offline-demo", "messages": [{"role": "user", "content": "Capital of France?"}]}


def og_style_signature(key: rsa.RSAPrivateKey, request_hex: str, output_hex: str, timestamp: int) -> str:
    """How the TEE gateway signs, written independently of app.proxy.verify."""
    digest = keccak(bytes.fromhex(request_hex) + bytes.fromhex(output_hex) + timestamp.to_bytes(32, "big"))
    signature = key.sign(digest, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())
    return base64.b64encode(signature).decode()


def test_canonical_request_matches_opengradient_byte_for_byte() -> None:
    encoded = canonical_request_bytes(canonical_request(OG_VECTOR_BODY))

    assert encoded.decode() == OG_VECTOR_CANONICAL
    assert keccak(encoded).hex() == OG_VECTOR_REQUEST_HASH
    assert keccak(OUTPUT.encode()).hex() == OG_VECTOR_OUTPUT_HASH


def test_a_reply_signed_the_gateway_way_verifies() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    fields = {
        "tee_signature": og_style_signature(key, OG_VECTOR_REQUEST_HASH, OG_VECTOR_OUTPUT_HASH, 1_700_000_000),
        "tee_request_hash": OG_VECTOR_REQUEST_HASH,
        "tee_output_hash": OG_VECTOR_OUTPUT_HASH,
        "tee_timestamp": 1_700_000_000,
        "tee_id": "0x" + keccak(public_key_der(key.public_key())).hex(),
    }

    proof = verify_reply(
        body=OG_VECTOR_BODY,
        output=OUTPUT,
        attestation=Attestation.from_reply(fields),
        public_key=public_key_der(key.public_key()),
    )

    assert proof.request_hash == OG_VECTOR_REQUEST_HASH
    assert proof.tee_id == tee_id_for(key.public_key())


def test_node_signature_verifies_the_gateway_way() -> None:
    identity = EnclaveIdentity.generate()
    attestation = identity.sign(BODY, OUTPUT, 1_700_000_123)
    proof = verify_reply(
        body=BODY,
        output=OUTPUT,
        attestation=attestation,
        public_key=identity.public_key_der,
        expected_tee_id=identity.tee_id,
    )

    digest = keccak(
        bytes.fromhex(attestation.request_hash)
        + bytes.fromhex(attestation.output_hash)
        + attestation.timestamp.to_bytes(32, "big")
    )
    serialization.load_der_public_key(identity.public_key_der).verify(  # type: ignore[union-attr]
        base64.b64decode(attestation.signature),
        digest,
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
        hashes.SHA256(),
    )
    assert proof.tee_id == "0x" + keccak(identity.public_key_der).hex()
    assert attestation.output_hash == OG_VECTOR_OUTPUT_HASH


@pytest.fixture(scope="module")
def signed() -> tuple[EnclaveIdentity, Attestation]:
    identity = EnclaveIdentity.generate()
    return identity, identity.sign(BODY, OUTPUT, 1_700_000_000)


def _flip_last_char(text: str) -> str:
    return text[:-1] + ("0" if text[-1] != "0" else "1")


@pytest.mark.parametrize(
    ("body", "output", "change", "message"),
    [
        (BODY, "Paris is the capital of Francf.", {}, "output hash mismatch"),
        (BODY | {"messages": [{"role": "user", "content": "Capital of Spain?"}]}, OUTPUT, {}, "request hash mismatch"),
        (BODY | {"temperature": 0.5}, OUTPUT, {}, "request hash mismatch"),
        (BODY, OUTPUT, {"timestamp": 1_700_000_001}, "signature does not verify"),
        (BODY, OUTPUT, {"request_hash": "ff" * 32}, "request hash mismatch"),
        (BODY, OUTPUT, {"tee_id": "0x" + "00" * 32}, "signed by another key"),
    ],
)
def test_tampering_with_any_part_fails(
    signed: tuple[EnclaveIdentity, Attestation], body: dict, output: str, change: dict, message: str
) -> None:
    identity, attestation = signed
    with pytest.raises(AttestationError, match=message):
        verify_reply(
            body=body,
            output=output,
            attestation=dataclasses.replace(attestation, **change),
            public_key=identity.public_key_der,
        )


def test_one_flipped_signature_byte_fails(signed: tuple[EnclaveIdentity, Attestation]) -> None:
    identity, attestation = signed
    raw = bytearray(base64.b64decode(attestation.signature))
    raw[10] ^= 0x01
    forged = dataclasses.replace(attestation, signature=base64.b64encode(bytes(raw)).decode())

    with pytest.raises(AttestationError, match="signature does not verify"):
        verify_reply(body=BODY, output=OUTPUT, attestation=forged, public_key=identity.public_key_der)


def test_another_key_fails_even_with_its_own_tee_id(signed: tuple[EnclaveIdentity, Attestation]) -> None:
    _, attestation = signed
    other = EnclaveIdentity.generate()

    with pytest.raises(AttestationError, match="signed by another key"):
        verify_reply(body=BODY, output=OUTPUT, attestation=attestation, public_key=other.public_key_der)
    with pytest.raises(AttestationError, match="signature does not verify"):
        verify_reply(
            body=BODY,
            output=OUTPUT,
            attestation=dataclasses.replace(attestation, tee_id=other.tee_id),
            public_key=other.public_key_der,
        )


def test_missing_fields_are_named() -> None:
    with pytest.raises(AttestationError, match="tee_signature, tee_timestamp"):
        Attestation.from_reply({"tee_request_hash": "a", "tee_output_hash": "b", "tee_id": "0x1"})


def test_tool_call_output_is_hashed_as_sorted_json() -> None:
    calls = [{"type": "function", "id": "c1", "function": {"name": "f", "arguments": "{}"}}]

    assert output_for_hash("ignored", calls) == (
        '[{"function": {"arguments": "{}", "name": "f"}, "id": "c1", "type": "function"}]'
    )
    assert output_for_hash("text only") == "text only"


def test_attestation_document_says_dev_and_names_the_code() -> None:
    identity = EnclaveIdentity.generate()
    document = identity.document()

    assert document["evidence"]["type"] == "dev"
    assert document["evidence"]["hardware_backed"] is False
    assert document["tee_id"] == identity.tee_id
    assert document["code_measurement"] == code_measurement()
    assert len(document["code_measurement"]) == 66
    assert base64.b64decode(document["public_key_der_base64"]) == identity.public_key_der


def test_a_tool_call_reply_hashes_as_opengradient_does_whatever_its_finish_reason() -> None:
    calls = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    # OpenGradient's verifier hashes the tool calls only when the reply finished as a tool call.
    assert (
        output_hash(output_for_hash("Sure.", calls, "tool_calls"))
        == keccak(json.dumps(calls, sort_keys=True).encode()).hex()
    )
    assert output_hash(output_for_hash("Sure.", calls, "stop")) == keccak(b"Sure.").hex()
    assert output_hash(output_for_hash("Sure.", None, "stop")) == keccak(b"Sure.").hex()
