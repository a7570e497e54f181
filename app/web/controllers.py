"""Pages: server-rendered HTML that stays readable with JavaScript off. Trading, signing in and
charts are added by the scripts in ``frontend/static/js``, which talk to the JSON API and the chain."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.params import FromPath, FromQuery, Parameter
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.deps import provide_optional_address
from app.avatars.service import avatar_id_by_handle, get_avatar
from app.catalog import service as catalog
from app.catalog.ratings import avatar_page_extras
from app.catalog.schemas import RankingSort
from app.catalog.showcase import showcase
from app.chain.artifacts import load_artifact
from app.chain.client import Chain
from app.chat.access import chat_access
from app.config import Settings
from app.errors import AppError, http_error_handler
from app.market import curve
from app.market import service as market
from app.market.service import TwinKeysReader
from app.proxy.client.client import ProxyClient
from app.proxy.client.directory import node_directory
from app.reviews.controllers import signing
from app.reviews.service import Prior
from app.services import services_of
from app.validation import parse_avatar_id

RANKINGS_PAGE_SIZE = 50
RECENT_TRADES = 20
TRADES_PAGE_SIZE = 25
TOP_HOLDERS = 10
CURVE_POINTS = 100
# The curve chart shows at least this many keys, and twice the current supply.
CURVE_MIN_KEYS = 20


def page(chain: Chain, template_name: str, *, status_code: int = 200, **context: Any) -> Template:
    """A page with what every page's scripts need to reach the chain (read by static/js/config.js)."""
    wallet_config = {
        "chain_id": chain.chain_id,
        "twin_keys_address": chain.addresses.twin_keys,
        "node_registry_address": chain.addresses.node_registry,
        "embedded_chain": chain.is_embedded,
    }
    return Template(
        template_name=template_name, context={"wallet_config": wallet_config, **context}, status_code=status_code
    )


def error_page(request: Request[Any, Any, Any], exc: AppError | HTTPException) -> Response[Any]:
    """What a page shows for an error the visitor caused (a bad link, an unknown avatar)."""
    detail = f"There is no page at {request.url.path}." if isinstance(exc, NotFoundException) else str(exc.detail)
    return page(
        services_of(request.app).chain, "error.html", status_code=exc.status_code, status=exc.status_code, detail=detail
    )


def not_found(request: Request[Any, Any, Any], exc: NotFoundException) -> Response[Any]:
    """An unknown address: a page for a browser, the JSON error shape for API clients."""
    wants_page = "text/html" in request.headers.get("accept", "") and not request.url.path.startswith("/api/")
    return error_page(request, exc) if wants_page else http_error_handler(request, exc)


