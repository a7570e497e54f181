"""The network page: the public usage figures, with the chats' spread drawn as a Lorenz curve."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import Parameter
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from app.chain.client import Chain
from app.config import Settings
from app.errors import AppError
from app.network.controllers import USAGE_STORE, cached_usage, parse_choice
from app.network.usage import Window, lorenz_svg_points
from app.web.controllers import error_page, page

LORENZ_BOX = 200  # the chart's square, in SVG units


class NetworkPageController(Controller):
    include_in_schema = False
    exception_handlers = {AppError: error_page}

    @get("/network")
    async def network_page(
        self,
        request: Request[Any, Any, Any],
        chain: NamedDependency[Chain],
        settings: NamedDependency[Settings],
        db_session: NamedDependency[AsyncSession],
        window: Annotated[str, Parameter(max_length=8)] = "7d",
    ) -> Template:
        usage = await cached_usage(
            request.app.stores.get(USAGE_STORE),
            db_session,
            parse_choice(Window, window, "window"),
            settings.network_usage_cache_s,
        )
        return page(
            chain, "network.html", usage=usage, lorenz_points=lorenz_svg_points(usage.distribution.lorenz, LORENZ_BOX)
        )
