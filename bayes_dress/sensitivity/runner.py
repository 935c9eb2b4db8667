"""Running a sweep: every (scenario, analysis) fit, on an executor, sharing compiled models.

Each fit is :func:`bayes_dress.fitting.fit_analysis`, exactly as ``bayes-dress fit`` runs
it (same seeds, sampler settings and diagnostics), so a one-scenario sweep reproduces a
fit. Speed comes from not recompiling: a fit's compiled model depends only on its
structure (:func:`bayes_dress.engines.nuts.structure_key`, the task's ``key()``), prior
families share switch graphs, and every fit is padded to the sweep's largest study
count, so the default sweep compiles one model per model type (and the primary analysis
its own, to be fitted exactly as ``fit`` fits it). Workers keep their compiled models,
and the executor (:mod:`bayes_dress.executors`: this machine's processes, or Dask) sends
each worker fits of the structures it already holds. Every scenario uses the same seed:
common random numbers make differences between scenarios less noisy than independent
runs would.
"""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from bayes_dress.checks.diagnostics import checks_to_records
from bayes_dress.data.selection import AnalysisData, select_analysis
from bayes_dress.data.table import StudyTable
from bayes_dress.engines.base import FitOptions
from bayes_dress.errors import BayesDressError
from bayes_dress.fitting.fit import analyses_of, fit_analysis
from bayes_dress.models import get_model
from bayes_dress.models.analysis import Analysis
from bayes_dress.sensitivity.spec import Scenario
from bayes_dress.spec.config import RunConfig
from bayes_dress.spec.models import get_model_spec
from bayes_dress.spec.priors import can_share


@dataclass(frozen=True)
class Task:
    """One fit of a sweep: a scenario's settings applied to one analysis (an outcome, or
    the outcomes a joint model takes together)."""

    index: int
    scenario: Scenario
    outcomes: tuple[str, ...]
    data: AnalysisData | None
    #: Why the counts could not be selected (then ``data`` is None).
    error: str | None
    config: RunConfig
    n_slots: int
    #: Prior families sharing one compiled graph, per parameter.
    shared: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def outcome(self) -> str:
        """The analysis's name (its outcome, for a single-outcome model)."""
        return "+".join(self.outcomes)

    def key(self):
        """What a worker must prepare to run this task: a compiled model (NUTS), or the
        model's warmed-up exact engine (its compiled quadrature and caches)."""
        if self.data is None:
            return None
        if self.config.engine != "nuts":
            return (self.config.engine, self.scenario.model)
        from bayes_dress.engines.nuts import structure_key

        return structure_key(get_model(self.scenario.model), self.scenario.priors,
                             self.n_slots, self.shared)


@dataclass
class TaskResult:
    """What a sweep keeps of one fit (``outcome``: the analysis's name)."""

    index: int
    scenario: Scenario
    outcome: str
    #: "ok", "diagnostics failed" or "not fitted".
    status: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    summary: pd.DataFrame | None = None
    probabilities: pd.DataFrame | None = None
    checks: list[dict] = field(default_factory=list)
    n_studies: int = 0
    definitions: tuple[str, ...] = ()
    psense: pd.DataFrame | None = None
    seconds: float = 0.0
    #: The analysis's outcomes, and extra tables (benefit-risk) by name.
    outcomes: tuple[str, ...] = ()
    tables: dict = field(default_factory=dict)


def make_tasks(scenarios: Sequence[Scenario], table: StudyTable, *, base: RunConfig,
               thresholds: Mapping[str, Sequence[float]],
               outcomes: Sequence[str] = ()) -> list[Task]:
    """One task per scenario and analysis, with its counts selected (or why not);
    ``outcomes`` are the sweep's, which a joint model takes together."""
    all_outcomes = tuple(outcomes) or tuple(dict.fromkeys(
        o for s in scenarios for o in s.outcomes))
    tasks = []
    for scenario in scenarios:
        model = get_model(scenario.model)
        outcomes = scenario.outcomes if model.n_outcomes == 1 else all_outcomes
        for group in analyses_of(model, outcomes, table):
            try:
                data, error = select_analysis(
                    table, group, definitions=scenario.definitions,
                    exclude=scenario.exclude), None
            except BayesDressError as err:
                data, error = None, str(err)
            wanted = tuple(sorted({*base.thresholds,
                                   *(t for o in group for t in thresholds.get(o, ()))}))
            config = base.replace(model=scenario.model, thresholds=wanted)
            tasks.append(Task(index=len(tasks), scenario=scenario, outcomes=tuple(group),
                              data=data, error=error, config=config, n_slots=0))
    # One compiled model per model type where possible: every fit padded to the
    # largest study count, and the prior families a model's fits use for a parameter
    # held in one graph (those that can share it; the rest get graphs of their own).
    n_slots = max((t.data.n_studies for t in tasks if t.data is not None), default=0)
    families: dict[tuple[str, str], set[str]] = defaultdict(set)

    def shareable(task: Task) -> list[tuple[str, str]]:
        parameters = get_model_spec(task.scenario.model).parameters
        return [(name, prior.family) for name, prior in task.scenario.priors.items()
                if can_share(prior.family, parameters[name].support)]

    for task in tasks:
        for name, family in shareable(task):
            families[(task.scenario.model, name)].add(family)

    def shared(task: Task) -> dict[str, tuple[str, ...]]:
        together = {name: families[(task.scenario.model, name)]
                    for name, _ in shareable(task)}
        return {name: tuple(sorted(f)) for name, f in together.items() if len(f) > 1}

    # The primary analysis is fitted exactly as `bayes-dress fit` fits it (its own graph,
    # no padding), so its numbers are the run's, draw for draw: a report of a run and its
    # sweep then shows one value per quantity. The rest share graphs for speed.
    return [dataclasses.replace(t, n_slots=t.data.n_studies, shared={})
            if t.scenario.primary and t.data is not None
            else dataclasses.replace(t, n_slots=n_slots, shared=shared(t)) for t in tasks]


