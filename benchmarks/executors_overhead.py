"""Per-task overhead of each executor: a benchmark, not a test.

Runs, in one run on this machine, toy tasks (bayes_dress.executors._selftest: a 20x20
eigenvalue problem, ~0.1 ms, all of one key, nothing to compile) through

1. InlineExecutor (this process);
2. ProcessExecutor (one forked worker per core);
3. DaskExecutor("local") (a LocalCluster, one single-threaded worker per core);
4. DaskExecutor(address) on a scheduler and two ``dask worker`` processes started here
   on 127.0.0.1 (distributed's default config) and stopped at the end;

first tiny tasks (what an executor costs per task: the rate it can feed its workers),
then tasks that also sleep 50 ms (close to a sweep's fits, ~0.2 s: the share of the
workers' time lost to the executor). Each executor runs a warm-up call first (workers
started, modules imported), which is not timed. A task's own time is its time inline
(a 50 ms sleep takes a little longer). Prints, per executor, tasks per second, the
overhead per task per worker (elapsed x workers / tasks, less the task's own time) and
the efficiency (the task's own time x tasks / workers, over the time taken).

Run: .venv/bin/python benchmarks/executors_overhead.py [--tiny N] [--sleepy N]
     [--workers W] [--in-flight K]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bayes_dress.executors import (
    DaskExecutor,
    Executor,
    InlineExecutor,
    ProcessExecutor,
    cpu_count,
)
from bayes_dress.executors._selftest import ToyContext, ToyTask, start_dask_cluster, toy_fn

SLEEP = 0.05


def rate(executor: Executor, n: int, work_seconds: float) -> float:
    """Seconds to run ``n`` toy tasks of ``work_seconds`` each."""
    tasks = [ToyTask(seed=i, work_seconds=work_seconds) for i in range(n)]
    start = time.perf_counter()
    results = executor.execute(tasks, toy_fn, context_factory=ToyContext)
    elapsed = time.perf_counter() - start
    assert len(results) == n and all(r.seed == i for i, r in enumerate(results))
    return elapsed


def measure(name: str, executor: Executor, workers: int, args: argparse.Namespace,
            own: dict[str, float] | None = None) -> dict:
    """Time both kinds of task; ``own`` is each kind's own time per task (None: this
    is the inline run, which measures it)."""
    executor.execute([ToyTask(seed=i) for i in range(4 * workers)], toy_fn,
                     context_factory=ToyContext)  # warm-up
    row = {"executor": name, "workers": workers}
    for kind, n, work in (("tiny", args.tiny, 0.0), ("50ms", args.sleepy, SLEEP)):
        elapsed = rate(executor, n, work)
        per_task = elapsed * workers / n
        alone = per_task if own is None else own[kind]
        row[kind] = {"rate": n / elapsed, "own": alone, "overhead": per_task - alone,
                     "efficiency": alone / per_task}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", type=int, default=1000, help="tiny tasks per executor")
    parser.add_argument("--sleepy", type=int, default=100, help="50 ms tasks per executor")
    parser.add_argument("--workers", type=int, default=cpu_count(),
                        help="workers of the process pool and the LocalCluster")
    parser.add_argument("--in-flight", type=int, default=2,
                        help="DaskExecutor tasks in flight per worker thread")
    args = parser.parse_args()

    rows = []
    with InlineExecutor() as executor:
        rows.append(measure("inline", executor, 1, args))
    own = {kind: rows[0][kind]["own"] for kind in ("tiny", "50ms")}
    with ProcessExecutor(args.workers) as executor:
        rows.append(measure("process", executor, args.workers, args, own))
    started = time.perf_counter()
    with DaskExecutor("local", workers=args.workers, in_flight=args.in_flight) as executor:
        startup = time.perf_counter() - started
        rows.append(measure("dask local", executor, args.workers, args, own))
    with tempfile.TemporaryDirectory() as directory:
        started = time.perf_counter()
        with start_dask_cluster(Path(directory), workers=2) as address:
            cluster_startup = time.perf_counter() - started
            with DaskExecutor(address, in_flight=args.in_flight) as executor:
                rows.append(measure("dask external", executor, 2, args, own))

    print(f"a task's own time (inline): tiny {1e3 * own['tiny']:.3f} ms, "
          f"50 ms task {1e3 * own['50ms']:.2f} ms; {args.tiny} tiny and {args.sleepy} "
          f"50 ms tasks per executor; Dask in_flight={args.in_flight}")
    print(f"start-up, not in the figures: LocalCluster {startup:.1f} s, external "
          f"scheduler + 2 workers {cluster_startup:.1f} s")
    header = (f"{'executor':<14}{'workers':>8} | {'tiny/s':>8}{'ms/task':>9}{'eff.':>7} | "
              f"{'50ms/s':>7}{'ms/task':>9}{'eff.':>7}")
    print(header)
    print("-" * len(header))
    for r in rows:
        cells = [f"{r[k]['rate']:>{w}.{d}f}{1e3 * r[k]['overhead']:>9.2f}"
                 f"{r[k]['efficiency']:>7.0%}" for k, w, d in (("tiny", 8, 0), ("50ms", 7, 1))]
        print(f"{r['executor']:<14}{r['workers']:>8} | " + " | ".join(cells))
    print("ms/task: overhead per task per worker; eff.: the tasks' own time over the "
          "workers' time taken")

if __name__ == "__main__":
    main()
