"""Calibration throughput: fits per second of ``bayes-dress calibrate`` on each executor.

Runs, in one run on this machine, the same calibration (the primary model on the bundled
study sizes, default priors, NUTS with the calibration's defaults unless changed) on

1. the local default: ProcessExecutor, one forked worker per core;
2. DaskExecutor("local"): a LocalCluster of one single-threaded worker per core;
3. DaskExecutor(address): a scheduler and two ``dask worker`` processes started here on
   127.0.0.1 (separate processes, distributed's default config), stopped at the end;

each twice on the same executor: "cold" (workers start, import, and load the compiled
model: what one command pays) and "warm" (steady state). Executor start-up is timed on
its own and not counted in either. Then the whole command, ``bayes-dress calibrate``
(or ``python -m bayes_dress.calibration.cli`` before it is registered), is timed as a
subprocess, with the local default and with ``--scheduler`` at the cluster: everything
a user waits for (imports, simulation, fits, verdicts, tables, plots). Every executor's
ranks are checked to equal the first's, to the bit.

Run: .venv/bin/python benchmarks/calibration_throughput.py [--replications N]
     [--engine nuts|exact] [--workers W]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def command() -> list[str]:
    from bayes_dress.cli import main

    if "calibrate" in main.commands:
        return [sys.executable, "-m", "bayes_dress.cli", "calibrate"]
    return [sys.executable, "-m", "bayes_dress.calibration.cli"]


def timed_runs(name: str, executor, plan, rows: list[dict], reference: list) -> None:
    from bayes_dress.calibration import run_calibration

    for kind in ("cold", "warm"):
        start = time.perf_counter()
        result = run_calibration(plan, executor=executor)
        elapsed = time.perf_counter() - start
        if not reference:
            reference.append(result.ranks)
        else:
            first = reference[0]
            assert np.array_equal(first["pit"].to_numpy(), result.ranks["pit"].to_numpy()), \
                f"{name} ranks differ from the first executor's"
        rows.append({"executor": name, "run": kind, "fits": len(result.results),
                     "seconds": elapsed, "rate": len(result.results) / elapsed,
                     "calibrated": result.calibrated})


def whole_command(args, extra: list[str], label: str, rows: list[dict]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        start = time.perf_counter()
        done = subprocess.run(
            [*command(), "--engine", args.engine, "--replications", str(args.replications),
             "--out", str(Path(directory) / "cal"), "--quiet", *extra],
            capture_output=True, text=True)
        elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{label} failed: {done.stderr[-2000:]}")
    rows.append({"executor": label, "run": "command", "fits": args.replications,
                 "seconds": elapsed, "rate": args.replications / elapsed,
                 "calibrated": "every quantity calibrated" in done.stdout})


def main() -> None:
    from bayes_dress.calibration import default_settings, plan_calibration
    from bayes_dress.executors import DaskExecutor, ProcessExecutor, cpu_count
    from bayes_dress.executors._selftest import start_dask_cluster
    from bayes_dress.spec.config import RunConfig

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=100)
    parser.add_argument("--engine", choices=("nuts", "exact"), default="nuts")
    parser.add_argument("--workers", type=int, default=cpu_count(),
                        help="process-pool and LocalCluster workers [one per core]")
    args = parser.parse_args()

    plan = plan_calibration(RunConfig(engine=args.engine, sampler=default_settings()),
                            replications=args.replications)
    rows: list[dict] = []
    startup: dict[str, float] = {}
    reference: list = []
    started = time.perf_counter()
    with ProcessExecutor(args.workers) as executor:
        startup["process"] = time.perf_counter() - started
        timed_runs(f"process x{args.workers}", executor, plan, rows, reference)
    started = time.perf_counter()
    with DaskExecutor("local", workers=args.workers) as executor:
        startup["dask local"] = time.perf_counter() - started
        timed_runs(f"dask local x{args.workers}", executor, plan, rows, reference)
    whole_command(args, [], f"command, local x{args.workers}", rows)
    with tempfile.TemporaryDirectory() as directory:
        started = time.perf_counter()
        with start_dask_cluster(Path(directory), workers=2) as address:
            startup["external scheduler + 2 workers"] = time.perf_counter() - started
            started = time.perf_counter()
            with DaskExecutor(address) as executor:
                startup["client"] = time.perf_counter() - started
                timed_runs("dask external x2", executor, plan, rows, reference)
            whole_command(args, ["--scheduler", address], "command, external x2", rows)

    settings = plan.settings
    sampler = (f"{settings.chains} chains x {settings.draws} draws, {settings.tune} tuning"
               if args.engine == "nuts" else "numerical integration")
    print(f"{args.replications} replications of {plan.model.name} ({args.engine}: "
          f"{sampler}) on {cpu_count()} cores; identical ranks on every executor")
    print("start-up, not in the figures: " + ", ".join(f"{k} {v:.1f} s"
                                                        for k, v in startup.items()))
    header = f"{'executor':<26}{'run':>9}{'fits':>6}{'seconds':>9}{'fits/s':>8}  calibrated"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['executor']:<26}{r['run']:>9}{r['fits']:>6}{r['seconds']:>9.1f}"
              f"{r['rate']:>8.2f}  {r['calibrated']}")
    print("cold: the first run on fresh workers (imports, compiled-model loads); warm: a "
          "second run on the same workers; command: the whole CLI as a subprocess "
          "(imports, simulation, fits, verdicts, files, plots; a LocalCluster or "
          "process pool started inside it)")


if __name__ == "__main__":
    main()
