"""Plots of a run, drawn from the run directory's files only.

``bayes-dress fit`` and ``bayes-dress plot RUN_DIR`` both call :func:`draw_plots` on the
saved files (``posterior-OUTCOME.nc`` for NUTS runs, ``marginals-OUTCOME.nc`` for exact
runs, ``summary.csv`` for the order of outcomes), so a redraw gives the same figures as
the fit did. Each plot is written as ``plots/NAME.png`` and ``plots/NAME.svg``, and
``plots/index.json`` lists them in reading order::

    [{"name": "forest-success", "title": "...", "caption": "...", "outcome": "success",
      "png": "plots/forest-success.png", "svg": "plots/forest-success.svg"}, ...]

What each plot shows, as numbers, is in :mod:`bayes_dress.plot_data`; the drawing is in
:mod:`bayes_dress.plot_figures`.
"""

from __future__ import annotations

import datetime as dt
import json
from functools import partial
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import xarray as xr

from bayes_dress import plot_data as data
from bayes_dress import plot_figures as figures
from bayes_dress.errors import RunDirError
from bayes_dress.labels import outcome_label
from bayes_dress.models import STUDY_DIM
from bayes_dress.outputs import _sha256, atomic_directory, atomic_write_text, safe_name
from bayes_dress.report import REPORT_NAME
from bayes_dress.summaries import UNREPORTED

PLOTS_DIR = "plots"
INDEX_FILE = "index.json"
#: The outcomes of the benefit-risk plot: benefit on x, harm on y.
BENEFIT_OUTCOME, RISK_OUTCOME = "success", "severe_ae"
PNG_DPI = 120
#: What plotting reads from each saved fit: group -> variables.
REQUIRED = {"posterior": ("theta", "mean_rate", "theta_new"), "observed_data": ("y",),
            "constant_data": ("n",)}
__all__ = ["draw_plots", "load_fits", "plot_fit", "plot_run", "stale_report_note"]


def load_fits(run_dir: str | Path) -> dict[str, xr.DataTree]:
    """Every outcome's saved fit in a run directory, in the run's order of outcomes.

    Raises
    ------
    RunDirError
        No saved fit, a file that cannot be read, or one without a group or variable
        plotting needs (:data:`REQUIRED`), or whose counts, replicated counts or study
        rates are not what a fit writes (see :func:`_check_values`).
    """
    run_dir = Path(run_dir)
    paths = sorted(run_dir.glob("posterior-*.nc")) + sorted(run_dir.glob("marginals-*.nc"))
    if not paths:
        raise RunDirError(f"'{run_dir}' has no posterior-*.nc or marginals-*.nc file to plot "
                          "(runs written before plots were redrawable need a refit)")
    trees = {}
    for path in paths:
        try:
            tree = xr.load_datatree(path)
        except (OSError, ValueError, RuntimeError, KeyError, TypeError) as err:
            raise RunDirError(f"cannot read '{path}': {_unreadable(err)}") from None
        _check_groups(path, tree)
        trees[str(tree.attrs.get("outcome", path.stem.partition("-")[2]))] = tree
    order = list(trees)
    summary = run_dir / "summary.csv"
    if summary.is_file():
        try:
            listed = pd.read_csv(summary, dtype={"outcome": str}, keep_default_na=False)
        except (OSError, UnicodeDecodeError, pd.errors.ParserError,
                pd.errors.EmptyDataError) as err:
            raise RunDirError(f"cannot read '{summary}' as CSV: "
                              f"{str(err).splitlines()[0] if str(err) else type(err).__name__}"
                              ) from None
        if "outcome" not in listed.columns:
            raise RunDirError(f"'{summary}' has no 'outcome' column: not a summary written "
                              "by bayes-dress")
        listed = listed["outcome"].astype(str).unique()
        order = [o for o in listed if o in trees] + [o for o in trees if o not in listed]
    return {o: trees[o] for o in order}


