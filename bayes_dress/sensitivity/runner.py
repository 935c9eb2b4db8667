"""Running a sweep: every (scenario, outcome) fit, in parallel, sharing compiled models.

Each fit is :func:`bayes_dress.fitting.fit_analysis`, exactly as ``bayes-dress fit`` runs
it (same seeds, sampler settings and diagnostics), so a one-scenario sweep reproduces a
fit. Speed comes from not recompiling: a fit's compiled model depends only on its
structure (:func:`bayes_dress.engines.nuts.structure_key`), prior families share switch
graphs, and every fit is padded to the sweep's largest study count, so the default sweep
compiles one model per model type. Worker processes keep their own compiled models, and
the scheduler sends each worker fits of the structures it has already compiled, so a
structure is compiled once unless many of its fits remain when a worker falls idle.
Every scenario uses the same seed: common random numbers make differences between
scenarios less noisy than independent runs would.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import time
import traceback
from collections import defaultdict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import wait

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

#: A worker with nothing of its own left compiles a structure another worker holds
#: when at least this many of its fits are still waiting. By then the other worker has
#: put it in the disk cache (bayes_dress.engines.nuts.compiled), so this compile is a load of about
#: 1 s, two to four fits' time, while an idle worker would leave a core unused.
DUPLICATE_COMPILE_MIN_TASKS = 4


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


def _worker(connection, cores_per_fit: int) -> None:
    # One BLAS thread per worker: the workers already fill the cores, and OpenBLAS's own
    # threads (one per core by default) would only contend with them.
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    from bayes_dress.engines.nuts import CompiledModelCache

    cache = CompiledModelCache()
    while True:
        task = connection.recv()
        if task is None:
            return
        if task.config.engine == "nuts":
            task = dataclasses.replace(
                task, config=task.config.replace(sampler_cores=cores_per_fit))
        try:
            result = run_task(task, cache)
        except Exception:
            result = TaskResult(index=task.index, scenario=task.scenario,
                                outcome=task.outcome, status="not fitted",
                                problems=["internal error: "
                                          + traceback.format_exc(limit=3).replace("\n", " ")])
        connection.send(result)


Progress = Callable[[TaskResult], None]


def run_tasks(tasks: Sequence[Task], *, jobs: int | None = None,
              progress: Progress | None = None) -> list[TaskResult]:
    """Run every task, in ``jobs`` worker processes (default: one per core).

    Parameters
    ----------
    tasks : sequence of Task
    jobs : int, optional
        Worker processes. ``1`` runs in this process, reusing the models it has
        compiled before (:data:`bayes_dress.engines.nuts.COMPILED_MODELS`).
    progress : callable, optional
        Called with each result as it arrives.

    Returns
    -------
    list of TaskResult
        In task order.
    """
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(tasks)))
    if jobs == 1:
        from bayes_dress.engines.nuts import COMPILED_MODELS

        results = []
        for task in tasks:
            results.append(run_task(task, COMPILED_MODELS))
            if progress:
                progress(results[-1])
        return results
    return _run_parallel(tasks, jobs, progress)


def _run_parallel(tasks: Sequence[Task], jobs: int, progress: Progress | None
                  ) -> list[TaskResult]:
    # fork: workers inherit the imported libraries instead of importing them again
    # (seconds each); nothing has started sampling threads in this process yet.
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    pending: dict[object, deque[Task]] = defaultdict(deque)
    for task in tasks:
        pending[task.key()].append(task)
    workers, connections, held = [], [], []
    cores_per_fit = 1
    for _ in range(jobs):
        parent, child = context.Pipe()
        process = context.Process(target=_worker, args=(child, cores_per_fit), daemon=True)
        process.start()
        child.close()
        workers.append(process)
        connections.append(parent)
        held.append(set())

    # A worker left without a task stays idle: every structure with fits waiting is
    # then held by a busy worker, which takes them (pending only shrinks, and a
    # structure nobody holds is always taken), so all fits run.
    def next_task(worker: int) -> Task | None:
        ready = [k for k in pending if pending[k]]
        if not ready:
            return None
        own = [k for k in ready if k is None or k in held[worker]]
        fresh = [k for k in ready if not any(k in h for h in held)]
        crowded = [k for k in ready if len(pending[k]) >= DUPLICATE_COMPILE_MIN_TASKS]
        for choice in (own, fresh, crowded):
            if choice:
                key = max(choice, key=lambda k: len(pending[k]))
                if key is not None:
                    held[worker].add(key)
                return pending[key].popleft()
        return None

    results: dict[int, TaskResult] = {}
    busy: dict[object, int] = {}
    try:
        for worker, connection in enumerate(connections):
            task = next_task(worker)
            if task is not None:
                connection.send(task)
                busy[connection] = worker
        while busy:
            for connection in wait(list(busy)):
                worker = busy.pop(connection)
                try:
                    result = connection.recv()
                except EOFError:
                    raise BayesDressError("a sweep worker process died (out of memory?); "
                                          "rerun with --jobs 1 to fit in this process") from None
                results[result.index] = result
                if progress:
                    progress(result)
                task = next_task(worker)
                if task is not None:
                    connection.send(task)
                    busy[connection] = worker
    finally:
        for connection in connections:
            try:
                connection.send(None)
            except (BrokenPipeError, OSError):
                pass
        for process in workers:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
    return [results[t.index] for t in tasks]
