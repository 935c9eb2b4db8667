"""Speed of the exact engine on the bundled data: a benchmark, not a test.

Prints, for every model and outcome, the median wall time of one exact fit (no
refinement check, as used to check every NUTS fit and in sweeps) and of a checked fit
(the same plus a fit at twice the resolution, as ``fit --engine exact`` runs), the grid
error that check measured, and the ratio of the median to the 50 ms target.

Run: .venv/bin/python benchmarks/exact_engine.py [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

from bayes_dress.data import load_table, select_outcome
from bayes_dress.engines.exact.integrators import GRID_POINTS, exact_fit
from bayes_dress.spec.models import get_model_spec, resolve_priors

TARGET_SECONDS = 0.050
MODELS = ("beta_binomial", "logit_normal", "common_effect", "independent")


def timed(function, repeat: int) -> float:
    function()  # warm-up: imports and caches
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    table = load_table()
    print(f"exact engine, {GRID_POINTS} grid points per axis, median of {args.repeat} runs")
    print(f"{'model':<15} {'outcome':<10} {'fit (s)':>8} {'x target':>9} "
          f"{'checked (s)':>12} {'grid error':>11}")
    for model in MODELS:
        priors = resolve_priors(get_model_spec(model))
        for outcome in ("success", "severe_ae"):
            data = select_outcome(table, outcome)
            def run(check, data=data, model=model, priors=priors):
                return exact_fit(data, model=model, priors=priors, check=check)

            single = timed(lambda: run(False), args.repeat)
            checked_fit = run(True)
            checked = timed(lambda: run(True), max(1, args.repeat // 2))
            print(f"{model:<15} {outcome:<10} {single:>8.3f} {single / TARGET_SECONDS:>8.1f}x "
                  f"{checked:>12.3f} {checked_fit.grid_error:>11.1e}")


if __name__ == "__main__":
    main()
