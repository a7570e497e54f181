"""Populate an empty embedded world on its first start: avatars launched, keys traded over the past
days from several dev wallets, and holders' chats answered through the real proxy path.

Everything goes through the same doors a user's actions do: avatars are created by the avatars
service and on-chain by their creators' transactions, the indexer turns the trades into rows, and
each chat message is answered (paid, attested) by :class:`ChatService`. Only the clock is special:
a fresh demo chain starts ``HISTORY_S`` in the past (see :func:`genesis_timestamp`), each trade is
mined at its scheduled time with anvil's ``evm_setNextBlockTimestamp``, and the clock is brought to
now before anyone chats.

It runs once: a world that holds any avatar is left alone, so a restart, or a world a user already
launched into, never gets a second cast. ``TWIN_DEMO_WORLD=false`` turns it off."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from eth_account.signers.local import LocalAccount
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from web3.types import Wei

from app.avatars.models import Avatar
from app.avatars.schemas import AvatarCreate
from app.avatars.service import create_avatar
from app.chain.client import Chain
from app.chain.deploy import send_transaction
from app.chain.embedded import EmbeddedChain
from app.chat.schemas import IncomingMessage, ServerFrame
from app.chat.turn import ChatService
from app.config import Settings
from app.demo.cast import CAST, HISTORY_S, LAUNCHED_HOURS_AGO, TRADES, DemoAvatar, main_holder
from app.market import service as market
from app.proxy.config import OFFLINE_DEMO_MODEL

log = structlog.get_logger()

FAR_DEADLINE = 2**40
INDEX_WAIT_S = 60.0
INDEX_POLL_S = 0.25
HOUR_S = 3600


def genesis_timestamp(settings: Settings, now: float | None = None) -> int | None:
    """Where a fresh embedded chain's clock starts: in the past when the demo world is on, so that
    its trades can be mined on past days (anvil's clock only moves forwards). None otherwise."""
    if not settings.demo_world or settings.chain_rpc_url:
        return None
    return int(now if now is not None else time.time()) - HISTORY_S


@dataclass(frozen=True)
class _Event:
    """One transaction of the world's history: when it is mined, who sends it, what it does."""

    at: int
    account: int
    handle: str
    keys: int  # buys when positive, sells when negative
    launch: bool = False


def _history(now: int) -> list[_Event]:
    launches = [
        _Event(
            now - int(hours * HOUR_S),
            next(a.creator_account for a in CAST if a.handle == handle),
            handle,
            1,
            launch=True,
        )
        for handle, hours in LAUNCHED_HOURS_AGO.items()
    ]
    trades = [_Event(now - int(hours * HOUR_S), account, handle, keys) for hours, account, handle, keys in TRADES]
    return sorted(launches + trades, key=lambda event: event.at)


class DemoWorld:
    """The demo world of one embedded world, built in two steps around the start of the proxy node:

    - :meth:`build_history` before the node registers (the chain's clock jumps to now at its end, and
      a heartbeat sent before the jump would look days old);
    - :meth:`converse` once the node serves, in the background: holders' chats, through ChatService.

    Either step logs and gives up on failure: the product works the same without a demo world."""

    def __init__(
        self, settings: Settings, chain: Chain, sessions: async_sessionmaker[AsyncSession], base_url: str
    ) -> None:
        self._settings = settings
        self._chain = chain
        self._sessions = sessions
        self._base_url = base_url
        self._ids: dict[str, str] = {}

    async def build_history(self) -> bool:
        """Launch the cast and mine their trades, if this world holds no avatar; True if it did. The
        chain's clock is brought to now in any case (a fresh demo chain starts in the past)."""
        embedded = self._chain.embedded
        if embedded is None or not self._settings.demo_world:
            return False
        try:
            async with self._sessions() as session:
                if await session.scalar(select(func.count()).select_from(Avatar)):
                    return False
                self._ids = await _create_avatars(session, self._chain, self._base_url)
                await session.commit()
            await asyncio.to_thread(_mine_history, embedded, self._chain, self._ids)
        except Exception as error:
            log.exception("demo_world_failed", step="history", error=repr(error))
            self._ids = {}
        finally:
            await asyncio.to_thread(_clock_to_now, embedded)
        return bool(self._ids)

    async def converse(self, chat: ChatService) -> None:
        """Each avatar's main holder asks its questions, once the index shows their keys."""
        if not self._ids:
            return
        try:
            accounts = self._chain.dev_accounts
            holders = {self._ids[avatar.handle]: accounts[main_holder(avatar)].address for avatar in CAST}
            await _wait_until_indexed(self._sessions, holders)
            for avatar in CAST:
                await _converse(chat, self._ids[avatar.handle], holders[self._ids[avatar.handle]], avatar)
        except Exception as error:
            log.exception("demo_world_failed", step="chats", error=repr(error))
            return
        log.info("demo_world_built", avatars=len(CAST), trades=len(TRADES))


async def _create_avatars(session: AsyncSession, chain: Chain, base_url: str) -> dict[str, str]:
    ids = {}
    for avatar in CAST:
        creator = chain.dev_accounts[avatar.creator_account].address
        row = await create_avatar(
            session,
            creator=creator,
            public_base_url=base_url,
            data=AvatarCreate(
                name=avatar.name, handle=avatar.handle, persona=avatar.persona, model=OFFLINE_DEMO_MODEL, bio=avatar.bio
            ),
        )
        row.created_at = row.updated_at = datetime.now(UTC) - timedelta(hours=LAUNCHED_HOURS_AGO[avatar.handle])
        ids[avatar.handle] = row.id
    return ids


def _mine_history(embedded: EmbeddedChain, chain: Chain, ids: dict[str, str]) -> None:
    """Send every launch and trade, each mined at its time (moved up if the chain is already past it)."""
    twin_keys = embedded.w3.eth.contract(address=chain.addresses.twin_keys, abi=chain.twin_keys.abi)
    metadata = {handle: f"/api/avatars/{avatar_id}/metadata" for handle, avatar_id in ids.items()}
    latest = int(embedded.w3.eth.get_block("latest")["timestamp"])
    for event in _history(int(time.time())):
        latest = max(event.at, latest + 1)
        embedded.time_travel(latest)
        account: LocalAccount = chain.dev_accounts[event.account]
        avatar_id = bytes.fromhex(ids[event.handle][2:])
        if event.keys > 0:
            cost = twin_keys.functions.getBuyPriceAfterFee(avatar_id, event.keys).call()
            call = (
                twin_keys.functions.createAvatar(avatar_id, metadata[event.handle], event.keys, cost, FAR_DEADLINE)
                if event.launch
                else twin_keys.functions.buyKeys(avatar_id, event.keys, cost, FAR_DEADLINE)
            )
            transaction = call.build_transaction({"from": account.address, "value": cost})
        else:
            transaction = twin_keys.functions.sellKeys(avatar_id, -event.keys, 0, FAR_DEADLINE).build_transaction(
                {"from": account.address}
            )
        send_transaction(
            embedded.w3,
            account,
            {"to": transaction["to"], "data": transaction["data"], "value": Wei(transaction.get("value", 0))},
        )


def _clock_to_now(embedded: EmbeddedChain) -> None:
    """Bring a clock that runs behind (a fresh demo chain) to now, and mine a block that says so."""
    latest = int(embedded.w3.eth.get_block("latest")["timestamp"])
    now = int(time.time())
    if latest < now - 1:
        embedded.call("evm_setTime", now)
        embedded.mine_blocks(1)


async def _wait_until_indexed(sessions: async_sessionmaker[AsyncSession], holders: Mapping[str, str]) -> None:
    """Chats need the index to show each holder's keys (``holders``: avatar id → address)."""
    deadline = time.monotonic() + INDEX_WAIT_S
    while True:
        async with sessions() as session:
            held = [await market.balance_of(session, avatar_id, fan) for avatar_id, fan in holders.items()]
        if all(held):
            return
        if time.monotonic() > deadline:
            raise TimeoutError("the indexer did not catch up with the demo world's trades")
        await asyncio.sleep(INDEX_POLL_S)


async def _converse(service: ChatService, avatar_id: str, fan: str, avatar: DemoAvatar) -> None:
    async def discard(_: ServerFrame) -> None:
        return None

    for index, question in enumerate(avatar.questions):
        await service.handle(avatar_id, fan, IncomingMessage(client_msg_id=f"demo-{index}", content=question), discard)
