"""OPG: ERC-20 basics, owner-only mint, EIP-2612 permit and the EIP-3009 authorizations (USDC's ABI)."""

from __future__ import annotations

import os
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction

from app.chain.embedded import DEV_OPG_BALANCE
from tests.contracts.conftest import FAR_DEADLINE, events, reverts, send

AUTHORIZATION_FIELDS = [
    {"name": "from", "type": "address"},
    {"name": "to", "type": "address"},
    {"name": "value", "type": "uint256"},
    {"name": "validAfter", "type": "uint256"},
    {"name": "validBefore", "type": "uint256"},
    {"name": "nonce", "type": "bytes32"},
]
TYPES = {
    "TransferWithAuthorization": AUTHORIZATION_FIELDS,
    "ReceiveWithAuthorization": AUTHORIZATION_FIELDS,
    "CancelAuthorization": [{"name": "authorizer", "type": "address"}, {"name": "nonce", "type": "bytes32"}],
    "Permit": [
        {"name": "owner", "type": "address"},
        {"name": "spender", "type": "address"},
        {"name": "value", "type": "uint256"},
        {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
    ],
}
AMOUNT = 25 * 10**18
VRS = "uint8,bytes32,bytes32"
AUTH_ARGS = "address,address,uint256,uint256,uint256,bytes32"


def sign(opg: Contract, signer: LocalAccount, primary_type: str, message: dict[str, Any]) -> Any:
    domain = {"name": "OPG", "version": "1", "chainId": opg.w3.eth.chain_id, "verifyingContract": opg.address}
    return Account.sign_typed_data(signer.key, domain, {primary_type: TYPES[primary_type]}, message)


def authorization(payer: LocalAccount, payee: str, valid_after: int = 0, valid_before: int = FAR_DEADLINE) -> dict:
    return {
        "from": payer.address,
        "to": payee,
        "value": AMOUNT,
        "validAfter": valid_after,
        "validBefore": valid_before,
        "nonce": os.urandom(32),
    }


def with_vrs(opg: Contract, name: str, message: dict[str, Any], signed: Any) -> ContractFunction:
    function = opg.get_function_by_signature(f"{name}({AUTH_ARGS},{VRS})")
    return function(*message.values(), signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big"))


def with_bytes(opg: Contract, name: str, message: dict[str, Any], signed: Any) -> ContractFunction:
    return opg.get_function_by_signature(f"{name}({AUTH_ARGS},bytes)")(*message.values(), signed.signature)


@pytest.fixture
def payer(accounts: list[LocalAccount]) -> LocalAccount:
    return accounts[1]


@pytest.fixture
def payee(accounts: list[LocalAccount]) -> LocalAccount:
    return accounts[2]


def now(w3: Web3) -> int:
    return w3.eth.get_block("latest")["timestamp"]


def test_token_metadata_and_dev_balances(opg: Contract, owner: LocalAccount, accounts: list[LocalAccount]) -> None:
    assert (opg.functions.name().call(), opg.functions.symbol().call(), opg.functions.decimals().call()) == (
        "OPG",
        "OPG",
        18,
    )
    assert opg.functions.owner().call() == owner.address
    assert all(opg.functions.balanceOf(account.address).call() == DEV_OPG_BALANCE for account in accounts)
    assert opg.functions.totalSupply().call() == DEV_OPG_BALANCE * len(accounts)


def test_only_the_owner_mints(opg: Contract, owner: LocalAccount, payer: LocalAccount) -> None:
    stranger = Account.create()
    send(opg.functions.mint(stranger.address, AMOUNT), owner)
    assert opg.functions.balanceOf(stranger.address).call() == AMOUNT
    reverts(opg.functions.mint(payer.address, AMOUNT), payer, "OwnableUnauthorizedAccount")


def test_minting_stops_at_the_cap_fixed_at_construction(opg: Contract, owner: LocalAccount) -> None:
    from app.chain.deploy import OPG_CAP

    assert opg.functions.cap().call() == OPG_CAP
    room = OPG_CAP - opg.functions.totalSupply().call()
    reverts(opg.functions.mint(owner.address, room + 1), owner, "ERC20ExceededCap")
    send(opg.functions.mint(owner.address, room), owner)
    assert opg.functions.totalSupply().call() == OPG_CAP
    reverts(opg.functions.mint(owner.address, 1), owner, "ERC20ExceededCap")


def test_permit(opg: Contract, payer: LocalAccount, payee: LocalAccount, accounts: list[LocalAccount]) -> None:
    def permit(signer: LocalAccount, deadline: int) -> ContractFunction:
        nonce = opg.functions.nonces(payer.address).call()
        message = {
            "owner": payer.address,
            "spender": payee.address,
            "value": AMOUNT,
            "nonce": nonce,
            "deadline": deadline,
        }
        signed = sign(opg, signer, "Permit", message)
        return opg.functions.permit(
            payer.address,
            payee.address,
            AMOUNT,
            deadline,
            signed.v,
            signed.r.to_bytes(32, "big"),
            signed.s.to_bytes(32, "big"),
        )

    valid = permit(payer, FAR_DEADLINE)
    send(valid, payee)
    assert opg.functions.allowance(payer.address, payee.address).call() == AMOUNT
    assert opg.functions.nonces(payer.address).call() == 1
    reverts(valid, payee, "ERC2612InvalidSigner")  # replay: the nonce moved on
    reverts(permit(payer, now(opg.w3) - 1), payee, "ERC2612ExpiredSignature")
    reverts(permit(accounts[3], FAR_DEADLINE), payee, "ERC2612InvalidSigner")


@pytest.mark.parametrize("encode", [with_vrs, with_bytes])
def test_transfer_with_authorization(
    opg: Contract, payer: LocalAccount, payee: LocalAccount, accounts: list[LocalAccount], encode: Any
) -> None:
    relayer = accounts[3]
    message = authorization(payer, payee.address)
    function = encode(opg, "transferWithAuthorization", message, sign(opg, payer, "TransferWithAuthorization", message))
    assert opg.functions.authorizationState(payer.address, message["nonce"]).call() is False
    receipt = send(function, relayer)  # anyone may relay it
    assert opg.functions.balanceOf(payee.address).call() == DEV_OPG_BALANCE + AMOUNT
    assert opg.functions.balanceOf(payer.address).call() == DEV_OPG_BALANCE - AMOUNT
    assert events(opg, "AuthorizationUsed", receipt) == [{"authorizer": payer.address, "nonce": message["nonce"]}]
    assert opg.functions.authorizationState(payer.address, message["nonce"]).call() is True
    reverts(function, relayer, "AuthorizationAlreadyUsed")


def test_transfer_with_authorization_rejects_bad_authorizations(
    opg: Contract, payer: LocalAccount, payee: LocalAccount, accounts: list[LocalAccount]
) -> None:
    current = now(opg.w3)
    cases = [
        (authorization(payer, payee.address, valid_before=current), payer, "AuthorizationExpired"),
        (authorization(payer, payee.address, valid_after=current + 3600), payer, "AuthorizationNotYetValid"),
        (authorization(payer, payee.address), accounts[4], "InvalidSignature"),
    ]
    for message, signer, error in cases:
        signed = sign(opg, signer, "TransferWithAuthorization", message)
        reverts(with_vrs(opg, "transferWithAuthorization", message, signed), payee, error)
    tampered = authorization(payer, payee.address)
    signed = sign(opg, payer, "TransferWithAuthorization", tampered)
    reverts(
        with_vrs(opg, "transferWithAuthorization", {**tampered, "value": AMOUNT + 1}, signed), payee, "InvalidSignature"
    )
    assert opg.functions.balanceOf(payee.address).call() == DEV_OPG_BALANCE


@pytest.mark.parametrize("encode", [with_vrs, with_bytes])
def test_receive_with_authorization_only_by_the_payee(
    opg: Contract, payer: LocalAccount, payee: LocalAccount, accounts: list[LocalAccount], encode: Any
) -> None:
    message = authorization(payer, payee.address)
    function = encode(opg, "receiveWithAuthorization", message, sign(opg, payer, "ReceiveWithAuthorization", message))
    reverts(function, accounts[3], "CallerMustBePayee")
    send(function, payee)
    assert opg.functions.balanceOf(payee.address).call() == DEV_OPG_BALANCE + AMOUNT
    reverts(function, payee, "AuthorizationAlreadyUsed")
    # A transfer authorization cannot be replayed as a receive authorization: different type hash.
    other = authorization(payer, payee.address)
    signed = sign(opg, payer, "TransferWithAuthorization", other)
    reverts(with_vrs(opg, "receiveWithAuthorization", other, signed), payee, "InvalidSignature")


@pytest.mark.parametrize("use_bytes", [False, True])
def test_cancel_authorization(
    opg: Contract, payer: LocalAccount, payee: LocalAccount, accounts: list[LocalAccount], use_bytes: bool
) -> None:
    message = authorization(payer, payee.address)
    transfer = with_vrs(
        opg, "transferWithAuthorization", message, sign(opg, payer, "TransferWithAuthorization", message)
    )

    def cancel(signer: LocalAccount) -> ContractFunction:
        signed = sign(opg, signer, "CancelAuthorization", {"authorizer": payer.address, "nonce": message["nonce"]})
        if use_bytes:
            function = opg.get_function_by_signature("cancelAuthorization(address,bytes32,bytes)")
            return function(payer.address, message["nonce"], signed.signature)
        function = opg.get_function_by_signature(f"cancelAuthorization(address,bytes32,{VRS})")
        return function(
            payer.address, message["nonce"], signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")
        )

    reverts(cancel(accounts[4]), payee, "InvalidSignature")
    receipt = send(cancel(payer), payee)
    assert events(opg, "AuthorizationCanceled", receipt) == [{"authorizer": payer.address, "nonce": message["nonce"]}]
    assert opg.functions.authorizationState(payer.address, message["nonce"]).call() is True
    reverts(transfer, payee, "AuthorizationAlreadyUsed")
    reverts(cancel(payer), payee, "AuthorizationAlreadyUsed")
