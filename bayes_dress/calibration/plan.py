"""Planning a calibration: the analyses to simulate, and one task per replication.

Each replication draws its own "true" values and data from its own random stream
(:func:`bayes_dress.fitting.fit.derive_seed` of the seed, ``"calibrate"``, the
analysis and the replication's number), here in the calling process, so that every
task carries everything it needs and its result cannot depend on where it runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from bayes_dress.data.selection import AnalysisData, OutcomeData
from bayes_dress.data.table import StudyTable
from bayes_dress.errors import SpecError
from bayes_dress.fitting.fit import derive_seed, prepare
from bayes_dress.models import Model, get_model
from bayes_dress.models.analysis import Analysis
from bayes_dress.posterior.base import Key, key_label
from bayes_dress.posterior.draws import DrawsPosterior
from bayes_dress.spec.config import RunConfig, SamplerSettings
from bayes_dress.spec.models import resolve_priors
from bayes_dress.spec.priors import Prior

#: Calibration defaults, smaller than a fit's: every replication is a whole fit.
DEFAULT_REPLICATIONS = 200
DEFAULT_DRAWS = 1000
DEFAULT_TUNE = 500
DEFAULT_CHAINS = 2
#: The family-wise probability that a calibrated engine is called calibrated on every
#: quantity: each of K quantities has two tests (the simultaneous band, the extremes),
#: each at 1 - (1 - LEVEL) / (2 K) (Bonferroni).
DEFAULT_LEVEL = 0.95
#: The per-quantity simultaneous band drawn in every panel.
DISPLAY_LEVEL = 0.95
#: Study rates are plotted (always tested) when an analysis has at most this many studies.
MAX_PLOTTED_STUDIES = 8


def default_settings(seed: int | None = None) -> SamplerSettings:
    """The calibration's sampler defaults: 2 chains x 1000 draws after 500 tuning steps."""
    settings = SamplerSettings(draws=DEFAULT_DRAWS, tune=DEFAULT_TUNE, chains=DEFAULT_CHAINS)
    return settings if seed is None else dataclasses.replace(settings, seed=seed)


@dataclass(frozen=True)
class Replication:
    """One replication of one analysis: simulated counts and the values that made them,
    to be fitted (a task for :mod:`bayes_dress.executors`).

    Attributes
    ----------
    index : int
        The replication's number (0-based), the same across analyses.
    analysis : str
        The analysis's name (its outcome).
    model : str
    data : AnalysisData
        The simulated counts: the user's studies and totals, simulated events.
    priors : mapping of str to Prior
        The priors the fit uses.
    truth : dict of Key to float
        The value of every reported quantity that the counts were simulated from.
    engine : str
    settings : SamplerSettings
        With this replication's own seed, and one core per fit.
    rank_seed : numpy.random.SeedSequence
        For breaking ties and randomising ranks (NUTS).
    """

    index: int
    analysis: str
    model: str
    data: AnalysisData
    priors: Mapping[str, Prior]
    truth: dict[Key, float]
    engine: str
    settings: SamplerSettings
    rank_seed: np.random.SeedSequence

    def key(self):
        """The compiled model a NUTS fit needs (one for every replication of an
        analysis shape); None for the exact engine."""
        if self.engine != "nuts":
            return None
        from bayes_dress.engines.nuts import structure_key

        return structure_key(get_model(self.model), self.priors, self.data.n_studies)

    @property
    def events(self) -> np.ndarray:
        """Simulated events, (outcome, study); 0 where a study does not report one."""
        return self.data.events


