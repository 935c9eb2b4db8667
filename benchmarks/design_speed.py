"""Timings of the design: the numerical core, the chain from a saved run, and the whole
``bayes-dress design`` command.

Run: ``.venv/bin/python benchmarks/design_speed.py [--runs N] [--skip-command]``.

1. **Core** (best of ``REPEATS``): a synthetic exact MAP tabulated like the exact
   engine's output (CDF and log density on a uniform logit grid of 1,201 nodes from -30
   to 30) -> mixture fit -> ESS -> OC over 1,001 true rates for n = 200.
2. **From a saved run** (best of ``REPEATS``, in this process, libraries imported): for
   the bundled primary run (beta-binomial, exact engine) and RBesT's AS example
   (logit-normal, exact engine), both written to a temporary directory first: read the
   run and take its exact MAP, fit the mixture (automixfit, Nc = 1..4), ESS by every
   method with the verdict, and the boundary and OC over 1,001 true rates for n = 200
   with the robust prior. Target: under one second for the chain.
3. **The whole command** as a subprocess (``bayes-dress design RUN --out ... -q``, or the
   command object through ``python -c`` while it is not yet registered on the group),
   median of ``--runs`` runs (default 5): without the sensitivity scenarios, and with
   them (the default config: 27 scenarios of the bundled sweep, exact engine, one
   worker process per core). Wall time includes starting Python and importing the
   libraries.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import special, stats

from bayes_dress.design import (
    TabulatedDensity,
    automixfit,
    boundary1s,
    ess_all,
    ess_verdict,
    parse_rule,
    success_probability,
)

REPEATS = 3
TARGET = 1.0
AS_DATA = "study,n,r\n" + "".join(f"Study {i + 1},{n},{r}\n" for i, (n, r) in enumerate(
    [(107, 23), (44, 12), (51, 19), (39, 9), (139, 39), (20, 6), (78, 9), (35, 10)]))


def exact_map() -> TabulatedDensity:
    """A smooth, skewed MAP: mixture over tau of N(mu, tau^2) on the logit scale."""
    tau = np.linspace(0.2, 1.2, 41)
    w = stats.halfnorm.pdf(tau, scale=0.6)
    w /= w.sum()
    mu = -1.0 + 0.2 * tau
    eta = np.linspace(-30, 30, 1201)
    z = (eta[:, None] - mu[None, :]) / tau[None, :]
    cdf = special.ndtr(z) @ w
    dens = (np.exp(-0.5 * z**2) / (np.sqrt(2 * np.pi) * tau[None, :])) @ w
    x = special.expit(eta)
    return TabulatedDensity(x, cdf, logpdf=np.log(dens) - np.log(x * (1 - x)))


def timed(label: str, fn):
    best = np.inf
    out = None
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    print(f"{label:<56s} {1000 * best:8.1f} ms")
    return out, best


def core() -> None:
    print("1. core (synthetic exact MAP)")
    theta = np.linspace(0.0, 1.0, 1001)
    rule = parse_rule("P(theta > 0.3) > 0.9")
    total = 0.0
    exact, t = timed("tabulate exact MAP (1,201 nodes)", exact_map)
    total += t
    fit, t = timed("automixfit (Nc = 1..4, exact EM)", lambda: automixfit(exact))
    total += t
    mix = fit.mixture
    _, t = timed("ESS of the exact MAP (elir, moment, morita)", lambda: ess_all(exact))
    total += t
    _, t = timed("ESS of the mixture (elir, moment, morita)", lambda: ess_all(mix))
    total += t
    _, t = timed("OC, mixture prior, n = 200, 1,001 rates",
                 lambda: success_probability(boundary1s(mix, 200, rule).success, theta))
    total += t
    _, t = timed("OC, exact prior, n = 200, 1,001 rates",
                 lambda: success_probability(boundary1s(exact, 200, rule).success, theta))
    total += t
    print(f"{'total':<56s} {1000 * total:8.1f} ms")
    print(f"fit: {fit.best.n_components} components, KS distance {fit.best.ks:.2g}\n")


def make_runs(root: Path) -> dict[str, tuple[Path, str, str]]:
    """(run directory, outcome, rule) of the bundled primary run and the AS run."""
    from bayes_dress import RunConfig, run_fit, write_run

    bundled = root / "bundled"
    write_run(run_fit(RunConfig(engine="exact")), bundled, plots=False)
    csv = root / "AS.csv"
    csv.write_text(AS_DATA)
    as_run = root / "as"
    config = RunConfig(model="logit_normal", data=csv, engine="exact",
                       priors={"mu": "Normal(0, 2)", "tau": "HalfNormal(1)"})
    write_run(run_fit(config), as_run, plots=False)
    return {"bundled primary run (success)": (bundled, "success", "P(theta > 0.3) > 0.95"),
            "RBesT AS example (events)": (as_run, "events", "P(theta > 0.25) > 0.9")}


def from_run(runs) -> None:
    from bayes_dress.design.map_prior import map_prior
    from bayes_dress.design.mixture import robustify
    from bayes_dress.rundir.read import load_run

    print(f"2. from a saved run: MAP -> mixture -> ESS + verdict -> OC (n = 200, 1,001 "
          f"rates); target < {TARGET:g} s")
    theta = np.linspace(0.0, 1.0, 1001)
    for label, (path, outcome, text) in runs.items():
        rule = parse_rule(text)
        parts: dict[str, float] = {}

        def chain(path=path, outcome=outcome, rule=rule, parts=parts):
            t0 = time.perf_counter()
            mp = map_prior(load_run(path).analysis_of(outcome))
            t1 = time.perf_counter()
            mix = automixfit(mp.exact).mixture
            t2 = time.perf_counter()
            summary = ess_all(mp.exact)
            verdict = ess_verdict(mp.exact, summary=summary)
            ess_all(mix)
            t3 = time.perf_counter()
            prior = robustify(mix, 0.2)
            oc = success_probability(boundary1s(prior, 200, rule).success, theta)
            t4 = time.perf_counter()
            parts.update({"read run + exact MAP": t1 - t0, "automixfit": t2 - t1,
                          "ESS (exact, mixture) + verdict": t3 - t2,
                          "robust prior + boundary + OC": t4 - t3})
            return verdict, oc

        with np.errstate(all="ignore"):
            (verdict, _), best = timed(f"{label}: whole chain", chain)
        for name, seconds in parts.items():
            print(f"    {name:<52s} {1000 * seconds:8.1f} ms (last run)")
        print(f"    verdict: {verdict.level}; {'meets' if best < TARGET else 'MISSES'} the "
              f"{TARGET:g} s target\n")


def _command(run: Path, out: Path, extra: list[str]) -> list[str]:
    exe = Path(sys.executable).with_name("bayes-dress")
    registered = subprocess.run([str(exe), "design", "--help"], capture_output=True,
                                text=True).returncode == 0
    if registered:
        return [str(exe), "design", str(run), "--out", str(out), "--overwrite", "-q", *extra]
    return [sys.executable, "-c", "import sys; from bayes_dress.design.cli import "
            "design_command; design_command(sys.argv[1:])", str(run), "--out", str(out),
            "--overwrite", "-q", *extra]


def whole_command(run: Path, root: Path, runs: int) -> None:
    print(f"3. the whole command as a subprocess, median of {runs} runs "
          f"({os.cpu_count()} cores)")
    for label, extra in (("bayes-dress design RUN --no-sensitivity", ["--no-sensitivity"]),
                         ("bayes-dress design RUN (27 sensitivity scenarios)", [])):
        times = []
        for i in range(runs):
            cmd = _command(run, root / f"design-{i}", extra)
            t0 = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, text=True)
            times.append(time.perf_counter() - t0)
            if done.returncode != 0:
                raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr}")
        print(f"{label:<56s} median {statistics.median(times):6.2f} s (min "
              f"{min(times):.2f}, max {max(times):.2f})")
    print(f"(command used: {' '.join(_command(run, root / 'x', [])[:3])} ...)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of the whole command")
    parser.add_argument("--skip-command", action="store_true",
                        help="time only the in-process parts")
    args = parser.parse_args()
    core()
    with tempfile.TemporaryDirectory(prefix="bayes-dress-design-bench-") as tmp:
        root = Path(tmp)
        runs = make_runs(root)
        from_run(runs)
        if not args.skip_command:
            whole_command(runs["bundled primary run (success)"][0], root, args.runs)


if __name__ == "__main__":
    main()
