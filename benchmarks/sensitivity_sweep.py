"""Speed of the default sensitivity sweep against a naive loop: a benchmark, not a test.

Times, in one process on this machine:

1. the default sweep (``models/sensitivity.toml`` on the bundled data, NUTS) as
   ``bayes-dress sensitivity`` runs it: shared compiled models, worker processes, every
   fit checked against the exact engine and summarised;
2. the same sweep with ``--engine exact``;
3. a naive loop over the same fits: for each, build a fresh PyMC model (plain PyMC
   distributions, no shared graphs) and call ``pm.sample()`` with its defaults, which
   compiles the model every time; nothing else (no summaries, no checks).

and prints each, per fit, and the ratios against the targets: the sweep at least 15 times
faster than the naive loop and under 1 s per scenario; the exact sweep under 2 s.
Library imports happen before any timing, so neither side pays for them.

Run: .venv/bin/python benchmarks/sensitivity_sweep.py [--naive-fits N] [--jobs J]
     [--combine cross]

``--naive-fits N`` times the naive loop on N fits spread evenly over the sweep (every
model) and scales up (the naive loop takes minutes); the default times all of them.
``--combine cross`` benchmarks the full cross of the default spec's dimensions instead.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
import warnings

SPEEDUP_TARGET = 15.0
PER_SCENARIO_TARGET = 1.0
EXACT_SWEEP_TARGET = 2.0


def naive_fit(task) -> None:
    """Build a fresh PyMC model for one fit and sample it with ``pm.sample`` defaults."""
    import pymc as pm

    from bayes_dress.models import get_model

    # No shared prior families, no padding: plain PyMC distributions, as a user writes.
    with get_model(task.scenario.model).build(task.data, task.scenario.priors):
        pm.sample(progressbar=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--naive-fits", type=int, default=None)
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--combine", choices=("one_at_a_time", "cross"), default=None)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("pymc").setLevel(logging.ERROR)

    import dataclasses

    import nutpie  # noqa: F401 - imported before timing, as the library does at fit
    import pymc  # noqa: F401

    from bayes_dress.sensitivity.spec import load_sweep_spec
    from bayes_dress.sensitivity.sweep import plan_sweep, run_sweep

    spec = load_sweep_spec()
    if args.combine:
        spec = dataclasses.replace(spec, combine=args.combine)
    plan = plan_sweep(spec)
    exact_plan = plan_sweep(spec, config=spec.primary.replace(engine="exact"))
    fits, scenarios = len(plan.tasks), len(plan.scenarios)
    print(f"machine: {os.cpu_count()} cores; default sweep: {scenarios} scenarios, "
          f"{fits} NUTS fits ({plan.spec.combine})", flush=True)

    start = time.perf_counter()
    sweep = run_sweep(plan, jobs=args.jobs)
    sweep_seconds = time.perf_counter() - start
    flagged = len(sweep.flagged)
    print(f"sweep:        {sweep_seconds:7.1f} s  ({sweep_seconds / fits:.3f} s per fit, "
          f"{sweep_seconds / scenarios:.3f} s per scenario; {flagged} fit(s) flagged)")

    start = time.perf_counter()
    exact = run_sweep(exact_plan, jobs=args.jobs)
    exact_seconds = time.perf_counter() - start
    print(f"exact sweep:  {exact_seconds:7.2f} s  ({exact_seconds / fits:.3f} s per fit; "
          f"{len(exact.flagged)} fit(s) flagged)")

    tasks = [t for t in plan.tasks if t.data is not None]
    if args.naive_fits and args.naive_fits < len(tasks):
        positions = (len(tasks) * (i + 0.5) / args.naive_fits for i in range(args.naive_fits))
        timed = [tasks[int(p)] for p in positions]
    else:
        timed = tasks
    start = time.perf_counter()
    for task in timed:
        naive_fit(task)
    naive_per_fit = (time.perf_counter() - start) / len(timed)
    naive_seconds = naive_per_fit * fits
    scaled = ("" if len(timed) == fits
              else f", timed on {len(timed)} fits spread over the sweep and scaled")
    print(f"naive loop:   {naive_seconds:7.1f} s  ({naive_per_fit:.3f} s per fit{scaled})")

    speedup = naive_seconds / sweep_seconds
    per_scenario = sweep_seconds / scenarios
    print(f"\nspeed-up over the naive loop: {speedup:.1f}x (target >= {SPEEDUP_TARGET:g}x: "
          f"{'met' if speedup >= SPEEDUP_TARGET else 'NOT met'})")
    print(f"sweep per scenario: {per_scenario:.3f} s (target < {PER_SCENARIO_TARGET:g} s: "
          f"{'met' if per_scenario < PER_SCENARIO_TARGET else 'NOT met'})")
    print(f"exact sweep: {exact_seconds:.2f} s (target < {EXACT_SWEEP_TARGET:g} s: "
          f"{'met' if exact_seconds < EXACT_SWEEP_TARGET else 'NOT met'})")


if __name__ == "__main__":
    main()
