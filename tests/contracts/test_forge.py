"""contracts/ is a Foundry project whose `forge build` compiles the committed bytecode: same solc-js, same
settings (contracts/foundry.toml), same source names and remappings as `twin contracts build`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from app.chain.artifacts import CONTRACT_NAMES, load_artifact
from app.config import get_settings
from app.resources import CONTRACTS_DIR

FORGE = get_settings().node_modules_dir / ".bin" / "forge"


def test_forge_build_gives_the_committed_bytecode(tmp_path: Path) -> None:
    out, cache = tmp_path / "out", tmp_path / "cache"
    result = subprocess.run(
        [FORGE, "build", "--skip", "test/**", "--out", out, "--cache-path", cache],
        cwd=CONTRACTS_DIR,
        capture_output=True,
        text=True,
        timeout=1_200,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for name in CONTRACT_NAMES:
        forged = json.loads((out / f"{name}.sol" / f"{name}.json").read_text())
        committed = load_artifact(name)
        assert "0x" + forged["bytecode"]["object"].removeprefix("0x") == committed.bytecode, name
        assert "0x" + forged["deployedBytecode"]["object"].removeprefix("0x") == committed.deployed_bytecode, name
