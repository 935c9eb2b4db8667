"""What each plot shows, as numbers: one function per plot, no drawing.

Every function reads a saved run (:mod:`bayes_dress.rundir`) through its tables and the
:class:`~bayes_dress.posterior.base.Posterior` interface, and returns plain dicts and
arrays, so tests can check the content of a figure (intervals, observed rates,
probabilities) without looking at pixels, and no function depends on which engine made
the posterior. Intervals come from ``summary.csv``, so a plot shows the numbers the
tables print.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special, stats

from bayes_dress.rundir.read import SavedAnalysis, SavedRun

CI_LEVEL = 0.95
#: Fewest draws per chain a rank plot keeps after thinning, however low the ESS.
MIN_RANK_DRAWS = 20
#: Points in a benefit-risk scatter, and the seed of their pairing (fixed, so a redraw
#: gives the same figure).
SCATTER_POINTS = 4000
PAIRING_SEED = 0
#: Up to this many studies a forest plot labels each study in data order; beyond, it is
#: a caterpillar plot: studies sorted by their model rate, labelled sparsely.
FOREST_LABELLED_STUDIES = 40
#: Up to this many studies the posterior predictive check has a panel per study;
#: beyond, it summarises the per-study predictive p-values.
PPC_PANELS = 12
#: Study-level parameters shown one panel each (independent model) at most.
STUDY_PANELS = 6
#: Study-level latents shown in trace and rank plots at most (besides every
#: hyperparameter).
TRACE_STUDIES = 4
SUPPORT_BOUNDS = {"unit": (0.0, 1.0), "positive": (0.0, np.inf), "real": (-np.inf, np.inf),
                  "correlation": (-1.0, 1.0)}
_FALLBACK_SUPPORT = {"theta": "unit", "theta_new": "unit", "mean_rate": "unit", "m": "unit",
                     "phi": "positive", "tau": "positive", "kappa": "positive",
                     "sd_rates": "positive", "rho": "correlation"}


def clopper_pearson(events: np.ndarray, totals: np.ndarray, level: float = CI_LEVEL
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Exact (Clopper-Pearson) binomial confidence interval for each observed rate."""
    events, totals = np.asarray(events), np.asarray(totals)
    alpha = 1.0 - level
    with np.errstate(invalid="ignore"):  # the Beta quantile at a zero shape is masked out
        lower = np.where(events > 0,
                         stats.beta.ppf(alpha / 2, events, totals - events + 1), 0.0)
        upper = np.where(events < totals,
                         stats.beta.ppf(1 - alpha / 2, events + 1, totals - events), 1.0)
    return lower, upper


def study_label(study: str, events: int, total: int) -> str:
    """``"Joly2012 (1/6)"``."""
    return f"{study} ({events}/{total})"


def support_of(analysis: SavedAnalysis, name: str) -> tuple[float, float]:
    """Where a quantity's density lives, as its model declares."""
    model = analysis.model
    support = None
    if model is not None:
        try:
            support = model.quantity(name).support
        except KeyError:
            support = None
    return SUPPORT_BOUNDS[support or _FALLBACK_SUPPORT.get(name, "real")]


def _summary_row(run: SavedRun, outcome: str, name: str, study: str = ""):
    s = run.summary
    rows = s[(s["outcome"] == outcome) & (s["parameter"] == name) & (s["study"] == study)]
    return None if rows.empty else rows.iloc[0]


def forest_data(run: SavedRun, outcome: str) -> dict:
    """The rows of one outcome's forest plot, top to bottom, and its layout.

    Per study an ``observed`` row (events / total with the exact 95% CI) and a ``study``
    row (the model's study rate, posterior median and 95% interval, as in summary.csv);
    then the population mean rate (``mean_rate``) and the new-study rate
    (``theta_new``, the predictive interval). With more than
    :data:`FOREST_LABELLED_STUDIES` studies the plot is a caterpillar: studies sorted
    by model rate (``sorted``), one line each, labelled sparsely.
    """
    analysis = run.analysis_of(outcome)
    block = analysis.data.block(outcome)
    lower, upper = clopper_pearson(block.events, block.totals)
    studies = []
    for i, study in enumerate(block.studies):
        row = _summary_row(run, outcome, "theta", study)
        model = ((row["median"], row["q2.5"], row["q97.5"]) if row is not None
                 else (np.nan, np.nan, np.nan))
        studies.append({"study": study, "label": study_label(study, int(block.events[i]),
                                                              int(block.totals[i])),
                        "observed": block.events[i] / block.totals[i],
                        "observed_lower": float(lower[i]), "observed_upper": float(upper[i]),
                        "estimate": float(model[0]), "lower": float(model[1]),
                        "upper": float(model[2])})
    caterpillar = len(studies) > FOREST_LABELLED_STUDIES
    if caterpillar:
        studies.sort(key=lambda s: (s["estimate"], s["observed"]))
    population = []
    for name, label in (("mean_rate", "Population mean"), ("theta_new", "New study")):
        row = _summary_row(run, outcome, name)
        if row is not None:
            population.append({"kind": name, "label": label, "estimate": float(row["median"]),
                               "lower": float(row["q2.5"]), "upper": float(row["q97.5"])})
    return {"outcome": outcome, "studies": studies, "population": population,
            "caterpillar": caterpillar}


