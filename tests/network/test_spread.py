"""How activity is spread: top shares, HHI, Gini and the Lorenz curve on known cases."""

from __future__ import annotations

import pytest

from app.network.usage import gini, hhi, lorenz, lorenz_svg_points, top_shares


def test_an_even_spread_and_a_monopoly_are_the_two_ends() -> None:
    even, monopoly = [5] * 4, [0, 0, 0, 20]

    assert (hhi(even), gini(even)) == (0.25, 0.0)
    assert (hhi(monopoly), gini(monopoly)) == (1.0, 0.75)  # n−1 / n with n = 4
    assert lorenz(even, points=4) == [(0.0, 0.0), (0.25, 0.25), (0.5, 0.5), (0.75, 0.75), (1.0, 1.0)]
    assert lorenz(monopoly, points=4) == [(0.0, 0.0), (0.25, 0.0), (0.5, 0.0), (0.75, 0.0), (1.0, 1.0)]


def test_top_shares_and_nothing_at_all() -> None:
    chats = [50, 30, 10, 10] + [0] * 6

    assert top_shares(chats) == {"1": 0.5, "10": 1.0, "100": 1.0}
    assert hhi(chats) == pytest.approx(0.25 + 0.09 + 0.01 + 0.01)
    assert (hhi([]), gini([]), lorenz([]), top_shares([])) == (0.0, 0.0, [], {"1": 0.0, "10": 0.0, "100": 0.0})


def test_the_lorenz_curve_is_drawn_upside_up_in_svg() -> None:
    assert lorenz_svg_points([(0.0, 0.0), (0.5, 0.25), (1.0, 1.0)], 200) == "0.0,200.0 100.0,150.0 200.0,0.0"
