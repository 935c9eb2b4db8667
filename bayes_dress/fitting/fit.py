"""An analysis fitted end to end in memory: engine, reference, checks, tables.

:func:`run_fit` is the Python face of ``bayes-dress fit``: it validates a run config
(:func:`prepare`), splits the requested outcomes into analyses (one per outcome for a
single-outcome model, one over all of them for a joint model) and fits each with
:func:`fit_analysis`. Nothing here writes files (see :mod:`bayes_dress.rundir`).

A sampler's fit is checked against a reference engine that supports the model (the
exact engine for the bundled models); where none does, the fit says "no exact reference
for this model" in its diagnostics, a note and not a failure.
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
import xarray as xr

from bayes_dress.checks.crosscheck import agreement_check, compare, no_reference_check
from bayes_dress.checks.diagnostics import Check, check_fit, failures, importance_check
from bayes_dress.data.selection import (
    AnalysisData,
    OutcomeData,
    check_definitions,
    check_exclusions,
    select_analysis,
)
from bayes_dress.data.table import DEFAULT_OUTCOME, StudyTable, load_table
from bayes_dress.engines import get_engine, reference_for
from bayes_dress.engines.base import FitOptions
from bayes_dress.errors import DataError, ImproperPosteriorError, SpecError
from bayes_dress.fitting.summaries import summarize, tail_probabilities
from bayes_dress.models import Model, get_model
from bayes_dress.models.analysis import Analysis
from bayes_dress.models.base import OUTCOME_DIM, STUDY_DIM
from bayes_dress.posterior.base import Posterior
from bayes_dress.posterior.draws import DrawsPosterior
from bayes_dress.spec.config import DEFAULT_OUTCOMES, RunConfig, SamplerSettings
from bayes_dress.spec.models import canonical_name, resolve_priors
from bayes_dress.spec.priors import Prior

#: Version of the saved fit files (posterior-ANALYSIS.nc); see bayes_dress.rundir.
POSTERIOR_FORMAT = 2


def derive_seed(seed: int, *labels: str) -> np.random.SeedSequence:
    """An independent, reproducible random stream for each analysis and purpose."""
    key = tuple(zlib.crc32(label.encode()) for label in labels)
    return np.random.SeedSequence(entropy=seed, spawn_key=key)


@dataclass
class AnalysisFit:
    """One analysis's fit: its posterior and everything computed from it.

    Attributes
    ----------
    analysis : Analysis
    engine : str
    posterior : Posterior
        Whichever engine computed it (the one interface downstream code uses).
    prior : Posterior or None
        Prior draws (None when a prior is improper).
    groups : dict of str to xarray.Dataset
        What is saved beside the posterior (replicated counts, sampler statistics,
        prior and prior-predictive draws).
    summary, probabilities : pandas.DataFrame
    checks : list of Check
    notes : list of str
    reference : str or None
        The engine this fit was checked against.
    comparison : pandas.DataFrame or None
        This fit minus the reference, per quantity and statistic, in standard errors.
    details : dict
        Engine facts for diagnostics.json.
    """

    analysis: Analysis
    engine: str
    posterior: Posterior
    prior: Posterior | None
    groups: dict
    summary: pd.DataFrame
    probabilities: pd.DataFrame
    checks: list[Check]
    notes: list[str] = field(default_factory=list)
    reference: str | None = None
    comparison: pd.DataFrame | None = None
    details: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.analysis.name

    @property
    def model(self) -> str:
        return self.analysis.model.name

    @property
    def outcomes(self) -> tuple[str, ...]:
        return self.analysis.outcomes

    @property
    def outcome(self) -> str:
        """The analysis's name (its outcome, for a single-outcome analysis)."""
        return self.analysis.name

    @property
    def data(self) -> OutcomeData | AnalysisData:
        """The counts: one outcome's, or the analysis's when it has several."""
        data = self.analysis.data
        return data.single if len(data.outcomes) == 1 else data

    @property
    def priors(self) -> dict[str, Prior]:
        return dict(self.analysis.priors)

    @property
    def failures(self) -> list[Check]:
        return failures(self.checks)

    @property
    def tree(self) -> xr.DataTree:
        """The fit as saved: the posterior's own groups, the groups beside it, and the
        counts (``observed_data``, ``constant_data``)."""
        tree = xr.DataTree.from_dict({**self.posterior.to_groups(), **self.groups,
                                      **data_groups(self.analysis.data)})
        tree.attrs.update(fit_attributes(self))
        return tree


