"""The MAP prior of a fitted analysis: the predictive distribution of a new study's rate
(``theta_new``), as the exact engine tabulates it or as NUTS draws it.

Where it comes from:

* an exact fit (a :class:`~bayes_dress.posterior.marginals.MarginalsPosterior`): its
  marginal of ``theta_new``, a CDF tabulated on a logit grid to ~1e-4, becomes a
  :class:`~bayes_dress.design.tabulated.TabulatedDensity` (closed forms are tabulated
  from their SciPy distribution, log density included);
* a sampler fit (joint draws): the draws of ``theta_new``, pooled over chains, with
  their effective sample size; and, where the exact engine supports the model and
  priors, an exact refit of the same data and priors, so that the two can be compared
  (:func:`compare_draws_exact`) and the design can use the exact one.

:func:`map_prior` accepts a saved analysis (:class:`bayes_dress.rundir.read.SavedAnalysis`)
or an in-memory fit (:class:`bayes_dress.fitting.fit.AnalysisFit`); nothing here
branches on engine names, only on whether the posterior has joint draws.

Agreement of draws with the exact MAP (:class:`MapAgreement`): with N_eff the draws'
effective sample size (the smaller of bulk and tail ESS),

* Kolmogorov distance D between the draws' ECDF and the exact CDF, against the
  0.1 % critical value 1.949 / sqrt(N_eff) of the Kolmogorov distribution;
* the mean's difference in Monte Carlo standard errors, (mean_draws - mean_exact) /
  (sd_exact / sqrt(N_eff));
* for each reported quantile level p, F_exact(q_draws) - p in units of its Monte Carlo
  standard error sqrt(p (1 - p) / N_eff).

They agree when D is below its critical value and every z is below 4 in size (so that
checking several statistics at once rarely flags a correct fit).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import special

from bayes_dress.design.tabulated import TabulatedDensity
from bayes_dress.errors import SpecError

#: The quantity whose posterior is the MAP prior.
QUANTITY = "theta_new"
#: Quantile levels reported for every representation of the MAP.
PROBS = (0.025, 0.25, 0.5, 0.75, 0.975)
#: Logit grid on which a closed-form MAP is tabulated.
CLOSED_FORM_ETA = np.linspace(-30.0, 30.0, 2401)
#: Kolmogorov distribution's 0.999 quantile: D sqrt(N) above it is a 0.1 % event.
KS_CRITICAL_999 = 1.949
#: Largest |z| of a Monte Carlo comparison that still counts as agreement.
Z_LIMIT = 4.0
#: Settings of an exact refit: prior draws are not needed, keep them few.
REFIT_DRAWS = 200


@dataclass
class MapAgreement:
    """How NUTS draws of the MAP compare with the exact MAP (see the module notes).

    Attributes
    ----------
    n_draws, ess : float
        Number of draws and their effective sample size.
    ks, ks_critical : float
        Kolmogorov distance and its 0.1 % critical value for ``ess`` draws.
    rows : list of dict
        One per statistic: ``statistic``, ``draws``, ``exact``, ``difference``,
        ``mcse`` (Monte Carlo standard error of the draws' value) and ``z``.
    agree : bool
    """

    n_draws: int
    ess: float
    ks: float
    ks_critical: float
    rows: list[dict]
    agree: bool

    def describe(self) -> str:
        worst = max((abs(r["z"]) for r in self.rows if np.isfinite(r["z"])), default=0.0)
        verdict = ("agree within Monte Carlo error" if self.agree else
                   "differ by more than Monte Carlo error")
        return (f"NUTS draws ({self.n_draws:,}, effective sample size {self.ess:,.0f}) and "
                f"the exact MAP {verdict}: Kolmogorov distance {self.ks:.3g} (0.1 % critical "
                f"value {self.ks_critical:.3g}), largest |z| {worst:.2f} over the mean and "
                f"quantiles (limit {Z_LIMIT:g})")


@dataclass
class MapPrior:
    """The MAP prior of one outcome, in every form the fit offers.

    Attributes
    ----------
    outcome : str
    source : str
        ``"exact"`` or ``"draws"``: the form the design uses.
    exact : TabulatedDensity or None
        The exact MAP (the run's marginal, or an exact refit of a sampler run).
    exact_origin : str or None
        ``"run"`` (the run's own exact marginals) or ``"refit"``.
    draws : ndarray or None
        NUTS draws of theta_new, chains pooled.
    ess : float or None
        Their effective sample size.
    agreement : MapAgreement or None
        Draws versus exact, where both exist.
    model, engine : str
        The analysis's model and the engine of its fit.
    priors : dict of str to str
    notes : list of str
        What was done and why (an exact refit, why there is none, ...).
    """

    outcome: str
    source: str
    exact: TabulatedDensity | None
    exact_origin: str | None
    draws: np.ndarray | None
    ess: float | None
    agreement: MapAgreement | None
    model: str
    engine: str
    priors: dict[str, str]
    notes: list[str] = field(default_factory=list)

    @property
    def target(self):
        """What the mixture is fitted to: the exact MAP or the draws."""
        return self.exact if self.source == "exact" else self.draws

    def summary(self) -> dict[str, float]:
        """Mean, SD and quantiles (:data:`PROBS`) of the form the design uses."""
        if self.source == "exact":
            return summary_of(self.exact)
        return summary_of_draws(self.draws)


def summary_of(dist, probs=PROBS) -> dict[str, float]:
    """Mean, SD and quantiles of a TabulatedDensity or BetaMixture."""
    out = {"mean": float(dist.mean()), "sd": float(dist.sd())}
    for p, q in zip(probs, np.atleast_1d(dist.quantile(np.asarray(probs))), strict=True):
        out[quantile_name(p)] = float(q)
    return out


def summary_of_draws(draws: np.ndarray, probs=PROBS) -> dict[str, float]:
    out = {"mean": float(np.mean(draws)), "sd": float(np.std(draws, ddof=1))}
    for p, q in zip(probs, np.quantile(draws, probs), strict=True):
        out[quantile_name(p)] = float(q)
    return out


def quantile_name(p: float) -> str:
    """``q2.5``, ``q50``, ``q97.5`` (the run tables' column names)."""
    return f"q{100 * p:g}"


# ---------------------------------------------------------------------------- tabulation
def tabulated_map(marginal, *, name: str = "exact MAP") -> TabulatedDensity:
    """A :class:`TabulatedDensity` from the exact engine's marginal of theta_new.

    A closed-form marginal (a SciPy distribution) is tabulated on a logit grid with its
    log density; a tabulated one keeps its points and CDF (its density is then taken
    from the CDF table). A point mass is refused: it is no prior for a design.
    """
    if float(marginal.sd) == 0.0:
        raise SpecError("the MAP prior is a point mass (no between-study variation in "
                        "this model): it cannot be a prior for a new trial")
    dist = marginal.dist
    if dist is not None and hasattr(dist, "logpdf"):
        x = special.expit(CLOSED_FORM_ETA)
        with np.errstate(divide="ignore"):
            logpdf = dist.logpdf(x)
        return TabulatedDensity(x, dist.cdf(x), logpdf=logpdf, name=name)
    return TabulatedDensity(np.asarray(marginal.x, dtype=float),
                            np.asarray(marginal.cdf, dtype=float), name=name)


def _key(outcome: str) -> tuple[str, str, str]:
    return (QUANTITY, outcome, "")


def _exact_from_posterior(posterior, outcome: str) -> TabulatedDensity | None:
    marginals = getattr(posterior, "marginals", None)
    if marginals is None or _key(outcome) not in marginals:
        return None
    return tabulated_map(marginals[_key(outcome)])


def _draws_from_posterior(posterior, outcome: str) -> tuple[np.ndarray, float] | None:
    if posterior.joint_draws is None or not posterior.has(_key(outcome)):
        return None
    key = _key(outcome)
    draws = np.asarray(posterior.draws(key), dtype=float)
    conv = posterior.convergence([key])
    ess = float(np.nanmin([conv["ess_bulk"][0], conv["ess_tail"][0]]))
    if not np.isfinite(ess) or ess <= 0:
        ess = float(draws.size)
    return draws.reshape(-1), min(ess, float(draws.size))


# ---------------------------------------------------------------------------- exact refit
def exact_support(model, priors) -> str | None:
    """None when the exact engine can fit ``model`` under ``priors``, else why not."""
    from bayes_dress.engines import get_engine

    if model is None:
        return "the model is not known to this version of bayes-dress"
    if model.n_outcomes != 1:
        return (f"model '{model.name}' analyses {model.n_outcomes} outcomes together; the "
                "design uses single-outcome MAP priors")
    return get_engine("exact").supports(model, priors)


def exact_refit(model, data, priors, *, seed: int, refine: bool = True
                ) -> TabulatedDensity:
    """The exact MAP of ``data`` under ``model`` and ``priors`` (Prior objects), by the
    exact engine in this process. ``refine`` measures (and removes) the grid error as
    ``bayes-dress fit --engine exact`` does; a sweep scenario skips it."""
    from bayes_dress.engines.base import FitOptions
    from bayes_dress.fitting.fit import fit_analysis
    from bayes_dress.models.analysis import Analysis
    from bayes_dress.spec.config import SamplerSettings

    analysis = Analysis(model, data, priors)
    settings = SamplerSettings(draws=REFIT_DRAWS, chains=1, seed=int(seed))
    fit = fit_analysis(analysis, settings=settings, thresholds=(0.5,), engine="exact",
                       options=FitOptions(refine=refine))
    exact = _exact_from_posterior(fit.posterior, data.outcomes[0])
    if exact is None:  # pragma: no cover - every single-outcome model reports theta_new
        raise SpecError(f"the exact refit of model '{model.name}' has no {QUANTITY}")
    return exact


# ---------------------------------------------------------------------------- agreement
def compare_draws_exact(draws: np.ndarray, exact: TabulatedDensity, *,
                        ess: float | None = None, probs=PROBS) -> MapAgreement:
    """Compare NUTS draws of the MAP with the exact MAP (see the module notes)."""
    x = np.sort(np.asarray(draws, dtype=float).ravel())
    n = x.size
    if n < 2:
        raise SpecError("need at least two draws to compare with the exact MAP")
    ess = float(n if ess is None else min(max(ess, 2.0), n))
    f = np.asarray(exact.cdf(x), dtype=float)
    upper = np.arange(1, n + 1) / n
    ks = float(max(np.max(np.abs(f - upper)), np.max(np.abs(f - upper + 1.0 / n))))
    critical = KS_CRITICAL_999 / np.sqrt(ess)
    rows = []
    sd = exact.sd()
    mean_d, mean_e = float(x.mean()), exact.mean()
    mcse = sd / np.sqrt(ess)
    rows.append({"statistic": "mean", "draws": mean_d, "exact": mean_e,
                 "difference": mean_d - mean_e, "mcse": mcse,
                 "z": (mean_d - mean_e) / mcse if mcse > 0 else np.nan})
    sd_d = float(np.std(x, ddof=1))
    theta, w = exact.quadrature()
    fourth = float(np.dot(w, (theta - mean_e) ** 4) / w.sum())
    sd_mcse = np.sqrt(max(fourth - sd**4, 0.0) / ess) / (2 * sd) if sd > 0 else np.nan
    rows.append({"statistic": "sd", "draws": sd_d, "exact": sd,
                 "difference": sd_d - sd, "mcse": sd_mcse,
                 "z": (sd_d - sd) / sd_mcse if sd_mcse and sd_mcse > 0 else np.nan})
    qd = np.quantile(x, probs)
    qe = np.atleast_1d(exact.quantile(np.asarray(probs)))
    for p, a, b in zip(probs, qd, qe, strict=True):
        # On the probability scale: how far the exact CDF at the draws' quantile is from p.
        se = np.sqrt(p * (1 - p) / ess)
        dp = float(exact.cdf(a)) - p
        dens = float(exact.pdf(b))
        rows.append({"statistic": quantile_name(p), "draws": float(a), "exact": float(b),
                     "difference": float(a - b),
                     "mcse": se / dens if dens > 0 else np.nan, "z": dp / se})
    zs = [abs(r["z"]) for r in rows if np.isfinite(r["z"])]
    agree = bool(ks <= critical and all(z <= Z_LIMIT for z in zs))
    return MapAgreement(n, ess, ks, float(critical), rows, agree)


# ---------------------------------------------------------------------------- entry point
def _parts(analysis):
    """(posterior, model, data, priors as text, priors as Prior or None, engine, seed)
    of a SavedAnalysis or an AnalysisFit."""
    inner = getattr(analysis, "analysis", None)
    if inner is not None:  # an AnalysisFit
        priors = dict(inner.priors)
        return (analysis.posterior, inner.model, inner.data,
                {k: str(p) for k, p in priors.items()}, priors, analysis.engine, None)
    run = getattr(analysis, "run", None)
    seed = (run.manifest.get("seed") if run is not None else None)
    return (analysis.posterior, analysis.model, analysis.data, dict(analysis.priors), None,
            analysis.engine, seed)


def map_prior(analysis, outcome: str | None = None, *, source: str = "auto",
              seed: int | None = None, refit: bool = True) -> MapPrior:
    """The MAP prior of ``outcome`` from a fitted analysis.

    Parameters
    ----------
    analysis : SavedAnalysis or AnalysisFit
        Any single-outcome model whose posterior reports ``theta_new``.
    outcome : str, optional
        Default: the analysis's only outcome.
    source : {"auto", "exact", "draws"}
        Which form the design uses (see :mod:`bayes_dress.design.plan`).
    seed : int, optional
        Seed of an exact refit (prior draws only); default the run's.
    refit : bool
        Refit a sampler run with the exact engine (for the comparison, and for
        ``source="exact"``/``"auto"``) where the engine supports the model.

    Raises
    ------
    SpecError
        The analysis has no theta_new for the outcome, or the asked source is not
        available (the message says why).
    """
    from bayes_dress.spec.config import DEFAULT_SEED

    posterior, model, data, priors_text, priors, engine, run_seed = _parts(analysis)
    outcomes = tuple(data.outcomes)
    if outcome is None:
        if len(outcomes) != 1:
            raise SpecError(f"the analysis has outcomes {', '.join(outcomes)}: name one")
        outcome = outcomes[0]
    if not posterior.has(_key(outcome)):
        raise SpecError(f"the analysis of '{outcome}' has no {QUANTITY} (the rate in a new "
                        "study), so it gives no MAP prior")
    notes: list[str] = []
    exact = _exact_from_posterior(posterior, outcome)
    origin = "run" if exact is not None else None
    drawn = _draws_from_posterior(posterior, outcome)
    draws, ess = drawn if drawn is not None else (None, None)
    if exact is None and refit and (source in ("auto", "exact") or draws is not None):
        if priors is None and model is not None:
            from bayes_dress.spec.models import resolve_priors

            priors = resolve_priors(model.spec, priors_text)
        reason = exact_support(model, priors) if priors is not None else "no priors"
        if reason is None and len(outcomes) == 1:
            exact = exact_refit(model, data, priors,
                                seed=seed if seed is not None else (run_seed or DEFAULT_SEED))
            origin = "refit"
            notes.append("exact MAP: the run's data and priors refitted with the exact "
                         "engine (numerical integration, no Monte Carlo error)")
        else:
            why = reason or "a multi-outcome analysis"
            notes.append(f"no exact MAP: the exact engine cannot fit this analysis ({why})")
    if source == "auto":
        source = "exact" if exact is not None else "draws"
    if source == "exact" and exact is None:
        raise SpecError("map.source = \"exact\": " + (notes[-1] if notes else
                        "this fit has no exact MAP"))
    if source == "draws" and draws is None:
        raise SpecError("map.source = \"draws\": this fit has no draws of theta_new (an "
                        "exact-engine run): use \"exact\" or \"auto\"")
    if source not in ("exact", "draws"):
        raise SpecError(f"unknown MAP source '{source}'; valid: 'auto', 'exact' or 'draws'")
    agreement = None
    if draws is not None and exact is not None:
        agreement = compare_draws_exact(draws, exact, ess=ess)
    return MapPrior(outcome=outcome, source=source, exact=exact, exact_origin=origin,
                    draws=draws, ess=ess, agreement=agreement,
                    model=getattr(model, "name", "") or "", engine=engine,
                    priors=dict(priors_text), notes=notes)
