"""Everything about the package is declared in pyproject.toml; this adds to the wheel what the app
reads at run time from beside the package in a checkout (see app/resources.py), as app/_resources/."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

BUNDLED = ("frontend", "contracts", "migrations", "alembic.ini")
# contracts/node_modules is forge's link to the npm packages; out, cache, *-out and *-cache are build output.
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "node_modules", "out", "cache", "*-out", "*-cache")


class BuildWithResources(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads them in the checkout
            return
        target = Path(self.build_lib) / "app" / "_resources"
        shutil.rmtree(target, ignore_errors=True)  # a reused build directory keeps no deleted file
        for name in BUNDLED:
            if Path(name).is_dir():
                shutil.copytree(name, target / name, ignore=IGNORED, dirs_exist_ok=True)
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(name, target / name)


setup(cmdclass={"build_py": BuildWithResources})
