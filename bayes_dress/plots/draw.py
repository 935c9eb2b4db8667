"""What each of a run's plots is, and drawing them.

Each plot of a saved run (read by :func:`bayes_dress.rundir.load_run`) is a job of
:func:`plot_jobs`: a file name and a function that draws it from the run's files. Which
process draws which job, and the index of what was drawn, are in
:mod:`bayes_dress.plots.make`; what each plot shows, as numbers, is in
:mod:`bayes_dress.plots.data`; the drawing is in :mod:`bayes_dress.plots.figures`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from bayes_dress.labels import outcome_label
from bayes_dress.plots import data, figures
from bayes_dress.rundir import layout
from bayes_dress.rundir.atomic import sha256
from bayes_dress.rundir.read import SavedAnalysis, SavedRun

#: The outcomes of the benefit-risk plot: benefit on x, harm on y.
BENEFIT_OUTCOME, RISK_OUTCOME = "success", "severe_ae"
PNG_DPI = 120


def _model_note(analysis: SavedAnalysis) -> str:
    priors = "; ".join(f"{k} ~ {v}" for k, v in analysis.priors.items())
    return f"Model {analysis.model_name}; priors {priors}."


def _engine_note(analysis: SavedAnalysis) -> str:
    if analysis.posterior.joint_draws is not None:
        return ""
    return (" Exact engine: summaries of exact marginal posteriors (numerical "
            "integration, no sampling); with no chains this run has no trace or rank "
            "plots.")


def _forest(run: SavedRun, outcome: str):
    analysis = run.analysis_of(outcome)
    forest = data.forest_data(run, outcome)
    label = outcome_label(outcome)
    if forest["caterpillar"]:
        what = (f"Each of the {len(forest['studies'])} studies on one line, sorted by the "
                "model's estimate of its rate (filled circle: posterior median; line: 95% "
                "interval), with its observed rate (open square); below, the population "
                "mean rate (filled diamond) and the rate to expect in a new study (open "
                "diamond, dashed: 95% predictive interval). ")
    else:
        what = ("Each study's observed rate (events/total) with its exact Clopper-Pearson "
                "95% CI (open squares), the model's estimate of that study's rate, pulled "
                "towards the other studies (filled circles: posterior median and 95% "
                "interval), the population mean rate (filled diamond) and the rate to "
                "expect in a new study (open diamond, dashed: 95% predictive interval). ")
    caption = what + _model_note(analysis) + _engine_note(analysis)
    title = f"{label}: study rates, mean and new-study rate ({analysis.model_name})"
    return title, caption, figures.forest_figure(forest, title=title)


def _prior_posterior(analysis: SavedAnalysis):
    panels = data.prior_posterior_data(analysis)
    if len(analysis.outcomes) > 1:
        for panel in panels:
            panel["outcome_label"] = (outcome_label(panel["outcome"]) if panel["outcome"]
                                      else "")
    notes = sorted({p["note"] for p in panels if p["note"]})
    exact = analysis.posterior.joint_draws is None
    caption = ("Prior (dashed) and posterior (solid) densities of the model's "
               "hyperparameters and of the new-study rate θ_new. Where the curves are "
               "alike the data say little about that quantity. " + (
                   "Posterior densities are the exact marginals (numerical integration); "
                   "prior densities are kernel estimates from prior draws, "
                   if exact else "Densities are kernel estimates ")
               + "reflected at the bounds of each quantity (0 and 1 for rates, 0 for "
               "scales, ±1 for correlations), so no mass leaks past them. "
               + _model_note(analysis) + "".join(f" {n[0].upper()}{n[1:]}." for n in notes))
    title = f"{', '.join(map(outcome_label, analysis.outcomes))}: prior vs posterior"
    return title, caption, figures.prior_posterior_figure(panels, title=title)


def _ppc(run: SavedRun, outcome: str):
    ppc = data.ppc_data(run, outcome)
    label = outcome_label(outcome)
    if ppc["panels"]:
        caption = ("Per study, the distribution of the count a replication of that study "
                   "(same number of patients) would give (bars: Binomial(n, θ) averaged "
                   "over the posterior of the study's rate) against the observed count "
                   "(black line), with P(y_rep ≤ y) and P(y_rep ≥ y). An observed count far "
                   "in a tail means the model does not reproduce that study.")
    else:
        caption = (f"For each of the {len(ppc['rows'])} studies, the mid-p posterior "
                   "predictive p-value of its count, P(y_rep < y) + P(y_rep = y)/2 (y_rep: "
                   "a replication of that study under the posterior). Left: their "
                   "histogram; right: their ECDF minus the uniform with a 95% "
                   "Kolmogorov-Smirnov band. Posterior predictive p-values pile towards "
                   "0.5 when the model fits (they use the data twice), so values crowding "
                   "0 or 1 mark studies the model does not reproduce.")
    title = f"{label}: posterior predictive check of the counts"
    return title, caption, figures.ppc_figure(ppc, title=title)


def _trace(analysis: SavedAnalysis):
    draws = data.sampled_draws(analysis)
    shown = (f" {draws.sizes['draw']} draws a chain are drawn at the panel's resolution: "
             f"each of {figures.TRACE_POINTS} columns spans the lowest to the highest draw "
             "it covers." if draws.sizes["draw"] > 2 * figures.TRACE_POINTS else "")
    caption = (f"Draws of the parameters the sampler drew ({', '.join(draws.data_vars)}): "
               "one row per parameter, one column per chain, on a shared scale per row "
               "(dashed: median of all chains). Chains that wander around the same level "
               f"without trends or flat stretches have mixed.{shown}")
    title = f"{', '.join(map(outcome_label, analysis.outcomes))}: trace of the sampled parameters"
    return title, caption, figures.trace_figure(draws, title=title)


def _rank(analysis: SavedAnalysis):
    full = data.sampled_draws(analysis)
    draws, factor = data.thin_to_ess(full)
    thinning = (f"Draws thinned to about the effective sample size (one draw in {factor}: "
                f"{draws.sizes['draw']} of {full.sizes['draw']} per chain), so the test's "
                "independence assumption holds; unthinned, autocorrelated draws can make "
                "it flag chains that mix well." if factor > 1 else
                "Draws not thinned: their effective sample size is about their number.")
    caption = (f"Sampled parameters ({', '.join(draws.data_vars)}): per chain, the ECDF of "
               "its draws' fractional ranks among all chains, minus the uniform ECDF "
               "(arviz-plots). Lines near zero mean the chains sample the same "
               "distribution; p is the multi-chain uniformity test, and a p below α flags "
               f"a problem (points that drive it are marked). {thinning}")
    title = f"{', '.join(map(outcome_label, analysis.outcomes))}: rank plots per chain"
    return title, caption, figures.rank_figure(draws, title=title)


def _acceptability(run: SavedRun):
    curve = data.acceptability_data(run)
    spec = run.manifest.get("benefit_risk") or {}
    caption = ("The probability that the net clinical benefit p_success − w · p_harm is "
               "positive, against the weight w of one harm event in benefit events (the "
               "benefit-risk acceptability curve), for the rates of a new study and for the "
               "population mean rates. "
               + ("Solid: the joint model, with ±2 Monte Carlo SE; dashed: the same if "
                  "benefit and harm were independent (rho = 0): where the two differ, the "
                  "correlation between the outcomes changes the conclusion."
                  if curve["correlated"] else
                  "The outcomes are fitted separately, so benefit and harm are taken to be "
                  "independent."))
    if spec.get("statement"):
        caption += f" {spec['statement']}"
    title = "Benefit-risk acceptability: net clinical benefit by harm weight"
    return title, caption, figures.acceptability_figure(curve, title=title)


def _benefit_risk(run: SavedRun, *, benefit_threshold, risk_threshold):
    br = data.benefit_risk_data(run, benefit=BENEFIT_OUTCOME, risk=RISK_OUTCOME,
                                benefit_threshold=benefit_threshold,
                                risk_threshold=risk_threshold)
    favourable = br["quadrants"][0]["probability"]
    if br["joint"]:
        pairing = ("Both outcomes are modelled jointly, with correlated study effects: the "
                   "points are joint draws, and the quadrant probabilities are those of the "
                   "joint posterior predictive distribution; solid contours enclose 50% and "
                   "90% of it, dashed ones what independence (rho = 0) would give. "
                   "P(favourable) if the two were independent would be "
                   f"{br['independent_product']:.2f}.")
    else:
        pairing = ("The two outcomes are fitted separately, so their draws are paired as "
                   "independent: the joint distribution is the product of the two "
                   "marginals, and any correlation of benefit and harm across studies is "
                   "not modelled. Quadrant probabilities are products of the marginal "
                   "probabilities.")
    caption = ("Each point pairs a draw of the new-study success rate (x) with one of the "
               "new-study severe-AE rate (y), from the posterior predictive distributions "
               f"θ_new. {pairing} P(success > {benefit_threshold:g} and SAE < "
               f"{risk_threshold:g}) = {favourable:.2f}.")
    title = "Benefit-risk in a new study: success vs severe adverse events"
    return title, caption, figures.benefit_risk_figure(br, title=title)


def plot_jobs(run: SavedRun, *, benefit_threshold: float | None = None,
              risk_threshold: float | None = None
              ) -> list[tuple[str, str | None, Callable]]:
    """(file name, outcome or None, drawing function) of every plot, in reading order.
    The benefit-risk thresholds default to the run's own (its manifest)."""
    safe = layout.safe_name
    outcomes = run.outcomes
    spec = run.manifest.get("benefit_risk") or {}
    benefit_threshold = benefit_threshold or spec.get("benefit_threshold", 0.5)
    risk_threshold = risk_threshold or spec.get("risk_threshold", 0.2)
    jobs = [(f"forest-{safe(o)}", o, partial(_forest, run, o)) for o in outcomes]
    if BENEFIT_OUTCOME in outcomes and RISK_OUTCOME in outcomes:
        jobs.append(("benefit-risk", None, partial(
            _benefit_risk, run, benefit_threshold=benefit_threshold,
            risk_threshold=risk_threshold)))
    if run.benefit_risk is not None and not run.benefit_risk.empty:
        jobs.append(("benefit-risk-acceptability", None, partial(_acceptability, run)))
    for analysis in run.analyses.values():
        part = layout.analysis_part(analysis.outcomes)
        jobs.append((f"prior-posterior-{part}", analysis.name,
                     partial(_prior_posterior, analysis)))
    jobs += [(f"ppc-{safe(o)}", o, partial(_ppc, run, o)) for o in outcomes]
    for analysis in run.analyses.values():
        draws = data.sampled_draws(analysis)
        if draws is None:
            continue  # no chains (exact marginals)
        part = layout.analysis_part(analysis.outcomes)
        jobs.append((f"trace-{part}", analysis.name, partial(_trace, analysis)))
        if draws.sizes["chain"] > 1:  # a rank plot compares chains
            jobs.append((f"rank-{part}", analysis.name, partial(_rank, analysis)))
    return jobs


