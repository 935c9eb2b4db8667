"""What each plot shows, as numbers: one function per plot, no drawing.

Every function takes a fit's DataTree (as saved in a run directory) and returns plain
dicts and arrays, so tests can check the content of a figure (intervals, observed
rates, probabilities) without looking at pixels.
"""

from __future__ import annotations

import math

import arviz_stats as azs
import numpy as np
import xarray as xr
from scipy import stats

from bayes_dress.errors import BayesDressError, SpecError
from bayes_dress.models import STUDY_DIM, Model, get_model
from bayes_dress.priors import parse_prior
from bayes_dress.summaries import UNREPORTED

#: Quantities that are rates: their densities live on [0, 1].
RATES = frozenset({"m", "theta", "theta_new", "mean_rate"})
#: Quantities that are positive: densities live on [0, inf).
POSITIVE = frozenset({"phi", "tau", "kappa", "sd_rates"})
CI_LEVEL = 0.95
#: Fewest draws per chain a rank plot keeps after thinning, however low the ESS.
MIN_RANK_DRAWS = 20
#: Points in the benefit-risk scatter, and the seed of their pairing (fixed, so a redraw
#: gives the same figure).
SCATTER_POINTS = 4000
PAIRING_SEED = 0


def model_of(tree: xr.DataTree) -> Model | None:
    """The model a fit was saved with, or None when this version does not know it (the
    plots then fall back on the population quantities every fit has)."""
    try:
        return get_model(str(tree.attrs.get("model")))
    except SpecError:
        return None


