"""How much does replacing the exact MAP prior by its Beta-mixture approximation change
what a design concludes?

Compared: the largest CDF difference (Kolmogorov distance), the ESS by each method, and,
for a single-arm trial and rule, the decision boundary and the operating characteristic
over a grid of true rates, each computed with the exact MAP as the prior (posterior
p(theta) Binomial(y | n, theta) / norm, integrated by quadrature on the tabulated density)
and with the mixture (conjugate update).

The approximation is flagged as mattering when the OC differs by more than ``OC_TOL``
(0.01) at any rate of the grid, or the CDFs differ by more than ``CDF_TOL`` (0.01)
anywhere. ESS differences are reported, not flagged: ESS methods disagree among
themselves by more than any approximation error.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bayes_dress.design.decision import Rule
from bayes_dress.design.ess import EssSummary, ess_all
from bayes_dress.design.mixfit import kolmogorov_distance
from bayes_dress.design.mixture import BetaMixture
from bayes_dress.design.oc import boundary1s, success_probability
from bayes_dress.design.tabulated import TabulatedDensity
from bayes_dress.errors import SpecError

#: Largest OC difference (absolute probability) that does not matter.
OC_TOL = 0.01
#: Largest CDF difference that does not matter.
CDF_TOL = 0.01


@dataclass
class ApproximationCheck:
    """Errors of a mixture approximation of an exact MAP prior.

    Attributes
    ----------
    cdf_max_diff : float
        Largest |F_mixture - F_exact|.
    ess_exact, ess_mixture : EssSummary
    ess_diff : dict
        Mixture minus exact ESS per method (NaN where either is undefined).
    oc_max_diff : float or None
        Largest |OC_mixture - OC_exact| over ``theta`` (None without a trial).
    theta_at_max : float or None
    boundary_exact, boundary_mixture : str or None
        The two decision boundaries in words.
    flags : list of str
        Why the approximation matters (empty when it does not).
    """

    cdf_max_diff: float
    ess_exact: EssSummary
    ess_mixture: EssSummary
    ess_diff: dict
    oc_max_diff: float | None = None
    theta_at_max: float | None = None
    boundary_exact: str | None = None
    boundary_mixture: str | None = None
    theta: np.ndarray | None = field(default=None, repr=False)
    oc_exact: np.ndarray | None = field(default=None, repr=False)
    oc_mixture: np.ndarray | None = field(default=None, repr=False)
    flags: list[str] = field(default_factory=list)

    @property
    def matters(self) -> bool:
        return bool(self.flags)


def check_approximation(exact: TabulatedDensity, mixture: BetaMixture, *,
                        n: int | None = None, rule: Rule | None = None,
                        theta=None) -> ApproximationCheck:
    """Compare an exact MAP prior with its mixture approximation.

    Parameters
    ----------
    exact : TabulatedDensity
    mixture : BetaMixture
    n, rule : optional
        A single-arm trial to compare boundaries and OCs for (both or neither).
    theta : array_like, optional
        True rates for the OC (default 1,001 points on [0, 1]).
    """
    if not isinstance(exact, TabulatedDensity) or not isinstance(mixture, BetaMixture):
        raise SpecError("compare a TabulatedDensity with a BetaMixture")
    if (n is None) != (rule is None):
        raise SpecError("give both n and rule (or neither)")
    cdf = kolmogorov_distance(mixture, exact)
    ee, em = ess_all(exact), ess_all(mixture)
    diff = {m: em[m].value - ee[m].value for m in ee.results}
    out = ApproximationCheck(cdf, ee, em, diff)
    if cdf > CDF_TOL:
        out.flags.append(f"CDFs differ by up to {cdf:.3g} (> {CDF_TOL:g})")
    if rule is not None:
        grid = np.linspace(0.0, 1.0, 1001) if theta is None else np.asarray(theta, float)
        be = boundary1s(exact, n, rule)
        bm = boundary1s(mixture, n, rule)
        oe = success_probability(be.success, grid)
        om = success_probability(bm.success, grid)
        d = np.abs(om - oe)
        i = int(np.argmax(d))
        out.oc_max_diff = float(d[i])
        out.theta_at_max = float(grid[i])
        out.boundary_exact = be.describe()
        out.boundary_mixture = bm.describe()
        out.theta, out.oc_exact, out.oc_mixture = grid, oe, om
        if out.oc_max_diff > OC_TOL:
            out.flags.append(f"operating characteristics differ by up to "
                             f"{out.oc_max_diff:.3g} at theta = {out.theta_at_max:.3g} "
                             f"(> {OC_TOL:g}); exact: {be.describe()}; mixture: "
                             f"{bm.describe()}")
    return out
