"""The installed package, not the checkout: a wheel built from the checkout and installed into a
fresh venv outside it reads its templates, static files, contract artifacts, solc-js shim and
migrations from site-packages, and the image's entry point (the Dockerfile's ENTRYPOINT and CMD,
under the final stage's ENV) serves the app from that install.

No Docker engine runs where these tests run, so the image itself is not built here: the entry
point runs from the same wheel the Dockerfile installs, with the checkout's node_modules in place of
the image's ``/app/node_modules``. The fresh venv gets the wheel alone; its dependencies are read
from this venv's site-packages (without its ``.pth`` files, so the checkout's editable ``app`` is
never on the path).
"""

from __future__ import annotations

import fnmatch
import json
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from app.resources import CHECKOUT_ROOT
from app.web.assets import VENDORED_PACKAGES
from tests.helpers import free_port, stop, wait_until_ready

DOCKERFILE = CHECKOUT_ROOT / "Dockerfile"


@dataclass(frozen=True)
class Install:
    context: Path  # what `docker build .` sends
    venv: Path
    site_packages: Path
    work_dir: Path  # outside the checkout, as the image's /app

    def env(self, **settings: str) -> dict[str, str]:
        """This environment less PYTHONPATH (which names the checkout) and every TWIN_ setting, plus these."""
        kept = {key: value for key, value in os.environ.items() if key != "PYTHONPATH" and not key.startswith("TWIN_")}
        return kept | settings

    def run(self, *command: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command, cwd=self.work_dir, env=self.env(), capture_output=True, text=True, timeout=timeout_s, check=False
        )


