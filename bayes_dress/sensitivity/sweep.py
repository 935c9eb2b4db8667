"""A sensitivity sweep end to end in memory: spec -> scenarios -> fits -> tables.

The Python face of ``bayes-dress sensitivity``; nothing here writes files (see
:mod:`bayes_dress.sensitivity.outputs`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import pandas as pd

from bayes_dress.data.selection import check_definitions, check_exclusions
from bayes_dress.data.table import StudyTable
from bayes_dress.errors import SpecError, choices
from bayes_dress.fitting.fit import prepare
from bayes_dress.models import get_model
from bayes_dress.sensitivity.psense import PSENSE_COLUMNS
from bayes_dress.sensitivity.runner import Progress, Task, TaskResult, make_tasks, run_tasks
from bayes_dress.sensitivity.spec import (
    Headline,
    Scenario,
    SweepSpec,
    check_outcomes,
    expand,
    headlines_for,
)
from bayes_dress.sensitivity.tables import (
    benefit_risk_probabilities,
    probability_table,
    robustness_table,
    sensitivity_table,
)
from bayes_dress.spec.config import RunConfig
from bayes_dress.spec.models import get_model_spec


@dataclass
class SweepPlan:
    """Everything a sweep will fit, validated before any fitting starts."""

    spec: SweepSpec
    config: RunConfig
    table: StudyTable
    outcomes: tuple[str, ...]
    scenarios: list[Scenario]
    headlines: tuple[Headline, ...]
    tasks: list[Task]

    def structures_to_compile(self) -> list[str]:
        """The models (one entry per compiled structure) that no fit on this machine has
        compiled before: each costs a first compile (10-60 s) before its fits run."""
        from bayes_dress.engines.nuts import compiled_before

        structures = {t.key(): t.scenario.model for t in self.tasks
                      if t.data is not None and t.config.engine == "nuts"}
        return sorted(model for key, model in structures.items()
                      if not compiled_before(get_model(model), key))


@dataclass
class SweepResult:
    """The fits of a sweep and the tables made from them."""

    plan: SweepPlan
    results: list[TaskResult]
    wall_time: float

    @cached_property
    def sensitivity(self) -> pd.DataFrame:
        return sensitivity_table(self.results)

    @cached_property
    def probabilities(self) -> pd.DataFrame:
        """Each headline probability per scenario, and the benefit-risk probabilities
        (joint, and P(net benefit > 0)) where both outcomes are analysed."""
        table = probability_table(self.results, self.plan.headlines)
        extra = benefit_risk_probabilities(self.results, self.plan.config.benefit_risk,
                                           self.plan.spec.benefit_risk_weights)
        return pd.concat([table, extra], ignore_index=True) if not extra.empty else table

    @cached_property
    def robustness(self) -> pd.DataFrame:
        return robustness_table(self.probabilities)

    @cached_property
    def psense(self) -> pd.DataFrame:
        tables = [r.psense for r in self.results if r.psense is not None]
        return (pd.concat(tables, ignore_index=True) if tables
                else pd.DataFrame(columns=PSENSE_COLUMNS))

    @property
    def flagged(self) -> list[TaskResult]:
        """Fits that failed a diagnostic or could not be fitted."""
        return [r for r in self.results if r.status != "ok"]

    @cached_property
    def extra_tables(self) -> dict[str, pd.DataFrame]:
        """Tables some models add per fit (a joint model's benefit-risk table), with the
        scenario columns in front, by file name."""
        found: dict[str, list[pd.DataFrame]] = {}
        for result in self.results:
            for name, frame in result.tables.items():
                frame = frame.copy()
                frame.insert(0, "label", result.scenario.label)
                frame.insert(0, "scenario", result.scenario.id)
                frame.insert(2, "status", result.status)
                found.setdefault(name, []).append(frame)
        return {name: pd.concat(frames, ignore_index=True) for name, frames in found.items()}


def plan_sweep(spec: SweepSpec, *, config: RunConfig | None = None,
               thresholds: Sequence[float] | None = None) -> SweepPlan:
    """Expand ``spec`` into fits; ``config`` (default: the spec's primary analysis)
    carries command-line overrides, and ``thresholds`` replaces the headline ones."""
    config = config or spec.primary
    # The primary model (perhaps a --model override) is always one of the sweep's.
    config = config.replace(model=get_model_spec(config.model).name)
    spec = dataclasses.replace(spec, models=tuple(dict.fromkeys([config.model,
                                                                 *spec.models])))
    # A prior override applies to every model of the sweep that has the parameter.
    parameters = {p for m in spec.models for p in get_model_spec(m).parameters}
    unknown = sorted(set(config.priors) - parameters)
    if unknown:
        raise SpecError(f"prior for '{unknown[0]}': no model of the sweep has that "
                        f"parameter; parameters: {choices(sorted(parameters))}")
    primary_parameters = get_model_spec(config.model).parameters
    prepared = prepare(config.replace(priors={
        k: v for k, v in config.priors.items() if k in primary_parameters}))
    table = prepared.table
    check_outcomes(spec, table, headlines=not thresholds and not spec.bundled)
    outcomes = tuple(o for a in prepared.analyses for o in a.outcomes)
    # Names as the table spells them, so that a scenario compares them as the fits do.
    config = config.replace(definitions=check_definitions(config.definitions, outcomes),
                            exclude=check_exclusions(table, config.exclude))
    scenarios = expand(spec, table, base=config, outcomes=outcomes)
    headlines = headlines_for(spec, outcomes, thresholds)
    wanted: dict[str, list[float]] = {}
    for headline in headlines:
        wanted.setdefault(headline.outcome, []).extend(headline.thresholds)
    # Separate fits of the benefit and the harm outcome give the joint probability under
    # independence from their tail probabilities at the benefit-risk thresholds.
    br = config.benefit_risk
    wanted.setdefault(br.benefit, []).append(br.benefit_threshold)
    wanted.setdefault(br.risk, []).append(br.risk_threshold)
    tasks = make_tasks(scenarios, table, base=config, thresholds=wanted, outcomes=outcomes)
    return SweepPlan(spec=spec, config=config, table=table, outcomes=outcomes,
                     scenarios=scenarios, headlines=headlines, tasks=tasks)


def run_sweep(plan: SweepPlan, *, jobs: int | None = None, scheduler: str | None = None,
              progress: Progress | None = None) -> SweepResult:
    """Fit every scenario of ``plan``.

    Parameters
    ----------
    plan : SweepPlan
        From :func:`plan_sweep`.
    jobs : int, optional
        Worker processes; default one per core. ``1`` fits in this process.
    scheduler : str, optional
        ``"local"`` (a Dask LocalCluster sized to the machine) or the address of a
        running Dask scheduler (``tcp://host:port``); default: this machine's worker
        processes. The results are the same whichever runs them.
    progress : callable, optional
        Called with each :class:`TaskResult` as it finishes.

    Returns
    -------
    SweepResult
    """
    start = time.perf_counter()
    results = run_tasks(plan.tasks, jobs=jobs, scheduler=scheduler, progress=progress)
    return SweepResult(plan=plan, results=results, wall_time=time.perf_counter() - start)
