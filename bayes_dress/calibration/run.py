"""Running a calibration: every replication fitted through an executor, then judged.

Each replication is :func:`bayes_dress.fitting.fit.fit_analysis`, as ``bayes-dress fit``
runs it (the same engine, checks and reference comparison), on simulated counts; its
seeds come from the plan, and NUTS uses one core per fit, so a replication's result is
the same whichever executor runs it (this process, worker processes, a Dask cluster).

Replications whose fit failed a diagnostic are kept in the verdicts and counted: SBC
asks whether the whole procedure, as a user would run it, is calibrated, and leaving
out the fits that struggle (typically those of extreme simulated heterogeneity) would
condition on the part of the prior where the sampler works and hide the problem.
``ranks.csv`` marks them, so a reader can test without them. A replication that could
not be fitted at all (an error) has no rank and is counted apart.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bayes_dress.calibration.plan import DISPLAY_LEVEL, CalibrationPlan, Replication
from bayes_dress.calibration.ranks import Rank, ranks_of
from bayes_dress.calibration.uniformity import Assessment, Bands, assess, simulate_bands
from bayes_dress.errors import BayesDressError
from bayes_dress.fitting.fit import derive_seed
from bayes_dress.posterior.base import Key, key_label

OK, FAILED, NOT_FITTED = "ok", "diagnostics failed", "not fitted"


class CalibrationContext:
    """What a worker keeps between replications: its compiled models (NUTS)."""

    def __init__(self) -> None:
        self._cache = None

    @property
    def cache(self):
        if self._cache is None:
            from bayes_dress.engines.nuts import CompiledModelCache

            self._cache = CompiledModelCache()
        return self._cache


@dataclass
class ReplicationResult:
    """One fitted replication: where each true value fell, and how the fit went."""

    index: int
    analysis: str
    #: ``ok``, ``diagnostics failed`` or ``not fitted``.
    status: str
    ranks: dict[Key, Rank] = field(default_factory=dict)
    #: Names of the failed checks, and their messages.
    failed_checks: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0


def run_replication(task: Replication, context: CalibrationContext) -> ReplicationResult:
    """Fit one simulated table and rank its true values (the executors' task function)."""
    from bayes_dress.engines.base import FitOptions
    from bayes_dress.fitting.fit import fit_analysis
    from bayes_dress.models import get_model
    from bayes_dress.models.analysis import Analysis

    start = time.perf_counter()
    analysis = Analysis(get_model(task.model), task.data, task.priors)
    # refine=False: the exact engine skips measuring its own grid error by refining the
    # grid (which triples a fit's time); the calibration itself tests the integrator.
    options = FitOptions(cache=context.cache if task.engine == "nuts" else None,
                         refine=False)
    # Simulated tables include extreme ones (all events, none, a study rate of 1.0 in
    # floating point): statistics of constant draws warn (0/0) and come out NaN, which
    # the checks and the thinning handle; the warnings would only clutter the terminal.
    # One BLAS thread, whichever executor runs this (Dask workers do not limit it): the
    # workers already fill the cores, and a thread count can change floating-point sums.
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"), \
            _one_blas_thread():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            fit = fit_analysis(analysis, settings=task.settings, thresholds=(0.5,),
                               engine=task.engine, options=options)
        except BayesDressError as err:
            return ReplicationResult(index=task.index, analysis=task.analysis,
                                     status=NOT_FITTED, problems=[str(err)],
                                     seconds=time.perf_counter() - start)
        ranks = ranks_of(fit.posterior, task.truth, list(task.truth),
                         rng=np.random.default_rng(task.rank_seed))
    failures = fit.failures
    return ReplicationResult(index=task.index, analysis=task.analysis,
                             status=FAILED if failures else OK, ranks=ranks,
                             failed_checks=[c.check for c in failures],
                             problems=[c.message() for c in failures],
                             seconds=time.perf_counter() - start)


def _one_blas_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a dependency of scikit-style stacks
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(1)


def failed_replication(task: Replication, reason: str) -> ReplicationResult:
    """The result of a replication that could not be run (its worker died twice, or
    the fit raised an unexpected error)."""
    return ReplicationResult(index=task.index, analysis=task.analysis, status=NOT_FITTED,
                             problems=[reason])


@dataclass
class CalibrationResult:
    """A calibration's outcome: ranks, verdicts, and how the replications went."""

    plan: CalibrationPlan
    results: list[ReplicationResult]
    ranks: pd.DataFrame
    verdicts: pd.DataFrame
    replications: pd.DataFrame
    bands: dict[int, Bands]
    wall_time: float
    executor: str

    @property
    def calibrated(self) -> bool:
        return bool(len(self.verdicts)) and bool(
            (self.verdicts["verdict"] == "calibrated").all())

    @property
    def miscalibrated(self) -> pd.DataFrame:
        return self.verdicts[self.verdicts["verdict"] != "calibrated"]

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def fits_per_second(self) -> float:
        return len(self.results) / self.wall_time if self.wall_time > 0 else float("nan")


