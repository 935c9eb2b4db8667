"""The interface every posterior offers, whichever engine computed it.

A posterior is addressed by keys ``(quantity, outcome, study)``: ``("mean_rate",
"success", "")`` is a population quantity of one outcome, ``("theta", "success",
"Joly2012")`` a study's rate, ``("rho", "", "")`` a quantity across outcomes. Summaries,
the headline, plots, power-scaling, the cross-check between engines and the sweep ask
these questions and nothing else, so none of them needs to know which engine answered:

* statistics, vectorised over keys: :meth:`~Posterior.mean`, :meth:`~Posterior.sd`,
  :meth:`~Posterior.quantile`, :meth:`~Posterior.hdi`, :meth:`~Posterior.cdf`,
  :meth:`~Posterior.prob_above` (with its Monte Carlo error);
* how exact each number is: :meth:`~Posterior.mean_error` and
  :meth:`~Posterior.cdf_error` (Monte Carlo error of a sampler, numerical tolerance of an
  integrator), :meth:`~Posterior.quantile_prob_error` and :meth:`~Posterior.convergence`
  (ESS, R-hat: undefined, NaN, where there are no chains);
* for plots: :meth:`~Posterior.density`, :meth:`~Posterior.sample` (independent draws of
  one marginal), :meth:`~Posterior.expectation`; and :attr:`~Posterior.joint_draws`,
  the joint draws with their chains where the engine has them (else None).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import numpy as np

#: (quantity, outcome, study): outcome "" for a quantity across outcomes, study "" for a
#: population quantity.
Key = tuple[str, str, str]


def key_label(key: Key, *, with_outcome: bool = False) -> str:
    """``theta[Joly2012]``, or ``success: theta[Joly2012]`` with the outcome."""
    name, outcome, study = key
    text = name + (f"[{study}]" if study else "")
    return f"{outcome}: {text}" if with_outcome and outcome else text


class Posterior(ABC):
    """A posterior distribution of an analysis's reported quantities."""

    #: What the posterior is made of ("draws", "weighted draws" or "marginals").
    kind: str

    @property
    @abstractmethod
    def keys(self) -> tuple[Key, ...]:
        """Every reported scalar quantity, in reading order."""

    def has(self, key: Key) -> bool:
        return key in self._index

    @property
    def _index(self) -> dict[Key, int]:
        index = self.__dict__.get("_key_index")
        if index is None:
            index = {k: i for i, k in enumerate(self.keys)}
            self.__dict__["_key_index"] = index
        return index

    def keys_of(self, *, outcome: str | None = None, name: str | None = None,
                study: bool | None = None) -> list[Key]:
        """Keys filtered by outcome, quantity name, and whether they are study-level."""
        return [k for k in self.keys
                if (outcome is None or k[1] == outcome) and (name is None or k[0] == name)
                and (study is None or bool(k[2]) == study)]

    # -- statistics ----------------------------------------------------------------------
    @abstractmethod
    def mean(self, keys: Sequence[Key]) -> np.ndarray:
        """Posterior means (inf where a mean does not exist)."""

    @abstractmethod
    def sd(self, keys: Sequence[Key]) -> np.ndarray:
        """Posterior standard deviations."""

    @abstractmethod
    def quantile(self, keys: Sequence[Key], probs: Sequence[float]) -> np.ndarray:
        """Quantiles, shape (len(probs), len(keys))."""

    @abstractmethod
    def hdi(self, keys: Sequence[Key], prob: float = 0.95) -> np.ndarray:
        """Highest-density intervals, shape (len(keys), 2)."""

    @abstractmethod
    def cdf(self, key: Key, x) -> np.ndarray:
        """P(quantity <= x)."""

    @abstractmethod
    def prob_above(self, keys: Sequence[Key], thresholds: Sequence[float]
                   ) -> tuple[np.ndarray, np.ndarray]:
        """P(quantity > threshold) and its Monte Carlo standard error, one per (key,
        threshold) pair (the two sequences have the same length)."""

    def interval_mass(self, keys: Sequence[Key], lower: Sequence[float],
                      upper: Sequence[float]) -> np.ndarray:
        """P(lower <= quantity <= upper), one per key."""
        return np.array([float(self.cdf(k, hi) - self.cdf(k, np.nextafter(lo, -np.inf)))
                         for k, lo, hi in zip(keys, lower, upper, strict=True)])

    # -- how exact the numbers are -------------------------------------------------------
    @abstractmethod
    def mean_error(self, keys: Sequence[Key]) -> np.ndarray:
        """Standard error of each mean from the engine itself (Monte Carlo error, or
        numerical tolerance)."""

    @abstractmethod
    def quantile_prob_error(self, keys: Sequence[Key], probs: Sequence[float]) -> np.ndarray:
        """Standard error of each estimated quantile on the probability scale: how far
        the true CDF at the estimate may be from its level, shape (len(probs),
        len(keys))."""

    @abstractmethod
    def cdf_error(self, key: Key, x) -> np.ndarray:
        """Standard error of :meth:`cdf` at ``x``."""

    @abstractmethod
    def convergence(self, keys: Sequence[Key]) -> dict[str, np.ndarray]:
        """``mcse_mean``, ``ess_bulk``, ``ess_tail`` and ``r_hat`` per key (NaN where the
        engine has no chains to judge)."""

    # -- for plots -----------------------------------------------------------------------
    @abstractmethod
    def sample(self, key: Key, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` independent draws of one marginal (not joint with other keys)."""

    @abstractmethod
    def expectation(self, key: Key, function: Callable[[np.ndarray], np.ndarray]
                    ) -> np.ndarray:
        """E[function(quantity)]: ``function`` maps a vector of values to an array whose
        last axis runs over them; the mean over that axis is returned."""

    @abstractmethod
    def density(self, key: Key, *, bounds: tuple[float, float],
                window: tuple[float, float]) -> tuple[np.ndarray, np.ndarray] | None:
        """The marginal density on ``window`` (respecting ``bounds``), or None for a
        point mass."""

    @property
    def joint_draws(self):
        """Joint draws as an xarray Dataset with chain and draw dimensions, or None when
        the engine has only marginals."""
        return None

    @abstractmethod
    def to_groups(self) -> dict:
        """The netCDF groups (xarray Datasets by group name) that hold this posterior in
        a saved fit; :func:`bayes_dress.posterior.io.from_groups` reads them back."""
