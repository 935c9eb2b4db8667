"""The importance-sampling engine: a reference posterior, with its own Monte Carlo error,
for the bivariate binomial-logit-normal model (``joint_logit_normal``), against which NUTS
fits are checked in standard-error units.

* :mod:`.engine`: the engine (what it supports, and its fit as a weighted posterior);
* :func:`fit_bivariate` -> :class:`BivariateISResult` (see :mod:`.bivariate`);
* :mod:`._agq2`: the per-study likelihood by adaptive quadrature (numba);
* :mod:`.psis`: Pareto-smoothed importance sampling and k-hat.

The statistics of a weighted sample are in :mod:`bayes_dress.posterior.weighted_stats`.
"""

from bayes_dress.engines.importance.bivariate import (
    PARAMETERS,
    BivariateISResult,
    fit_bivariate,
)
from bayes_dress.engines.importance.psis import KHAT_THRESHOLD, psis
from bayes_dress.posterior import weighted_stats as weighted
from bayes_dress.posterior.weighted_stats import Estimate

__all__ = ["KHAT_THRESHOLD", "PARAMETERS", "BivariateISResult", "Estimate",
           "fit_bivariate", "psis", "weighted"]