def _key_columns(key: Key, plan: CalibrationPlan, analysis: str) -> dict:
    name, outcome, study = key
    several = any(a.name == analysis and len(a.outcomes) > 1 for a in plan.analyses)
    return {"quantity": name, "outcome": outcome, "study": study,
            "label": key_label(key, with_outcome=several)}


def ranks_frame(plan: CalibrationPlan, results: list[ReplicationResult]) -> pd.DataFrame:
    """One row per replication and ranked quantity (``ranks.csv``)."""
    tasks = {(t.analysis, t.index): t for t in plan.tasks}
    rows = []
    for result in results:
        task = tasks[(result.analysis, result.index)]
        for key in plan.quantities[result.analysis]:
            rank = result.ranks.get(key)
            rows.append({"replication": result.index, "analysis": result.analysis,
                         **_key_columns(key, plan, result.analysis), "true_value": task.truth[key],
                         "rank": None if rank is None else rank.rank,
                         "n_ranked": None if rank is None else rank.n_ranked,
                         "thin": None if rank is None else rank.thin,
                         "pit": np.nan if rank is None else rank.pit,
                         "status": result.status})
    frame = pd.DataFrame(rows, columns=["replication", "analysis", "quantity", "outcome",
                                        "study", "label", "true_value", "rank", "n_ranked",
                                        "thin", "pit", "status"])
    for column in ("rank", "n_ranked", "thin"):
        frame[column] = frame[column].astype("Int64")
    return frame


