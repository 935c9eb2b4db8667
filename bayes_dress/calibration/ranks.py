"""Where the true value falls in its posterior: one number in [0, 1] per quantity.

* **Exact engine**: the posterior CDF at the true value, F(x_true), computed, not
  sampled: continuous, no thinning, uniform on [0, 1] when the integrator is right.
* **NUTS**: the rank of the true value among posterior draws thinned to be nearly
  independent (Talts et al. 2018, section 5; Modrák et al. 2023). Each chain is
  thinned by the same stride s = ceil(S / ESS), S the draws of all chains and ESS the
  smaller of the quantity's bulk and tail effective sample sizes in this fit, which
  keeps about ESS draws (L). The rank r counts the kept draws below the true value
  (ties, which only a point mass has, broken at random); under calibration r is
  uniform on 0..L. Since L differs between fits, r is turned into a randomised PIT
  u = (r + V) / (L + 1), V ~ Uniform(0, 1), which is exactly Uniform(0, 1) whatever L
  (the randomised PIT of a discrete variable, as arviz-stats does for integer data), so
  that the ranks of every replication are tested together, with the same bands as the
  exact engine's. ``ranks.csv`` keeps r, L and s beside u. Randomisation draws from the
  replication's own stream, so it is reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from bayes_dress.posterior.base import Key, Posterior


@dataclass(frozen=True)
class Rank:
    """Where one true value falls in its posterior.

    Attributes
    ----------
    pit : float
        F(x_true) (exact), or the randomised normalised rank (draws).
    rank : int or None
        Kept draws below the true value (draws only).
    n_ranked : int or None
        Kept draws L (draws only).
    thin : int or None
        The stride of the thinning (draws only).
    """

    pit: float
    rank: int | None = None
    n_ranked: int | None = None
    thin: int | None = None


def thinning(n_draws: int, ess: float) -> int:
    """The stride that keeps about ``ess`` of ``n_draws`` draws (1 when ESS is not
    finite or not below the draws)."""
    if not math.isfinite(ess) or ess <= 0 or ess >= n_draws:
        return 1
    return max(1, math.ceil(n_draws / ess))


def draws_rank(draws: np.ndarray, truth: float, *, ess: float,
               rng: np.random.Generator) -> Rank:
    """The thinned, randomised rank of ``truth`` among ``draws`` (chain, draw)."""
    draws = np.asarray(draws, dtype=float)
    stride = thinning(draws.size, ess)
    kept = draws[:, ::stride].reshape(-1)
    below = int(np.sum(kept < truth))
    ties = int(np.sum(kept == truth))
    rank = below + (int(rng.integers(0, ties + 1)) if ties else 0)
    pit = (rank + rng.uniform()) / (kept.size + 1)
    return Rank(pit=float(pit), rank=rank, n_ranked=int(kept.size), thin=stride)


def ranks_of(posterior: Posterior, truth: Mapping[Key, float], keys: Sequence[Key], *,
             rng: np.random.Generator) -> dict[Key, Rank]:
    """The rank (draws) or CDF value (marginals) of every key's true value."""
    keys = [k for k in keys if posterior.has(k)]
    if posterior.joint_draws is None or not hasattr(posterior, "draws"):
        return {k: Rank(pit=float(np.clip(posterior.cdf(k, truth[k]), 0.0, 1.0)))
                for k in keys}
    convergence = posterior.convergence(keys)
    ess = np.fmin(np.asarray(convergence["ess_bulk"], dtype=float),
                  np.asarray(convergence["ess_tail"], dtype=float))
    return {k: draws_rank(posterior.draws(k), truth[k], ess=float(e), rng=rng)
            for k, e in zip(keys, ess, strict=True)}