def panel_keys(analysis: SavedAnalysis) -> list[tuple[str, str, str]]:
    """(parameter, outcome, study) of each prior-versus-posterior panel, in order: the
    model's hyperparameters (each outcome's, then those across outcomes), a few of its
    study-level ones (the independent model's rates), then each new-study rate."""
    posterior = analysis.posterior
    model = analysis.model
    names = (list(model.parameters) if model is not None else ["mean_rate"])
    keys = []
    for outcome in [*analysis.outcomes, ""]:
        for name in names:
            found = [k for k in posterior.keys_of(outcome=outcome, name=name)]
            keys += found[:STUDY_PANELS] if any(k[2] for k in found) else found
    keys += [k for o in analysis.outcomes for k in posterior.keys_of(outcome=o,
                                                                     name="theta_new")]
    return list(dict.fromkeys(keys))


def _window(posterior_values: np.ndarray, prior_values: np.ndarray | None,
            bounds: tuple[float, float]) -> tuple[float, float]:
    if bounds == (0.0, 1.0) or bounds == (-1.0, 1.0):
        return bounds  # rates and correlations: the whole range, comparable panels
    sources = [posterior_values]
    if prior_values is not None:
        sources.append(prior_values)
    lo = max(bounds[0], min(float(s[0]) for s in sources))
    hi = min(bounds[1], max(float(s[1]) for s in sources))
    if bounds[0] == 0.0:
        lo = 0.0
    return lo, hi if hi > lo else lo + 1.0


def prior_posterior_data(analysis: SavedAnalysis) -> list[dict]:
    """Per panel: the posterior and prior densities of one quantity.

    Each panel: key, parameter, outcome, study, prior_spec (its prior as written, or the
    implied prior for derived quantities), bounds, window, posterior (grid, density),
    prior (grid, density) or None, posterior_interval and prior_interval (2.5/50/97.5%
    quantiles), and note: why there is no prior curve, if there is none.
    """
    posterior, prior = analysis.posterior, analysis.prior
    specs = analysis.priors
    improper = [f"{k} ~ {v}" for k, v in specs.items() if "BDA3" in v]
    panels = []
    for key in panel_keys(analysis):
        bounds = support_of(analysis, key[0])
        post_q = posterior.quantile([key], [0.005, 0.025, 0.5, 0.975, 0.995])[:, 0]
        has_prior = prior is not None and prior.has(key)
        prior_q = (prior.quantile([key], [0.01, 0.025, 0.5, 0.975, 0.99])[:, 0]
                   if has_prior else None)
        window = _window(post_q[[0, 4]], None if prior_q is None else prior_q[[0, 4]],
                         bounds)
        note = None
        if not has_prior:
            note = ("no prior draws: improper prior " + ", ".join(improper) if improper
                    else "no prior draws in this run")
        panels.append({
            "key": key, "parameter": key[0], "outcome": key[1], "study": key[2],
            "prior_spec": specs.get(key[0], "implied by the model's priors"),
            "bounds": bounds, "window": window,
            "posterior": posterior.density(key, bounds=bounds, window=window),
            "prior": prior.density(key, bounds=bounds, window=window) if has_prior else None,
            "posterior_interval": tuple(float(v) for v in post_q[1:4]),
            "prior_interval": None if prior_q is None else tuple(float(v)
                                                                 for v in prior_q[1:4]),
            "note": note,
        })
    return panels


def _binomial_pmf(k: np.ndarray, n: int, theta: np.ndarray) -> np.ndarray:
    """Binomial(n, theta) probabilities of counts ``k`` (rows) at rates ``theta``."""
    theta = np.clip(theta, 1e-300, 1 - 1e-16)
    log = (special.gammaln(n + 1) - special.gammaln(k + 1) - special.gammaln(n - k + 1))
    return np.exp(log[:, None] + k[:, None] * np.log(theta)[None, :]
                  + (n - k)[:, None] * np.log1p(-theta)[None, :])


