"""The embedded chain's node: shared by a checkout's processes, persisted, restarted when it dies,
and its deployment remembered (or redone, said out loud, when its saved state is gone)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient
from structlog.testing import capture_logs

from app.chain import embedded as embedded_module
from app.chain.anvil import AnvilNode, NodeError, process_alive
from app.chain.client import chain_from_embedded
from app.chain.embedded import EmbeddedChain, node_options
from app.config import Settings
from app.main import create_app
from tests.conftest import close_quietly
from tests.helpers import forget_cached_loggers


def settings_in(state_dir: Path, **overrides: object) -> Settings:
    return Settings(chain_state_dir=state_dir, chain_dev_accounts=2, **overrides)


def block_hash(chain: EmbeddedChain, number: int) -> str:
    return chain.w3.eth.get_block(number)["hash"].hex()


def test_processes_of_one_checkout_share_one_node_and_the_last_one_out_stops_it(tmp_path: Path) -> None:
    options = node_options(settings_in(tmp_path))
    first = AnvilNode.acquire(options)
    second = AnvilNode.acquire(options)
    assert (second.pid, second.url) == (first.pid, first.url)

    first.release()
    assert process_alive(second.pid)  # the other user still has it

    second.release()
    assert not process_alive(second.pid)
    assert not (tmp_path / "node.json").exists()
    assert (tmp_path / "state.json").stat().st_size > 0  # written as it stopped


def test_a_restart_keeps_the_chain_and_the_deployment(tmp_path: Path) -> None:
    chain = EmbeddedChain.start(settings_in(tmp_path))
    deployment = chain.deployment
    head = chain.w3.eth.block_number
    hashes = [block_hash(chain, number) for number in range(1, head + 1)]
    chain.close()

    again = EmbeddedChain.start(settings_in(tmp_path))
    try:
        assert again.deployment == deployment
        assert not again.state_lost
        assert again.w3.eth.block_number == head  # nothing deployed twice
        assert [block_hash(again, number) for number in range(1, head + 1)] == hashes
    finally:
        again.close()


def test_a_node_killed_with_sigkill_comes_back_from_its_saved_state(tmp_path: Path) -> None:
    chain = EmbeddedChain.start(settings_in(tmp_path, chain_state_interval_s=1))
    try:
        saved_head = chain.w3.eth.block_number
        time.sleep(2.5)  # a periodic dump has happened since the deployment
        os.kill(chain.node.pid, signal.SIGKILL)
        for _ in range(100):
            if not process_alive(chain.node.pid):
                break
            time.sleep(0.05)

        assert chain.node.restart_if_dead()
        assert chain.w3.eth.block_number == saved_head
        assert chain.w3.eth.get_code(chain.addresses.twin_keys)
        assert not chain.node.restart_if_dead()  # alive again: nothing to do
    finally:
        chain.close()


def test_a_stalled_node_is_not_started_twice(tmp_path: Path) -> None:
    chain = EmbeddedChain.start(settings_in(tmp_path))
    try:
        os.kill(chain.node.pid, signal.SIGSTOP)
        assert not chain.node.restart_if_dead()
        assert json.loads((tmp_path / "node.json").read_text())["pid"] == chain.node.pid
    finally:
        os.kill(chain.node.pid, signal.SIGCONT)
        chain.close()


def test_lost_state_is_said_and_the_contracts_are_deployed_again(tmp_path: Path) -> None:
    EmbeddedChain.start(settings_in(tmp_path)).close()
    (tmp_path / "state.json").unlink()

    forget_cached_loggers(embedded_module.log)
    with capture_logs() as logs:
        again = EmbeddedChain.start(settings_in(tmp_path))
    try:
        assert again.state_lost
        assert again.w3.eth.get_code(again.addresses.twin_keys)
        assert [entry["event"] for entry in logs if entry["log_level"] == "warning"] == ["chain_state_lost"]
    finally:
        again.close()


def test_stopping_a_node_in_use_is_refused_and_an_orphan_is_stopped(tmp_path: Path) -> None:
    options = node_options(settings_in(tmp_path))
    node = AnvilNode.acquire(options)
    with pytest.raises(NodeError, match="in use"):
        AnvilNode.stop_unused(tmp_path)

    node._users.close()  # as a server killed with SIGKILL leaves it: running, with no user
    assert AnvilNode.stop_unused(tmp_path)
    assert not process_alive(node.pid)


def test_a_port_that_is_taken_fails_in_one_line(tmp_path: Path) -> None:
    holder = AnvilNode.acquire(node_options(settings_in(tmp_path / "a")))
    try:
        with pytest.raises(NodeError, match=f"port {holder.port} on 127.0.0.1 is taken"):
            AnvilNode.acquire(node_options(settings_in(tmp_path / "b", chain_node_port=holder.port)))
    finally:
        holder.release()


def test_the_base_fee_is_held_where_it_was_set(tmp_path: Path) -> None:
    chain = EmbeddedChain.start(settings_in(tmp_path))
    try:
        target = chain.node.options.base_fee_wei
        chain.mine_blocks(8)  # empty blocks: EIP-1559 lowers the base fee after each
        low = chain.w3.eth.get_block("latest")["baseFeePerGas"]
        assert low < target // 2

        fees = []
        for _ in range(4):  # raised a step at a time, never beyond what wallets offer (twice the latest)
            chain.hold_base_fee()
            chain.mine_blocks(1)
            fees.append(chain.w3.eth.get_block("latest")["baseFeePerGas"])
        assert fees[0] == low * 3 // 2
        assert all(later <= 2 * earlier for earlier, later in zip([low, *fees], fees, strict=False))
        assert fees[-1] == target
    finally:
        chain.close()


async def test_a_backend_on_a_chain_that_lost_its_state_says_so(tmp_path: Path, settings: Settings) -> None:
    EmbeddedChain.start(settings_in(tmp_path)).close()
    (tmp_path / "state.json").unlink()
    embedded = EmbeddedChain.start(settings_in(tmp_path))
    chain = chain_from_embedded(embedded)
    try:
        async with AsyncTestClient(app=create_app(settings, chain=chain)) as client:
            ready = await client.get("/readyz")
            facts = (await client.get("/api/chain")).json()
    finally:
        await close_quietly(chain)
        embedded.close()

    assert ready.status_code == 200
    assert ready.json()["dependencies"]["chain"].startswith("ok: the embedded chain's saved state was lost")
    assert facts["state_lost"] is True


def test_a_revert_leaves_the_chains_clock_on_ours(tmp_path: Path) -> None:
    chain = EmbeddedChain.start(settings_in(tmp_path))
    try:
        snapshot = chain.take_snapshot()
        time.sleep(3)
        chain.revert_to_snapshot(snapshot)
        chain.mine_blocks(1)
        assert chain.w3.eth.get_block("latest")["timestamp"] >= int(time.time()) - 1
    finally:
        chain.close()
