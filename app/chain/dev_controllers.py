"""Helpers that exist only on the embedded chain: a faucet and a JSON-RPC endpoint for wallets."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, post
from litestar.datastructures import State
from litestar.exceptions import SerializationException
from msgspec import Struct

from app.chain import jsonrpc
from app.chain.artifacts import load_artifact
from app.chain.deploy import send_transaction
from app.chain.embedded import EmbeddedChain
from app.validation import parse_address, require_no_code

FAUCET_ETH = 100 * 10**18
FAUCET_OPG = 10_000 * 10**18


class FaucetIn(Struct):
    address: str


class FaucetOut(Struct):
    address: str
    eth: str
    opg: str
    eth_balance: str
    opg_balance: str


def fund(chain: EmbeddedChain, address: str) -> tuple[int, int]:
    """Send ETH and mint OPG to ``address`` from the deployer; return the new balances."""
    deployer = chain.accounts[0]
    send_transaction(chain.w3, deployer, {"to": address, "value": FAUCET_ETH})
    opg = chain.w3.eth.contract(address=chain.addresses.opg, abi=load_artifact("OPG").abi)
    send_transaction(chain.w3, deployer, {"to": chain.addresses.opg,
                                          "data": opg.encode_abi("mint", args=[address, FAUCET_OPG])})
    return chain.w3.eth.get_balance(address), opg.functions.balanceOf(address).call()


class DevChainController(Controller):
    tags = ["embedded chain"]

    @post("/api/dev/faucet", summary="Fund an address with 100 ETH and 10,000 OPG (embedded chain only)",
          status_code=200)
    async def faucet(self, state: State, data: FaucetIn) -> FaucetOut:
        address = await require_no_code(state.chain.w3, parse_address(data.address))
        eth_balance, opg_balance = fund(state.chain.embedded, address)
        return FaucetOut(address=address, eth=str(FAUCET_ETH), opg=str(FAUCET_OPG), eth_balance=str(eth_balance),
                         opg_balance=str(opg_balance))

    @post("/rpc", summary="JSON-RPC 2.0 onto the embedded chain (reads and eth_sendRawTransaction)",
          status_code=200)
    async def rpc(self, request: Request[Any, Any, Any], state: State) -> Any:
        try:
            payload = await request.json()
        except SerializationException:
            return {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "parse error: not JSON"}}
        embedded: EmbeddedChain = state.chain.embedded
        return await jsonrpc.handle(embedded.async_w3, payload, embedded.accounts[0].address)
