"""A review's EIP-712 typed data, and who signed it.

Domain ``{name: "Twin market", version: "1", chainId, verifyingContract: TwinKeys}``; message
``Review{avatarId bytes16, rating uint8, textHash bytes32, time uint64}`` with
``textHash = keccak256(utf8(text))``. A wallet signs it with ``eth_signTypedData_v4``; anyone checks it
with any EIP-712 library (the API returns the typed data and the signature with each review)."""

from __future__ import annotations

import re
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_keys.exceptions import BadSignature
from eth_utils import ValidationError, keccak, to_checksum_address

from app.validation import BadInput

SIGNATURE_PATTERN = re.compile(r"^0x[0-9a-fA-F]{130}$")
DOMAIN_NAME = "Twin market"
DOMAIN_VERSION = "1"
REVIEW_TYPES = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    "Review": [
        {"name": "avatarId", "type": "bytes16"},
        {"name": "rating", "type": "uint8"},
        {"name": "textHash", "type": "bytes32"},
        {"name": "time", "type": "uint64"},
    ],
}


def text_hash(text: str) -> str:
    return "0x" + keccak(text.encode("utf-8")).hex()


def review_typed_data(
    *, chain_id: int, twin_keys: str, avatar_id: str, rating: int, text: str, time: int
) -> dict[str, Any]:
    """The typed data a review's author signs (and anyone verifies), as ``eth_signTypedData_v4`` takes it."""
    return {
        "types": REVIEW_TYPES,
        "primaryType": "Review",
        "domain": {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": chain_id,
            "verifyingContract": to_checksum_address(twin_keys),
        },
        "message": {"avatarId": avatar_id, "rating": rating, "textHash": text_hash(text), "time": time},
    }


def recover_signer(typed_data: dict[str, Any], signature: str) -> str:
    """The checksummed address that signed ``typed_data``; 400 (``signature``) if it is no signature."""
    if not SIGNATURE_PATTERN.match(signature):
        raise BadInput("signature", "65 bytes as 0x followed by 130 hex digits")
    try:
        return Account.recover_message(encode_typed_data(full_message=typed_data), signature=signature)
    except (ValueError, BadSignature, ValidationError):  # BadSignature: no key recovers from it (e.g. all zeros)
        raise BadInput("signature", "not an EIP-712 signature of this review (65 bytes, hex)") from None
