"""A fit, end to end in memory: data -> counts -> model -> draws -> tables and checks.

:func:`run_fit` is the Python face of ``bayes-dress fit``; :func:`fit_outcome` fits one
outcome's counts (the unit a sweep over priors or data definitions would repeat).
Nothing here writes files (see :mod:`bayes_dress.outputs`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from bayes_dress.config import DEFAULT_OUTCOMES, RunConfig, SamplerSettings
from bayes_dress.crosscheck import agreement_check, compare_with_exact
from bayes_dress.data import (
    OutcomeData,
    StudyTable,
    check_definitions,
    check_exclusions,
    load_table,
    select_outcome,
)
from bayes_dress.diagnostics import Check, check_fit, failures
from bayes_dress.errors import DataError, ImproperPosteriorError, choices
from bayes_dress.exact import GRID_TOLERANCE, ExactFit, exact_fit
from bayes_dress.models import (
    POPULATION_QUANTITIES,
    STUDY_DIM,
    Model,
    SharedFamilies,
    get_model,
)
from bayes_dress.priors import Prior
from bayes_dress.sampling import CompiledModelCache, derive_seed, sample_posterior
from bayes_dress.spec import get_model_spec, resolve_priors
from bayes_dress.summaries import (
    exact_tail_probabilities,
    summarize,
    summarize_exact,
    tail_probabilities,
)

#: Draws per quantity of an exact fit, for its plots: quantiles at (i + 0.5) / N of each
#: exact marginal. Not a joint posterior: saved as ``marginals-OUTCOME.nc``, labelled so.
EXACT_PLOT_DRAWS = 4000


@dataclass
class OutcomeFit:
    """One outcome's fit: the draws (a DataTree) and everything computed from them."""

    outcome: str
    model: str
    data: OutcomeData
    priors: dict[str, Prior]
    tree: xr.DataTree
    summary: pd.DataFrame
    probabilities: pd.DataFrame
    checks: list[Check]
    notes: list[str] = field(default_factory=list)
    engine: str = "nuts"
    exact: ExactFit | None = None
    #: NUTS minus exact per quantity and statistic, in MCSE (NUTS fits only).
    comparison: pd.DataFrame | None = None

    @property
    def failures(self) -> list[Check]:
        return failures(self.checks)


@dataclass
class FitResult:
    """All outcomes of one run, with what is needed to reproduce it."""

    config: RunConfig
    table: StudyTable
    fits: dict[str, OutcomeFit]
    wall_time: float

    @property
    def summary(self) -> pd.DataFrame:
        return pd.concat([f.summary for f in self.fits.values()], ignore_index=True)

    @property
    def probabilities(self) -> pd.DataFrame:
        return pd.concat([f.probabilities for f in self.fits.values()], ignore_index=True)

    @property
    def failures(self) -> list[Check]:
        return [c for f in self.fits.values() for c in f.failures]


def _dataset(arrays: Mapping[str, np.ndarray], studies: Sequence[str]) -> xr.Dataset:
    """Arrays shaped (chain, draw[, study]) as a Dataset with named dims."""
    variables = {}
    for name, values in arrays.items():
        dims = ("chain", "draw", STUDY_DIM)[: np.ndim(values)]
        variables[name] = (dims, np.asarray(values))
    chains, draws = next(iter(arrays.values())).shape[:2]
    return xr.Dataset(variables, coords={"chain": np.arange(chains), "draw": np.arange(draws),
                                         STUDY_DIM: list(studies)})