def clopper_pearson(events: np.ndarray, totals: np.ndarray, level: float = CI_LEVEL
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Exact (Clopper-Pearson) binomial confidence interval for each observed rate.

    Parameters
    ----------
    events, totals : array of int
    level : float
        Coverage, 0.95 by default.

    Returns
    -------
    lower, upper : ndarray
    """
    events, totals = np.asarray(events), np.asarray(totals)
    alpha = 1.0 - level
    with np.errstate(invalid="ignore"):  # the Beta quantile at a zero shape is masked out
        lower = np.where(events > 0,
                         stats.beta.ppf(alpha / 2, events, totals - events + 1), 0.0)
        upper = np.where(events < totals,
                         stats.beta.ppf(1 - alpha / 2, events + 1, totals - events), 1.0)
    return lower, upper


def interval(values: np.ndarray) -> tuple[float, float, float]:
    """(2.5%, 50%, 97.5%) quantiles of all draws, as in ``summary.csv``."""
    lo, mid, hi = np.quantile(np.asarray(values).reshape(-1), [0.025, 0.5, 0.975])
    return float(lo), float(mid), float(hi)


def _counts(tree: xr.DataTree) -> tuple[list[str], np.ndarray, np.ndarray]:
    observed = tree["observed_data"].to_dataset()["y"]
    studies = [str(s) for s in observed[STUDY_DIM].values]
    totals = tree["constant_data"].to_dataset()["n"].values
    return studies, observed.values.astype(int), totals.astype(int)


def study_label(study: str, events: int, total: int) -> str:
    """``"Joly2012 (1/6)"``."""
    return f"{study} ({events}/{total})"


def forest_data(tree: xr.DataTree) -> list[dict]:
    """The rows of a forest plot, top to bottom.

    Per study an ``observed`` row (events / total with the exact 95% CI) and a ``study``
    row (the model's study rate, posterior median and 95% interval); then the population
    mean rate (``mean_rate``) and the new-study rate (``theta_new``, the predictive
    interval). Each row: label, kind, study (or None), estimate, lower, upper.
    """
    posterior = tree["posterior"].to_dataset()
    studies, observed, totals = _counts(tree)
    lower, upper = clopper_pearson(observed, totals)
    rows = []
    for i, study in enumerate(studies):
        rows.append({"label": study_label(study, observed[i], totals[i]), "kind": "observed",
                     "study": study, "estimate": observed[i] / totals[i],
                     "lower": float(lower[i]), "upper": float(upper[i])})
        lo, mid, hi = interval(posterior["theta"].sel({STUDY_DIM: study}).values)
        rows.append({"label": f"{study}, model", "kind": "study", "study": study,
                     "estimate": mid, "lower": lo, "upper": hi})
    for name, label in (("mean_rate", "Population mean"), ("theta_new", "New study")):
        lo, mid, hi = interval(posterior[name].values)
        rows.append({"label": label, "kind": name, "study": None, "estimate": mid,
                     "lower": lo, "upper": hi})
    return rows


def prior_specs(tree: xr.DataTree) -> dict[str, str]:
    """``{"phi": "HalfNormal(sigma=0.5)", ...}`` from the fit's ``priors`` attribute."""
    specs = {}
    for part in str(tree.attrs.get("priors", "")).split(";"):
        name, sep, dist = part.partition("~")
        if sep:
            specs[name.strip()] = dist.strip()
    return specs


def _proper(spec: str) -> bool:
    try:
        return parse_prior(spec).proper
    except BayesDressError:  # a prior this version cannot parse: not known to be improper
        return True


def support(name: str) -> tuple[float, float]:
    """Where a quantity's density lives."""
    if name in RATES:
        return 0.0, 1.0
    if name in POSITIVE:
        return 0.0, np.inf
    return -np.inf, np.inf


def bounded_density(values: np.ndarray, *, bounds: tuple[float, float],
                    window: tuple[float, float], grid_len: int = 256
                    ) -> tuple[np.ndarray, np.ndarray] | None:
    """A kernel density that respects a quantity's bounds, on a display window.

    The KDE is arviz-stats' (binned Gaussian with reflection at the edges of its range),
    so at a true bound (a rate at 0 or 1, a scale at 0) the density is reflected instead
    of leaking past it. Where the window cuts a tail that goes on, the KDE range is
    extended by a quarter of the window, so its reflection falls outside what is shown.
    Densities are scaled by the fraction of draws in that range, so they stay densities
    of the whole distribution.

    Returns
    -------
    (grid, density) or None
        None when the draws are (nearly) constant: no density to draw.
    """
    values = np.asarray(values, dtype=float).reshape(-1)
    values = values[np.isfinite(values)]
    lo, hi = window
    pad = 0.25 * (hi - lo)
    kde_lo = lo if lo <= bounds[0] else lo - pad
    kde_hi = hi if hi >= bounds[1] else hi + pad
    kept = values[(values >= kde_lo) & (values <= kde_hi)]
    if kept.size < 2 or np.ptp(kept) <= 1e-12 * max(1.0, hi - lo):
        return None
    # The default bandwidth's Sheather-Jones root search divides by zero on its way for
    # flat samples (a uniform prior); Silverman's rule is the fallback if it fails.
    for bw in ("experimental", "silverman"):
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            grid, density, _ = azs.kde(kept, custom_lims=(kde_lo, kde_hi), bw=bw,
                                       bound_correction=True, grid_len=grid_len)
        if np.isfinite(density).all():
            break
    density = density * kept.size / values.size
    shown = (grid >= lo) & (grid <= hi)
    return grid[shown], density[shown]


def _panel_values(ds: xr.Dataset | None, name: str, study: str | None) -> np.ndarray | None:
    if ds is None or name not in ds:
        return None
    da = ds[name]
    if STUDY_DIM in da.dims:
        # A common-effect model repeats its one rate per study: any study shows it.
        da = da.sel({STUDY_DIM: study}) if study is not None else da.isel({STUDY_DIM: 0})
    return da.values.reshape(-1)


def panel_parameters(tree: xr.DataTree) -> list[tuple[str, str | None]]:
    """(parameter, study or None) of each prior-versus-posterior panel, in order.

    The model's sampled hyperparameters (beta-binomial: m, phi; logit-normal: mu, tau;
    common-effect: theta; independent: each study's theta), then the new-study rate.
    """
    model = model_of(tree)
    if model is None:
        return [("mean_rate", None), ("theta_new", None)]
    studies = [str(s) for s in tree["observed_data"].to_dataset()[STUDY_DIM].values]
    panels = []
    for name in model.sampled:
        if name in UNREPORTED:  # the logit-normal's z: N(0, 1) a priori by construction
            continue
        if name in model.study_level:
            panels += [(name, s) for s in studies]
        else:
            panels.append((name, None))
    return [*panels, ("theta_new", None)]


def prior_posterior_data(tree: xr.DataTree) -> list[dict]:
    """Per panel: the posterior and prior densities of one parameter.

    Each panel: parameter, study, prior_spec (its prior as written, or the implied prior
    for derived quantities), bounds, window, posterior (grid, density), prior (grid,
    density) or None, posterior_interval and prior_interval (2.5/50/97.5% quantiles),
    and note: why there is no prior curve, if there is none.
    """
    posterior = tree["posterior"].to_dataset()
    prior = tree["prior"].to_dataset() if "prior" in tree.children else None
    specs = prior_specs(tree)
    improper = [f"{k} ~ {v}" for k, v in specs.items() if not _proper(v)]
    panels = []
    for name, study in panel_parameters(tree):
        post = _panel_values(posterior, name, study)
        pri = _panel_values(prior, name, study)
        bounds = support(name)
        sources = [np.quantile(post, [0.005, 0.995])]
        if pri is not None:
            sources.append(np.quantile(pri, [0.01, 0.99]))
        window = (max(bounds[0], min(s[0] for s in sources)),
                  min(bounds[1], max(s[1] for s in sources)))
        if bounds == (0.0, 1.0):
            window = bounds  # rates: always the whole unit interval, comparable panels
        elif bounds[0] == 0.0:
            window = (0.0, window[1])
        note = None
        if pri is None:
            note = ("no prior draws: improper prior " + ", ".join(improper) if improper
                    else "no prior draws in this run")
        panels.append({
            "parameter": name, "study": study,
            "prior_spec": specs.get(name, "implied by the model's priors"),
            "bounds": bounds, "window": window,
            "posterior": bounded_density(post, bounds=bounds, window=window),
            "prior": None if pri is None else bounded_density(pri, bounds=bounds,
                                                               window=window),
            "posterior_interval": interval(post),
            "prior_interval": None if pri is None else interval(pri),
            "note": note,
        })
    return panels


def ppc_data(tree: xr.DataTree) -> list[dict]:
    """Posterior predictive check of each study's count.

    With a ``posterior_predictive`` group (NUTS runs) the distribution of replicated
    counts is the frequency of each count among the draws ``y_rep``. Without one (exact
    runs) it is computed: the binomial(n, theta) probabilities averaged over the exact
    marginal posterior of the study's rate, which is all a one-study check needs.

    Returns
    -------
    list of dict
        Per study: study, label, observed, total, counts (0..n), pmf, p_le =
        P(y_rep <= y), p_ge = P(y_rep >= y), source.
    """
    studies, observed, totals = _counts(tree)
    if "posterior_predictive" in tree.children:
        reps = tree["posterior_predictive"].to_dataset()["y"]
        source = "replicated draws"
    else:
        theta = tree["posterior"].to_dataset()["theta"]
        source = "binomial averaged over the exact marginal posterior of the study rate"
    rows = []
    for i, study in enumerate(studies):
        counts = np.arange(totals[i] + 1)
        if source == "replicated draws":
            draws = reps.sel({STUDY_DIM: study}).values.reshape(-1).astype(int)
            pmf = np.bincount(draws, minlength=totals[i] + 1) / draws.size
        else:
            rates = theta.sel({STUDY_DIM: study}).values.reshape(-1)
            pmf = stats.binom.pmf(counts[:, None], totals[i], rates[None, :]).mean(axis=1)
        y = int(observed[i])
        rows.append({"study": study, "label": study_label(study, y, totals[i]),
                     "observed": y, "total": int(totals[i]), "counts": counts, "pmf": pmf,
                     "p_le": float(pmf[: y + 1].sum()), "p_ge": float(pmf[y:].sum()),
                     "source": source})
    return rows


def benefit_risk_data(benefit: xr.DataTree, risk: xr.DataTree, *,
                      benefit_threshold: float = 0.5, risk_threshold: float = 0.2) -> dict:
    """Joint new-study rates of benefit and risk, paired as independent.

    The two outcomes are fitted separately, so their joint posterior is taken to be the
    product of the marginals. Quadrant probabilities are therefore products of marginal
    probabilities (no pairing noise); the points drawn are :data:`SCATTER_POINTS` of
    each marginal's draws, subsampled independently with :data:`PAIRING_SEED` (a random
    pairing, which also undoes the sorted order of an exact run's quantile draws).

    Parameters
    ----------
    benefit, risk : DataTree
        Fits of the success outcome and of the severe-adverse-event outcome.
    benefit_threshold, risk_threshold : float
        The favourable quadrant is benefit > benefit_threshold and risk < risk_threshold.

    Returns
    -------
    dict
        x, y (paired draws), benefit_threshold, risk_threshold, and quadrants: a list
        of dicts (benefit_above, risk_below, probability, label) whose probabilities sum
        to 1.
    """
    x = benefit["posterior"].to_dataset()["theta_new"].values.reshape(-1)
    y = risk["posterior"].to_dataset()["theta_new"].values.reshape(-1)
    p_benefit = float(np.mean(x > benefit_threshold))
    p_safe = float(np.mean(y < risk_threshold))
    quadrants = []
    for above in (True, False):
        for below in (True, False):
            p = (p_benefit if above else 1 - p_benefit) * (p_safe if below else 1 - p_safe)
            label = (f"success {'>' if above else '≤'} {benefit_threshold:g}, "
                     f"SAE {'<' if below else '≥'} {risk_threshold:g}")
            quadrants.append({"benefit_above": above, "risk_below": below,
                              "probability": p, "label": label})
    rng = np.random.default_rng(PAIRING_SEED)
    n = min(x.size, y.size, SCATTER_POINTS)
    return {"x": rng.choice(x, n, replace=False), "y": rng.choice(y, n, replace=False),
            "benefit_threshold": benefit_threshold, "risk_threshold": risk_threshold,
            "quadrants": quadrants}


def sampled_draws(tree: xr.DataTree) -> xr.Dataset:
    """The parameters NUTS sampled (not the derived ones), with their chains.

    A common-effect model's one rate is stored once per study; it is shown once.
    """
    posterior = tree["posterior"].to_dataset()
    model = model_of(tree)
    return posterior if model is None else model.sampled_draws(posterior)


def ess_thinning(draws: xr.Dataset) -> int:
    """The thinning factor that leaves about the effective sample size of draws.

    ``ceil(chains * draws / ess_bulk)`` for the worst-mixing quantity plotted (the lowest
    bulk ESS over every variable and coordinate), so the kept draws are close to
    independent. Never below 1, and never so large that fewer than
    :data:`MIN_RANK_DRAWS` draws per chain remain. Quantities without a finite ESS
    (constant draws) are ignored.
    """
    n_draws = draws.sizes["draw"]
    total = draws.sizes["chain"] * n_draws
    with np.errstate(divide="ignore", invalid="ignore"):
        ess = azs.ess(draws, method="bulk")
    values = np.concatenate([np.asarray(ess[v]).reshape(-1) for v in ess.data_vars]
                            or [np.array([])])
    values = values[np.isfinite(values) & (values > 0)]
    factor = max([1, *(math.ceil(total / float(e)) for e in values)])
    return max(1, min(factor, n_draws // MIN_RANK_DRAWS))


def thin_to_ess(draws: xr.Dataset) -> tuple[xr.Dataset, int]:
    """Every :func:`ess_thinning`-th draw of each chain, and that factor.

    A rank plot's uniformity test and envelope assume independent draws; autocorrelated
    NUTS draws make it flag chains that mix well. Thinned to about the ESS, they do not.
    """
    factor = ess_thinning(draws)
    return draws.isel(draw=slice(None, None, factor)), factor