def ppc_data(run: SavedRun, outcome: str) -> dict:
    """Posterior predictive check of each study's count.

    The predictive distribution of a replication of study i (same number of patients)
    is the Binomial(n_i, theta_i) probabilities averaged over the posterior of its rate
    (exact for draws and for exact marginals alike). Per study: the pmf over 0..n (only
    when there are at most :data:`PPC_PANELS` studies), p_le = P(y_rep <= y), p_ge =
    P(y_rep >= y) and the mid-p predictive p-value P(y_rep < y) + P(y_rep = y) / 2.
    """
    analysis = run.analysis_of(outcome)
    posterior = analysis.posterior
    block = analysis.data.block(outcome)
    panels = len(block.studies) <= PPC_PANELS
    rows = []
    for study, y, n in zip(block.studies, block.events, block.totals, strict=True):
        y, n = int(y), int(n)
        key = ("theta", outcome, study)
        if not posterior.has(key):
            continue
        if panels:
            counts = np.arange(n + 1)
            pmf = posterior.expectation(key, lambda th, c=counts, n=n: _binomial_pmf(c, n,
                                                                                     th))
            below, at = float(pmf[:y].sum()), float(pmf[y])
        else:
            counts, pmf = None, None
            edges = np.array([y - 1, y])

            def tail(th, edges=edges, n=n):
                return np.stack([special.bdtr(edges[0], n, th) if edges[0] >= 0
                                 else np.zeros_like(th), special.bdtr(edges[1], n, th)])

            below, upto = posterior.expectation(key, tail)
            below, at = float(below), float(upto - below)
        rows.append({"study": study, "label": study_label(study, y, n), "observed": y,
                     "total": n, "counts": counts, "pmf": pmf,
                     "p_le": min(1.0, below + at), "p_ge": min(1.0, 1.0 - below),
                     "mid_p": below + 0.5 * at})
    return {"outcome": outcome, "panels": panels, "rows": rows}


def joint_new_study(run: SavedRun, benefit: str, risk: str) -> dict:
    """New-study rates of two outcomes, jointly where one analysis models both (its joint
    draws), else paired as independent (each from its own posterior)."""
    a, b = run.analysis_of(benefit), run.analysis_of(risk)
    x_key, y_key = ("theta_new", benefit, ""), ("theta_new", risk, "")
    rng = np.random.default_rng(PAIRING_SEED)
    if a is b and a.posterior.joint_draws is not None:
        joint = a.posterior
        x = joint.draws(x_key).reshape(-1)
        y = joint.draws(y_key).reshape(-1)
        pick = rng.permutation(x.size)[:SCATTER_POINTS]
        return {"x": x, "y": y, "shown": pick, "joint": True}
    x = a.posterior.sample(x_key, SCATTER_POINTS, rng)
    y = b.posterior.sample(y_key, SCATTER_POINTS, rng)
    return {"x": x, "y": y, "shown": np.arange(x.size), "joint": False}


def benefit_risk_data(run: SavedRun, *, benefit: str = "success", risk: str = "severe_ae",
                      benefit_threshold: float = 0.5, risk_threshold: float = 0.2) -> dict:
    """Joint new-study rates of benefit and risk and the probability of each quadrant.

    With a joint model the quadrant probabilities are those of its joint draws; with
    separate fits they are products of the marginal probabilities (what independence
    says), so no pairing noise enters them.
    """
    pairs = joint_new_study(run, benefit, risk)
    x, y = pairs["x"], pairs["y"]
    # The marginal probabilities from each whole posterior (no pairing noise).
    p_benefit = float(run.analysis_of(benefit).posterior.prob_above(
        [("theta_new", benefit, "")], [benefit_threshold])[0][0])
    p_safe = 1.0 - float(run.analysis_of(risk).posterior.prob_above(
        [("theta_new", risk, "")], [risk_threshold])[0][0])
    quadrants = []
    for above in (True, False):
        for below in (True, False):
            if pairs["joint"]:
                p = float(np.mean(((x > benefit_threshold) == above)
                                  & ((y < risk_threshold) == below)))
            else:
                p = (p_benefit if above else 1 - p_benefit) * (p_safe if below
                                                               else 1 - p_safe)
            label = (f"success {'>' if above else '≤'} {benefit_threshold:g}, "
                     f"SAE {'<' if below else '≥'} {risk_threshold:g}")
            quadrants.append({"benefit_above": above, "risk_below": below,
                              "probability": p, "label": label})
    shown = pairs["shown"]
    contours = None
    if pairs["joint"]:
        gx, gy, joint, independent, levels, independent_levels = joint_contours(x, y)
        contours = (gx, gy, joint, independent, levels, independent_levels)
    return {"x": x[shown], "y": y[shown], "benefit_threshold": benefit_threshold,
            "risk_threshold": risk_threshold, "quadrants": quadrants,
            "joint": pairs["joint"], "independent_product": p_benefit * p_safe,
            "contours": contours}


