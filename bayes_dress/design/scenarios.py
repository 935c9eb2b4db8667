"""The design under every scenario of a sensitivity sweep: does the decision boundary,
or the class of information the MAP carries, depend on choices the data cannot settle?

The sweep is planned as ``bayes-dress sensitivity`` plans it
(:func:`bayes_dress.sensitivity.sweep.plan_sweep`), around the run's own settings (its
model, priors, definitions and exclusions, from its manifest) and with the exact engine:
priors on heterogeneity and on the mean, alternative outcome definitions,
leave-one-study-out, and other models. Each scenario's analysis of the design's outcome
is fitted in this process with the exact engine (tens of milliseconds each); models the
exact engine does not support, and multi-outcome models, are skipped and listed.

Per scenario: the MAP (mean, SD, 95 % interval), its ESS by every method and the verdict
class (none / weak / informative), the mixture and robust prior as the design builds
them, the decision boundary of the single-arm trial, and its OC at the null and the
alternative. A scenario **changes the boundary** when its critical value differs from
the design's, and **changes the ESS class** when its verdict level differs; the verdicts
name those scenarios.

The run's data file is read from where the run's manifest says it was, and used only if
its SHA-256 is the one recorded; otherwise the scenarios are built from the counts the
run used (``data_used.csv``: no alternative definitions), with a note.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bayes_dress.design.map_prior import MapPrior, exact_support, summary_of
from bayes_dress.design.oc import boundary1s, success_probability
from bayes_dress.errors import BayesDressError

#: Columns of the scenario table, in order.
COLUMNS = ("scenario", "label", "varied", "model", "priors", "status", "primary", "mean",
           "sd", "q2.5", "q97.5", "ess_elir", "ess_moment", "ess_morita", "ess_level",
           "components", "boundary", "lower_crit", "upper_crit", "type1", "power",
           "boundary_changed", "level_changed", "note")


@dataclass
class ScenarioTable:
    """The design across scenarios, and what changed."""

    outcome: str
    rows: list[dict]
    verdicts: list[str]
    boundary_changed: list[str] = field(default_factory=list)
    level_changed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=list(COLUMNS))

    @property
    def fitted(self) -> int:
        return sum(r["status"] == "ok" for r in self.rows)


def _sha256(path: Path) -> str:
    from bayes_dress.rundir.atomic import sha256

    return sha256(path)


def _base_config(run, outcome: str, workdir: Path) -> tuple[object, list[str]]:
    """The run's config with the exact engine, for the design's outcome, and notes."""
    from bayes_dress.spec.config import RunConfig, config_from_dict

    notes: list[str] = []
    raw = dict(run.manifest.get("config") or {})
    raw.pop("benefit_risk", None)
    raw = {k: v for k, v in raw.items() if v is not None}
    try:
        config = config_from_dict(raw, where=f"{run.path} manifest")
    except BayesDressError as err:
        notes.append(f"the run's recorded config cannot be read ({err}); the default "
                     "config is used")
        config = RunConfig()
    config = config.replace(engine="exact", outcomes=(outcome,))
    recorded = run.manifest.get("data") or {}
    data = config.data
    if data is not None:
        candidates = [Path(data)]
        if not Path(data).is_absolute():
            candidates.append(run.path.parent / data)
        want = recorded.get("sha256")
        found = next((c for c in candidates if c.is_file()
                      and (want is None or _sha256(c) == want)), None)
        if found is None:
            # The counts the run used, as a table of their own (primary definitions only).
            used = run.data_used
            keep = [c for c in ("study", "outcome", "definition", "events", "total")
                    if c in used.columns]
            table = workdir / "data_used.csv"
            used[keep].to_csv(table, index=False)
            notes.append(f"the run's data file '{data}' was not found unchanged (SHA-256 "
                         "as recorded in its manifest); scenarios use the counts the run "
                         "used (data_used.csv), so no alternative outcome definitions")
            found = table
        config = config.replace(data=found)
    return config, notes


def design_scenarios(run, plan, primary, *, progress=None,
                     jobs: int | None = None) -> ScenarioTable:
    """The design of ``plan`` under every scenario of its sweep (see the module notes).

    ``primary`` is the design's :class:`~bayes_dress.design.study.DesignResult` (its
    boundary and verdict are what scenarios are compared with). ``jobs``: worker
    processes (default one per core; 1 computes in this process).
    """
    from bayes_dress.sensitivity.spec import load_sweep_spec
    from bayes_dress.sensitivity.sweep import plan_sweep

    start = time.perf_counter()
    outcome = plan.outcome
    say = progress or (lambda message: None)
    table = ScenarioTable(outcome=outcome, rows=[], verdicts=[])
    ref = primary.trial.boundary
    ref_level = primary.efficacy.verdict.level
    with tempfile.TemporaryDirectory(prefix="bayes-dress-design-") as tmp:
        try:
            config, notes = _base_config(run, outcome, Path(tmp))
            table.notes.extend(notes)
            spec = load_sweep_spec(None if plan.sensitivity.sweep == "default"
                                   else plan.sensitivity.sweep)
            # The design reads no headline probabilities: those of the spec (the bundled
            # one names the DRESS outcomes) must not stop a sweep of other data.
            spec = dataclasses.replace(spec, headlines=())
            sweep = plan_sweep(spec, config=config)
        except BayesDressError as err:
            table.notes.append(f"no sensitivity scenarios: {err}")
            table.verdicts.append(f"sensitivity of the design: not assessed ({err})")
            return table
        tasks = [t for t in sweep.tasks if outcome in t.outcomes]
        args = [(task, plan, outcome, config.sampler.seed) for task in tasks]
        for number, row in enumerate(_map_rows(args, jobs), start=1):
            say(f"scenario {number} of {len(tasks)}: {row['scenario']} {row['label']}")
            if row["status"] != "ok":
                if row.pop("_skipped", False):
                    table.skipped.append(f"{row['scenario']} {row['label']}: {row['note']}")
                table.rows.append(row)
                continue
            row.pop("_skipped", None)
            changed = (row["lower_crit"], row["upper_crit"]) != (ref.lower_crit,
                                                                  ref.upper_crit)
            row["boundary_changed"] = changed
            row["level_changed"] = row["ess_level"] != ref_level
            if changed:
                table.boundary_changed.append(f"{row['scenario']} {row['label']} "
                                              f"({row['boundary']})")
            if row["level_changed"]:
                table.level_changed.append(f"{row['scenario']} {row['label']} "
                                           f"({row['ess_level']})")
            table.rows.append(row)
    table.seconds = time.perf_counter() - start
    table.verdicts = _verdicts(table, primary)
    return table


def _scenario_row(args) -> dict:
    """One scenario's row (boundary_changed and level_changed are filled in by the
    caller); a failure is a row with its reason, never an exception."""
    try:
        return _scenario_row_unguarded(args)
    except Exception as err:  # a worker must answer: the table says what went wrong
        import traceback

        task = args[0]
        row = dict.fromkeys(COLUMNS)
        row.update(scenario=task.scenario.id, label=task.scenario.label,
                   varied=task.scenario.varied, model=task.scenario.model,
                   priors=task.scenario.priors_text(), primary=task.scenario.primary,
                   status="not fitted",
                   note=f"internal error: {type(err).__name__}: {err} "
                        + traceback.format_exc(limit=2).replace("\n", " "))
        return row


def _scenario_row_unguarded(args) -> dict:
    import warnings

    import numpy as np

    from bayes_dress.design.map_design import map_design
    from bayes_dress.models import get_model

    task, plan, outcome, seed = args
    scenario = task.scenario
    row = dict.fromkeys(COLUMNS)
    row.update(scenario=scenario.id, label=scenario.label, varied=scenario.varied,
               model=scenario.model, priors=scenario.priors_text(),
               primary=scenario.primary, status="not fitted", note="")
    model = get_model(scenario.model)
    reason = exact_support(model, scenario.priors)
    if reason is not None or task.data is None:
        row.update(note=reason or task.error or "no data", _skipped=True)
        return row
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            mp = _scenario_map(model, task, outcome, seed=seed)
            md = map_design(mp, components=plan.map.components,
                            aic_penalty=plan.map.aic_penalty, robust=plan.robust,
                            n_planned=plan.trial.n)
            b = boundary1s(md.robust, plan.trial.n, plan.rule)
        except BayesDressError as err:
            row["note"] = str(err)
            return row
        s = summary_of(mp.exact)
        ess = md.ess["exact"].values()
        t1, pw = success_probability(b.success, [plan.trial.null, plan.trial.alternative])
    row.update(status="ok", mean=s["mean"], sd=s["sd"], **{"q2.5": s["q2.5"],
               "q97.5": s["q97.5"]}, ess_elir=ess["elir"], ess_moment=ess["moment"],
               ess_morita=ess["morita"], ess_level=md.verdict.level,
               components=md.mixture.n_components, boundary=b.describe(),
               lower_crit=b.lower_crit, upper_crit=b.upper_crit, type1=float(t1),
               power=float(pw))
    return row


def _worker_init() -> None:
    import signal

    # The command's SIGTERM handler (a clean exit with one line) belongs to the parent;
    # a worker ends quietly when the pool stops it.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # One BLAS thread per worker: the workers already fill the cores.
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # pragma: no cover
        pass


def _map_rows(args: list, jobs: int | None):
    """Rows in task order, from ``jobs`` forked worker processes (this process when 1,
    or when fork is not available)."""
    import multiprocessing
    import os

    jobs = max(1, min(jobs or os.cpu_count() or 1, len(args)))
    if jobs == 1 or "fork" not in multiprocessing.get_all_start_methods():
        for item in args:
            yield _scenario_row(item)
        return
    # fork: workers inherit the imported libraries and the compiled quadratures.
    context = multiprocessing.get_context("fork")
    pool = context.Pool(jobs, initializer=_worker_init)
    try:
        yield from pool.imap(_scenario_row, args)
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()


def _scenario_map(model, task, outcome: str, *, seed: int) -> MapPrior:
    """The exact MAP of one scenario (grid error not measured, as a sweep does for its
    non-primary fits)."""
    from bayes_dress.design.map_prior import exact_refit

    exact = exact_refit(model, task.data, task.scenario.priors, seed=seed, refine=False)
    return MapPrior(outcome=outcome, source="exact", exact=exact, exact_origin="refit",
                    draws=None, ess=None, agreement=None, model=model.name, engine="exact",
                    priors={k: str(p) for k, p in task.scenario.priors.items()})


def _verdicts(table: ScenarioTable, primary) -> list[str]:
    n = table.fitted
    boundary = primary.trial.boundary.describe()
    level = primary.efficacy.verdict.level
    out = []
    if n == 0:
        return [f"sensitivity of the design ({table.outcome}): no scenario could be fitted "
                "with the exact engine"]
    if table.boundary_changed:
        out.append(f"sensitivity: the decision boundary CHANGES in "
                   f"{len(table.boundary_changed)} of {n} scenarios (design: {boundary}): "
                   + "; ".join(table.boundary_changed))
    else:
        out.append(f"sensitivity: the decision boundary ({boundary}) is the same in all "
                   f"{n} scenarios")
    if table.level_changed:
        out.append(f"sensitivity: the ESS class ('{level}') CHANGES in "
                   f"{len(table.level_changed)} of {n} scenarios: "
                   + "; ".join(table.level_changed))
    else:
        out.append(f"sensitivity: the ESS class ('{level}') is the same in all {n} scenarios")
    if table.skipped:
        out.append(f"sensitivity: {len(table.skipped)} scenario(s) not fitted: "
                   + "; ".join(table.skipped))
    return out