#: Relative drawing cost by plot kind: the costliest are handed out first, so that no
#: process is left drawing a trace plot while the others are idle.
_COST = {"trace": 4, "rank": 3, "ppc": 2, "prior-posterior": 2}


def _cost(name: str) -> int:
    return max((c for kind, c in _COST.items() if name.startswith(kind)), default=1)


def draw_one(name: str, outcome: str | None, draw: Callable, directory: Path) -> dict:
    """Draw one job of :func:`plot_jobs` into ``directory``; its index entry."""
    title, caption, fig = draw()
    png, svg = figures.save(fig, directory, name, dpi=PNG_DPI)
    return {"name": name, "title": title, "caption": caption, "outcome": outcome,
            "png": f"{layout.PLOTS_DIR}/{png.name}", "svg": f"{layout.PLOTS_DIR}/{svg.name}",
            "png_sha256": sha256(png), "svg_sha256": sha256(svg)}


def draw_share(run: SavedRun, directory: Path, next_job: Callable[[], int], *,
               benefit_threshold: float | None = None, risk_threshold: float | None = None
               ) -> tuple[int, list[tuple[int, dict]]]:
    """Draw plots of ``run`` into ``directory`` while ``next_job()`` hands out one: the
    share of one process when several draw a run's plots. The hand-out order is the
    costliest first; returns the number of plots of the run and the (position in
    reading order, index entry) pairs drawn here."""
    jobs = plot_jobs(run, benefit_threshold=benefit_threshold, risk_threshold=risk_threshold)
    order = sorted(range(len(jobs)), key=lambda i: -_cost(jobs[i][0]))
    drawn = []
    while (turn := next_job()) < len(order):
        number = order[turn]
        name, outcome, draw = jobs[number]
        drawn.append((number, draw_one(name, outcome, draw, directory)))
    return len(jobs), drawn


def warm_up() -> None:
    """Do once what drawing a run's plots does the first time: import the plotting
    stack, read a netCDF file (xarray's backends, and its check for dask arrays) and
    render a text, so that a plot worker started ahead of time spends its first plot
    drawing rather than loading."""
    import io
    import tempfile

    import arviz_plots  # noqa: F401
    import arviz_stats  # noqa: F401
    import numpy as np
    import scipy.stats  # noqa: F401
    import xarray as xr
    from matplotlib.figure import Figure

    with tempfile.TemporaryDirectory(prefix="bayes-dress-warm-") as tmp:
        path = Path(tmp) / "warm.nc"
        xr.DataTree.from_dict({"posterior": xr.Dataset({"x": ("draw", np.zeros(2))})}
                              ).to_netcdf(path, engine="netcdf4")
        with xr.open_datatree(path, engine="netcdf4") as tree:
            tree.load()
    fig = Figure(figsize=(1, 1))
    fig.text(0.5, 0.5, "0.5")
    fig.savefig(io.BytesIO(), format="png")