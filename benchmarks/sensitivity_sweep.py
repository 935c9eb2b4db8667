"""Speed of the default sensitivity sweep against a naive loop: a benchmark, not a test.

Times, in one run on this machine, each part in a fresh Python process that has already
imported the libraries (so no side pays for imports), all sharing one new, empty
PyTensor compile directory (where compiled models are cached on disk):

1. **cold sweep**: the default sweep (``models/sensitivity.toml`` on the bundled data,
   NUTS) as ``bayes-dress sensitivity`` runs it, with the compile cache empty, as on
   the first sweep on a machine: shared compiled models, worker processes, every fit
   checked against the exact engine and summarised;
2. **warm sweep**: the same sweep again in a new process, its three compiled models now
   loaded from the cache, as every later sweep on the machine (other priors, data,
   thresholds or studies left out need no new compile);
3. the same sweep with ``--engine exact``;
4. a **naive loop** over the same fits: for each, build a fresh PyMC model (plain PyMC
   distributions, no shared graphs) and call ``pm.sample()`` with its defaults; nothing
   else (no summaries, no checks). Timed on its second pass over the fits: the first,
   untimed, puts each fit's PyTensor functions in the disk cache and pays numba's
   start-up, so the loop is timed at its fastest (what remains is the compile nutpie
   cannot cache, on every fit). That is generous to it: a naive loop under new priors
   would find its graphs, whose prior values are constants, not in the cache.

and prints each, per fit, and the ratios against the targets: the sweep at least 15 times
faster than the naive loop and under 1 s per scenario; the exact sweep under 2 s.

Run: .venv/bin/python benchmarks/sensitivity_sweep.py [--naive-fits N] [--jobs J]
     [--combine cross]

``--naive-fits N`` times the naive loop on N fits spread evenly over the sweep (every
model) and scales up (the naive loop takes minutes); the default times all of them.
``--combine cross`` benchmarks the full cross of the default spec's dimensions instead.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

SPEEDUP_TARGET = 15.0
PER_SCENARIO_TARGET = 1.0
EXACT_SWEEP_TARGET = 2.0


def _plan(combine: str | None, engine: str = "nuts"):
    import dataclasses

    from bayes_dress.sensitivity.spec import load_sweep_spec
    from bayes_dress.sensitivity.sweep import plan_sweep

    spec = load_sweep_spec()
    if combine:
        spec = dataclasses.replace(spec, combine=combine)
    return plan_sweep(spec, config=spec.primary.replace(engine=engine))


def _quiet() -> None:
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("pymc").setLevel(logging.ERROR)
    import nutpie  # noqa: F401 - imported before timing, as the library does at fit
    import pymc  # noqa: F401


def time_sweep(args) -> dict:
    """One sweep, timed after imports and planning."""
    from bayes_dress.sensitivity.sweep import run_sweep

    plan = _plan(args.combine, args.engine)
    start = time.perf_counter()
    sweep = run_sweep(plan, jobs=args.jobs)
    return {"seconds": time.perf_counter() - start, "fits": len(plan.tasks),
            "scenarios": len(plan.scenarios), "flagged": len(sweep.flagged)}


def time_naive(args) -> dict:
    """The naive loop: a fresh PyMC model and ``pm.sample()`` per fit."""
    import pymc as pm

    from bayes_dress.models import get_model

    plan = _plan(args.combine)
    tasks = [t for t in plan.tasks if t.data is not None]
    if args.naive_fits and args.naive_fits < len(tasks):
        positions = (len(tasks) * (i + 0.5) / args.naive_fits
                     for i in range(args.naive_fits))
        tasks = [tasks[int(p)] for p in positions]

    def naive_fit(task) -> None:
        # No shared prior families, no padding: plain PyMC distributions, as a user
        # writes them.
        with get_model(task.scenario.model).build(task.data, task.scenario.priors):
            pm.sample(progressbar=False)

    for task in tasks:  # untimed: PyTensor's disk cache and numba's start-up (see top)
        naive_fit(task)
    start = time.perf_counter()
    for task in tasks:
        naive_fit(task)
    per_fit = (time.perf_counter() - start) / len(tasks)
    return {"per_fit": per_fit, "timed": len(tasks), "fits": len(plan.tasks)}


def _child(phase: str, args, compiledir: str) -> dict:
    """Run one phase in a fresh process with the shared compile directory."""
    command = [sys.executable, __file__, "--phase", phase]
    for flag, value in (("--jobs", args.jobs), ("--combine", args.combine),
                        ("--naive-fits", args.naive_fits)):
        if value is not None:
            command += [flag, str(value)]
    env = {**os.environ, "PYTENSOR_FLAGS": f"base_compiledir={compiledir}"}
    done = subprocess.run(command, env=env, text=True, capture_output=True)
    if done.returncode != 0:
        sys.exit(f"benchmark phase {phase} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--naive-fits", type=int, default=None)
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--combine", choices=("one_at_a_time", "cross"), default=None)
    parser.add_argument("--phase", choices=("sweep", "exact", "naive"), default=None,
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        _quiet()
        args.engine = "exact" if args.phase == "exact" else "nuts"
        result = time_naive(args) if args.phase == "naive" else time_sweep(args)
        print(json.dumps(result))
        return

    with tempfile.TemporaryDirectory(prefix="bayes-dress-bench-") as compiledir:
        cold = _child("sweep", args, compiledir)
        fits, scenarios = cold["fits"], cold["scenarios"]
        print(f"machine: {os.cpu_count()} cores; sweep: {scenarios} scenarios, {fits} NUTS "
              f"fits ({args.combine or 'one_at_a_time'}); compile cache: {compiledir}",
              flush=True)

        def show(label: str, run: dict) -> None:
            print(f"{label:<14}{run['seconds']:7.2f} s  ({run['seconds'] / fits:.3f} s per "
                  f"fit, {run['seconds'] / scenarios:.3f} s per scenario; "
                  f"{run['flagged']} fit(s) flagged)", flush=True)

        show("cold sweep:", cold)
        warm = _child("sweep", args, compiledir)
        show("warm sweep:", warm)
        exact = _child("exact", args, compiledir)
        show("exact sweep:", exact)
        naive = _child("naive", args, compiledir)
    naive_seconds = naive["per_fit"] * fits
    scaled = ("" if naive["timed"] == fits
              else f", timed on {naive['timed']} fits spread over the sweep and scaled")
    print(f"{'naive loop:':<14}{naive_seconds:7.1f} s  ({naive['per_fit']:.3f} s per fit"
          f"{scaled})")

    print()
    for label, run in (("warm sweep (every sweep after the first)", warm),
                       ("cold sweep (first sweep on a machine)", cold)):
        speedup = naive_seconds / run["seconds"]
        per_scenario = run["seconds"] / scenarios
        print(f"{label}: speed-up over the naive loop {speedup:.1f}x (target >= "
              f"{SPEEDUP_TARGET:g}x: {'met' if speedup >= SPEEDUP_TARGET else 'NOT met'}); "
              f"{per_scenario:.3f} s per scenario (target < {PER_SCENARIO_TARGET:g} s: "
              f"{'met' if per_scenario < PER_SCENARIO_TARGET else 'NOT met'})")
    print(f"exact sweep: {exact['seconds']:.2f} s (target < {EXACT_SWEEP_TARGET:g} s: "
          f"{'met' if exact['seconds'] < EXACT_SWEEP_TARGET else 'NOT met'})")


if __name__ == "__main__":
    main()
