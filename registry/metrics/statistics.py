"""The t statistics behind a summary's quality interval.

- `t_critical_95(df)`: t(0.975, df), the two-sided 95 % critical value of Student's t.
  Up to 30 degrees of freedom it is the three-decimal table found in every statistics
  text (e.g. Abramowitz and Stegun, Handbook of Mathematical Functions, table 26.10);
  beyond, the Cornish-Fisher expansion of t's quantile around the normal quantile
  z = 1.95996... in powers of 1/df, to four terms (Abramowitz and Stegun 26.7.5).
- `mean_ci95(n, sum, sum of squares)`: Student's t interval for a mean,
  mean ± t(0.975, n - 1) · s / √n, with s² the unbiased sample variance computed from
  the sums a rollup stores; clamped to [0, 1], the range of quality scores.
"""

from __future__ import annotations

import math

# Two-sided 95 % critical values of Student's t for 1..30 degrees of freedom.
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
_Z975 = 1.959963984540054


def t_critical_95(df: int) -> float:
    """Return t(0.975, df): a table to 30, then the Cornish-Fisher expansion (error < 1e-4)."""
    if df < 1:
        raise ValueError("degrees of freedom must be at least 1")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


def mean_ci95(
    n: int, total: float, sumsq: float
) -> tuple[float | None, float | None, float | None]:
    """Return (mean, low, high) of a 95 % t interval for the mean, clamped to [0, 1].

    The bounds are None below two observations.
    """
    if n == 0:
        return None, None, None
    mean = total / n
    if n < 2:
        return mean, None, None
    variance = max(0.0, (sumsq - n * mean * mean) / (n - 1))
    half = t_critical_95(n - 1) * math.sqrt(variance / n)
    return mean, max(0.0, mean - half), min(1.0, mean + half)
