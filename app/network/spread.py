"""How a quantity is spread over those who have it (avatars' chats, creators' fees): the Herfindahl–Hirschman
index ``Σ sᵢ²`` over each one's share ``sᵢ`` (1/n when n share evenly, 1 when one has everything), the Gini
coefficient, the Lorenz curve (the share of the least x % of them, for x from 0 to 100 %), the top ones' shares
and quantiles. Pure functions, used where the rollups are read and where they are kept."""

from __future__ import annotations

import bisect
import itertools
from collections import Counter
from collections.abc import Sequence

LORENZ_POINTS = 50  # segments of the curve: enough to draw it, few enough to send
TOP_COUNTS = (1, 10, 100)

Histogram = Sequence[tuple[int, int]]  # (value, how many have it), values ascending: 10,000 avatars' chats fit
# in a few hundred pairs, so the figures below cost what the distinct values do, not what the avatars do


def histogram(values: Sequence[int]) -> list[tuple[int, int]]:
    return sorted(Counter(values).items())


def hhi(values: Sequence[int]) -> float:
    return hhi_of(histogram(values))


def hhi_of(counts: Histogram) -> float:
    total = sum(value * many for value, many in counts)
    return round(sum(many * (value / total) ** 2 for value, many in counts), 6) if total else 0.0


def gini(values: Sequence[int]) -> float:
    return gini_of(histogram(values))


def gini_of(counts: Histogram) -> float:
    """0 when all are equal, towards 1 when one holds everything: ``Σᵢ (2i − n − 1)·xᵢ / (n·Σx)`` sorted up, the
    ``k`` equal values from place ``i₀`` on weighing ``2·(k·i₀ + k(k−1)/2) − k(n+1)`` together (exact integers)."""
    n, total = sum(many for _, many in counts), sum(value * many for value, many in counts)
    if not total:
        return 0.0
    weighted, first = 0, 1
    for value, many in counts:
        weighted += value * (2 * (many * first + many * (many - 1) // 2) - many * (n + 1))
        first += many
    return round(weighted / (n * total), 6)


def lorenz(values: Sequence[int], points: int = LORENZ_POINTS) -> list[tuple[float, float]]:
    return lorenz_of(histogram(values), points)


def lorenz_of(counts: Histogram, points: int = LORENZ_POINTS) -> list[tuple[float, float]]:
    """The share of the total held by the least x of the values, at ``points`` + 1 even steps of x."""
    n, total = sum(many for _, many in counts), sum(value * many for value, many in counts)
    if not total:
        return []
    ends, sums_before = list(itertools.accumulate(many for _, many in counts)), [0]
    for value, many in counts:
        sums_before.append(sums_before[-1] + value * many)
    curve = []
    for step in sorted({round(n * k / points) for k in range(points + 1)}):
        group = bisect.bisect_left(ends, step)  # the group the step-th value falls in
        below = sums_before[group] + (step - (ends[group - 1] if group else 0)) * counts[group][0] if step else 0
        curve.append((round(step / n, 4), round(below / total, 4)))
    return curve


def top_shares(values: Sequence[int]) -> dict[str, float]:
    return top_shares_of(histogram(values))


def top_shares_of(counts: Histogram) -> dict[str, float]:
    total = sum(value * many for value, many in counts)
    shares = {}
    for top in TOP_COUNTS:
        left, held = top, 0
        for value, many in reversed(counts):
            taken = min(left, many)
            held, left = held + taken * value, left - taken
            if not left:
                break
        shares[str(top)] = round(held / total, 4) if total else 0.0
    return shares


def quantile(ordered: Sequence[int], q: float) -> int:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0
