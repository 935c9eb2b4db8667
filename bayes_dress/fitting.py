"""A fit, end to end in memory: data -> counts -> model -> draws -> tables and checks.

:func:`run_fit` is the Python face of ``bayes-dress fit``; :func:`fit_outcome` fits one
outcome's counts and is what a sensitivity sweep calls per scenario. Nothing here
writes files (see :mod:`bayes_dress.outputs`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from bayes_dress.config import DEFAULT_OUTCOMES, RunConfig, SamplerSettings
from bayes_dress.data import OutcomeData, StudyTable, check_exclusions, load_table, select_outcome
from bayes_dress.diagnostics import Check, check_fit, failures
from bayes_dress.errors import DataError, SpecError, choices
from bayes_dress.models import STUDY_DIM, Model, get_model
from bayes_dress.priors import Prior
from bayes_dress.sampling import CompiledModelCache, derive_seed, sample_posterior
from bayes_dress.spec import get_model_spec, resolve_priors
from bayes_dress.summaries import summarize, tail_probabilities


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


def fit_outcome(data: OutcomeData, *, model: str | Model, priors: Mapping[str, Prior],
                settings: SamplerSettings, thresholds: Sequence[float],
                cache: CompiledModelCache | None = None) -> OutcomeFit:
    """Fit one outcome's counts with NUTS and summarise the fit.

    Parameters
    ----------
    data : OutcomeData
        Counts from :func:`bayes_dress.data.select_outcome`.
    model : str or Model
    priors : mapping of str to Prior
        One per model parameter (see :func:`bayes_dress.spec.resolve_priors`).
    settings : SamplerSettings
    thresholds : sequence of float
        Rates for the tail probabilities.
    cache : CompiledModelCache, optional
        Compiled models to reuse; the process-wide cache by default.

    Returns
    -------
    OutcomeFit
        ``tree`` holds the groups posterior, posterior_predictive, observed_data,
        constant_data, sample_stats and, when every prior is proper, prior and
        prior_predictive.
    """
    model = get_model(model) if isinstance(model, str) else model
    seeds = derive_seed(settings.seed, data.outcome).spawn(3)
    sampled = sample_posterior(model, data, priors, settings, seed=seeds[0], cache=cache)
    posterior_draws = {k: sampled["posterior"][k].values for k in model.sampled}
    quantities, replicated = _with_derived(model, posterior_draws, data,
                                           np.random.default_rng(seeds[1]), priors,
                                           conditioned=True)
    groups = {
        "posterior": _dataset(quantities, data.studies),
        "posterior_predictive": _dataset({"y": replicated}, data.studies),
        "observed_data": xr.Dataset({"y": (STUDY_DIM, data.events)},
                                    coords={STUDY_DIM: list(data.studies)}),
        "constant_data": xr.Dataset({"n": (STUDY_DIM, data.totals),
                                     "definition": (STUDY_DIM, list(data.definitions))},
                                    coords={STUDY_DIM: list(data.studies)}),
        "sample_stats": sampled["sample_stats"].to_dataset(),
    }
    notes = list(data.notes)
    improper = [f"{k} ~ {p}" for k, p in priors.items() if not p.proper]
    if improper:
        notes.append(f"improper prior ({', '.join(improper)}): no prior draws, so no "
                     "prior-versus-posterior comparison")
    else:
        rng = np.random.default_rng(seeds[2])
        shape = (1, settings.chains * settings.draws)
        prior_draws = model.prior_draws(priors, data.n_studies, rng, shape)
        prior_quantities, prior_replicated = _with_derived(model, prior_draws, data, rng,
                                                           priors, conditioned=False)
        groups["prior"] = _dataset(prior_quantities, data.studies)
        groups["prior_predictive"] = _dataset({"y": prior_replicated}, data.studies)
    tree = xr.DataTree.from_dict(groups)
    tree.attrs.update({"outcome": data.outcome, "model": model.name,
                       "priors": "; ".join(f"{k} ~ {p}" for k, p in priors.items())})
    summary = summarize(tree, outcome=data.outcome)
    return OutcomeFit(
        outcome=data.outcome, model=model.name, data=data, priors=dict(priors), tree=tree,
        summary=summary,
        probabilities=tail_probabilities(tree, outcome=data.outcome, thresholds=thresholds),
        checks=check_fit(tree, summary, outcome=data.outcome), notes=notes,
    )


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


def prepare(config: RunConfig) -> tuple[StudyTable, dict[str, Prior], dict[str, OutcomeData]]:
    """Validate everything a run needs before any sampling starts."""
    table = load_table(config.data)
    priors = resolve_priors(get_model_spec(config.model), config.priors)
    get_model(config.model)
    outcomes = resolve_outcomes(table, config.outcomes)
    stray = [o for o in config.definitions if o not in outcomes]
    if stray:
        raise SpecError(f"--definition given for outcome '{stray[0]}', which is not being "
                        f"fitted; fitted outcomes: {choices(outcomes)}")
    check_exclusions(table, config.exclude)
    selected = {o: select_outcome(table, o, definition=config.definitions.get(o),
                                  exclude=config.exclude) for o in outcomes}
    return table, priors, selected


def run_fit(config: RunConfig | None = None, *, cache: CompiledModelCache | None = None
            ) -> FitResult:
    """Fit every requested outcome as ``bayes-dress fit`` does, without writing files.

    Parameters
    ----------
    config : RunConfig, optional
        Defaults: the bundled data, the beta-binomial model, default priors.
    cache : CompiledModelCache, optional

    Returns
    -------
    FitResult
    """
    config = config or RunConfig()
    start = time.perf_counter()
    table, priors, selected = prepare(config)
    fits = {outcome: fit_outcome(data, model=config.model, priors=priors,
                                 settings=config.sampler, thresholds=config.thresholds,
                                 cache=cache)
            for outcome, data in selected.items()}
    return FitResult(config=config, table=table, fits=fits,
                     wall_time=time.perf_counter() - start)
