"""Is a sample of PIT values uniform? The simultaneous ECDF band of Säilynoja et al.

Säilynoja, Bürkner and Vehtari (2022, Statistics and Computing 32:32) test the
uniformity of ``n`` values u_1..u_n through their ECDF F_n at the points z_i = i / n,
i = 1..n-1: under uniformity each n F_n(z_i) is Binomial(n, z_i). A *simultaneous*
band at level 1 - alpha is the pointwise binomial band at a stricter level gamma, with
gamma chosen so that the ECDF of a uniform sample leaves the band anywhere with
probability alpha. gamma is found by simulation (their section 2.2): for each of many
uniform samples, the smallest two-sided pointwise tail probability over the z_i gives
the pointwise level at which that sample just touches the band; gamma is the
1 - alpha quantile of those. The band is then the binomial quantiles at level gamma.

The code is that of ``arviz_stats.ecdf_utils`` (``simulate_confidence_bands`` with one
chain, then ``get_pointwise_confidence_band`` and ``compute_ecdf``, which are used
here directly), vectorised, and with the simulated statistics kept so that one set of
simulations gives bands at several levels and the p-value of an observed sample: the
share of uniform samples that touch a band at least as narrow as the observed one
(Monte Carlo, ``(1 + count) / (1 + simulations)``). One difference: the upper tail
P(X >= 0) is 1 here, where arviz-stats 1.3 computes it as 1 - bdtr(-1) = NaN and then
ignores the upper tail of every simulated sample with an empty first bin (about a
third of them), which makes its bands slightly too narrow at the top.

:func:`assess` adds a test of the extremes, which an ECDF band cannot see: one PIT
value of 1e-14 among 100 moves the ECDF by 1/100, yet under uniformity the smallest of
n values is below x with probability 1 - (1 - x)^n (2e-12 here). It catches a posterior
that puts no mass where the truth can be (a tabulated CDF that stops short of 0 or 1).
Its p-value is 2 min(P(min <= observed min), P(max >= observed max)), exact. For
information it also reports arviz-stats' ``pot_c`` uniformity test (pointwise
order-statistic tests with a Cauchy combination; Tesso et al. 2026).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from arviz_stats.ecdf_utils import compute_ecdf, get_pointwise_confidence_band
from scipy.special import bdtr

#: Uniform samples simulated per sample size for the bands and the p-values.
N_SIMULATIONS = 10_000


def _statistic(counts: np.ndarray, n: int, z: np.ndarray) -> np.ndarray:
    """1 - 2 min(smallest lower-tail, smallest upper-tail binomial probability) of ECDF
    counts ``counts`` (..., len(z)): the pointwise level of the narrowest band that
    still contains the ECDF (as arviz_stats.ecdf_utils.simulate_confidence_bands)."""
    lower = np.min(bdtr(counts, n, z), axis=-1)
    below = np.where(counts > 0, bdtr(np.maximum(counts - 1, 0), n, z), 0.0)
    upper = np.min(1 - below, axis=-1)
    return 1 - 2 * np.minimum(lower, upper)


@dataclass(frozen=True)
class Bands:
    """Simultaneous ECDF bands for samples of ``n`` PIT values, from one simulation.

    Attributes
    ----------
    n : int
        Sample size (replications with a PIT value).
    simulated : numpy.ndarray
        The statistic of each simulated uniform sample (see :func:`_statistic`).
    """

    n: int
    simulated: np.ndarray

    @cached_property
    def eval_points(self) -> np.ndarray:
        """z_i = i / n, i = 1..n-1 (the ECDF at 0 and 1 is 0 and 1 for every sample)."""
        return np.arange(1, self.n) / self.n

    def pointwise_level(self, level: float) -> float:
        """The pointwise binomial level whose band holds a uniform sample's whole ECDF
        with probability ``level``."""
        return float(np.quantile(self.simulated, level))

    def band(self, level: float) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) ECDF values of the simultaneous band at ``level``, at
        :attr:`eval_points`."""
        return get_pointwise_confidence_band(self.pointwise_level(level), self.n,
                                             self.eval_points)

    def statistic(self, pit: np.ndarray) -> float:
        counts = np.round(compute_ecdf(pit, self.eval_points) * self.n)
        return float(_statistic(counts, self.n, self.eval_points))

    def p_value(self, pit: np.ndarray) -> float:
        """The share of uniform samples whose ECDF strays at least as far (in
        pointwise binomial probability) as ``pit``'s."""
        observed = self.statistic(pit)
        return float((1 + np.sum(self.simulated >= observed)) / (1 + self.simulated.size))

    def inside(self, pit: np.ndarray, level: float) -> bool:
        """Whether the ECDF of ``pit`` stays within the band at ``level`` everywhere."""
        ecdf = compute_ecdf(pit, self.eval_points)
        lower, upper = self.band(level)
        eps = 1e-12
        return bool(np.all((ecdf >= lower - eps) & (ecdf <= upper + eps)))