def curve_points(supply: int, divisor: int) -> list[tuple[int, str]]:
    """(key number, its price in wei) sampled along the curve past the current supply, which is
    always one of the points so the chart can mark it."""
    last_key = max(2 * supply, CURVE_MIN_KEYS)
    keys = sorted({*range(0, last_key + 1, max(1, last_key // CURVE_POINTS)), supply})
    return [(key, str(curve.price(key, 1, divisor))) for key in keys]


class WebController(Controller):
    include_in_schema = False
    exception_handlers = {AppError: error_page, ValidationException: error_page}

    @get("/")
    async def marketplace(
        self,
        chain: NamedDependency[Chain],
        reader: NamedDependency[TwinKeysReader],
        settings: NamedDependency[Settings],
        db_session: NamedDependency[AsyncSession],
        sort: FromQuery[RankingSort] = RankingSort.market_cap,
        q: Annotated[str | None, Parameter(max_length=64)] = None,
        cursor: Annotated[str | None, Parameter(max_length=512)] = None,
    ) -> Template:
        rankings = await catalog.ranked_page(
            db_session, reader, Prior.of(settings), sort=sort, q=q or None, cursor=cursor, limit=RANKINGS_PAGE_SIZE
        )
        cards = await showcase(db_session, rankings, await reader.divisor())
        return page(
            chain,
            "marketplace.html",
            rankings=rankings,
            showcase=cards,
            sort=sort,
            sorts=list(RankingSort),
            q=q or "",
            cursor=cursor,
        )

    @get("/avatars/{avatar_id:str}")
    async def avatar(
        self,
        chain: NamedDependency[Chain],
        reader: NamedDependency[TwinKeysReader],
        settings: NamedDependency[Settings],
        db_session: NamedDependency[AsyncSession],
        avatar_id: FromPath[str],
    ) -> Template | Redirect:
        if avatar_id.startswith("@"):  # a share link by handle
            return Redirect(f"/avatars/{await avatar_id_by_handle(db_session, avatar_id)}")
        avatar = await get_avatar(db_session, parse_avatar_id(avatar_id))
        details = await catalog.avatar_profile(db_session, reader, avatar, viewer=None)
        trades = await market.trades_page(db_session, avatar_id=avatar.id, cursor=None, limit=RECENT_TRADES)
        holders = await market.holders(db_session, avatar.id, cursor=None, limit=TOP_HOLDERS)
        points = curve_points(details.market.supply, await reader.divisor())
        return page(
            chain,
            "avatar.html",
            avatar=details,
            trades=trades.items,
            holders=holders.items,
            curve_points=points,
            **await avatar_page_extras(db_session, signing(chain), Prior.of(settings), avatar.id),
        )

    @get("/create")
    async def create(self, chain: NamedDependency[Chain]) -> Template:
        return page(chain, "create.html")

    @get("/avatars/{avatar_id:str}/chat", dependencies={"viewer": Provide(provide_optional_address)})
    async def chat(
        self,
        chain: NamedDependency[Chain],
        settings: NamedDependency[Settings],
        db_session: NamedDependency[AsyncSession],
        avatar_id: FromPath[str],
        viewer: NamedDependency[str | None],
    ) -> Template:
        """The chat itself runs in the page's script over the websocket; the server says who may use it."""
        avatar = await get_avatar(db_session, parse_avatar_id(avatar_id))
        access = await chat_access(db_session, avatar, viewer)
        return page(
            chain,
            "chat.html",
            avatar=avatar,
            viewer=viewer,
            access=access.kind.value,
            keys=access.keys,
            max_message_chars=settings.chat_max_message_chars,
        )

    @get("/portfolio", dependencies={"viewer": Provide(provide_optional_address)})
    async def portfolio(
        self,
        chain: NamedDependency[Chain],
        reader: NamedDependency[TwinKeysReader],
        db_session: NamedDependency[AsyncSession],
        viewer: NamedDependency[str | None],
        cursor: Annotated[str | None, Parameter(max_length=512)] = None,
    ) -> Template:
        held = (
            None
            if viewer is None
            else await market.portfolio(db_session, reader, viewer, cursor=cursor, limit=TRADES_PAGE_SIZE)
        )
        return page(chain, "portfolio.html", viewer=viewer, portfolio=held)

    @get("/dashboard", dependencies={"viewer": Provide(provide_optional_address)})
    async def dashboard(
        self,
        chain: NamedDependency[Chain],
        reader: NamedDependency[TwinKeysReader],
        db_session: NamedDependency[AsyncSession],
        viewer: NamedDependency[str | None],
        avatar: Annotated[str | None, Parameter(max_length=34)] = None,
    ) -> Template:
        """The signed-in creator's avatars; ``avatar`` picks the one shown in full (the first by default)."""
        stats = [] if viewer is None else await catalog.creator_dashboard(db_session, reader, viewer)
        shown = next((row for row in stats if row.avatar_id == avatar), stats[0] if stats else None)
        return page(
            chain,
            "dashboard.html",
            viewer=viewer,
            stats=stats,
            shown=shown,
            shown_avatar=await get_avatar(db_session, shown.avatar_id) if shown else None,
            chart_data=msgspec.to_builtins(shown) if shown else None,
        )

    @get("/operations")
    async def operations(self, chain: NamedDependency[Chain], proxy_client: NamedDependency[ProxyClient]) -> Template:
        """The registry's nodes; the autoscale signal is drawn by the page's script from its JSON API."""
        return page(chain, "operations.html", nodes=await node_directory(proxy_client))

    @get("/abi/TwinKeys.json")
    async def twin_keys_abi(self) -> list[dict[str, Any]]:
        """The contract's ABI, for the wallet to encode calls and decode custom errors."""
        return load_artifact("TwinKeys").abi

    @get("/abi/NodeRegistry.json")
    async def node_registry_abi(self) -> list[dict[str, Any]]:
        """The registry's ABI, for the chat page to read a node's key itself when it checks a reply."""
        return load_artifact("NodeRegistry").abi