#: For back-compatibility: a single-outcome analysis's fit.
OutcomeFit = AnalysisFit


def fit_attributes(fit: AnalysisFit) -> dict:
    """What a saved fit file says about itself."""
    # A list of one string would come back from netCDF as a string: JSON keeps it a list.
    return {"format": POSTERIOR_FORMAT, "analysis": fit.name, "outcome": fit.name,
            "outcomes": json.dumps(list(fit.outcomes)), "model": fit.model,
            "engine": fit.engine,
            "posterior_kind": fit.posterior.kind,
            "priors": "; ".join(f"{k} ~ {p}" for k, p in fit.analysis.priors.items())}


def data_groups(data: AnalysisData) -> dict[str, xr.Dataset]:
    """The counts, (outcome, study), with 0 of 0 where a study does not report an
    outcome, and each count's definition."""
    coords = {OUTCOME_DIM: list(data.outcomes), STUDY_DIM: list(data.studies)}
    definitions = np.full(data.events.shape, "", dtype=object)
    index = {s: i for i, s in enumerate(data.studies)}
    for j, block in enumerate(data.blocks):
        for study, definition in zip(block.studies, block.definitions, strict=True):
            definitions[j, index[study]] = definition
    dims = (OUTCOME_DIM, STUDY_DIM)
    return {"observed_data": xr.Dataset({"y": (dims, data.events)}, coords=coords),
            "constant_data": xr.Dataset({"n": (dims, data.totals),
                                         "definition": (dims, definitions.astype(str))},
                                        coords=coords)}


@dataclass
class FitResult:
    """All analyses of one run, with what is needed to reproduce it."""

    config: RunConfig
    table: StudyTable
    fits: dict[str, AnalysisFit]
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

    @cached_property
    def benefit_risk(self) -> pd.DataFrame:
        """Joint probabilities and net clinical benefit of the benefit and harm outcomes
        (see :mod:`bayes_dress.fitting.benefit_risk`); empty without both."""
        from bayes_dress.fitting.benefit_risk import benefit_risk_table

        return benefit_risk_table(list(self.fits.values()), self.config.benefit_risk)


def prior_groups(analysis: Analysis, seed: np.random.SeedSequence, n_draws: int
                 ) -> dict[str, xr.Dataset]:
    """Prior and prior-predictive draws, or nothing when a prior is improper."""
    model, priors, data = analysis.model, analysis.priors, analysis.data
    if not all(p.proper for p in priors.values()):
        return {}
    rng = np.random.default_rng(seed)
    draws = model.prior_draws(priors, data, rng, (1, n_draws))
    quantities = model.quantities_from(draws, data, rng, priors, conditioned=False)
    replicated = model.replicate(quantities, data, rng)
    return {"prior": analysis.dataset(quantities),
            "prior_predictive": analysis.dataset({"y": replicated})}