def _unreadable(err: Exception) -> str:
    """Why a file could not be read, in a few words (xarray's own message spans lines
    and lists URLs)."""
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return "not a netCDF file bayes-dress can open"


def _check_groups(path: Path, tree: xr.DataTree) -> None:
    """Raise :class:`RunDirError` unless ``tree`` holds every group and variable plotting
    reads, with the dimensions and values a fit writes: checked once here, so the plot
    functions can trust them."""
    for group, names in REQUIRED.items():
        if group not in tree.children:
            raise RunDirError(f"'{path}' has no '{group}' group: not a fit saved by "
                              "bayes-dress (refit to plot it)")
        missing = [n for n in names if n not in tree[group].data_vars]
        if missing:
            raise RunDirError(f"'{path}': group '{group}' lacks variable(s) "
                              f"{', '.join(missing)}: not a fit saved by bayes-dress")
    # A model this version does not know is no error: the plots fall back on the
    # population quantities every fit has.
    model = data.model_of(tree)
    if model is not None:
        # Exact runs keep no draws of the non-centred z (it is never plotted).
        needed = [n for n in model.sampled if not (_is_exact(tree) and n in UNREPORTED)]
        missing = [n for n in needed if n not in tree["posterior"].data_vars]
        if missing:
            raise RunDirError(f"'{path}': group 'posterior' lacks variable(s) "
                              f"{', '.join(missing)} sampled by its model {model.name}: not "
                              "a fit saved by bayes-dress (refit to plot it)")
    _check_values(path, tree)


def _check_values(path: Path, tree: xr.DataTree) -> None:
    """The counts y and n, the replicated counts y_rep and the study rates theta have the
    studies and ranges every plot assumes.

    Unchecked, a NaN count or n = 0 draws a meaningless forest plot without complaint, and
    a y_rep below 0 or above n breaks the posterior predictive check's bins.
    """
    y, n = tree["observed_data"]["y"], tree["constant_data"]["n"]
    for where, counts in (("observed_data/y", y), ("constant_data/n", n)):
        if counts.dims != (STUDY_DIM,):
            raise RunDirError(f"'{path}': {where} must have the one dimension "
                              f"'{STUDY_DIM}', not {_dims(counts)}")
    studies = [str(s) for s in y[STUDY_DIM].values]
    if not studies or [str(s) for s in n[STUDY_DIM].values] != studies:
        raise RunDirError(f"'{path}': observed_data/y and constant_data/n must list the "
                          "same studies, at least one")
    _check_whole(path, "constant_data/n", n.values, low=1)
    _check_whole(path, "observed_data/y", y.values, low=0)
    totals = n.values
    over = np.flatnonzero(y.values > totals)
    if over.size:
        i = over[0]
        raise RunDirError(f"'{path}': observed_data/y exceeds constant_data/n for study "
                          f"{studies[i]} ({y.values[i]:g} > {totals[i]:g})")
    theta = _by_study(path, "posterior/theta", tree["posterior"]["theta"], studies)
    with np.errstate(invalid="ignore"):
        rates = np.isfinite(theta.values) & (theta.values >= 0) & (theta.values <= 1)
    if not rates.all():
        raise RunDirError(f"'{path}': posterior/theta must hold rates in [0, 1], not "
                          f"{theta.values[~rates][0]:g}")
    if "posterior_predictive" not in tree.children:  # exact runs compute y_rep's law
        return
    if "y" not in tree["posterior_predictive"].data_vars:
        raise RunDirError(f"'{path}': group 'posterior_predictive' lacks variable(s) y: not "
                          "a fit saved by bayes-dress")
    replicated = _by_study(path, "posterior_predictive/y", tree["posterior_predictive"]["y"],
                           studies)
    _check_whole(path, "posterior_predictive/y", replicated.values, low=0)
    over = replicated.values > totals  # study is the last dimension: broadcasts per study
    if over.any():
        i = np.argwhere(over)[0][-1]
        raise RunDirError(f"'{path}': posterior_predictive/y exceeds constant_data/n for "
                          f"study {studies[i]} ({replicated.values[over][0]:g} > "
                          f"{totals[i]:g})")


