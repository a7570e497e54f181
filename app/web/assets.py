"""Where the web UI's files come from: Jinja2 templates, our static files, and the npm libraries
(ethers, uPlot) served from ``node_modules`` so the pages work offline, with no CDN."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar.config.compression import CompressionConfig
from litestar.connection import ASGIConnection
from litestar.datastructures import CacheControlHeader
from litestar.exceptions import NotFoundException
from litestar.handlers import BaseRouteHandler
from litestar.middleware import DefineMiddleware
from litestar.middleware.compression import CompressionMiddleware
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.router import Router
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from app.config import Settings
from app.resources import FRONTEND_DIR
from app.web.formatting import FILTERS

# URL path → the npm package folder it serves, in TWIN_NODE_MODULES_DIR (installed from package-lock.json).
VENDORED_PACKAGES = {
    "/vendor/ethers": Path("ethers", "dist"),
    "/vendor/uplot": Path("uplot", "dist"),
}


def _add_filters(engine: JinjaTemplateEngine) -> None:
    engine.engine.filters.update(FILTERS)


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    return TemplateConfig(
        directory=FRONTEND_DIR / "templates", engine=JinjaTemplateEngine, engine_callback=_add_filters
    )


def no_nul_in_path(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """A NUL byte names no file; the filesystem calls would raise on it (a 500) instead of missing."""
    if "\x00" in connection.scope["path"]:
        raise NotFoundException("no such file")


# Files are gzipped on the way out (ethers.min.js: 520 kB → 161 kB) and kept by browsers: our own for
# a few minutes (their names do not change with their content), the npm packages, pinned by the
# lockfile, for a day.
COMPRESSED = [DefineMiddleware(CompressionMiddleware, config=CompressionConfig(backend="gzip", gzip_compress_level=6))]
OWN_FILES_MAX_AGE_S = 300
VENDORED_MAX_AGE_S = 86_400


def static_routers(settings: Settings) -> list[Router]:
    return [
        create_static_files_router(
            path="/static",
            directories=[FRONTEND_DIR / "static"],
            guards=[no_nul_in_path],
            middleware=COMPRESSED,
            cache_control=CacheControlHeader(max_age=OWN_FILES_MAX_AGE_S),
        ),
        *(
            create_static_files_router(
                path=path,
                directories=[settings.node_modules_dir / package],
                name=path.strip("/").replace("/", "-"),
                guards=[no_nul_in_path],
                middleware=COMPRESSED,
                cache_control=CacheControlHeader(max_age=VENDORED_MAX_AGE_S),
            )
            for path, package in VENDORED_PACKAGES.items()
        ),
    ]
