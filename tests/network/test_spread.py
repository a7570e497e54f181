"""How activity is spread: top shares, HHI, Gini and the Lorenz curve on known cases."""

from __future__ import annotations

import itertools
import random

import pytest

from app.network.spread import gini, hhi, lorenz, top_shares
from app.network.usage import lorenz_svg_points


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


def test_the_figures_read_from_a_histogram_equal_those_of_every_value_sorted() -> None:
    rng = random.Random(17)
    for _ in range(50):
        values = [rng.choice((0, 1, 1, 2, 3, 5, 8, 40, 1000)) for _ in range(rng.randrange(1, 300))]
        ordered, n, total = sorted(values), len(values), sum(values)
        if not total:
            continue
        cumulative = list(itertools.accumulate(ordered, initial=0))
        steps = sorted({round(n * k / 50) for k in range(51)})

        assert gini(values) == round(sum((2 * i - n - 1) * v for i, v in enumerate(ordered, 1)) / (n * total), 6)
        assert lorenz(values) == [(round(step / n, 4), round(cumulative[step] / total, 4)) for step in steps]
        assert top_shares(values) == {str(top): round(sum(ordered[::-1][:top]) / total, 4) for top in (1, 10, 100)}
        assert hhi(values) == pytest.approx(sum((v / total) ** 2 for v in values), abs=1e-6)  # to 6 places
