"""Effective sample size, R-hat and Monte Carlo standard error for many quantities at once.

These are arviz-stats' estimators (``arviz_stats.base.array_stats``: ``ess`` with the
"bulk", "tail", "quantile" and "mean" methods, ``rhat`` with its default "rank" method,
``mcse`` with "mean" and "quantile"; absolute, not relative, ESS), reproduced on an
array of shape (chain, draw, k) for all k columns together: the rank normalisation
sorts every column in one call, the autocovariances are batched FFTs along the draw
axis, Geyer's truncation is array arithmetic, and the quantile MCSE is one SciPy call.
arviz-stats runs its per-column code in a Python loop over columns, and a caller that
wants the quantile ESS and MCSE, or bulk ESS and R-hat, pays for the shared part twice;
here :func:`mcse_quantile` takes the ESS and :func:`ess_bulk_and_rhat` ranks once.

The results match arviz-stats up to floating-point summation order (~1e-14
relative), corner cases included: NaN for a column holding a NaN, for fewer than 4
draws, and for R-hat with a single chain; ESS equal to the number of (split-chain)
draws and a NaN R-hat for a constant column.

Reference: Vehtari, Gelman, Simpson, Carpenter and Bürkner (2021), Rank-normalization,
folding, and localization: an improved R-hat for assessing convergence of MCMC,
Bayesian Analysis 16(2):667-718.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np
from scipy import fft, special, stats
from scipy.fftpack import next_fast_len

#: arviz-stats returns NaN for fewer draws than this (and for R-hat, fewer than 2 chains).
MIN_DRAWS = 4
#: Columns are processed in blocks of about this much memory (the zero-padded chains in
#: the ESS's FFT; one array of the ranking): fresh memory for all columns at once costs
#: more in page faults than the arithmetic; small blocks reuse the allocator's memory.
_BLOCK_BYTES = 2**20
_RANK_BLOCK_BYTES = 2**17
#: Blom's offset for turning ranks into normal scores, as arviz-stats uses.
_BLOM = 3 / 8
#: The normal's +-1 SD probabilities: arviz-stats' quantile MCSE is half the width of
#: this central interval of the quantile's sampling distribution (written as arviz
#: writes them, so that the Beta quantiles agree to the last digit).
_ONE_SD = np.array([0.1586553, 0.8413447])


def _quiet[F: Callable](function: F) -> F:
    """Run ``function`` without floating-point warnings: 0/0 and inf - inf are how
    constant and non-finite columns reach their arviz-stats answers (NaN, or the draw
    count), not accidents to report."""
    @functools.wraps(function)
    def quiet(*args, **kwargs):
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return function(*args, **kwargs)
    return quiet


def _by_column(draws: np.ndarray) -> np.ndarray:
    """(chain, draw, k) draws as a C-contiguous float (k, chain, draw) array, so that
    every reduction below runs along contiguous memory, as arviz-stats' do."""
    draws = np.asarray(draws, dtype=float)
    if draws.ndim != 3:
        raise ValueError(f"draws must have shape (chain, draw, k), not {draws.shape}")
    return np.ascontiguousarray(np.moveaxis(draws, -1, 0))


def _invalid(x: np.ndarray, min_chains: int) -> np.ndarray:
    """Columns arviz-stats answers with NaN: too few chains or draws, or any NaN."""
    _, chains, draws = x.shape
    if chains < min_chains or draws < MIN_DRAWS:
        return np.ones(x.shape[0], dtype=bool)
    return np.isnan(x).any(axis=(1, 2))


def _masked(values: np.ndarray, invalid: np.ndarray) -> np.ndarray:
    """``values`` (..., k) with NaN in the invalid columns."""
    values[..., invalid] = np.nan
    return values


