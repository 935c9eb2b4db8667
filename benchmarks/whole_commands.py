"""Whole commands as a user times them: a benchmark, not a test.

Every command runs as its own process (``bayes-dress ...`` from the venv, imports,
fitting, writing and plots included), once untimed to warm the caches and then
``--runs`` times; the minimum, median and maximum wall time of those runs are printed
beside the figure the command itself records (the fit's ``wall_time`` in its
manifest: fitting only), with each command's target and whether its median meets it.
The compile cache is the user's own (PyTensor's compile directory), warm after the
untimed run, as on every run but the first on a machine; the first run is measured as
well, in a new, empty compile directory.

Measured:

* ``--help``, ``models``, ``data``: at most 0.5 s each;
* ``fit --engine exact`` (both outcomes, summaries, plots): at most 2 s;
* ``fit`` (both outcomes, NUTS, the exact cross-check, summaries, diagnostics, plots):
  at most 5 s;
* ``sensitivity`` (the default sweep: 30 scenarios, 48 fits): at most 10 s, and per fit
  at least 25 times as fast as a naive loop over the same fits: one process that builds
  a fresh PyMC model for each fit and calls ``pm.sample()`` with its defaults (timed
  the same way: a whole process, after an untimed pass has put its compiled functions in
  PyTensor's cache);
* ``fit --data`` a CSV of 30, 100, 300 and 1,000 synthetic studies (beta-binomial
  counts, 10 to 200 patients a study, one seed): the 1,000-study fit at most 60 s, and
  the exponent b of time ~ n^b fitted to the four sizes (whole command, the fit
  in-process, and the time the studies beyond the smallest table add);
* the first ``fit`` on a machine (empty compile cache).

Run: ``.venv/bin/python benchmarks/whole_commands.py [--runs 5] [--quick]
[--markdown]`` (``--quick``: three runs, the naive loop on 12 of the 48 fits, scaled;
no first-run measure). Takes 10-20 minutes in full, most of it the naive loop.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
CLI = str(BIN / "bayes-dress")
SIZES = (30, 100, 300, 1000)


def _run(command: list[str], *, env: dict | None = None, check: bool = True) -> float:
    """Wall seconds of one whole process; output discarded (as a user piping it)."""
    start = time.perf_counter()
    done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if check and done.returncode not in (0, 1):  # 1: a diagnostic flagged, still timed
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds


def _manifest_seconds(out: Path) -> float | None:
    try:
        return float(json.loads((out / "manifest.json").read_text())["wall_time_seconds"])
    except (OSError, KeyError, ValueError):
        return None


def time_command(label: str, command: list[str], runs: int, out: Path | None = None,
                 env: dict | None = None) -> dict:
    """Warm once, then ``runs`` timed runs; the figures of one command."""
    _run(command, env=env)
    seconds, inside = [], []
    for _ in range(runs):
        seconds.append(_run(command, env=env))
        if out is not None:
            inside.append(_manifest_seconds(out))
    inside = [s for s in inside if s is not None]
    return {"label": label, "runs": runs, "min": min(seconds),
            "median": statistics.median(seconds), "max": max(seconds),
            "in_process": statistics.median(inside) if inside else None}


def synthetic_csv(n: int, directory: Path) -> Path:
    """``n`` studies of beta-binomial counts (mean 0.4, phi 0.5), 10-200 patients each."""
    import numpy as np

    rng = np.random.default_rng(n)
    totals = rng.integers(10, 201, n)
    kappa = 1 / 0.5**2
    events = rng.binomial(totals, rng.beta(0.4 * kappa, 0.6 * kappa, n))
    path = directory / f"studies-{n}.csv"
    lines = ["study,events,total"] + [f"S{i + 1:04d},{e},{t}"
                                      for i, (e, t) in enumerate(zip(events, totals, strict=True))]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def naive_loop(fits: int | None) -> None:
    """The naive loop, in this process: the default sweep's NUTS fits, each a fresh
    PyMC model and ``pm.sample()`` with its defaults; nothing else."""
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("pymc").setLevel(logging.ERROR)
    import pymc as pm

    from bayes_dress.models import get_model
    from bayes_dress.sensitivity.spec import load_sweep_spec
    from bayes_dress.sensitivity.sweep import plan_sweep

    tasks = [t for t in plan_sweep(load_sweep_spec()).tasks if t.data is not None]
    if fits and fits < len(tasks):
        tasks = [tasks[int(len(tasks) * (i + 0.5) / fits)] for i in range(fits)]
    for task in tasks:
        # Plain PyMC distributions (no shared prior families, no padding), as a user
        # writes them.
        with get_model(task.scenario.model).build(task.data, task.scenario.priors):
            pm.sample(progressbar=False)
    print(json.dumps({"fits": len(tasks)}))


def _exponent(sizes, seconds) -> float:
    """Least-squares slope of log(seconds) on log(size)."""
    xs, ys = [math.log(s) for s in sizes], [math.log(max(t, 1e-9)) for t in seconds]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return (sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
            / sum((x - mx) ** 2 for x in xs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--markdown", action="store_true",
                        help="Also print the table as Markdown (for the README).")
    parser.add_argument("--naive", type=int, nargs="?", const=0, default=None,
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.naive is not None:
        naive_loop(args.naive or None)
        return
    runs = 3 if args.quick else args.runs
    naive_fits = 12 if args.quick else None
    rows: list[dict] = []
    targets: dict[str, float] = {}

    def show(row: dict, target: float | None = None) -> None:
        rows.append(row)
        if target is not None:
            targets[row["label"]] = target
        inside = (f"   in-process {row['in_process']:.2f} s"
                  if row.get("in_process") is not None else "")
        verdict = ("" if target is None else
                   f"   target <= {target:g} s: "
                   f"{'met' if row['median'] <= target else 'NOT met'}")
        print(f"{row['label']:<34} median {row['median']:7.2f} s  (min {row['min']:.2f}, "
              f"max {row['max']:.2f}, {row['runs']} runs){inside}{verdict}", flush=True)

    print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}; "
          f"each command a fresh process, {runs} timed runs after one untimed", flush=True)
    with tempfile.TemporaryDirectory(prefix="bayes-dress-bench-") as tmp:
        tmp = Path(tmp)
        for label, command in (("bayes-dress --help", [CLI, "--help"]),
                               ("bayes-dress models", [CLI, "models"]),
                               ("bayes-dress data", [CLI, "data"])):
            show(time_command(label, command, runs), 0.5)
        out = tmp / "exact"
        show(time_command("bayes-dress fit --engine exact",
                          [CLI, "fit", "--engine", "exact", "--out", str(out),
                           "--overwrite", "--quiet"], runs, out), 2.0)
        out = tmp / "fit"
        fit = time_command("bayes-dress fit", [CLI, "fit", "--out", str(out),
                                               "--overwrite", "--quiet"], runs, out)
        show(fit, 5.0)
        out = tmp / "sweep"
        sweep = time_command("bayes-dress sensitivity",
                             [CLI, "sensitivity", "--out", str(out), "--overwrite",
                              "--quiet"], runs, out)
        show(sweep, 10.0)

        naive_command = [sys.executable, __file__, "--naive", str(naive_fits or 0)]
        _run(naive_command)  # untimed: fills PyTensor's cache (see the module docstring)
        naive_seconds = _run(naive_command)
        from bayes_dress.sensitivity.spec import load_sweep_spec
        from bayes_dress.sensitivity.sweep import plan_sweep

        n_fits = len(plan_sweep(load_sweep_spec()).tasks)
        timed = naive_fits or n_fits
        naive_per_fit = naive_seconds / timed
        rows.append({"label": "naive loop (whole process)", "runs": 1, "min": naive_seconds,
                     "median": naive_seconds, "max": naive_seconds, "in_process": None})
        ratio = naive_per_fit / (sweep["median"] / n_fits)
        scaled = "" if timed == n_fits else f", {timed} of the {n_fits} fits"
        print(f"{'naive loop (whole process)':<34} {naive_seconds:7.1f} s ({naive_per_fit:.2f} "
              f"s per fit{scaled}); sweep {sweep['median'] / n_fits:.3f} s per fit: "
              f"{ratio:.1f}x as fast per fit (target >= 25x: "
              f"{'met' if ratio >= 25 else 'NOT met'})", flush=True)

        data_dir = tmp / "data"
        data_dir.mkdir()
        scaling, inside_scaling = [], []
        for n in SIZES:
            out = tmp / f"n{n}"
            row = time_command(f"bayes-dress fit --data ({n} studies)",
                               [CLI, "fit", "--data", str(synthetic_csv(n, data_dir)),
                                "--out", str(out), "--overwrite", "--quiet"],
                               1 if n >= 300 else max(1, runs - 2), out)
            posterior = next(out.glob("posterior-*.nc"), None)
            row["posterior_mb"] = posterior.stat().st_size / 1e6 if posterior else None
            show(row, 60.0 if n == 1000 else None)
            total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 1e6
            print(f"{'':<34} posterior file {row['posterior_mb']:.1f} MB, whole run "
                  f"directory {total:.1f} MB", flush=True)
            scaling.append(row["median"])
            inside_scaling.append(row["in_process"] or row["median"])
        whole = _exponent(SIZES, scaling)
        inside = _exponent(SIZES, inside_scaling)
        # The cost a study adds: time above the smallest table's, against studies added.
        added = [n - SIZES[0] for n in SIZES[1:]]
        above = _exponent(added, [max(s - scaling[0], 1e-3) for s in scaling[1:]])
        print(f"cost ~ n^b over n = {', '.join(map(str, SIZES))}: b = {whole:.2f} for the "
              f"whole command, {inside:.2f} for the fit in-process, {above:.2f} for the "
              f"time the studies beyond the first {SIZES[0]} add (1 is linear)", flush=True)

        if not args.quick:
            env = {**os.environ, "PYTENSOR_FLAGS": f"base_compiledir={tmp / 'cold'}"}
            out = tmp / "first"
            first = _run([CLI, "fit", "--out", str(out), "--quiet"], env=env)
            rows.append({"label": "first bayes-dress fit on a machine", "runs": 1,
                         "min": first, "median": first, "max": first,
                         "in_process": _manifest_seconds(out)})
            print(f"{'first bayes-dress fit on a machine':<34} {first:7.1f} s (empty compile "
                  f"cache: the model compiled once; in-process {_manifest_seconds(out):.1f} s)",
                  flush=True)

    if args.markdown:
        print("\n| command | median (min–max) | in-process | target |\n|---|---|---|---|")
        for row in rows:
            target = targets.get(row["label"])
            inside = f"{row['in_process']:.2f} s" if row.get("in_process") else ""
            met = ("" if target is None else
                   f"≤ {target:g} s: {'met' if row['median'] <= target else 'not met'}")
            print(f"| `{row['label']}` | {row['median']:.2f} s ({row['min']:.2f}–"
                  f"{row['max']:.2f}) | {inside} | {met} |")


if __name__ == "__main__":
    main()
