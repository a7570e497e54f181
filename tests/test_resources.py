"""Where the app finds what it reads at run time from a checkout: its own files beside app/, and the npm
packages in TWIN_NODE_MODULES_DIR (the installed wheel's side is tests/test_packaging.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from app import resources
from app.chain.anvil import NodeError, anvil_binary
from app.chain.client import Chain
from app.config import Settings
from app.main import create_app


def test_a_checkout_reads_its_files_where_they_live() -> None:
    assert not resources.installed()
    assert resources.FRONTEND_DIR == resources.CHECKOUT_ROOT / "frontend"
    assert (resources.MIGRATIONS_DIR / "env.py").is_file()
    assert resources.ALEMBIC_INI.is_file()
    assert Settings().node_modules_dir == resources.CHECKOUT_ROOT / "node_modules"


def test_anvil_comes_from_the_configured_node_modules(tmp_path: Path) -> None:
    assert anvil_binary(Settings().node_modules_dir).is_file()
    with pytest.raises(NodeError, match="TWIN_NODE_MODULES_DIR"):
        anvil_binary(tmp_path)


async def test_vendored_libraries_are_served_from_the_configured_node_modules(
    settings: Settings, chain: Chain, tmp_path: Path
) -> None:
    (tmp_path / "ethers" / "dist").mkdir(parents=True)
    (tmp_path / "ethers" / "dist" / "ethers.min.js").write_text("// ethers from elsewhere\n")
    app = create_app(settings.model_copy(update={"node_modules_dir": tmp_path}), chain=chain)
    async with AsyncTestClient(app=app) as client:
        served = await client.get("/vendor/ethers/ethers.min.js")
        assert served.status_code == 200
        assert served.text == "// ethers from elsewhere\n"
        assert (await client.get("/vendor/uplot/uPlot.esm.js")).status_code == 404  # not in that node_modules