def _dims(array: xr.DataArray) -> str:
    return "(" + ", ".join(map(str, array.dims)) + ")"


def _by_study(path: Path, where: str, array: xr.DataArray, studies: list[str]
              ) -> xr.DataArray:
    """``array`` with the observed studies, in their order, along its last dimension."""
    if STUDY_DIM not in array.dims:
        raise RunDirError(f"'{path}': {where} has no '{STUDY_DIM}' dimension (it has "
                          f"{_dims(array)}): not a fit saved by bayes-dress")
    have = {str(s) for s in array[STUDY_DIM].values}
    missing = [s for s in studies if s not in have]
    if missing:
        raise RunDirError(f"'{path}': {where} lacks study(ies) {', '.join(missing)} of "
                          "observed_data/y")
    return array.sel({STUDY_DIM: studies}).transpose(..., STUDY_DIM)


def _check_whole(path: Path, where: str, values: np.ndarray, *, low: int) -> None:
    """Every value is a whole number >= ``low``."""
    values = np.asarray(values)
    if not (np.issubdtype(values.dtype, np.integer)
            or np.issubdtype(values.dtype, np.floating)):
        raise RunDirError(f"'{path}': {where} must hold counts, not {values.dtype} values")
    with np.errstate(invalid="ignore"):
        whole = np.isfinite(values) & (values == np.round(values)) & (values >= low)
    if not whole.all():
        raise RunDirError(f"'{path}': {where} must hold whole numbers >= {low}, not "
                          f"{values[~whole][0]:g}")


def _model_note(tree: xr.DataTree) -> str:
    return f"Model {tree.attrs.get('model', '?')}; priors {tree.attrs.get('priors', '?')}."


def _is_exact(tree: xr.DataTree) -> bool:
    return tree.attrs.get("engine") == "exact"


EXACT_NOTE = ("Exact engine: summaries of exact marginal posteriors (numerical "
              "integration, no sampling); with no MCMC chains this run has no trace or "
              "rank plots.")


def _forest(outcome, tree):
    label = outcome_label(outcome)
    caption = ("Each study's observed rate (events/total) with its exact "
               "Clopper-Pearson 95% CI (open squares), the model's estimate of that study's "
               "rate, pulled towards the other studies (filled circles: posterior median "
               "and 95% interval), the population mean rate (filled diamond) and the rate "
               "to expect in a new study (open diamond, dashed: 95% predictive interval). "
               + _model_note(tree) + (" " + EXACT_NOTE if _is_exact(tree) else ""))
    title = f"{label}: study rates, mean and new-study rate ({tree.attrs.get('model', '')})"
    return title, caption, figures.forest_figure(data.forest_data(tree), title=title)


def _prior_posterior(outcome, tree):
    label = outcome_label(outcome)
    panels = data.prior_posterior_data(tree)
    notes = sorted({p["note"] for p in panels if p["note"]})
    caption = ("Prior (dashed) and posterior (solid) densities of the model's "
               "hyperparameters and of the new-study rate θ_new. Where the curves are "
               "alike the data say little about that quantity. Densities are kernel "
               "estimates reflected at the bounds of each quantity (0 and 1 for rates, 0 "
               "for scales), so no mass leaks past them. " + _model_note(tree)
               + "".join(f" {n[0].upper()}{n[1:]}." for n in notes)
               + (" Exact engine: posterior densities are estimated from quantiles of the "
                  "exact marginal posteriors." if _is_exact(tree) else ""))
    title = f"{label}: prior vs posterior"
    return title, caption, figures.prior_posterior_figure(panels, title=title)


