"""Gas of TwinKeys' trades on the embedded chain (anvil), beside friend.tech's published reference figures.

Run: ``./dev.sh bench gas`` (or ``.venv/bin/python bench/gas.py``). Each row is the ``gasUsed`` of one
transaction (21,000 intrinsic gas and calldata included), measured in this run on an anvil node of
its own (a temp TWIN_CHAIN_STATE_DIR, stopped at the end), sending the exact cost so no refund is
paid. The friend.tech column is NOT measured here: it is friend.tech's published reference figures
for FriendtechSharesV1 (solc 0.8.28, optimizer 200, cancun), quoted as constants. The goals: at most
1.0x of them for create + first buy, at most 0.72x for every buy and sell.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from eth_account.signers.local import LocalAccount
from web3.contract import Contract

from app.avatars.service import avatar_id_for
from app.chain.artifacts import load_artifact
from app.chain.deploy import send_transaction
from app.chain.embedded import EmbeddedChain, dev_accounts
from app.config import Settings

TRADE_GOAL = 0.72
LAUNCH_GOAL = 1.0
LAUNCH = "create + first buy (1 key)"
DEADLINE = 2**40
# A random-looking id, as the backend mints them: every byte non-zero, so calldata is not flattered.
# Bound to its creator (dev account 1), as TwinKeys requires of every id.
AVATAR_ID = bytes.fromhex(avatar_id_for(dev_accounts(Settings().chain_dev_mnemonic, 2)[1].address, 7)[2:])
METADATA_URI = "https://twin.example/avatars/9f1c2b7e4d5a4c3b8a7e6d5c4b3a2910.json"

# friend.tech's published reference figures for FriendtechSharesV1 (solc 0.8.28, optimizer 200, cancun):
# constants, not measured in this run.
FRIEND_TECH_REFERENCE = {
    "create + first buy (1 key)": 80_152,
    "buy 1 (new holder)": 80_283,
    "buy 1 (existing holder)": 63_183,
    "buy 10 (new holder)": 80_283,
    "sell 1 (balance stays > 0)": 70_435,
    "sell 10 (whole balance)": 65_635,
    "withdraw creator fees": None,
}
FIRST_BUY_NOTE = (
    "note: create + first buy writes two fresh slots (market, balance), like friend.tech's first buy: the\n"
    "creator is not stored, the avatar id names it (TwinKeys.isCreator), and it carries the metadata URI."
)


@dataclass
class Bench:
    chain: EmbeddedChain
    twin_keys: Contract

    def gas(self, account: LocalAccount, function: str, *args: object, value: int = 0) -> int:
        data = self.twin_keys.encode_abi(function, args=list(args))
        transaction = {"to": self.twin_keys.address, "data": data, "value": value, "gas": 1_000_000}
        receipt = send_transaction(self.chain.w3, account, transaction)
        return receipt["gasUsed"]

    def buy(self, account: LocalAccount, amount: int) -> int:
        cost = self.twin_keys.functions.getBuyPriceAfterFee(AVATAR_ID, amount).call()
        return self.gas(account, "buyKeys", AVATAR_ID, amount, cost, DEADLINE, value=cost)

    def sell(self, account: LocalAccount, amount: int) -> int:
        proceeds = self.twin_keys.functions.getSellPriceAfterFee(AVATAR_ID, amount).call()
        return self.gas(account, "sellKeys", AVATAR_ID, amount, proceeds, DEADLINE)


def measure(state_dir: Path) -> tuple[dict[str, int], str]:
    """The gas of each operation on a fresh node in ``state_dir``, and that node's client version."""
    chain = EmbeddedChain.start(Settings(chain_state_dir=state_dir))
    try:
        twin_keys = chain.w3.eth.contract(address=chain.addresses.twin_keys, abi=load_artifact("TwinKeys").abi)
        bench = Bench(chain, twin_keys)
        creator, fan, whale, seller = chain.accounts[1:5]
        first_buy = bench.gas(creator, "createAvatar", AVATAR_ID, METADATA_URI, 1, 0, DEADLINE)
        rows = {LAUNCH: first_buy}
        rows["buy 1 (new holder)"] = bench.buy(fan, 1)
        rows["buy 1 (existing holder)"] = bench.buy(fan, 1)
        rows["buy 10 (new holder)"] = bench.buy(whale, 10)
        rows["sell 1 (balance stays > 0)"] = bench.sell(whale, 1)
        bench.buy(seller, 10)
        rows["sell 10 (whole balance)"] = bench.sell(seller, 10)
        rows["withdraw creator fees"] = bench.gas(creator, "withdrawCreatorFees", AVATAR_ID, creator.address)
        return rows, str(chain.call("web3_clientVersion"))
    finally:
        chain.close()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="twin-gas-bench-") as state_dir:
        rows, node = measure(Path(state_dir))
    one, five, fifteen = os.getloadavg()
    print(
        f"TwinKeys gasUsed measured on {node} (this run; load {one:.2f} {five:.2f} {fifteen:.2f}) beside "
        "friend.tech's published reference figures for FriendtechSharesV1 (constants, not measured here)\n"
    )
    header = f"{'TwinKeys operation':<30} {'gas (anvil)':>11} {'friend.tech (published)':>24} {'ratio':>7}"
    print(f"{header}  goal")
    for name, gas in rows.items():
        reference = FRIEND_TECH_REFERENCE[name]
        if reference is None:
            print(f"{name:<30} {gas:>11,} {'(no equivalent)':>24} {'-':>7}")
            continue
        ratio = gas / reference
        goal = LAUNCH_GOAL if name == LAUNCH else TRADE_GOAL
        verdict = "ok" if ratio <= goal else "above goal"
        print(f"{name:<30} {gas:>11,} {reference:>24,} {ratio:>7.3f}  <= {goal}: {verdict}")
    print(FIRST_BUY_NOTE)


if __name__ == "__main__":
    main()
