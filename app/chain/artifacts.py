"""The committed build artifacts in ``contracts/build/`` (written by ``twin contracts build``).

from app.chain.artifacts import load_artifact
twin_keys = load_artifact("TwinKeys")
contract = w3.eth.contract(abi=twin_keys.abi, bytecode=twin_keys.bytecode)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from app.resources import CONTRACTS_DIR

ARTIFACTS_DIR = CONTRACTS_DIR / "build"
CONTRACT_NAMES = ("TwinKeys", "OPG", "NodeRegistry")


@dataclass(frozen=True)
class Artifact:
    """ABI and code of one compiled contract."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str
    # Byte ranges of the runtime code that the constructor fills in (immutables), by AST id.
    immutable_references: dict[str, list[dict[str, int]]]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Artifact:
        return cls(
            name=data["contractName"],
            abi=data["abi"],
            bytecode=data["bytecode"],
            deployed_bytecode=data["deployedBytecode"],
            immutable_references=data["immutableReferences"],
        )

    def runtime_code_matches(self, code: bytes) -> bool:
        """Whether ``code`` (read from a chain) is this contract, whatever its immutables hold."""
        expected = bytes.fromhex(self.deployed_bytecode.removeprefix("0x"))
        return len(code) == len(expected) and self._mask_immutables(code) == self._mask_immutables(expected)

    def _mask_immutables(self, code: bytes) -> bytes:
        masked = bytearray(code)
        for ranges in self.immutable_references.values():
            for span in ranges:
                masked[span["start"] : span["start"] + span["length"]] = bytes(span["length"])
        return bytes(masked)


def load_artifact_file(path: Path) -> Artifact:
    return Artifact.from_json(json.loads(path.read_text()))


@cache
def load_artifact(name: str) -> Artifact:
    """The committed artifact of contract ``name`` (one of CONTRACT_NAMES)."""
    return load_artifact_file(ARTIFACTS_DIR / f"{name}.json")
