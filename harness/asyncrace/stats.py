"""Failure rates with a Wilson score interval (95 %), and their one-line text."""
import math
from math import sqrt

Z95 = 1.959963984540054  # two-sided 95 % normal quantile


def wilson(failures: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of failures/n; (0, 1) when nothing ran.

    Wilson rather than the normal approximation because our rates sit near 0 (and
    near 1 for forced cells), where p +- z*sqrt(p(1-p)/n) collapses to a point.
    """
    if n <= 0:
        return 0.0, 1.0
    p = failures / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # At 0 (or n) failures the bound is exactly 0 (or 1); the formula leaves rounding dust.
    low = 0.0 if failures == 0 else max(0.0, centre - half)
    high = 1.0 if failures == n else min(1.0, centre + half)
    return low, high


def percent(x: float) -> str:
    """A fraction as percent with three significant digits: 0.0026 -> '0.26'."""
    return f"{x * 100:.3g}"


def rate_text(failures: int, n: int) -> str:
    """'0.26% [0.177, 0.381] (26/10000)': rate, 95 % interval, counts."""
    low, high = wilson(failures, n)
    rate = failures / n if n else 0.0
    return f"{percent(rate)}% [{percent(low)}, {percent(high)}] ({failures}/{n})"


POWER_TARGET = 0.95


def power(rate: float, n: int) -> float:
    """The chance that n iterations show at least one failure at this rate: 1-(1-p)^n."""
    if n <= 0 or rate <= 0:
        return 0.0
    if rate >= 1:
        return 1.0
    return -math.expm1(n * math.log1p(-rate))


def iterations_for_power(rate: float, target: float = POWER_TARGET) -> float:
    """The n with 1-(1-p)^n >= target: ceil(ln(1-target) / ln(1-p)); inf at rate 0."""
    if rate <= 0:
        return math.inf
    if rate >= 1:
        return 1
    return math.ceil(math.log1p(-target) / math.log1p(-rate))


def binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed in log space (exact, not approximated)."""
    if k < 0:
        return 0.0
    if k >= n or p <= 0:
        return 1.0
    if p >= 1:
        return 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    total = 0.0
    for i in range(k + 1):
        total += math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
                          + i * log_p + (n - i) * log_q)
    return min(1.0, total)


# A sometimes cell's rate has collapsed against its reference rate p when its count is
# implausibly low even for p / COLLAPSE_TOLERANCE: P(X <= failures) < COLLAPSE_ALPHA. The
# tolerance absorbs what load does to a real loop's rate; a fall of 35 times is caught
# at the quick budget (COLLAPSE_EXPECTED failures expected at p).
COLLAPSE_TOLERANCE = 3.0
COLLAPSE_ALPHA = 1e-4
COLLAPSE_EXPECTED = 60
# The reproduction a sometimes cell's budget must make sure of (the chance to miss it).
MISS_CHANCE = 1e-4


def collapsed(failures: int, n: int, reference: float) -> bool:
    floor = reference / COLLAPSE_TOLERANCE
    if n <= 0 or floor <= 0 or failures >= n * floor:
        return False
    return binomial_cdf(failures, n, floor) < COLLAPSE_ALPHA


def iterations_to_show(rate: float, miss: float = MISS_CHANCE) -> float:
    """The n that shows a failure at this rate with chance 1 - miss."""
    return iterations_for_power(rate, 1 - miss)