def docker_context(destination: Path) -> Path:
    """A copy of what `docker build .` sends: the checkout less what .dockerignore excludes (its patterns
    are paths from the top or ``**/name``, matched here as Docker matches them)."""
    patterns = [
        line.strip()
        for line in (CHECKOUT_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def excluded(relative: Path) -> bool:
        return any(
            fnmatch.fnmatch(relative.name, pattern.removeprefix("**/"))
            if pattern.startswith("**/")
            else fnmatch.fnmatch(relative.as_posix(), pattern)
            for pattern in patterns
        )

    def ignored(directory: str, names: list[str]) -> set[str]:
        relative = Path(directory).relative_to(CHECKOUT_ROOT)
        return {name for name in names if excluded(relative / name)}

    return Path(shutil.copytree(CHECKOUT_ROOT, destination, ignore=ignored, symlinks=True))


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Install:
    """The wheel built as the Dockerfile's builder stage builds it, from the Docker context (so no stale build
    directory of the checkout gets in), installed into a fresh venv."""
    root = tmp_path_factory.mktemp("wheel-install")
    context = docker_context(root / "context")
    wheels = root / "wheels"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels), str(context)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    [wheel] = wheels.glob("twin_market-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    installing = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert installing.returncode == 0, installing.stderr
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site_packages = Path(
        subprocess.run([str(python), "-c", purelib], capture_output=True, text=True, check=True).stdout.strip()
    )
    # Only after the install, so that pip never sees (nor touches) this venv's editable twin-market.
    (site_packages / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    work_dir = root / "app"
    work_dir.mkdir()
    return Install(context, venv, site_packages, work_dir)


def test_the_installed_command_runs_from_site_packages(installed: Install) -> None:
    result = installed.run(str(installed.venv / "bin" / "twin"), "--help")
    assert result.returncode == 0, result.stderr
    assert "serve" in result.stdout
    located = installed.run(str(installed.venv / "bin" / "python"), "-c", "import app; print(app.__file__)")
    assert Path(located.stdout.strip()).is_relative_to(installed.site_packages)


RESOURCE_CHECK = """
import asyncio, json, sqlite3, sys
from app import resources
from app.chain.artifacts import ARTIFACTS_DIR, CONTRACT_NAMES, load_artifact
from app.chain.build import SOLCJS_SHIM, contract_sources
from app.db import migrate
from app.all_models import metadata
from app.web.assets import template_config

engine = template_config().to_engine()
migrate.upgrade("sqlite+aiosqlite:///" + sys.argv[1])
print(json.dumps({
    "installed": resources.installed(),
    "paths": [str(path) for path in (resources.FRONTEND_DIR, ARTIFACTS_DIR, resources.MIGRATIONS_DIR,
                                     resources.ALEMBIC_INI, SOLCJS_SHIM, *contract_sources())],
    "template": engine.get_template("base.html").filename,
    "static": (resources.FRONTEND_DIR / "static" / "css" / "app.css").is_file(),
    "artifacts": [len(load_artifact(name).abi) for name in CONTRACT_NAMES],
    "shim": SOLCJS_SHIM.is_file(),
    "tables": [row[0] for row in sqlite3.connect(sys.argv[1]).execute("select name from sqlite_master")],
    "model_tables": sorted(metadata.tables),
}))
"""


def test_templates_static_files_artifacts_and_migrations_load_from_site_packages(installed: Install) -> None:
    database = installed.work_dir / "check.db"
    result = installed.run(str(installed.venv / "bin" / "python"), "-c", RESOURCE_CHECK, str(database))
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["installed"] is True
    assert found["paths"]  # the Solidity sources are there too
    assert all(Path(path).is_relative_to(installed.site_packages) for path in found["paths"])
    assert Path(found["template"]).is_relative_to(installed.site_packages)
    assert found["static"]
    assert found["shim"]
    assert all(found["artifacts"])
    assert found["model_tables"]
    assert {"alembic_version", *found["model_tables"]} <= set(found["tables"])


def final_stage(dockerfile: Path) -> list[tuple[str, str]]:
    """The final stage's instructions as (keyword, arguments), continuation lines joined."""
    text = dockerfile.read_text().replace("\\\n", " ")
    instructions = [
        tuple(line.strip().split(maxsplit=1))
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    last_from = max(index for index, (keyword, *_) in enumerate(instructions) if keyword.upper() == "FROM")
    return [(keyword.upper(), arguments) for keyword, arguments in instructions[last_from:]]


def image_command_and_env(dockerfile: Path) -> tuple[list[str], dict[str, str]]:
    instructions = final_stage(dockerfile)
    entrypoint = next(json.loads(arguments) for keyword, arguments in instructions if keyword == "ENTRYPOINT")
    command = next(json.loads(arguments) for keyword, arguments in instructions if keyword == "CMD")
    env = dict(
        pair.split("=", 1) for keyword, arguments in instructions if keyword == "ENV" for pair in shlex.split(arguments)
    )
    return [*entrypoint, *command], env


def test_the_image_runs_as_an_unprivileged_user_with_the_npm_packages_the_app_serves_and_runs() -> None:
    instructions = final_stage(DOCKERFILE)
    users = [arguments for keyword, arguments in instructions if keyword == "USER"]
    assert users
    assert users[-1] not in {"root", "0"}
    _, env = image_command_and_env(DOCKERFILE)
    node_modules = Path(env["TWIN_NODE_MODULES_DIR"])
    targets = [Path(arguments.split()[-1]) for keyword, arguments in instructions if keyword == "COPY"]
    packages = {target.relative_to(node_modules).parts[0] for target in targets if target.is_relative_to(node_modules)}
    assert {package.parts[0] for package in VENDORED_PACKAGES.values()} | {"@foundry-rs"} <= packages


def test_what_the_builder_copies_is_in_the_docker_context(installed: Install) -> None:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    sources = [
        source
        for line in text.splitlines()
        if line.startswith("COPY ") and "--from=" not in line
        for source in line.split()[1:-1]
    ]
    assert "app" in sources
    assert all((installed.context / source).exists() for source in sources)
    assert not (installed.context / "node_modules").exists()  # npm ci installs them inside the image


def test_infra_and_the_readme_deploy_the_image_this_dockerfile_builds_as_its_user() -> None:
    version = tomllib.loads((CHECKOUT_ROOT / "pyproject.toml").read_text())["project"]["version"]
    image = f"twin-market:{version}"
    assert f"docker build -t {image} ." in (CHECKOUT_ROOT / "README.md").read_text()
    documents = [
        document
        for path in sorted((CHECKOUT_ROOT / "infra").glob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text())
        if document
    ]
    [kustomization] = [document for document in documents if document["kind"] == "Kustomization"]
    assert kustomization["images"] == [{"name": "twin-market", "newTag": version}]
    (program, *_), _ = image_command_and_env(DOCKERFILE)
    deployments = [document for document in documents if document["kind"] == "Deployment"]
    assert deployments
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True  # the Dockerfile's numeric USER lets Kubernetes check
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            assert container["image"] == image
            assert container["command"][0] == program


@pytest.fixture
def image_server(installed: Install) -> Iterator[str]:
    """The image's command from the wheel's install, in a working directory outside the checkout."""
    command, image_env = image_command_and_env(DOCKERFILE)
    port = free_port()
    env = installed.env(**image_env) | {
        "PATH": f"{installed.venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "TWIN_NODE_MODULES_DIR": str(CHECKOUT_ROOT / "node_modules"),  # the image's /app/node_modules
        "TWIN_HOST": "127.0.0.1",
        "TWIN_PORT": str(port),
    }
    log = installed.work_dir / "server.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            command, cwd=installed.work_dir, env=env, stdout=output, stderr=subprocess.STDOUT, text=True
        )
    try:
        ready = wait_until_ready(f"http://127.0.0.1:{port}", server, timeout_s=120)
        if ready is None or ready.status_code != 200:
            pytest.fail(f"the image's command never became ready:\n{log.read_text()}")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(server)
        subprocess.run(
            [str(installed.venv / "bin" / "twin"), "chain", "stop"],
            cwd=installed.work_dir,
            env=installed.env(),
            capture_output=True,
            timeout=60,
            check=False,
        )


def test_the_image_entry_point_serves_pages_assets_and_the_chain_from_the_install(
    image_server: str, installed: Install
) -> None:
    with httpx.Client(base_url=image_server, timeout=10) as http:
        page = http.get("/")
        assert page.status_code == 200
        assert "<html" in page.text.lower()
        assert http.get("/static/css/app.css").status_code == 200
        assert http.get("/vendor/ethers/ethers.umd.min.js").status_code == 200
        assert http.get("/api/chain").json()["chain_id"] == 31337
    # The embedded defaults keep their state in the working directory, never in site-packages.
    assert (installed.work_dir / "var" / "twin.db").is_file()
    assert (installed.work_dir / "var" / "chain" / "node.json").is_file()
