"""Re-orgs of depth 1, 5 and 64 on the real node (anvil_reorg) while fans keep trading: the index
ends equal to the chain, with no trade missing and none twice.

They run on a node of their own: anvil keeps the states a re-org rebuilds from in a bounded cache
that the session node's hundreds of reverted test blocks would have crowded out."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.chain.client import Chain
from app.chain.embedded import EmbeddedChain
from tests.conftest import between_snapshot, chain_of_its_own
from tests.helpers import avatar_bytes, buy, index, index_differences, launch, sell, sync_twin_keys, view


@pytest.fixture(scope="module")
def own_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedChain]:
    with chain_of_its_own(tmp_path_factory) as embedded:
        yield embedded


@pytest.fixture
async def chain(own_node: EmbeddedChain) -> AsyncIterator[Chain]:
    async with between_snapshot(own_node) as chain:
        yield chain


@pytest.mark.parametrize("depth", [1, 5, 64])
async def test_a_reorg_while_trading_leaves_the_index_equal_to_the_chain(
    client: AsyncTestClient[Litestar], app: Litestar, chain: Chain, depth: int
) -> None:
    creator, *fans = chain.dev_accounts[1:5]
    avatar_id = await launch(client, chain, creator, f"reorg{depth}")
    for step in range(depth + 4):  # more blocks of trades than the re-org replaces, indexed as they come
        fan = fans[step % len(fans)]
        buy(chain, fan, avatar_id, 2)
        if step % 3 == 2:
            sell(chain, fan, avatar_id, 1)
        if step % 4 == 0:
            await index(app)
    await index(app)
    head = chain.embedded.w3.eth.block_number
    supply_before = view(chain, "keysSupply", avatar_bytes(avatar_id))

    chain.embedded.reorg(depth)  # the last `depth` blocks give way to empty ones: their trades are gone
    assert view(chain, "keysSupply", avatar_bytes(avatar_id)) < supply_before
    buy(chain, fans[0], avatar_id, 1)  # and trading goes on on the new branch
    sell(chain, fans[1], avatar_id, 1)
    await index(app)

    assert chain.embedded.w3.eth.block_number == head + 2
    assert await index_differences(client, sync_twin_keys(chain), [avatar_id], [creator, *fans]) == []