@dataclass
class CalibrationPlan:
    """Everything a calibration will do, validated, with every replication drawn.

    Attributes
    ----------
    model : Model
    priors : dict of str to Prior
        Fitted.
    simulate_priors : dict of str to Prior
        Simulated from (the fitted ones unless ``--simulate-prior`` changed some).
    engine : str
    settings : SamplerSettings
        The base settings (each replication's seed is derived from ``settings.seed``).
    replications : int
    level : float
        Family-wise level of the verdicts.
    analyses : tuple of Analysis
        The user's analyses whose shapes are simulated.
    tasks : list of Replication
        Replication-major: replication 0 of every analysis, then 1, ...
    quantities : dict of str to list of Key
        Per analysis, the quantities ranked (the point masses left out).
    notes : list of str
    config : RunConfig
        As given (for the manifest).
    table : StudyTable
    """

    model: Model
    priors: dict[str, Prior]
    simulate_priors: dict[str, Prior]
    engine: str
    settings: SamplerSettings
    replications: int
    level: float
    analyses: tuple[Analysis, ...]
    tasks: list[Replication]
    quantities: dict[str, list[Key]]
    notes: list[str] = field(default_factory=list)
    config: RunConfig | None = None
    table: StudyTable | None = None

    @property
    def seed(self) -> int:
        return self.settings.seed

    @property
    def n_quantities(self) -> int:
        return sum(len(k) for k in self.quantities.values())

    @property
    def verdict_level(self) -> float:
        """Each test's level: Bonferroni over two tests (band, tails) per quantity."""
        return 1.0 - (1.0 - self.level) / (2 * max(1, self.n_quantities))

    @property
    def misspecified(self) -> list[str]:
        """Parameters whose simulating prior differs from the fitted one."""
        return [k for k in self.priors if str(self.priors[k]) != str(self.simulate_priors[k])]


def _refuse_improper(priors: Mapping[str, Prior], what: str) -> None:
    improper = [f"{name} ~ {prior}" for name, prior in priors.items() if not prior.proper]
    if improper:
        raise SpecError(f"calibration needs draws from the {what} prior, and "
                        f"{', '.join(improper)} is improper (it has none): give a proper "
                        "prior with --prior")


def _shape(analysis: Analysis) -> tuple:
    """What a simulated table of an analysis looks like: its outcomes' study sizes."""
    data = analysis.data
    return (data.totals.tobytes(), data.totals.shape, data.studies)


def truth_values(analysis: Analysis, quantities: Mapping[str, np.ndarray]
                 ) -> dict[Key, float]:
    """Every reported scalar of one draw (arrays shaped (1, 1, ...)), by key, the keys
    a fit's posterior has."""
    model = analysis.model
    posterior = DrawsPosterior(analysis.dataset(quantities), outcomes=analysis.outcomes,
                               variables=[q.name for q in model.quantities if q.reported
                                          and q.name in quantities],
                               exclude=analysis.unreported())
    return {key: float(posterior.draws(key)[0, 0]) for key in posterior.keys}


def simulated_data(analysis: Analysis, events: np.ndarray) -> AnalysisData:
    """The analysis's counts with ``events`` (the model's observation dims) in place of
    the observed ones; studies, totals and definitions kept, provenance dropped."""
    data = analysis.data
    if analysis.model.n_outcomes == 1:
        events = np.asarray(events).reshape(1, -1)
    index = {s: i for i, s in enumerate(data.studies)}
    blocks = []
    for j, block in enumerate(data.blocks):
        columns = [index[s] for s in block.studies]
        blocks.append(OutcomeData(outcome=block.outcome, studies=block.studies,
                                  events=np.asarray(events[j, columns], dtype=np.int64),
                                  totals=np.asarray(block.totals, dtype=np.int64),
                                  definitions=block.definitions))
    return AnalysisData(tuple(blocks))


def simulate(analysis: Analysis, priors: Mapping[str, Prior], seed: np.random.SeedSequence
             ) -> tuple[AnalysisData, dict[Key, float]]:
    """Draw the parameters from ``priors``, the derived quantities (study rates, the
    new study's rate) given them, and counts of the analysis's shape."""
    model, data = analysis.model, analysis.data
    rng = np.random.default_rng(seed)
    draws = model.prior_draws(priors, data, rng, (1, 1))
    quantities = model.quantities_from(draws, data, rng, priors, conditioned=False)
    events = model.replicate(quantities, data, rng)[0, 0]
    return simulated_data(analysis, events), truth_values(analysis, quantities)