def _ppc(outcome, tree):
    label = outcome_label(outcome)
    rows = data.ppc_data(tree)
    caption = ("Per study, the distribution of the count a replication of that study "
               "(same number of patients) would give "
               f"(bars; {rows[0]['source']}) against the observed count (black line), "
               "with P(y_rep ≤ y) and P(y_rep ≥ y). An observed count far in a tail means "
               "the model does not reproduce that study.")
    title = f"{label}: posterior predictive check of the counts"
    return title, caption, figures.ppc_figure(rows, title=title)


def _trace(outcome, tree):
    label = outcome_label(outcome)
    draws = data.sampled_draws(tree)
    caption = (f"Draws of the parameters NUTS sampled ({', '.join(draws.data_vars)}): one "
               "row per parameter, one column per chain, on a shared scale per row (dashed: "
               "median of all chains). Chains that wander around the same level without "
               "trends or flat stretches have mixed.")
    title = f"{label}: trace of the sampled parameters"
    return title, caption, figures.trace_figure(draws, title=title)


def _rank(outcome, tree):
    label = outcome_label(outcome)
    full = data.sampled_draws(tree)
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
    title = f"{label}: rank plots per chain"
    return title, caption, figures.rank_figure(draws, title=title)


def _benefit_risk(benefit, risk, *, benefit_threshold, risk_threshold):
    br = data.benefit_risk_data(benefit, risk, benefit_threshold=benefit_threshold,
                                risk_threshold=risk_threshold)
    favourable = br["quadrants"][0]["probability"]
    caption = ("Each point pairs a draw of the new-study success rate (x) with one of the "
               "new-study severe-AE rate (y), from the posterior predictive distributions "
               "θ_new. The two outcomes "
               "are fitted separately, so their draws are paired as independent: the joint "
               "distribution is the product of the two marginals, and any correlation of "
               "benefit and harm across studies is not modelled. Quadrant probabilities "
               "are products of the marginal probabilities; P(success > "
               f"{benefit_threshold:g} and SAE < {risk_threshold:g}) = {favourable:.2f}.")
    title = "Benefit-risk in a new study: success vs severe adverse events"
    return title, caption, figures.benefit_risk_figure(br, title=title)


def draw_plots(run_dir: str | Path, directory: str | Path, *, benefit_threshold: float = 0.5,
               risk_threshold: float = 0.2) -> list[dict]:
    """Draw every plot of the saved run in ``run_dir`` into ``directory``.

    Parameters
    ----------
    run_dir : str or Path
        The run directory whose fit files are read.
    directory : str or Path
        Where NAME.png, NAME.svg and index.json are written (created if needed). The
        index's paths are ``plots/NAME.png``: relative to the run directory once
        ``directory`` is its ``plots`` folder.
    benefit_threshold, risk_threshold : float
        Thresholds of the benefit-risk plot (success rate above, SAE rate below).

    Returns
    -------
    list of dict
        The index: name, title, caption, outcome (or None), png, svg; in reading order.
    """
    trees = load_fits(run_dir)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    jobs = [(f"forest-{safe_name(o)}", o, partial(_forest, o, t)) for o, t in trees.items()]
    if BENEFIT_OUTCOME in trees and RISK_OUTCOME in trees:
        jobs.append(("benefit-risk", None, partial(
            _benefit_risk, trees[BENEFIT_OUTCOME], trees[RISK_OUTCOME],
            benefit_threshold=benefit_threshold, risk_threshold=risk_threshold)))
    for kind, draw in (("prior-posterior", _prior_posterior), ("ppc", _ppc)):
        jobs += [(f"{kind}-{safe_name(o)}", o, partial(draw, o, t)) for o, t in trees.items()]
    for kind, draw in (("trace", _trace), ("rank", _rank)):  # chains exist for NUTS only
        jobs += [(f"{kind}-{safe_name(o)}", o, partial(draw, o, t))
                 for o, t in trees.items() if not _is_exact(t)]
    index = []
    for name, outcome, draw in jobs:
        title, caption, fig = draw()
        figures.save(fig, directory, name, dpi=PNG_DPI)
        index.append({"name": name, "title": title, "caption": caption, "outcome": outcome,
                      "png": f"{PLOTS_DIR}/{name}.png", "svg": f"{PLOTS_DIR}/{name}.svg"})
    (directory / INDEX_FILE).write_text(json.dumps(index, indent=2, ensure_ascii=False)
                                        + "\n", encoding="utf-8")
    return index


