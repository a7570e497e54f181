"""A JSON-RPC endpoint onto the embedded chain, in the wire format wallets and ethers.js speak.

The embedded chain has no node process; this bridges standard JSON-RPC requests (hex
quantities, camelCase) to web3's in-process provider and formats its answers back to
hex quantities. Only the read methods and ``eth_sendRawTransaction`` are offered: every
write must be a transaction signed by the sender's own key.
"""

from __future__ import annotations

import ast
import contextlib
from typing import Any

from eth_tester.exceptions import TransactionFailed, ValidationError
from eth_utils.exceptions import ValidationError as EthUtilsValidationError
from hexbytes import HexBytes
from web3 import AsyncWeb3
from web3.datastructures import AttributeDict
from web3.exceptions import Web3Exception

ALLOWED_METHODS = frozenset({
    "web3_clientVersion", "net_version", "net_listening", "eth_chainId", "eth_blockNumber", "eth_gasPrice",
    "eth_maxPriorityFeePerGas", "eth_feeHistory", "eth_getBalance", "eth_getCode", "eth_getStorageAt",
    "eth_getTransactionCount", "eth_call", "eth_estimateGas", "eth_sendRawTransaction", "eth_getTransactionByHash",
    "eth_getTransactionReceipt", "eth_getBlockByNumber", "eth_getBlockByHash", "eth_getLogs", "eth_accounts",
    "eth_syncing",
})
MAX_BATCH = 100
BLOOM_BYTES = 256

INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, SERVER_ERROR, EXECUTION_REVERTED = -32600, -32601, -32602, -32000, 3


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


def to_wire(value: Any, key: str | None = None) -> Any:
    """Python values from web3 → JSON-RPC: ints as hex quantities, bytes as hex data."""
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return value
    if isinstance(value, int):
        if key == "logsBloom":
            return "0x" + value.to_bytes(BLOOM_BYTES, "big").hex()
        return hex(value)
    if isinstance(value, bytes | bytearray | HexBytes):
        return "0x" + bytes(value).hex()
    if isinstance(value, dict | AttributeDict):
        return {name: to_wire(item, name) for name, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_wire(item) for item in value]
    return value


def _block_number(value: Any) -> Any:
    return int(value, 16) if isinstance(value, str) and value.startswith("0x") else value


def _normalise_params(method: str, params: list[Any], default_sender: str) -> list[Any]:
    """The few request shapes the in-process provider wants differently from the wire."""
    if method == "eth_getLogs" and params and isinstance(params[0], dict):
        log_filter = dict(params[0])
        for field in ("fromBlock", "toBlock"):
            if field in log_filter:
                log_filter[field] = _block_number(log_filter[field])
        return [log_filter]
    if method in {"eth_call", "eth_estimateGas"} and params and isinstance(params[0], dict):
        # The in-process EVM checks that the caller can afford the gas even for a call.
        transaction = {"from": default_sender, **params[0]}
        return [transaction, *params[1:]]
    if method == "eth_getBlockByNumber" and params:
        return [_block_number(params[0]), *params[1:]]
    return params


def _revert_data(error: TransactionFailed) -> str | None:
    """The revert data of the innermost failure; eth-tester carries it as bytes or as their repr."""
    innermost: BaseException = error
    while isinstance(innermost.__context__, TransactionFailed):
        innermost = innermost.__context__
    raw = innermost.args[0] if innermost.args else None
    if isinstance(raw, Exception) and raw.args:  # eth_estimateGas wraps py-evm's Revert(data)
        raw = raw.args[0]
    if isinstance(raw, str) and raw.startswith(("b'", 'b"')):
        with contextlib.suppress(ValueError, SyntaxError):
            raw = ast.literal_eval(raw)  # a bytes literal, never code
    return "0x" + bytes(raw).hex() if isinstance(raw, bytes | bytearray) else None


async def call(w3: AsyncWeb3, method: Any, params: Any, default_sender: str) -> Any:
    if not isinstance(method, str) or method not in ALLOWED_METHODS:
        raise RpcError(METHOD_NOT_FOUND, f"method not available on this endpoint: {method}")
    if params is None:
        params = []
    if not isinstance(params, list):
        raise RpcError(INVALID_PARAMS, "params must be an array")
    if method == "eth_accounts":
        return []  # the server holds no keys for anyone
    try:
        normalised = _normalise_params(method, params, default_sender)
        if method == "eth_getLogs":  # the raw request path mis-reads a filter's address; eth.get_logs does not
            result = await w3.eth.get_logs(*normalised)
        else:
            result = await w3.manager.coro_request(method, normalised)
    except TransactionFailed as error:
        raise RpcError(EXECUTION_REVERTED, "execution reverted", _revert_data(error)) from None
    except (ValidationError, EthUtilsValidationError, ValueError, TypeError, KeyError, AttributeError,
            IndexError) as error:
        raise RpcError(INVALID_PARAMS, f"invalid params: {error}"[:300]) from None
    except Web3Exception as error:
        raise RpcError(SERVER_ERROR, str(error)[:300]) from None
    return to_wire(result)


async def handle_one(w3: AsyncWeb3, request: Any, default_sender: str) -> dict[str, Any]:
    request_id = request.get("id") if isinstance(request, dict) else None
    response: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id}
    if not isinstance(request, dict) or request.get("jsonrpc") != "2.0" or "method" not in request:
        response["error"] = {"code": INVALID_REQUEST, "message": "expected a JSON-RPC 2.0 request object"}
        return response
    try:
        response["result"] = await call(w3, request["method"], request.get("params"), default_sender)
    except RpcError as error:
        response["error"] = {"code": error.code, "message": error.message}
        if error.data is not None:
            response["error"]["data"] = error.data
    return response


async def handle(w3: AsyncWeb3, payload: Any, default_sender: str) -> dict[str, Any] | list[dict[str, Any]]:
    """Answer one request or a batch, per JSON-RPC 2.0; errors are answers, never exceptions.

    ``default_sender`` stands in for a missing ``from`` of calls and gas estimates.
    """
    if isinstance(payload, list):
        if not payload or len(payload) > MAX_BATCH:
            return {"jsonrpc": "2.0", "id": None,
                    "error": {"code": INVALID_REQUEST, "message": f"a batch holds 1 to {MAX_BATCH} requests"}}
        return [await handle_one(w3, request, default_sender) for request in payload]
    return await handle_one(w3, payload, default_sender)
