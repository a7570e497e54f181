"""What the backend's client and a proxy node agree on over HTTP, apart from OpenAI's chat completions: the
verification levels a request may ask for, the header that asks, and the scheme replies are signed with."""

from __future__ import annotations

from enum import StrEnum


class VerificationLevel(StrEnum):
    """What a chat reply must carry: nothing, a node signature, or a TEE-attested signature."""

    none = "none"
    signature = "signature"
    tee = "tee"


VERIFICATION_HEADER = "X-Twin-Verification"
SIGNATURE_SCHEME = (
    "RSA-PSS(SHA-256, MGF1-SHA-256, salt 32) over keccak256(request_hash || output_hash || uint256(timestamp))"
)