#: Grid of the joint density contours of the benefit-risk plot, per axis.
CONTOUR_GRID = 80
#: Contours drawn: the smallest regions holding these shares of the joint density.
CONTOUR_MASS = (0.5, 0.9)


def _hpd_levels(density: np.ndarray, masses=CONTOUR_MASS) -> list[float]:
    """Density levels whose upper sets hold ``masses`` of the total (increasing)."""
    flat = np.sort(density.reshape(-1))[::-1]
    cumulative = np.cumsum(flat) / flat.sum()
    return sorted(float(flat[min(np.searchsorted(cumulative, m), flat.size - 1)])
                  for m in masses)


def joint_contours(x: np.ndarray, y: np.ndarray):
    """The joint density of (x, y) draws on [0, 1]^2 and what independence gives (the
    product of the two marginal densities), Gaussian kernel estimates on the logit scale
    (so no mass leaks past 0 or 1), with the levels of their 50% and 90%
    highest-density regions."""
    rng = np.random.default_rng(PAIRING_SEED)
    pick = rng.permutation(x.size)[:SCATTER_POINTS]
    u = special.logit(np.clip(np.column_stack([x[pick], y[pick]]), 1e-6, 1 - 1e-6))
    edges = np.linspace(0.0, 1.0, CONTOUR_GRID + 1)
    centres = 0.5 * (edges[1:] + edges[:-1])
    gx, gy = np.meshgrid(centres, centres, indexing="ij")
    jacobian = 1.0 / (gx * (1 - gx) * gy * (1 - gy))
    grid = special.logit(np.vstack([gx.reshape(-1), gy.reshape(-1)]))
    joint = stats.gaussian_kde(u.T)(grid).reshape(gx.shape) * jacobian
    fx = stats.gaussian_kde(u[:, 0])(special.logit(centres)) / (centres * (1 - centres))
    fy = stats.gaussian_kde(u[:, 1])(special.logit(centres)) / (centres * (1 - centres))
    independent = np.outer(fx, fy)
    return (centres, centres, joint.T, independent.T, _hpd_levels(joint),
            _hpd_levels(independent))


def acceptability_data(run: SavedRun) -> dict | None:
    """P(net clinical benefit > 0) against the harm weight w, per level, with the curve
    independence gives, from the run's benefit_risk.csv (None without one)."""
    table = run.benefit_risk
    if table is None or table.empty:
        return None
    ncb = table[table["kind"] == "net_benefit"]
    curves = []
    for level, group in ncb.groupby("level", sort=False):
        group = group.sort_values("weight")
        curves.append({"level": level, "weight": group["weight"].to_numpy(float),
                       "probability": group["probability"].to_numpy(float),
                       "mcse": group["mcse"].to_numpy(float),
                       "independent": group["independent"].to_numpy(float)})
    correlated = bool(table["correlation_modelled"].map(
        lambda v: str(v).strip().lower() in ("true", "1")).any())
    return {"curves": curves, "correlated": correlated}


def sampled_draws(analysis: SavedAnalysis):
    """The parameters the sampler drew (hyperparameters, and a few study-level ones),
    with their chains; None for a posterior without chains."""
    joint = analysis.posterior.joint_draws
    if joint is None:
        return None
    model = analysis.model
    draws = model.sampled_draws(joint) if model is not None else joint[["mean_rate"]]
    if "study" in draws.dims and draws.sizes["study"] > TRACE_STUDIES:
        draws = draws.isel(study=slice(0, TRACE_STUDIES))
    return draws


def ess_thinning(draws) -> int:
    """The thinning factor that leaves about the effective sample size of draws.

    ``ceil(chains * draws / ess_bulk)`` for the worst-mixing quantity plotted, never
    below 1, and never so large that fewer than :data:`MIN_RANK_DRAWS` draws per chain
    remain. Quantities without a finite ESS (constant draws) are ignored.
    """
    from bayes_dress.posterior import mcmc_stats

    n_draws = draws.sizes["draw"]
    total = draws.sizes["chain"] * n_draws
    columns = [np.asarray(draws[v].transpose("chain", "draw", ...).values).reshape(
        draws.sizes["chain"], n_draws, -1) for v in draws.data_vars]
    stacked = np.concatenate(columns, axis=-1) if columns else np.empty((1, n_draws, 0))
    with np.errstate(divide="ignore", invalid="ignore"):
        ess = mcmc_stats.ess_bulk(stacked)
    values = ess[np.isfinite(ess) & (ess > 0)]
    factor = max([1, *(math.ceil(total / float(e)) for e in values)])
    return max(1, min(factor, n_draws // MIN_RANK_DRAWS))


def thin_to_ess(draws):
    """Every :func:`ess_thinning`-th draw of each chain, and that factor."""
    factor = ess_thinning(draws)
    return draws.isel(draw=slice(None, None, factor)), factor
