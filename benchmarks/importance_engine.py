"""Speed and reliability of the importance-sampling reference engine for the bivariate
binomial-logit-normal model: a benchmark, not a test.

Prints, for the bundled counts (success 1/6, 16/18; severe AE 5/6 and 1/18, and the 0/18
variant) and for k = 20 simulated studies, the median wall and CPU time of a full
reference fit (default settings: 16000 final draws), its stages, k-hat, the weights'
ESS and the per-study k-hat/ESS. Priors: mu_j ~ N(0, 1.5), tau_j ~ HalfNormal(1),
(rho + 1) / 2 ~ Beta(2, 2). The first (warm-up) fit loads numba's cache (or compiles,
~3 s, on a fresh checkout) and is not counted.

Run: .venv/bin/python benchmarks/importance_engine.py [--repeat N] [--draws S]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numba
import numpy as np
from scipy import stats

from bayes_dress.engines.importance import fit_bivariate


def log_prior(v):
    return (stats.norm.logpdf(v["mu_1"], 0, 1.5) + stats.norm.logpdf(v["mu_2"], 0, 1.5)
            + stats.halfnorm.logpdf(v["tau_1"]) + stats.halfnorm.logpdf(v["tau_2"])
            + stats.beta.logpdf((v["rho"] + 1) / 2, 2, 2) - np.log(2))


def prior_draw(rng, size):
    return {"mu_1": rng.normal(0, 1.5, size), "mu_2": rng.normal(0, 1.5, size),
            "tau_1": np.abs(rng.normal(size=size)), "tau_2": np.abs(rng.normal(size=size)),
            "rho": 2 * rng.beta(2, 2, size) - 1}


def simulated(k: int, seed: int = 7):
    """k studies of 10-60 patients, mu = (0.5, -2), tau = (0.5, 0.7), rho = -0.5."""
    rng = np.random.default_rng(seed)
    n = rng.integers(10, 61, k)
    z = rng.standard_normal((k, 2))
    rho = -0.5
    eta = np.array([0.5 + 0.5 * z[:, 0],
                    -2.0 + 0.7 * (rho * z[:, 0] + np.sqrt(1 - rho**2) * z[:, 1])])
    return rng.binomial(np.array([n, n]), 1 / (1 + np.exp(-eta))), np.array([n, n])


DATASETS = {
    "bundled (SAE 1/18)": (np.array([[1, 16], [5, 1]]), np.array([[6, 18], [6, 18]])),
    "bundled (SAE 0/18)": (np.array([[1, 16], [5, 0]]), np.array([[6, 18], [6, 18]])),
    "k = 20 simulated": simulated(20),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--draws", type=int, default=16000)
    args = parser.parse_args()
    print(f"importance-sampling engine, {args.draws} final draws, numba threads "
          f"{numba.get_num_threads()}, median of {args.repeat} fits (seeds 1..)")
    for name, (events, totals) in DATASETS.items():
        def run(seed, events=events, totals=totals):
            return fit_bivariate(events, totals, log_prior=log_prior, prior_draw=prior_draw,
                                 rng=np.random.default_rng(seed), draws=args.draws)
        run(0)  # warm-up
        walls, cpus, results = [], [], []
        for seed in range(1, args.repeat + 1):
            start, cpu = time.perf_counter(), time.process_time()
            results.append(run(seed))
            walls.append(time.perf_counter() - start)
            cpus.append(time.process_time() - cpu)
        r = results[0]
        stages = ", ".join(f"{k} {v:.2f}" for k, v in r.timings.items() if k != "total")
        print(f"\n{name}: wall {statistics.median(walls):.2f} s (cpu "
              f"{statistics.median(cpus):.2f} s); stages of seed 1 (s): {stages}")
        for seed, res in enumerate(results, start=1):
            print(f"  seed {seed}: k-hat {res.khat:.2f}, ESS {res.ess:.0f} of {res.size}; "
                  f"study k-hat max {res.study_khat.max():.2f}, study ESS min "
                  f"{res.study_ess.min():.0f}; quadrature evaluations per study "
                  f"{res.info['quadrature_evaluations']:.0f}; {res.verdict.split(':')[0]}")


if __name__ == "__main__":
    main()
