"""Where the files Twin market reads at run time are, installed from a wheel or in a checkout.

A wheel carries them inside the package, under ``app/_resources/`` (``setup.py`` copies them there at
build time), and they are found through ``importlib.resources``: ``frontend/`` (templates, static
files), ``contracts/`` (the Solidity sources and their build artifacts) and ``migrations/`` with
``alembic.ini``. In a checkout (the editable install ``./dev.sh`` makes) there is no
``app/_resources/``: they are read where they live, beside ``app/``.

npm packages (anvil, solc-js, OpenZeppelin, ethers, uPlot) are not Python package data: they are
read from ``TWIN_NODE_MODULES_DIR``, by default the checkout's ``node_modules`` or, installed, the
``node_modules`` of the working directory (``/app/node_modules`` in the image).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

# The top of the source tree when running from a checkout (site-packages when installed).
CHECKOUT_ROOT = Path(__file__).resolve().parent.parent


def _bundled_root() -> Path | None:
    bundled = files("app") / "_resources"
    return Path(str(bundled)) if bundled.is_dir() else None


def installed() -> bool:
    """Whether the app runs from an installed wheel rather than a checkout."""
    return _bundled_root() is not None


RESOURCES_ROOT = _bundled_root() or CHECKOUT_ROOT
FRONTEND_DIR = RESOURCES_ROOT / "frontend"
CONTRACTS_DIR = RESOURCES_ROOT / "contracts"
MIGRATIONS_DIR = RESOURCES_ROOT / "migrations"
ALEMBIC_INI = RESOURCES_ROOT / "alembic.ini"

# Defaults of the settings that name places outside the package: in a checkout, beside app/; installed,
# in the working directory.
WORKING_ROOT = Path.cwd() if installed() else CHECKOUT_ROOT
DEFAULT_VAR_DIR = WORKING_ROOT / "var"
DEFAULT_NODE_MODULES_DIR = WORKING_ROOT / "node_modules"