def fit_analysis(analysis: Analysis, *, settings: SamplerSettings,
                 thresholds: Sequence[float], engine: str = "nuts",
                 options: FitOptions | None = None) -> AnalysisFit:
    """Fit one analysis and summarise and check the fit.

    Parameters
    ----------
    analysis : Analysis
    settings : SamplerSettings
        MCMC settings; an engine that does not sample uses only the seed and chains x
        draws (the number of prior draws).
    thresholds : sequence of float
        Rates for the tail probabilities.
    engine : str
        ``"nuts"`` samples, and checks the draws against a reference engine; ``"exact"``
        integrates numerically (see :mod:`bayes_dress.engines.exact`).
    options : FitOptions, optional
        Compiled-model cache, padding and shared prior graphs (a sweep's), and whether
        an integrator measures its own error.

    Returns
    -------
    AnalysisFit
    """
    options = options or FitOptions()
    model, priors, name = analysis.model, analysis.priors, analysis.name
    chosen = get_engine(engine)
    reason = chosen.supports(model, priors)
    if reason is not None:
        raise SpecError(f"engine '{engine}' cannot fit model '{model.name}': {reason}")
    seeds = derive_seed(settings.seed, name).spawn(3)
    notes = list(analysis.data.notes)
    reference_fit, reference, reasons = None, None, []
    if chosen.needs_reference:
        reference, reasons = reference_for(model, priors, exclude=chosen.name)
    if reference is not None:
        # The reference first: it takes well under a second, and an improper posterior
        # must stop the fit before any sampling. With every prior proper the posterior
        # is proper, so if the reference cannot bound it (a very flat posterior) the
        # sampler still runs, unchecked, and says so.
        ref_options = FitOptions(refine=False, reference=True)
        if options.progress is not None:
            options.progress(f"{name}: {reference.name} engine (the reference the "
                             "draws are checked against)")
        try:
            reference_fit = reference.fit(analysis, settings=settings, seeds=seeds,
                                          options=ref_options)
            notes += reference_fit.notes
        except ImproperPosteriorError as err:
            if not all(p.proper for p in priors.values()):
                raise
            notes.append(f"not checked against the {reference.name} engine: {err}")
    fitted = chosen.fit(analysis, settings=settings, seeds=seeds, options=options)
    notes += fitted.notes
    groups = dict(fitted.groups)
    groups.update(prior_groups(analysis, seeds[2], settings.chains * settings.draws))
    prior = (DrawsPosterior(groups["prior"], outcomes=analysis.outcomes,
                            variables=[q.name for q in model.quantities if q.reported],
                            exclude=analysis.unreported())
             if "prior" in groups else None)
    if prior is None:
        improper = ", ".join(f"{k} ~ {p}" for k, p in priors.items() if not p.proper)
        notes.append(f"improper prior ({improper}): no prior draws, so no "
                     "prior-versus-posterior comparison")
    if options.progress is not None:
        options.progress(f"{name}: summaries and diagnostic checks")
    summary = summarize(fitted.posterior, analysis=name, prior=prior)
    checks = check_fit(fitted.evidence, summary, analysis=name)
    comparison = None
    if reference_fit is not None:
        comparison = compare(fitted.posterior, reference_fit.posterior, summary,
                             analysis=name)
        checks.append(agreement_check(comparison, analysis=name, reference=reference.name))
        if "importance" in reference_fit.evidence:
            checks.append(importance_check(reference_fit.evidence["importance"],
                                           analysis=name))
    elif chosen.needs_reference and reference is None:
        checks.append(no_reference_check(name, reasons))
        notes.append(checks[-1].detail)
    details = {"engine": fitted.details}
    if reference_fit is not None:
        details["reference"] = {"engine": reference.name, **reference_fit.details}
    return AnalysisFit(
        analysis=analysis, engine=chosen.name, posterior=fitted.posterior, prior=prior,
        groups=groups, summary=summary,
        probabilities=tail_probabilities(fitted.posterior, analysis=name,
                                         thresholds=thresholds),
        checks=checks, notes=notes, reference=reference.name if reference_fit else None,
        comparison=comparison, details=details)


def fit_outcome(data: OutcomeData, *, model: str | Model, priors: Mapping[str, Prior],
                settings: SamplerSettings, thresholds: Sequence[float],
                engine: str = "nuts", cache=None, n_slots: int | None = None,
                shared=None, check_grid: bool = True) -> AnalysisFit:
    """Fit one outcome's counts (a single-outcome analysis); see :func:`fit_analysis`.

    ``cache``, ``n_slots`` and ``shared`` are the sweep's compiled-model options, and
    ``check_grid`` whether the exact engine measures its grid error (see
    :class:`~bayes_dress.engines.base.FitOptions`).
    """
    model = get_model(model) if isinstance(model, str) else model
    analysis = Analysis(model, AnalysisData((data,)), priors)
    return fit_analysis(analysis, settings=settings, thresholds=thresholds, engine=engine,
                        options=FitOptions(cache=cache, n_slots=n_slots, shared=shared,
                                           refine=check_grid))