def plot_fit(result, directory: str | Path) -> list[dict]:
    """The plotting step of :func:`bayes_dress.outputs.write_run`.

    Draws from the files already written to ``directory`` (not from ``result``), so the
    plots of a fit and of a later ``bayes-dress plot`` are the same.
    """
    directory = Path(directory)
    return draw_plots(directory, directory / PLOTS_DIR)


def _update_manifest(run_dir: Path, manifest: dict) -> None:
    """Replace the plots' hashes in ``manifest`` (the run's manifest.json, already read
    and checked by :func:`_read_manifest`) and write it back atomically; other files'
    hashes are kept as recorded, so a redraw never vouches for files it did not write."""
    files = {k: v for k, v in manifest.get("files", {}).items()
             if not k.startswith(f"{PLOTS_DIR}/")}
    for plot in sorted((run_dir / PLOTS_DIR).iterdir()):
        files[f"{PLOTS_DIR}/{plot.name}"] = _sha256(plot)
    manifest = {**manifest, "files": dict(sorted(files.items())),
                "plots_redrawn": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    atomic_write_text(run_dir / "manifest.json",
                      json.dumps(manifest, indent=2, default=str) + "\n")


def _read_manifest(run_dir: Path) -> dict:
    """``run_dir/manifest.json``, checked to be an object whose ``files`` (if any) is an
    object, before anything is drawn or replaced."""
    path = run_dir / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise RunDirError(f"'{run_dir}' is not a bayes-dress run directory (no readable "
                          "manifest.json)") from None
    if not isinstance(manifest, dict):
        raise RunDirError(f"'{path}': expected a JSON object, not a bayes-dress manifest")
    if not isinstance(manifest.get("files", {}), dict):
        raise RunDirError(f"'{path}': 'files' must be a JSON object of path -> sha256")
    return manifest


def stale_report_note(run_dir: str | Path) -> str | None:
    """A note when ``run_dir/report.html`` exists: it embeds the plots it was written
    with, not a redraw's. (It is not rewritten here: a report may carry a sensitivity
    section whose directory only the user knows.)"""
    run_dir = Path(run_dir)
    if not (run_dir / REPORT_NAME).is_file():
        return None
    return (f"note: {run_dir / REPORT_NAME} embeds the previous plots: rerun "
            f"bayes-dress report {run_dir} [SENS_DIR] to update it")


def plot_run(run_dir: str | Path, *, benefit_threshold: float = 0.5,
             risk_threshold: float = 0.2) -> list[dict]:
    """(Re)draw every plot of a saved run from the files in ``run_dir`` only.

    ``run_dir/plots`` is replaced atomically (drawn in a hidden sibling, then moved into
    place), and the plots' hashes in ``manifest.json`` are updated.

    Parameters
    ----------
    run_dir : str or Path
        A directory written by ``bayes-dress fit`` / :func:`bayes_dress.write_run`.
    benefit_threshold, risk_threshold : float
        Thresholds of the benefit-risk plot: P(success rate > benefit_threshold and SAE
        rate < risk_threshold) is annotated.

    Returns
    -------
    list of dict
        The contents of ``plots/index.json``.

    Raises
    ------
    RunDirError
        ``run_dir`` is not a readable run directory.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"run directory '{run_dir}' does not exist or is not a directory")
    manifest = _read_manifest(run_dir)
    with atomic_directory(run_dir / PLOTS_DIR, overwrite=True) as tmp:
        index = draw_plots(run_dir, tmp, benefit_threshold=benefit_threshold,
                           risk_threshold=risk_threshold)
    _update_manifest(run_dir, manifest)
    return index
