"""Per-fit cost of the MCMC diagnostics: arviz-stats' array functions against the batched
estimators of :mod:`bayes_dress.mcmc_stats`. A benchmark, not a test.

One "fit" is what ``summarize``, ``compare_with_exact`` and ``tail_probabilities`` ask
for on a (4, 2000, 10) array of draws: bulk and tail ESS, R-hat and the MCSE of the mean,
the ESS and MCSE of the 2.5%, 50% and 97.5% quantiles, and the bulk ESS of 6 indicators
(2 quantities x 3 thresholds). The old calls are the arviz-stats calls those functions
made, the new ones the calls they make now. Prints the median wall time per fit of each,
their ratio, and the largest relative difference between the two.

Run: .venv/bin/python benchmarks/mcmc_stats.py [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from arviz_stats.base import array_stats

from bayes_dress.posterior import mcmc_stats

SHAPE = (4, 2000, 10)
PROBS = (0.025, 0.5, 0.975)
TAIL_PROB = (0.05, 0.95)
THRESHOLDS = (-1.0, 0.0, 1.0)


def draws(seed: int = 0) -> np.ndarray:
    """AR(1) chains (phi from 0 to 0.95, one per column), as NUTS output is autocorrelated."""
    rng = np.random.default_rng(seed)
    _, n, k = SHAPE
    phi = np.linspace(0.0, 0.95, k)
    noise = rng.normal(size=SHAPE)
    x = np.empty(SHAPE)
    x[:, 0] = noise[:, 0] / np.sqrt(1 - phi**2)
    for t in range(1, n):
        x[:, t] = phi * x[:, t - 1] + noise[:, t]
    return x


def indicators(x: np.ndarray) -> np.ndarray:
    return np.stack([(x[:, :, i] > t).astype(float) for i in (0, 1) for t in THRESHOLDS],
                    axis=-1)


def old(x: np.ndarray) -> dict[str, np.ndarray]:
    axes = {"chain_axis": 0, "draw_axis": 1}
    out = {"ess_bulk": array_stats.ess(x, method="bulk", **axes),  # summarize
           "ess_tail": array_stats.ess(x, method="tail", prob=TAIL_PROB, **axes),
           "rhat": array_stats.rhat(x, **axes),
           "mcse_mean": array_stats.mcse(x, method="mean", **axes)}
    array_stats.mcse(x, method="mean", **axes)  # compare_with_exact
    for p in PROBS:
        out[f"mcse_q{p}"] = array_stats.mcse(x, method="quantile", prob=p, **axes)
        out[f"ess_q{p}"] = array_stats.ess(x, method="quantile", prob=p, **axes)
    out["ess_indicators"] = array_stats.ess(indicators(x), method="bulk", **axes)
    return out


def new(x: np.ndarray) -> dict[str, np.ndarray]:
    ess_bulk, rhat = mcmc_stats.ess_bulk_and_rhat(x)  # summarize
    out = {"ess_bulk": ess_bulk, "ess_tail": mcmc_stats.ess_tail(x, TAIL_PROB), "rhat": rhat,
           "mcse_mean": mcmc_stats.mcse_mean(x)}
    ess = mcmc_stats.ess_quantile(x, PROBS)  # compare_with_exact (the mean from summarize)
    mcse = mcmc_stats.mcse_quantile(x, PROBS, ess=ess)
    for i, p in enumerate(PROBS):
        out[f"mcse_q{p}"], out[f"ess_q{p}"] = mcse[i], ess[i]
    out["ess_indicators"] = mcmc_stats.ess_mean(indicators(x))  # tail_probabilities
    return out


def timed(functions, x: np.ndarray, repeat: int) -> list[float]:
    """Median wall time of each function; runs alternate, so that a busy machine slows
    both alike."""
    times = [[] for _ in functions]
    for function in functions:
        function(x)  # warm-up: imports and caches
    for _ in range(repeat):
        for function, spent in zip(functions, times, strict=True):
            start = time.perf_counter()
            function(x)
            spent.append(time.perf_counter() - start)
    return [statistics.median(spent) for spent in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    x = draws()
    before, after = timed((old, new), x, args.repeat)
    reference, batched = old(x), new(x)
    worst = max(float(np.max(np.abs(batched[k] - reference[k]) / np.abs(reference[k])))
                for k in reference)
    print(f"draws {SHAPE}, median of {args.repeat} runs per fit")
    print(f"  arviz-stats array functions: {1e3 * before:7.1f} ms")
    print(f"  bayes_dress.mcmc_stats:      {1e3 * after:7.1f} ms   ({before / after:.0f}x)")
    print(f"  largest relative difference: {worst:.1e}")


if __name__ == "__main__":
    main()
