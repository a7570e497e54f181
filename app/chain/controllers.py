"""The chain's routes: its facts for wallets and operators, ``POST /rpc``, and the embedded faucet."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.exceptions import SerializationException
from litestar.params import JSONBody
from msgspec import Struct

from app.chain import jsonrpc
from app.chain.client import Chain
from app.chain.service import ChainFacts, chain_facts, fund
from app.config import Settings
from app.errors import SESSION_WRITE, error_responses
from app.validation import parse_address, require_no_code


class FaucetIn(Struct):
    address: str


class FaucetOut(Struct):
    address: str
    eth: str
    opg: str
    eth_balance: str
    opg_balance: str


class ChainController(Controller):
    tags = ["chain"]

    @get("/api/chain", summary="The chain this service runs on: id, RPC URL, contract addresses and deployment block")
    async def facts(
        self, request: Request[Any, Any, Any], settings: NamedDependency[Settings], chain: NamedDependency[Chain]
    ) -> ChainFacts:
        public_base = settings.public_base_url or str(request.base_url)
        return chain_facts(chain, public_base)

    @post(
        "/rpc",
        summary="JSON-RPC 2.0 onto the chain for wallets (standard reads and eth_sendRawTransaction)",
        status_code=200,
        responses=error_responses(400, *SESSION_WRITE),
    )
    async def rpc(self, request: Request[Any, Any, Any], chain: NamedDependency[Chain]) -> Any:
        try:
            payload = await request.json()
        except SerializationException:
            return {
                "jsonrpc": "2.0",
                "id": None,
                "error": {"code": jsonrpc.PARSE_ERROR, "message": "parse error: not JSON"},
            }
        return await jsonrpc.handle(chain.w3, payload)


class DevChainController(Controller):
    """Only on the embedded chain."""

    tags = ["embedded chain"]

    @post(
        "/api/dev/faucet",
        summary="Fund an address with 100 ETH and 10,000 OPG (embedded chain only)",
        status_code=200,
        responses=error_responses(400, 503, *SESSION_WRITE),
    )
    async def faucet(self, chain: NamedDependency[Chain], data: JSONBody[FaucetIn]) -> FaucetOut:
        address = await require_no_code(chain.w3, parse_address(data.address))
        funded = await fund(chain, address)
        return FaucetOut(
            address=address,
            eth=str(funded.eth),
            opg=str(funded.opg),
            eth_balance=str(funded.eth_balance),
            opg_balance=str(funded.opg_balance),
        )