@dataclass(frozen=True)
class Prepared:
    """A run config validated against its data: the analyses a run will fit."""

    table: StudyTable
    model: Model
    priors: dict[str, Prior]
    analyses: tuple[Analysis, ...]


def resolve_outcomes(table: StudyTable, requested: Sequence[str] | None,
                     model: Model | None = None) -> tuple[str, ...]:
    """The outcomes to fit: as requested (a hyphen may stand for an underscore), else
    the model's or the package's defaults that the data have, else all."""
    if requested:
        if table.outcomes == (DEFAULT_OUTCOME,) and any(o not in table.outcomes
                                                        for o in requested):
            raise DataError(f"unknown outcome '{requested[0]}' in {table.path}: the table has "
                            f"no 'outcome' column, so its one outcome is called "
                            f"'{DEFAULT_OUTCOME}' (leave out --outcome, or add an "
                            "'outcome' column)")
        names = [canonical_name(o, table.outcomes, what="outcome", where=f" in {table.path}",
                                listed="available", error=DataError) for o in requested]
        return tuple(dict.fromkeys(names))
    wanted = (model.spec.default_outcomes if model is not None
              and model.spec.default_outcomes else DEFAULT_OUTCOMES)
    defaults = tuple(o for o in wanted if o in table.outcomes)
    if model is not None and model.n_outcomes > 1:
        if len(defaults) == model.n_outcomes:
            return defaults
        return table.outcomes[: model.n_outcomes]
    return defaults or table.outcomes


def analyses_of(model: Model, outcomes: Sequence[str], table: StudyTable) -> list[tuple]:
    """The outcome groups of a run: each outcome alone, or all of them together for a
    model of several outcomes (which must then be exactly as many as it takes)."""
    if model.n_outcomes == 1:
        return [(o,) for o in outcomes]
    if len(outcomes) != model.n_outcomes:
        raise DataError(f"model '{model.name}' takes {model.n_outcomes} outcomes at once; "
                        f"{len(outcomes)} given ({', '.join(outcomes)}); name them with "
                        f"--outcome, e.g. --outcome {' --outcome '.join(table.outcomes[:2])}")
    return [tuple(outcomes)]


def prepare(config: RunConfig) -> Prepared:
    """Validate everything a run needs before any fitting starts."""
    table = load_table(config.data, columns=config.columns)
    model = get_model(config.model)
    priors = resolve_priors(model.spec, config.priors)
    outcomes = resolve_outcomes(table, config.outcomes, model)
    # Both checks return the names as the table spells them (hyphens, case).
    definitions = check_definitions(config.definitions, outcomes)
    exclude = check_exclusions(table, config.exclude)
    analyses = tuple(
        Analysis(model, select_analysis(table, group, definitions=definitions,
                                        exclude=exclude), priors)
        for group in analyses_of(model, outcomes, table))
    return Prepared(table=table, model=model, priors=priors, analyses=analyses)


def run_fit(config: RunConfig | None = None, *, cache=None,
            prepared: Prepared | None = None, progress=None) -> FitResult:
    """Fit every analysis of a run as ``bayes-dress fit`` does, without writing files.

    Parameters
    ----------
    config : RunConfig, optional
        Defaults: the bundled data, the beta-binomial model, default priors.
    cache : CompiledModelCache, optional
    prepared : Prepared, optional
        What :func:`prepare` returned for ``config``, so the data are read only once.
    progress : callable, optional
        ``progress(message)`` is called as each analysis starts (the CLI shows it).

    Returns
    -------
    FitResult
    """
    config = config or RunConfig()
    start = time.perf_counter()
    prepared = prepared or prepare(config)
    fits = {}
    for analysis in prepared.analyses:
        if progress is not None:
            progress(f"fitting {analysis.name} ({config.engine})")
        fits[analysis.name] = fit_analysis(
            analysis, settings=config.sampler, thresholds=config.thresholds,
            engine=config.engine, options=FitOptions(cache=cache, progress=progress))
    return FitResult(config=config, table=prepared.table, fits=fits,
                     wall_time=time.perf_counter() - start)