def run_task(task: Task, cache) -> TaskResult:
    """Fit one task; a failure becomes a flagged result, never an exception."""
    from bayes_dress.sensitivity.psense import power_scaling

    start = time.perf_counter()
    result = TaskResult(index=task.index, scenario=task.scenario, outcome=task.outcome,
                        status="not fitted", outcomes=task.outcomes)
    if task.data is None:
        result.problems.append(task.error or "no data")
        return result
    result.n_studies = task.data.n_studies
    result.definitions = tuple(d for b in task.data.blocks for d in b.definitions)
    config = task.config
    try:
        analysis = Analysis(get_model(task.scenario.model), task.data, task.scenario.priors)
        fit = fit_analysis(analysis, settings=config.sampler, thresholds=config.thresholds,
                           engine=config.engine,
                           options=FitOptions(cache=cache, n_slots=task.n_slots,
                                              shared=task.shared,
                                              refine=task.scenario.primary))
    except BayesDressError as err:  # e.g. an improper posterior
        result.problems.append(str(err))
        result.seconds = time.perf_counter() - start
        return result
    result.summary, result.probabilities = fit.summary, fit.probabilities
    result.notes = list(fit.notes)
    if len(fit.outcomes) > 1:
        from bayes_dress.fitting.benefit_risk import benefit_risk_table

        table = benefit_risk_table([fit], config.benefit_risk)
        if not table.empty:
            result.tables["benefit_risk.csv"] = table
        if "rho" in fit.priors and task.data.n_studies < 2:
            result.notes.append("one study left: the data say nothing about the "
                                "correlation rho of the outcomes (its posterior is its "
                                "prior), so every joint result here restates that prior")
    result.checks = checks_to_records(fit.checks)
    result.problems = [c.message() for c in fit.failures]
    result.status = "diagnostics failed" if fit.failures else "ok"
    if task.scenario.primary:  # prior sensitivity of the primary analysis
        result.psense = power_scaling(fit)
    result.seconds = time.perf_counter() - start
    return result


class WorkerContext:
    """What a worker process keeps between fits: its compiled models; each NUTS fit
    samples its chains on one core (the workers already fill the cores)."""

    cores: int | None = 1

    def __init__(self):
        from bayes_dress.engines.nuts import CompiledModelCache

        self.cache = CompiledModelCache()


class InlineContext(WorkerContext):
    """Fits in this process: the process-wide compiled models, chains on every core."""

    cores = None

    def __init__(self):
        from bayes_dress.engines.nuts import COMPILED_MODELS

        self.cache = COMPILED_MODELS


def fit_task(task: Task, context: WorkerContext) -> TaskResult:
    """One task on an executor (module level, so that any executor can run it)."""
    if task.config.engine == "nuts" and context.cores is not None:
        task = dataclasses.replace(
            task, config=task.config.replace(sampler_cores=context.cores))
    return run_task(task, context.cache)


def _not_run(task: Task, reason: str) -> TaskResult:
    """A task whose worker died twice (or that raised): flagged, never an exception."""
    return TaskResult(index=task.index, scenario=task.scenario, outcome=task.outcome,
                      status="not fitted", outcomes=task.outcomes,
                      problems=[f"not run: {reason}"])


Progress = Callable[[TaskResult], None]


def run_tasks(tasks: Sequence[Task], *, jobs: int | None = None,
              scheduler: str | None = None, progress: Progress | None = None
              ) -> list[TaskResult]:
    """Run every task on an executor (:mod:`bayes_dress.executors`).

    Parameters
    ----------
    tasks : sequence of Task
    jobs : int, optional
        Worker processes on this machine (default one per core); ``1`` runs in this
        process, reusing the models it has compiled before.
    scheduler : str, optional
        ``"local"`` (a Dask LocalCluster) or a Dask scheduler's address; default: this
        machine's worker processes.
    progress : callable, optional
        Called with each result as it arrives.

    Returns
    -------
    list of TaskResult
        In task order, the same for every executor (each fit owns its seeds).
    """
    from bayes_dress.executors import InlineExecutor, get_executor

    with get_executor(scheduler, jobs=jobs, n_tasks=len(tasks)) as executor:
        factory = InlineContext if isinstance(executor, InlineExecutor) else WorkerContext
        report = (lambda result, done, total: progress(result)) if progress else None
        return executor.execute(list(tasks), fit_task, context_factory=factory,
                                progress=report, on_failure=_not_run)