def simulate_bands(n: int, *, rng: np.random.Generator,
                   n_simulations: int = N_SIMULATIONS) -> Bands:
    """Simulate the statistic of ``n_simulations`` uniform samples of size ``n``.

    The uniform draws are taken in the order ``arviz_stats.ecdf_utils.
    simulate_confidence_bands`` takes them (one sample after another), so that with the
    same generator the band is the same.
    """
    if n < 2:
        raise ValueError("a uniformity band needs at least 2 values")
    z = np.arange(1, n) / n
    statistics = np.empty(n_simulations)
    chunk = max(1, 2_000_000 // n)
    for start in range(0, n_simulations, chunk):
        size = min(chunk, n_simulations - start)
        samples = np.sort(rng.uniform(0, 1, size=(size, n)), axis=1)
        counts = np.stack([np.searchsorted(row, z, side="right") for row in samples])
        statistics[start:start + size] = _statistic(counts, n, z)
    return Bands(n=n, simulated=statistics)


@dataclass(frozen=True)
class Assessment:
    """The uniformity verdict of one quantity's PIT values."""

    n: int
    #: Largest |ECDF(z) - z| over the evaluation points.
    max_deviation: float
    #: p-value of the simultaneous-band test (Monte Carlo).
    p_value: float
    #: p-value of the test of the smallest and largest PIT values.
    tail_p_value: float
    #: arviz-stats' pot_c p-value, for information.
    pot_c_p_value: float
    #: Within the simultaneous band at the per-quantity display level (95%).
    inside_display_band: bool
    #: Within the simultaneous band at the verdict's (family-wise) level.
    inside_verdict_band: bool
    #: The tail test does not reject at the verdict's level.
    tails_ok: bool

    @property
    def calibrated(self) -> bool:
        return self.inside_verdict_band and self.tails_ok


def tail_p_value(pit: np.ndarray) -> float:
    """p-value of the smallest and largest of ``n`` PIT values under uniformity:
    2 min(1 - (1 - min)^n, 1 - max^n), at most 1."""
    pit = np.asarray(pit, dtype=float)
    n = pit.size
    low = -np.expm1(n * np.log1p(-float(np.min(pit)))) if np.min(pit) < 1 else 1.0
    high = -np.expm1(n * np.log(float(np.max(pit)))) if np.max(pit) > 0 else 1.0
    return float(min(1.0, max(0.0, 2 * min(low, high))))


def pot_c_p_value(pit: np.ndarray) -> float:
    """arviz-stats' pot_c uniformity test p-value (NaN when it cannot be computed)."""
    from arviz_stats.base import array_stats

    try:
        p_value, _, _ = array_stats.uniformity_test(np.asarray(pit, dtype=float),
                                                     method="pot_c")
    except Exception:  # an optional extra: never let it stop a calibration
        return float("nan")
    return float(p_value)


def assess(pit: np.ndarray, bands: Bands, *, display_level: float,
           verdict_level: float) -> Assessment:
    """Test ``pit`` (finite values, as many as ``bands.n``) for uniformity: the
    simultaneous band at ``verdict_level`` and the tail test at 1 - ``verdict_level``
    (the band drawn is at ``display_level``)."""
    pit = np.asarray(pit, dtype=float)
    if pit.size != bands.n:
        raise ValueError(f"{pit.size} PIT values, bands for {bands.n}")
    ecdf = compute_ecdf(pit, bands.eval_points)
    return Assessment(
        n=pit.size,
        max_deviation=float(np.max(np.abs(ecdf - bands.eval_points))),
        p_value=bands.p_value(pit),
        tail_p_value=tail_p_value(pit),
        pot_c_p_value=pot_c_p_value(pit),
        inside_display_band=bands.inside(pit, display_level),
        inside_verdict_band=bands.inside(pit, verdict_level),
        tails_ok=tail_p_value(pit) >= 1 - verdict_level)


def ecdf_difference(pit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(z, ECDF(z) - z) on [0, 1] for plotting: at every jump of the ECDF, so the
    steps are drawn exactly."""
    pit = np.sort(np.asarray(pit, dtype=float))
    n = pit.size
    z = np.concatenate([[0.0], np.repeat(pit, 2), [1.0]])
    heights = np.repeat(np.arange(n + 1) / n, 2)
    return z, heights - z
