"""One MAP prior made usable: its mixture approximation, the robustified prior, every ESS
and the verdict on how much information it carries."""

from __future__ import annotations

from dataclasses import dataclass

from bayes_dress.design.ess import EssSummary, Verdict, ess_all, ess_verdict
from bayes_dress.design.map_prior import MapPrior, summary_of
from bayes_dress.design.mixfit import AutoMixFit, automixfit, kolmogorov_distance
from bayes_dress.design.mixture import BetaMixture, robustify
from bayes_dress.design.plan import RobustSpec


@dataclass
class MapDesign:
    """The MAP prior of one outcome, its mixture, robust version, ESS and verdict.

    Attributes
    ----------
    map : MapPrior
    fit : AutoMixFit
        Every mixture fitted, best (lowest AIC) first.
    mixture : BetaMixture
        The chosen mixture (the MAP as RBesT would write it).
    robust : BetaMixture
        The trial's prior: the mixture robustified (the mixture itself at weight 0).
    robust_spec : RobustSpec
    ess : dict of str to EssSummary
        ``"exact"`` (where there is an exact MAP), ``"mixture"`` and ``"robust"``.
    verdict : Verdict
        Of the exact MAP where there is one, else of the mixture; never an ESS alone.
    ks : float
        Largest CDF difference between the mixture and what it was fitted to.
    """

    map: MapPrior
    fit: AutoMixFit
    mixture: BetaMixture
    robust: BetaMixture
    robust_spec: RobustSpec
    ess: dict[str, EssSummary]
    verdict: Verdict
    ks: float

    @property
    def outcome(self) -> str:
        return self.map.outcome

    @property
    def exact(self):
        return self.map.exact

    def summaries(self) -> dict[str, dict[str, float]]:
        """Mean, SD and quantiles of each representation of the prior."""
        out = {}
        if self.map.exact is not None:
            out["exact"] = summary_of(self.map.exact)
        if self.map.draws is not None:
            from bayes_dress.design.map_prior import summary_of_draws

            out["draws"] = summary_of_draws(self.map.draws)
        out["mixture"] = summary_of(self.mixture)
        out["robust"] = summary_of(self.robust)
        return out


def robust_prior(mixture: BetaMixture, spec: RobustSpec) -> BetaMixture:
    """``mixture`` robustified as ``spec`` says (itself when the weight is 0)."""
    if spec.weight == 0:
        return mixture
    return robustify(mixture, spec.weight, mean=spec.mean, n=spec.n)


def map_design(mp: MapPrior, *, components=(1, 2, 3, 4), aic_penalty: float = 6.0,
               robust: RobustSpec | None = None, n_planned: int | None = None) -> MapDesign:
    """Mixture, robust prior, ESS and verdict of a MAP prior (``robust``: default
    :class:`~bayes_dress.design.plan.RobustSpec`, weight 0.2 on Beta(1, 1))."""
    robust = robust if robust is not None else RobustSpec()
    target = mp.target
    fit = automixfit(target, n_components=tuple(components), k=aic_penalty)
    mixture = fit.mixture
    rob = robust_prior(mixture, robust)
    ess = {}
    if mp.exact is not None:
        ess["exact"] = ess_all(mp.exact)
    ess["mixture"] = ess_all(mixture)
    ess["robust"] = ess_all(rob)
    basis = mp.exact if mp.exact is not None else mixture
    summary = ess["exact"] if mp.exact is not None else ess["mixture"]
    verdict = ess_verdict(basis, summary=summary, n_planned=n_planned)
    ks = kolmogorov_distance(mixture, target)
    return MapDesign(mp, fit, mixture, rob, robust, ess, verdict, float(ks))


