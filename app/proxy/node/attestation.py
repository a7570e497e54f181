"""The node's enclave identity: a signing key made at start that never leaves the process,
the measurement of the code it runs, and the evidence that binds the two.

Where no TEE hardware is present (every machine this project runs on today) the evidence is
``{"type": "dev", ...}``: the key is the node's own claim, and it is never presented as
hardware-backed. A client that demands the ``tee`` verification level refuses such a node.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from app.proxy.protocol import SIGNATURE_SCHEME
from app.proxy.verify import PSS_PADDING, Attestation, public_key_der, public_key_pem, sign_reply, tee_id_for

PROXY_SOURCE_DIR = Path(__file__).resolve().parent


@cache
def code_measurement(source_dir: Path = PROXY_SOURCE_DIR) -> str:
    """sha256 over the node's own source files (app/proxy/**/*.py), sorted by path.

    Each file contributes its relative path and its bytes, so a renamed or moved file changes
    the measurement as surely as an edited one.
    """
    digest = hashlib.sha256()
    for path in sorted(source_dir.rglob("*.py")):
        digest.update(path.relative_to(source_dir).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return "0x" + digest.hexdigest()


@dataclass(frozen=True)
class EnclaveIdentity:
    """The node's signing key and what it publishes about itself."""

    _private_key: RSAPrivateKey = field(repr=False)
    measurement: str

    @classmethod
    def generate(cls) -> EnclaveIdentity:
        return cls(rsa.generate_private_key(public_exponent=65537, key_size=2048), code_measurement())

    @property
    def tee_id(self) -> str:
        return tee_id_for(self._private_key.public_key())

    @property
    def public_key_der(self) -> bytes:
        return public_key_der(self._private_key.public_key())

    def sign(self, body: dict[str, Any], output: str, timestamp: int) -> Attestation:
        return sign_reply(self._private_key, body, output, timestamp)

    def sign_digest(self, digest: bytes) -> bytes:
        """RSA-PSS (SHA-256, MGF1-SHA-256, salt 32) over ``digest``: the registry key proof."""
        return self._private_key.sign(digest, PSS_PADDING, hashes.SHA256())

    def evidence(self) -> dict[str, Any]:
        # No TEE hardware here: say so plainly rather than fabricate a quote.
        return {
            "type": "dev",
            "hardware_backed": False,
            "detail": "no TEE hardware: the signing key was generated in an ordinary process, so a signature "
            "shows which node produced a reply, not that an enclave did",
            "public_key_sha256": "0x" + hashlib.sha256(self.public_key_der).hexdigest(),
            "code_measurement": self.measurement,
        }

    def document(self) -> dict[str, Any]:
        """``GET /v1/attestation``: everything a third party needs to check this node's replies."""
        return {
            "tee_id": self.tee_id,
            "public_key_pem": public_key_pem(self._private_key.public_key()),
            "public_key_der_base64": base64.b64encode(self.public_key_der).decode(),
            "signature_scheme": SIGNATURE_SCHEME,
            "code_measurement": self.measurement,
            "evidence": self.evidence(),
        }