def _with_derived(model: Model, draws: Mapping[str, np.ndarray], data: OutcomeData,
                  rng: np.random.Generator, priors: Mapping[str, Prior], *, conditioned: bool
                  ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Sampled and derived quantities, and replicated counts drawn from the study rates."""
    events = data.events if conditioned else np.zeros_like(data.events)
    totals = data.totals if conditioned else np.zeros_like(data.totals)
    quantities = dict(draws)
    quantities.update(model.derived(draws, events, totals, rng, priors))
    replicated = rng.binomial(data.totals, quantities["theta"])
    return quantities, replicated


def _prior_groups(model: Model, priors: Mapping[str, Prior], data: OutcomeData,
                  seed: np.random.SeedSequence, n_draws: int) -> dict[str, xr.Dataset]:
    """Prior and prior-predictive draws, or nothing when a prior is improper."""
    if not all(p.proper for p in priors.values()):
        return {}
    rng = np.random.default_rng(seed)
    draws = model.prior_draws(priors, data.n_studies, rng, (1, n_draws))
    quantities, replicated = _with_derived(model, draws, data, rng, priors, conditioned=False)
    return {"prior": _dataset(quantities, data.studies),
            "prior_predictive": _dataset({"y": replicated}, data.studies)}


def _data_groups(data: OutcomeData) -> dict[str, xr.Dataset]:
    coords = {STUDY_DIM: list(data.studies)}
    return {"observed_data": xr.Dataset({"y": (STUDY_DIM, data.events)}, coords=coords),
            "constant_data": xr.Dataset({"n": (STUDY_DIM, data.totals),
                                         "definition": (STUDY_DIM, list(data.definitions))},
                                        coords=coords)}


def _reporting_order(model: Model) -> tuple[str, ...]:
    return (*POPULATION_QUANTITIES, *model.sampled, "kappa", "theta")


def _exact_plot_draws(exact: ExactFit, data: OutcomeData) -> xr.Dataset:
    probs = (np.arange(EXACT_PLOT_DRAWS) + 0.5) / EXACT_PLOT_DRAWS
    arrays = {name: m.quantile(probs)[None, :] for name, m in exact.quantities.items()
              if name != "theta" or not exact.studies}
    if exact.studies:
        arrays["theta"] = np.stack([exact.studies[s].quantile(probs) for s in data.studies],
                                   axis=-1)[None, :, :]
    return _dataset(arrays, data.studies)


def fit_outcome(data: OutcomeData, *, model: str | Model, priors: Mapping[str, Prior],
                settings: SamplerSettings, thresholds: Sequence[float],
                engine: str = "nuts", cache: CompiledModelCache | None = None,
                n_slots: int | None = None,
                shared: SharedFamilies | None = None,
                check_grid: bool = True, plot_draws: bool = True) -> OutcomeFit:
    """Fit one outcome's counts and summarise the fit.

    Parameters
    ----------
    data : OutcomeData
        Counts from :func:`bayes_dress.data.select_outcome`.
    model : str or Model
    priors : mapping of str to Prior
        One per model parameter (see :func:`bayes_dress.spec.resolve_priors`).
    settings : SamplerSettings
        MCMC settings; for ``engine="exact"`` only the seed and chains x draws (the
        number of prior draws) are used.
    thresholds : sequence of float
        Rates for the tail probabilities.
    engine : {"nuts", "exact"}
        ``"nuts"`` samples, and checks the draws against the exact engine;
        ``"exact"`` integrates numerically (see :mod:`bayes_dress.exact`).
    cache : CompiledModelCache, optional
        Compiled models to reuse; the process-wide cache by default.
    n_slots : int, optional
        Study slots of the compiled model (see :func:`bayes_dress.sampling.padded`).
    shared : mapping of str to tuple of str, optional
        Prior families to hold in one graph, per parameter (see
        :meth:`bayes_dress.priors.Prior.add_to_model`). A sweep passes these and its
        largest study count, so that its fits share compiled models; the posterior is
        the same either way.
    check_grid : bool
        For ``engine="exact"``: refit at twice the grid resolution and report the
        largest change of a quantile (``grid_error``), which quadruples the cost. A
        sweep measures it on its primary analysis only; an unmeasured grid error is
        reported as such, never as a pass.
    plot_draws : bool
        For ``engine="exact"``: put quantile draws of each exact marginal in the tree's
        posterior group, for plots (a sweep, which draws no such plots, skips them).

    Returns
    -------
    OutcomeFit
        For NUTS, ``tree`` holds the groups posterior, posterior_predictive,
        observed_data, constant_data, sample_stats and, when every prior is proper, prior
        and prior_predictive.
    """
    model = get_model(model) if isinstance(model, str) else model
    seeds = derive_seed(settings.seed, data.outcome).spawn(3)
    # The exact posterior first: it takes well under a second, and an improper posterior
    # must stop the fit before any sampling. With every prior proper the posterior is
    # proper, so if the grid cannot bound it (a very flat posterior) NUTS still runs,
    # unchecked, and says so.
    notes = list(data.notes)
    try:
        exact = exact_fit(data, model=model.name, priors=priors,
                          check=engine == "exact" and check_grid)
        notes += exact.notes
    except ImproperPosteriorError as err:
        if engine == "exact" or not all(p.proper for p in priors.values()):
            raise
        exact = None
        notes.append(f"not checked against the exact engine: {err}")
    prior_groups = _prior_groups(model, priors, data, seeds[2],
                                 settings.chains * settings.draws)
    if not prior_groups:
        improper = ", ".join(f"{k} ~ {p}" for k, p in priors.items() if not p.proper)
        notes.append(f"improper prior ({improper}): no prior draws, so no "
                     "prior-versus-posterior comparison")
    attrs = {"outcome": data.outcome, "model": model.name, "engine": engine,
             "priors": "; ".join(f"{k} ~ {p}" for k, p in priors.items())}
    if engine == "exact":
        groups = {**_data_groups(data), **prior_groups}
        if plot_draws:
            groups["posterior"] = _exact_plot_draws(exact, data)
        tree = xr.DataTree.from_dict(groups)
        tree.attrs.update(attrs)
        summary = summarize_exact(exact, outcome=data.outcome,
                                  prior=prior_groups.get("prior"),
                                  order=_reporting_order(model))
        if check_grid:
            passed = exact.grid_error <= GRID_TOLERANCE
            checks = [Check(data.outcome, "grid_error", passed, exact.grid_error,
                            GRID_TOLERANCE,
                            f"largest change of a reported quantile when the grid "
                            f"resolution doubles ({exact.grid_points} points per axis): "
                            f"{exact.grid_error:.1e}, tolerance {GRID_TOLERANCE:g}",
                            "the posterior is too sharp, heavy-tailed or discontinuous for "
                            "the grid to resolve at this tolerance; check with the NUTS "
                            "engine")]
        else:
            notes.append("grid error not measured for this fit (a sweep measures it on "
                         "its primary analysis only)")
            checks = [Check(data.outcome, "grid_error", True, float("nan"), GRID_TOLERANCE,
                            "grid error not measured (no refinement for this fit)", "")]
        return OutcomeFit(
            outcome=data.outcome, model=model.name, data=data, priors=dict(priors),
            tree=tree, summary=summary,
            probabilities=exact_tail_probabilities(exact, outcome=data.outcome,
                                                   thresholds=thresholds),
            checks=checks, notes=notes, engine=engine, exact=exact)

    sampled = sample_posterior(model, data, priors, settings, seed=seeds[0], cache=cache,
                               n_slots=n_slots, shared=shared)
    posterior_draws = {k: sampled["posterior"][k].values for k in model.sampled}
    quantities, replicated = _with_derived(model, posterior_draws, data,
                                           np.random.default_rng(seeds[1]), priors,
                                           conditioned=True)
    groups = {
        "posterior": _dataset(quantities, data.studies),
        "posterior_predictive": _dataset({"y": replicated}, data.studies),
        **_data_groups(data),
        "sample_stats": sampled["sample_stats"].to_dataset(),
        **prior_groups,
    }
    tree = xr.DataTree.from_dict(groups)
    tree.attrs.update(attrs)
    summary = summarize(tree, outcome=data.outcome)
    checks = check_fit(tree, summary, outcome=data.outcome)
    comparison = None
    if exact is not None:
        comparison = compare_with_exact(tree, exact, summary, outcome=data.outcome)
        checks.append(agreement_check(comparison, outcome=data.outcome))
    return OutcomeFit(
        outcome=data.outcome, model=model.name, data=data, priors=dict(priors), tree=tree,
        summary=summary,
        probabilities=tail_probabilities(tree, outcome=data.outcome, thresholds=thresholds),
        checks=checks, notes=notes, engine=engine, exact=exact, comparison=comparison,
    )


Prepared = tuple[StudyTable, dict[str, Prior], dict[str, OutcomeData]]


def resolve_outcomes(table: StudyTable, requested: Sequence[str] | None) -> tuple[str, ...]:
    """The outcomes to fit: as requested, else the defaults the data have, else all."""
    if requested:
        unknown = [o for o in requested if o not in table.outcomes]
        if unknown:
            raise DataError(f"unknown outcome '{unknown[0]}' in {table.path}; available: "
                            f"{choices(table.outcomes)}")
        return tuple(dict.fromkeys(requested))
    defaults = tuple(o for o in DEFAULT_OUTCOMES if o in table.outcomes)
    return defaults or table.outcomes


def prepare(config: RunConfig) -> Prepared:
    """Validate everything a run needs before any sampling starts."""
    table = load_table(config.data)
    priors = resolve_priors(get_model_spec(config.model), config.priors)
    get_model(config.model)
    outcomes = resolve_outcomes(table, config.outcomes)
    check_definitions(config.definitions, outcomes)
    check_exclusions(table, config.exclude)
    selected = {o: select_outcome(table, o, definition=config.definitions.get(o),
                                  exclude=config.exclude) for o in outcomes}
    return table, priors, selected


def run_fit(config: RunConfig | None = None, *, cache: CompiledModelCache | None = None,
            prepared: Prepared | None = None) -> FitResult:
    """Fit every requested outcome as ``bayes-dress fit`` does, without writing files.

    Parameters
    ----------
    config : RunConfig, optional
        Defaults: the bundled data, the beta-binomial model, default priors.
    cache : CompiledModelCache, optional
    prepared : tuple, optional
        What :func:`prepare` returned for ``config``, so the data are read only once.

    Returns
    -------
    FitResult
    """
    config = config or RunConfig()
    start = time.perf_counter()
    table, priors, selected = prepared or prepare(config)
    fits = {outcome: fit_outcome(data, model=config.model, priors=priors,
                                 settings=config.sampler, thresholds=config.thresholds,
                                 engine=config.engine, cache=cache)
            for outcome, data in selected.items()}
    return FitResult(config=config, table=table, fits=fits,
                     wall_time=time.perf_counter() - start)