def replications_frame(plan: CalibrationPlan, results: list[ReplicationResult]
                       ) -> pd.DataFrame:
    """One row per replication: status, seed, simulated events, true values."""
    tasks = {(t.analysis, t.index): t for t in plan.tasks}
    rows = []
    for result in results:
        task = tasks[(result.analysis, result.index)]
        events = ";".join(f"{b.outcome}:" + ",".join(str(int(e)) for e in b.events)
                          if len(task.data.blocks) > 1 else ",".join(str(int(e))
                                                                      for e in b.events)
                          for b in task.data.blocks)
        row = {"replication": result.index, "analysis": result.analysis,
               "status": result.status, "failed_checks": ";".join(result.failed_checks),
               "problems": " | ".join(result.problems), "seed": task.settings.seed,
               "seconds": round(result.seconds, 4), "events": events}
        row.update({key_label(k, with_outcome=len(task.data.outcomes) > 1): v
                    for k, v in task.truth.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def verdicts_frame(plan: CalibrationPlan, ranks: pd.DataFrame
                   ) -> tuple[pd.DataFrame, dict[int, Bands]]:
    """One row per analysis and quantity: the uniformity test of its PIT values."""
    bands: dict[int, Bands] = {}
    rows = []
    verdict_level = plan.verdict_level
    for analysis, keys in plan.quantities.items():
        for key in keys:
            mine = ranks[(ranks["analysis"] == analysis) & (ranks["quantity"] == key[0])
                         & (ranks["outcome"] == key[1]) & (ranks["study"] == key[2])]
            pit = mine["pit"].to_numpy(dtype=float)
            pit = pit[np.isfinite(pit)]
            n = pit.size
            row = {"analysis": analysis, **_key_columns(key, plan, analysis), "n": n,
                   "n_diagnostics_failed": int((mine["status"] == FAILED).sum()),
                   "n_not_fitted": int((mine["status"] == NOT_FITTED).sum())}
            if n < 2:
                row.update(verdict="not assessed", note="fewer than 2 replications fitted")
                rows.append(row)
                continue
            if n not in bands:
                bands[n] = simulate_bands(n, rng=np.random.default_rng(
                    derive_seed(plan.seed, "calibrate", "bands", str(n))))
            result: Assessment = assess(pit, bands[n], display_level=DISPLAY_LEVEL,
                                        verdict_level=verdict_level)
            ok = mine["status"] == "ok"
            ok_pit = mine.loc[ok, "pit"].to_numpy(dtype=float)
            row.update(max_ecdf_deviation=result.max_deviation, band_p_value=result.p_value,
                       tail_p_value=result.tail_p_value,
                       pot_c_p_value=result.pot_c_p_value,
                       inside_95_band=result.inside_display_band,
                       inside_verdict_band=result.inside_verdict_band,
                       mean_pit=float(np.mean(pit)),
                       mean_pit_ok_only=float(np.mean(ok_pit)) if ok_pit.size else np.nan,
                       verdict="calibrated" if result.calibrated else "miscalibrated",
                       note=verdict_note(result, pit, verdict_level))
            rows.append(row)
    columns = ["analysis", "quantity", "outcome", "study", "label", "n",
               "n_diagnostics_failed", "n_not_fitted", "max_ecdf_deviation",
               "band_p_value", "tail_p_value", "pot_c_p_value", "inside_95_band",
               "inside_verdict_band", "mean_pit", "mean_pit_ok_only", "verdict", "note"]
    return pd.DataFrame(rows, columns=columns), bands


def departure(pit: np.ndarray) -> str:
    """What kind of departure from uniformity ``pit`` shows, in words."""
    pit = np.asarray(pit, dtype=float)
    se = np.sqrt(1 / 12 / pit.size)
    mean, var = float(np.mean(pit)), float(np.var(pit))
    if mean < 0.5 - 2.5 * se:
        return (f"mean PIT {mean:.2f}: true values lie low in their posteriors (the "
                "posteriors overestimate)")
    if mean > 0.5 + 2.5 * se:
        return (f"mean PIT {mean:.2f}: true values lie high in their posteriors (the "
                "posteriors underestimate)")
    if var > 1 / 12:
        return (f"PIT variance {var:.3f} > 1/12: true values pile up in both tails (the "
                "posteriors are too narrow)")
    return (f"PIT variance {var:.3f} < 1/12: true values bunch in the middle (the "
            "posteriors are too wide)")


def verdict_note(result: Assessment, pit: np.ndarray, verdict_level: float) -> str:
    """Why a verdict is what it is, when it is not plain."""
    notes = []
    if not result.inside_verdict_band:
        notes.append(f"ECDF leaves the simultaneous band ({verdict_level:.2%}): "
                     + departure(pit))
    elif not result.inside_display_band:
        notes.append(f"outside the per-quantity {DISPLAY_LEVEL:.0%} band, inside the "
                     f"family-wise band ({verdict_level:.2%} per quantity)")
    if not result.tails_ok:
        extreme = int(np.sum((pit < 1e-6) | (pit > 1 - 1e-6)))
        notes.append(f"extreme PIT values (min {np.min(pit):.2g}, max {np.max(pit):.6g}; "
                     f"{extreme} within 1e-6 of 0 or 1): the posterior puts (almost) no "
                     "mass where the true value was")
    return "; ".join(notes)


def assemble(plan: CalibrationPlan, results: list[ReplicationResult], *, wall_time: float,
             executor: str) -> CalibrationResult:
    """Tables and verdicts from the replications' results.

    Quantities the engine does not report (the exact engine has no sd_rates for the
    independent model) are dropped from the plan's quantities, with a note, before the
    verdicts, so that the family-wise level counts only the quantities tested.
    """
    fitted = [r for r in results if r.status != NOT_FITTED]
    if fitted:
        for analysis, keys in plan.quantities.items():
            mine = [r for r in fitted if r.analysis == analysis]
            if not mine:
                continue
            missing = [k for k in keys if not any(k in r.ranks for r in mine)]
            if missing:
                plan.quantities[analysis] = [k for k in keys if k not in missing]
                plan.notes.append(f"{analysis}: the {plan.engine} engine does not report "
                                  f"{', '.join(key_label(k) for k in missing)}: not ranked")
    ranks = ranks_frame(plan, results)
    verdicts, bands = verdicts_frame(plan, ranks)
    return CalibrationResult(plan=plan, results=results, ranks=ranks, verdicts=verdicts,
                             replications=replications_frame(plan, results), bands=bands,
                             wall_time=wall_time, executor=executor)


def run_calibration(plan: CalibrationPlan, *, scheduler: str | None = None,
                    jobs: int | None = None,
                    progress: Callable[[ReplicationResult, int, int], None] | None = None,
                    executor=None) -> CalibrationResult:
    """Fit every replication of ``plan`` and judge the ranks.

    Parameters
    ----------
    plan : CalibrationPlan
    scheduler : str, optional
        As ``--scheduler`` (see :func:`bayes_dress.executors.get_executor`): None for
        worker processes on this machine (``jobs`` of them, one per core by default;
        ``jobs=1`` fits in this process), ``"local"`` for a Dask LocalCluster, or a
        scheduler's address (``tcp://host:port``).
    jobs : int, optional
    progress : callable, optional
        ``progress(result, done, total)`` as each replication's fit arrives.
    executor : Executor, optional
        An open executor to use instead (``scheduler`` and ``jobs`` are then ignored);
        left open.

    Returns
    -------
    CalibrationResult
    """
    from bayes_dress.executors import get_executor

    start = time.perf_counter()
    if executor is not None:
        results = executor.execute(plan.tasks, run_replication,
                                   context_factory=CalibrationContext, progress=progress,
                                   on_failure=failed_replication)
        name = type(executor).__name__
    else:
        with get_executor(scheduler, jobs=jobs, n_tasks=len(plan.tasks)) as chosen:
            results = chosen.execute(plan.tasks, run_replication,
                                     context_factory=CalibrationContext,
                                     progress=progress, on_failure=failed_replication)
            name = type(chosen).__name__
    wall_time = time.perf_counter() - start
    described = name if scheduler is None or executor is not None else f"{name} ({scheduler})"
    return assemble(plan, results, wall_time=wall_time, executor=described)
