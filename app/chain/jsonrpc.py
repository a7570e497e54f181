"""``POST /rpc``: the chain's JSON-RPC for wallets in the browser, through the backend.

Requests are forwarded to the chain's node as they are, but only the standard methods a wallet
needs: reads, gas estimates and ``eth_sendRawTransaction`` (every write is a transaction signed
by the sender's own key). The node's dev and admin namespaces (``anvil_*``, ``evm_*``,
``hardhat_*``, ``debug_*``, ``personal_*``…) and ``eth_sendTransaction`` are not reachable from
the public, and a log query may span at most ``MAX_LOG_BLOCKS`` blocks.
"""

from __future__ import annotations

from typing import Any

from web3 import AsyncWeb3
from web3.types import RPCEndpoint

from app.chain.deploy import TIP_BLOCKS, median_tip

ALLOWED_METHODS = frozenset(
    {
        "web3_clientVersion",
        "net_version",
        "net_listening",
        "eth_chainId",
        "eth_blockNumber",
        "eth_gasPrice",
        "eth_maxPriorityFeePerGas",
        "eth_feeHistory",
        "eth_getBalance",
        "eth_getCode",
        "eth_getStorageAt",
        "eth_getTransactionCount",
        "eth_call",
        "eth_estimateGas",
        "eth_sendRawTransaction",
        "eth_getTransactionByHash",
        "eth_getTransactionReceipt",
        "eth_getBlockByNumber",
        "eth_getBlockByHash",
        "eth_getLogs",
        "eth_accounts",
        "eth_syncing",
    }
)
MAX_BATCH = 100
MAX_LOG_BLOCKS = 10_000

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
LIMIT_EXCEEDED = -32005
SERVER_ERROR = -32000


class RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _block(value: Any, head: int) -> int:
    if value in (None, "latest", "pending", "safe", "finalized"):
        return head
    if value == "earliest":
        return 0
    if isinstance(value, str) and value.startswith("0x"):
        try:
            return int(value, 16)
        except ValueError:
            pass
    raise RpcError(INVALID_PARAMS, f"invalid block number: {str(value)[:40]}")


async def _check_log_range(w3: AsyncWeb3, params: list[Any]) -> None:
    """A log query names a block hash, or a range of at most MAX_LOG_BLOCKS blocks."""
    log_filter = params[0] if params else None
    if not isinstance(log_filter, dict):
        raise RpcError(INVALID_PARAMS, "eth_getLogs takes one filter object")
    if "blockHash" in log_filter:
        return
    head = await w3.eth.block_number
    first = _block(log_filter.get("fromBlock"), head)
    last = _block(log_filter.get("toBlock"), head)
    if last - first >= MAX_LOG_BLOCKS:
        raise RpcError(LIMIT_EXCEEDED, f"a log query may span at most {MAX_LOG_BLOCKS} blocks")


async def call(w3: AsyncWeb3, method: Any, params: Any) -> dict[str, Any]:
    """The node's answer (``result`` or ``error``) to one allowed request."""
    if not isinstance(method, str) or method not in ALLOWED_METHODS:
        raise RpcError(METHOD_NOT_FOUND, f"method not available on this endpoint: {str(method)[:60]}")
    if params is None:
        params = []
    if not isinstance(params, list):
        raise RpcError(INVALID_PARAMS, "params must be an array")
    if method == "eth_accounts":
        return {"result": []}  # the server holds no keys for anyone
    if method == "eth_getLogs":
        await _check_log_range(w3, params)
    if method == "eth_maxPriorityFeePerGas":
        return {"result": hex(median_tip(await w3.eth.fee_history(TIP_BLOCKS, "latest", [50])) or 0)}
    try:
        answer = await w3.provider.make_request(RPCEndpoint(method), params)
    except Exception as error:  # noqa: BLE001 - any transport failure: the node did not answer
        raise RpcError(SERVER_ERROR, f"the chain did not answer: {type(error).__name__}") from None
    return {key: answer[key] for key in ("result", "error") if key in answer}


async def handle_one(w3: AsyncWeb3, request: Any) -> dict[str, Any]:
    request_id = request.get("id") if isinstance(request, dict) else None
    response: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id}
    if not isinstance(request, dict) or request.get("jsonrpc") != "2.0" or "method" not in request:
        response["error"] = {"code": INVALID_REQUEST, "message": "expected a JSON-RPC 2.0 request object"}
        return response
    try:
        response |= await call(w3, request["method"], request.get("params"))
    except RpcError as error:
        response["error"] = {"code": error.code, "message": error.message}
    return response


async def handle(w3: AsyncWeb3, payload: Any) -> dict[str, Any] | list[dict[str, Any]]:
    """Answer one request or a batch, per JSON-RPC 2.0; errors are answers, never exceptions."""
    if isinstance(payload, list):
        if not payload or len(payload) > MAX_BATCH:
            return {
                "jsonrpc": "2.0",
                "id": None,
                "error": {"code": INVALID_REQUEST, "message": f"a batch holds 1 to {MAX_BATCH} requests"},
            }
        return [await handle_one(w3, request) for request in payload]
    return await handle_one(w3, payload)
