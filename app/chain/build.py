"""Compile the Solidity sources with a pinned solc through py-solc-x and write the artifacts.

The compiler is a native ``solc`` of :data:`SOLC_VERSION` when py-solc-x has one installed, and
otherwise the official solc-js of the same version from ``node_modules`` behind
``solcjs_shim.cjs``. Both produce the same bytecode, so the committed artifacts in
``contracts/build/`` are reproducible on any machine::

    from app.chain.build import build_contracts
    written = build_contracts()          # contracts/*.sol -> contracts/build/<Name>.json

Nothing here downloads a compiler.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Mapping
from importlib.resources import files
from pathlib import Path
from typing import Any

import solcx
from packaging.version import Version
from solcx.exceptions import SolcError

from app.chain.artifacts import ARTIFACTS_DIR
from app.config import get_settings
from app.resources import CONTRACTS_DIR, RESOURCES_ROOT

SOLC_VERSION = Version("0.8.28")
# Cancun is solc 0.8.28's default EVM version; py-evm runs it (the embedded
# chain is Prague), and it has the transient storage that ReentrancyGuardTransient uses.
EVM_VERSION = "cancun"
# Many runs: trades are executed far more often than the contracts are deployed.
OPTIMIZER_RUNS = 1_000_000

# Node finds solc beside the shim in a checkout; an installed wheel's shim needs NODE_PATH (the image sets it).
SOLCJS_SHIM = Path(str(files("app.chain") / "solcjs_shim.cjs"))
# contracts/ is also a Foundry project (contracts/foundry.toml). The compiler input names sources and
# remaps OpenZeppelin exactly as forge does there, so that the metadata hash, and with it the bytecode,
# is the same whichever tool compiles. The remapping's target is read from the base path, the folder
# holding node_modules (forge reads it through the committed symlink contracts/node_modules).
REMAPPINGS = ["@openzeppelin/=node_modules/@openzeppelin/"]

_OUTPUT_SELECTION = [
    "abi",
    "metadata",
    "evm.bytecode.object",
    "evm.deployedBytecode.object",
    "evm.deployedBytecode.immutableReferences",
]


class BuildError(Exception):
    """The compiler is missing or rejected the sources; the message says which."""


def solc_binary() -> Path:
    """A native solc of SOLC_VERSION if py-solc-x has one installed, else the solc-js shim."""
    if SOLC_VERSION in solcx.get_installed_solc_versions():
        return Path(solcx.install.get_executable(SOLC_VERSION))
    return solcjs_binary()


def solcjs_binary() -> Path:
    """The shim around node_modules/solc; raises BuildError when Node or the package is missing."""
    if shutil.which("node") is None:
        raise BuildError("no native solc installed and `node` is not on PATH for solc-js")
    package = get_settings().node_modules_dir / "solc" / "package.json"
    if not package.is_file():
        raise BuildError(f"{package.parent} is missing: run `npm ci` or set TWIN_NODE_MODULES_DIR")
    installed = json.loads(package.read_text())["version"]
    if Version(installed) != SOLC_VERSION:
        raise BuildError(f"node_modules/solc is {installed}, expected {SOLC_VERSION}: run `npm ci`")
    return SOLCJS_SHIM


def source_unit_name(path: Path) -> str:
    """Sources are named as forge names them: by their path from contracts/ (``TwinKeys.sol``), and
    those elsewhere (the Python tests' attack contracts) by their path from the project root."""
    path = path.resolve()
    root = CONTRACTS_DIR if path.is_relative_to(CONTRACTS_DIR) else RESOURCES_ROOT
    return path.relative_to(root).as_posix()


def compiler_input(sources: Iterable[Path]) -> dict[str, Any]:
    """The standard-JSON input: first-party sources inline, OpenZeppelin read from node_modules."""
    return {
        "language": "Solidity",
        "sources": {source_unit_name(path): {"content": path.read_text()} for path in sorted(sources)},
        "settings": {
            "remappings": REMAPPINGS,
            "optimizer": {"enabled": True, "runs": OPTIMIZER_RUNS},
            "viaIR": True,
            "evmVersion": EVM_VERSION,
            "libraries": {},
            "outputSelection": {"*": {"*": _OUTPUT_SELECTION}},
        },
    }


def compile_sources(sources: Iterable[Path], binary: Path | None = None) -> dict[str, dict[str, Any]]:
    """Compile ``sources`` and return the artifact of every deployable contract they define, by name.

    A warning located in one of ``sources`` fails the build like an error; warnings inside
    OpenZeppelin (its note on transient storage) are expected and ignored.
    """
    sources = list(sources)
    first_party = {source_unit_name(path) for path in sources}
    node_modules = get_settings().node_modules_dir
    try:
        output = solcx.compile_standard(
            compiler_input(sources),
            base_path=node_modules.parent,
            allow_paths=[CONTRACTS_DIR, node_modules],
            solc_binary=binary or solc_binary(),
        )
    except SolcError as error:
        raise BuildError(f"solc failed: {error.stderr_data or error.message}") from None
    warnings = [
        error["formattedMessage"]
        for error in output.get("errors", [])
        if error.get("sourceLocation", {}).get("file") in first_party
    ]
    if warnings:
        raise BuildError("solc warned about our sources:\n" + "".join(warnings))
    artifacts: dict[str, dict[str, Any]] = {}
    for unit_name, contracts in output["contracts"].items():
        if unit_name not in first_party:
            continue
        for name, compiled in contracts.items():
            if compiled["evm"]["bytecode"]["object"]:
                artifacts[name] = _artifact(unit_name, name, compiled)
    return artifacts


def _artifact(unit_name: str, name: str, compiled: Mapping[str, Any]) -> dict[str, Any]:
    metadata = json.loads(compiled["metadata"])
    return {
        "contractName": name,
        "sourceName": unit_name,
        "compiler": {
            "version": metadata["compiler"]["version"],
            "evmVersion": EVM_VERSION,
            "optimizerRuns": OPTIMIZER_RUNS,
        },
        "abi": compiled["abi"],
        "bytecode": "0x" + compiled["evm"]["bytecode"]["object"],
        "deployedBytecode": "0x" + compiled["evm"]["deployedBytecode"]["object"],
        "immutableReferences": compiled["evm"]["deployedBytecode"]["immutableReferences"],
        "metadata": compiled["metadata"],
    }


def render_artifact(artifact: Mapping[str, Any]) -> str:
    """Stable text for a committed artifact: the same compile gives the same bytes."""
    return json.dumps(artifact, indent=2, sort_keys=True) + "\n"


def contract_sources() -> list[Path]:
    return sorted(CONTRACTS_DIR.glob("*.sol"))


def rendered_artifacts(binary: Path | None = None) -> dict[Path, str]:
    """What `build_contracts` would write, by path, without writing it."""
    artifacts = compile_sources(contract_sources(), binary)
    return {ARTIFACTS_DIR / f"{name}.json": render_artifact(artifact) for name, artifact in artifacts.items()}


def build_contracts(binary: Path | None = None) -> list[Path]:
    """Compile contracts/*.sol and (re)write contracts/build/<Name>.json; return the paths written."""
    rendered = rendered_artifacts(binary)
    ARTIFACTS_DIR.mkdir(exist_ok=True)
    for path, text in rendered.items():
        path.write_text(text)
    return sorted(rendered)


def stale_artifacts(binary: Path | None = None) -> list[Path]:
    """Artifacts that a fresh compile would change (or create); empty when the build is reproduced."""
    return sorted(
        path for path, text in rendered_artifacts(binary).items() if not path.is_file() or path.read_text() != text
    )