def plan_calibration(config: RunConfig | None = None, *,
                     replications: int = DEFAULT_REPLICATIONS,
                     simulate_priors: Mapping[str, str | Prior] | None = None,
                     level: float = DEFAULT_LEVEL) -> CalibrationPlan:
    """Validate a calibration and draw its replications.

    Parameters
    ----------
    config : RunConfig, optional
        Model, data, outcomes, priors (the fitted ones), engine and sampler settings, as
        for ``bayes-dress fit``. Default: the bundled data, the beta-binomial model and
        its default priors, NUTS with :func:`default_settings`.
    replications : int
        Simulated tables per analysis.
    simulate_priors : mapping of str to prior, optional
        Simulate from these priors instead of the fitted ones (for the named
        parameters): a deliberately miscalibrated setting, which the verdicts should
        flag.
    level : float
        Family-wise probability of calling a calibrated engine calibrated on every
        quantity.

    Returns
    -------
    CalibrationPlan

    Raises
    ------
    SpecError
        An improper prior (fitted or simulated: SBC needs prior draws), an engine that
        cannot fit the model, fewer than 2 replications, a level outside (0, 1).
    """
    config = config or RunConfig(sampler=default_settings())
    if not isinstance(replications, int) or isinstance(replications, bool) \
            or replications < 2:
        raise SpecError(f"calibration needs at least 2 replications, got {replications!r}")
    if not 0.0 < float(level) < 1.0:
        raise SpecError(f"the calibration level must be strictly between 0 and 1, got "
                        f"{level!r}")
    model = get_model(config.model)
    priors = resolve_priors(model.spec, config.priors)
    _refuse_improper(priors, "fitted")
    simulate_from = resolve_priors(model.spec, {**config.priors, **(simulate_priors or {})})
    _refuse_improper(simulate_from, "simulating")
    from bayes_dress.engines import get_engine

    reason = get_engine(config.engine).supports(model, priors)
    if reason is not None:
        raise SpecError(f"engine '{config.engine}' cannot fit model '{model.name}': {reason}")
    prepared = prepare(config)
    notes: list[str] = []
    analyses: list[Analysis] = []
    shapes: dict[tuple, Analysis] = {}
    for analysis in prepared.analyses:
        same = shapes.get(_shape(analysis))
        if same is not None:
            notes.append(f"{analysis.name} has the study sizes of {same.name}: the "
                         f"calibration of {same.name} covers it")
            continue
        shapes[_shape(analysis)] = analysis
        analyses.append(analysis)
    settings = dataclasses.replace(config.sampler, cores=1)
    tasks = []
    for index in range(replications):
        for analysis in analyses:
            stream = derive_seed(settings.seed, "calibrate", analysis.name, str(index))
            simulation, fitting, ranking = stream.spawn(3)
            data, truth = simulate(analysis, simulate_from, simulation)
            seed = int(fitting.generate_state(1)[0])
            tasks.append(Replication(
                index=index, analysis=analysis.name, model=model.name, data=data,
                priors=priors, truth=truth, engine=config.engine,
                settings=dataclasses.replace(settings, seed=seed), rank_seed=ranking))
    quantities: dict[str, list[Key]] = {}
    for analysis in analyses:
        mine = [t for t in tasks if t.analysis == analysis.name]
        keys = list(mine[0].truth)
        constant = [k for k in keys if len({t.truth[k] for t in mine}) == 1]
        if constant:
            notes.append(f"{analysis.name}: {', '.join(key_label(k) for k in constant)} "
                         "take one value under the prior (a point mass): not ranked")
        quantities[analysis.name] = [k for k in keys if k not in constant]
    misspecified = [k for k in priors if str(priors[k]) != str(simulate_from[k])]
    if misspecified:
        notes.append("simulated from a prior other than the fitted one ("
                      + "; ".join(f"{k} ~ {simulate_from[k]} simulated, {priors[k]} fitted"
                                  for k in misspecified)
                      + "): the ranks are expected to be non-uniform")
    return CalibrationPlan(model=model, priors=priors, simulate_priors=simulate_from,
                           engine=config.engine, settings=settings,
                           replications=replications, level=float(level),
                           analyses=tuple(analyses), tasks=tasks, quantities=quantities,
                           notes=notes, config=config, table=prepared.table)


def plotted(keys: Sequence[Key], n_studies: int) -> list[Key]:
    """The quantities drawn in the plots: all, or those without a study when there are
    more than :data:`MAX_PLOTTED_STUDIES` studies."""
    if n_studies <= MAX_PLOTTED_STUDIES:
        return list(keys)
    return [k for k in keys if not k[2]]