def _split(x: np.ndarray) -> np.ndarray:
    """Each chain cut into its first and second half (first halves, then second halves,
    as arviz-stats stacks them); with an odd draw count the middle draw is dropped."""
    half = x.shape[2] // 2
    return np.concatenate([x[:, :, :half], x[:, :, x.shape[2] - half:]], axis=1)


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks (1-based) along the last axis of a 2-d array, ties sharing their average
    rank and NaN ranked NaN: ``scipy.stats.rankdata(method="average",
    nan_policy="omit")`` on each row.

    Ties matter: NUTS can return the same draw twice, and indicators are all ties.
    """
    order = np.argsort(x, axis=-1)  # NaN sorts last, so the other ranks omit it
    ordered = np.take_along_axis(x, order, axis=-1)
    starts = np.ones(x.shape, dtype=bool)  # a row always starts a run of equal values
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    first = np.flatnonzero(starts)  # runs of equal values, row after row
    length = np.diff(first, append=starts.size)
    average = first % x.shape[-1] + (length + 1) / 2  # of ranks first + 1 .. first + length
    ranks = np.empty(x.shape)
    np.put_along_axis(ranks, order, np.repeat(average, length).reshape(x.shape), axis=-1)
    ranks[np.isnan(x)] = np.nan
    return ranks


def _z_scale(x: np.ndarray) -> np.ndarray:
    """Rank-normalise each column over all its chains and draws (normal scores of the
    pooled ranks, Blom's offset), a block of columns at a time."""
    k, chains, draws = x.shape
    flat = x.reshape(k, chains * draws)
    block = max(1, _RANK_BLOCK_BYTES // (8 * flat.shape[1]))
    ranks = np.concatenate([_average_ranks(flat[i:i + block]) for i in range(0, k, block)])
    return special.ndtri((ranks - _BLOM) / (chains * draws - 2 * _BLOM + 1)).reshape(x.shape)


def _rhat(x: np.ndarray) -> np.ndarray:
    """Gelman-Rubin potential scale reduction of each column of (k, chain, draw)."""
    draws = x.shape[2]
    between = draws * np.var(x.mean(axis=2), axis=1, ddof=1)
    within = np.var(x, axis=2, ddof=1).mean(axis=1)
    return np.sqrt((between / within + draws - 1) / draws)


def _rank_rhat(split: np.ndarray, z: np.ndarray) -> np.ndarray:
    """arviz-stats' R-hat from split chains and their rank-normalised values: the larger
    of the bulk R-hat and the R-hat of the distances from the median (the tails)."""
    folded = np.abs(split - np.median(split, axis=(1, 2), keepdims=True))
    bulk, tail = _rhat(z), _rhat(_z_scale(folded))
    return np.where(tail > bulk, tail, bulk)  # Python's max(bulk, tail): NaN if bulk is


def _ess(x: np.ndarray) -> np.ndarray:
    """ESS of each column of (k, chain, draw), a block of columns at a time."""
    chains, draws = x.shape[1:]
    block = max(1, _BLOCK_BYTES // (8 * chains * next_fast_len(2 * draws)))
    return np.concatenate([_ess_block(x[i:i + block]) for i in range(0, len(x), block)])


def _ess_block(x: np.ndarray) -> np.ndarray:
    """ESS of each column of (k, chain, draw): arviz-stats' ``_ess`` (Geyer's initial
    positive and initial monotone sequence estimators, as in Vehtari et al. 2021)."""
    k, chains, draws = x.shape
    size = chains * draws
    # arviz-stats' shortcut: an (almost) constant column has as many effective draws as
    # draws; its autocorrelations would be 0/0.
    constant = np.ptp(x, axis=(1, 2)) < np.finfo(float).resolution
    # Autocovariances by FFT, the centred chains zero-padded to FFTPACK's fast length
    # as arviz-stats pads them.
    chain_mean = x.mean(axis=2)
    padded = np.zeros((k, chains, next_fast_len(2 * draws)))
    np.subtract(x, chain_mean[:, :, None], out=padded[:, :, :draws])
    parts = fft.rfft(padded, axis=2, overwrite_x=True).view(float)  # real, imag, real...
    np.square(parts, out=parts)
    power = parts[:, :, 0::2] + parts[:, :, 1::2]
    # Only the autocovariances averaged over chains are used; the transform is linear,
    # so average the power spectra and transform back once per column.
    acov = fft.irfft(power.mean(axis=1), n=padded.shape[2], axis=1)[:, :draws] / draws
    mean_var = acov[:, 0] * draws / (draws - 1.0)
    var_plus = mean_var * (draws - 1.0) / draws
    if chains > 1:
        var_plus = var_plus + np.var(chain_mean, axis=1, ddof=1)
    rho = 1.0 - (mean_var[:, None] - acov) / var_plus[:, None]  # (k, lag)
    rho[:, 0] = 1.0

    # Geyer's initial positive sequence: sums of autocorrelation pairs (lags 2j, 2j+1)
    # are kept up to the first that is not positive; arviz-stats' loop looks at pairs
    # j <= (draws - 3) // 2 only, and `last` is the last pair it looks at.
    n_pairs = max((draws - 3) // 2 + 1, 1)  # pair 0 always: 2 draws per split chain
    pairs = rho[:, : 2 * n_pairs].reshape(k, n_pairs, 2)
    pair_sum = pairs[:, :, 0] + pairs[:, :, 1]
    stop = ~(pair_sum > 0)  # NaN stops too
    last = np.where(stop.any(axis=1), stop.argmax(axis=1), n_pairs - 1)
    # Geyer's initial monotone sequence: a pair whose sum exceeds the smallest earlier
    # sum gets that sum, split evenly between its two lags.
    floor = np.minimum.accumulate(pair_sum, axis=1)
    rise = np.zeros_like(stop)
    rise[:, 1:] = pair_sum[:, 1:] > floor[:, :-1]
    pairs = np.where(rise[:, :, None], np.pad(floor, ((0, 0), (1, 0)))[:, :-1, None] / 2.0,
                     pairs)
    lags = pairs.reshape(k, 2 * n_pairs)
    kept = np.where(np.arange(2 * n_pairs) < 2 * last[:, None], lags, 0.0).sum(axis=1)
    # The last pair looked at contributes its even lag when that pair was kept (sum
    # >= 0) or the even lag itself is positive.
    rows = np.arange(k)
    even, last_sum = rho[rows, 2 * last], pair_sum[rows, last]
    tail = np.where((last_sum >= 0) | (even > 0), even, 0.0)
    tau = -1.0 + 2.0 * kept + tail
    tau_min = 1 / np.log10(size)
    tau = np.where(tau_min > tau, tau_min, tau)  # max(tau, tau_min); a NaN tau stays
    ess = size / tau
    ess[np.isnan(rho).any(axis=1)] = np.nan
    ess[constant] = size
    return ess


def ess_bulk(draws: np.ndarray) -> np.ndarray:
    """Bulk effective sample size: ESS of the rank-normalised split chains.

    Parameters
    ----------
    draws : numpy.ndarray
        Shape (chain, draw, k): k scalar quantities.

    Returns
    -------
    numpy.ndarray
        Shape (k,); as ``array_stats.ess(draws, chain_axis=0, draw_axis=1,
        method="bulk")``. Ties share their average rank, so a constant column gets the
        number of draws. For 0/1 indicators the rank scores are a shifted, scaled copy
        of the indicator, so :func:`ess_mean` gives the same value without sorting.
    """
    return ess_bulk_and_rhat(draws)[0]


@_quiet
def ess_quantile(draws: np.ndarray, prob: float | Sequence[float]) -> np.ndarray:
    """Effective sample size of quantiles: ESS of the indicator draw <= quantile.

    Parameters
    ----------
    draws : numpy.ndarray
        Shape (chain, draw, k).
    prob : float or sequence of float
        Quantile probabilities.

    Returns
    -------
    numpy.ndarray
        Shape (k,) for a single ``prob``, else (len(prob), k); row i as
        ``array_stats.ess(draws, chain_axis=0, draw_axis=1, method="quantile",
        prob=prob[i])``.
    """
    x = _by_column(draws)
    probs = np.asarray(prob, dtype=float)
    k = x.shape[0]
    invalid = _invalid(x, 1)
    if invalid.all():
        return np.full((*probs.shape, k), np.nan)
    # One quantile call and one ESS call for every (prob, column) pair.
    q = np.quantile(x.reshape(k, -1), probs.ravel(), axis=1)  # (prob, k)
    below = (x[None] <= q[:, :, None, None]).astype(float)
    ess = _ess(_split(below.reshape(-1, *x.shape[1:])))
    return _masked(ess.reshape(*probs.shape, k), invalid)


@_quiet
def ess_tail(draws: np.ndarray, prob: float | tuple[float, float] = (0.05, 0.95)
             ) -> np.ndarray:
    """Tail effective sample size: the smaller quantile ESS at two tail quantiles.

    Parameters
    ----------
    draws : numpy.ndarray
        Shape (chain, draw, k).
    prob : float or (float, float), default (0.05, 0.95)
        The two tail probabilities; a single p means (p, 1 - p), in increasing order.

    Returns
    -------
    numpy.ndarray
        Shape (k,); as ``array_stats.ess(draws, chain_axis=0, draw_axis=1,
        method="tail", prob=prob)``.
    """
    if np.ndim(prob) == 0:
        prob = sorted((prob, 1 - prob))
    low, high = ess_quantile(draws, prob)
    return np.where(high < low, high, low)  # Python's min(low, high), as arviz-stats


@_quiet
def ess_mean(draws: np.ndarray) -> np.ndarray:
    """Effective sample size for the mean: ESS of the split chains, not rank-normalised.

    Parameters
    ----------
    draws : numpy.ndarray
        Shape (chain, draw, k).

    Returns
    -------
    numpy.ndarray
        Shape (k,); as ``array_stats.ess(draws, chain_axis=0, draw_axis=1,
        method="mean")``.
    """
    x = _by_column(draws)
    invalid = _invalid(x, 1)
    if invalid.all():
        return np.full(x.shape[0], np.nan)
    return _masked(_ess(_split(x)), invalid)


def rhat(draws: np.ndarray) -> np.ndarray:
    """Rank-normalised split R-hat: the larger of the bulk and the folded (tail) R-hat.

    Parameters
    ----------
    draws : numpy.ndarray
        Shape (chain, draw, k).

    Returns
    -------
    numpy.ndarray
        Shape (k,); as ``array_stats.rhat(draws, chain_axis=0, draw_axis=1)``. NaN for a
        constant column (no variance within chains) and for a single chain.
    """
    return ess_bulk_and_rhat(draws)[1]


@_quiet
def ess_bulk_and_rhat(draws: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`ess_bulk` and :func:`rhat` together, rank-normalising the draws once.

    Parameters
    ----------
    draws : numpy.ndarray
        Shape (chain, draw, k).

    Returns
    -------
    ess_bulk, rhat : numpy.ndarray
        Each of shape (k,).
    """
    x = _by_column(draws)
    invalid = _invalid(x, 1)
    if invalid.all():
        return np.full(x.shape[0], np.nan), np.full(x.shape[0], np.nan)
    split = _split(x)
    z = _z_scale(split)
    return _masked(_ess(z), invalid), _masked(_rank_rhat(split, z), _invalid(x, 2))


@_quiet
def mcse_mean(draws: np.ndarray) -> np.ndarray:
    """Monte Carlo standard error of the mean: SD / sqrt(ESS for the mean).

    Parameters
    ----------
    draws : numpy.ndarray
        Shape (chain, draw, k).

    Returns
    -------
    numpy.ndarray
        Shape (k,); as ``array_stats.mcse(draws, chain_axis=0, draw_axis=1,
        method="mean")``.
    """
    x = _by_column(draws)
    invalid = _invalid(x, 1)
    if invalid.all():
        return np.full(x.shape[0], np.nan)
    sd = np.std(x.reshape(x.shape[0], -1), axis=1, ddof=1)
    return _masked(sd / np.sqrt(_ess(_split(x))), invalid)


@_quiet
def mcse_quantile(draws: np.ndarray, prob: float | Sequence[float], *,
                  ess: np.ndarray | None = None) -> np.ndarray:
    """Monte Carlo standard error of quantiles, in the units of the draws.

    The quantile's position on the probability scale is taken as Beta(ESS p + 1,
    ESS (1 - p) + 1) distributed; the draws at that Beta's +-1 SD quantiles are two
    standard errors apart.

    Parameters
    ----------
    draws : numpy.ndarray
        Shape (chain, draw, k).
    prob : float or sequence of float
        Quantile probabilities.
    ess : numpy.ndarray, optional
        ``ess_quantile(draws, prob)``, if already computed (it is most of the cost).

    Returns
    -------
    numpy.ndarray
        Shape (k,) for a single ``prob``, else (len(prob), k); row i as
        ``array_stats.mcse(draws, chain_axis=0, draw_axis=1, method="quantile",
        prob=prob[i])``.
    """
    x = _by_column(draws)
    k = x.shape[0]
    probs = np.asarray(prob, dtype=float)
    invalid = _invalid(x, 1)
    if invalid.all():
        return np.full((*probs.shape, k), np.nan)
    if ess is None:
        ess = ess_quantile(draws, probs)
    ess = np.asarray(ess, dtype=float).reshape(probs.size, k)
    p = probs.reshape(-1, 1)
    lower, upper = stats.beta.ppf(_ONE_SD[:, None, None], ess * p + 1, ess * (1 - p) + 1)
    ordered = np.sort(x.reshape(k, -1), axis=1)
    size = ordered.shape[1]
    # Positions in the sorted draws as arviz-stats rounds them: outward, kept inside the
    # sample (fmax / fmin, like its nanmax / nanmin, ignore a NaN position).
    first = np.floor(np.fmax(lower * size - 1, 0)).astype(int)
    second = np.ceil(np.fmin(upper * size - 1, size - 1)).astype(int)
    rows = np.arange(k)
    mcse = (ordered[rows, second] - ordered[rows, first]) / 2
    return _masked(mcse.reshape(*probs.shape, k), invalid)
