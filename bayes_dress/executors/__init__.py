"""Executors: one interface for everything that runs many independent tasks.

A *task* is any picklable object with a ``key()`` method naming what a worker must
prepare to run it (e.g. a compiled model's structure; hashable, or None for nothing).
The work is a module-level function ``fn(task, context)``, where ``context`` is made
once per worker process by a picklable zero-argument ``context_factory`` and kept for
that process's life (where compiled models stay warm). Every executor returns the
results in task order, calls ``progress(result, done, total)`` here as each arrives,
and turns a task that cannot be run (its worker died twice, or ``fn`` raised) into
``on_failure(task, reason)``::

    from bayes_dress.executors import get_executor, resolve_scheduler

    scheduler = resolve_scheduler(flag, config_value)  # or $BAYES_DRESS_SCHEDULER
    with get_executor(scheduler, jobs=jobs, n_tasks=len(tasks)) as executor:
        results = executor.execute(tasks, fit_one, context_factory=CompiledModelCache,
                                   progress=bar.update, on_failure=failed_result)

Executors: :class:`InlineExecutor` (this process), :class:`ProcessExecutor` (forked
worker processes on this machine) and :class:`DaskExecutor` (a Dask cluster, local or
remote). The last imports :mod:`distributed` only when made; importing this package
imports neither Dask nor PyMC nor numba.
"""

from bayes_dress.executors.affinity import DUPLICATE_AFTER, KeyAffinity
from bayes_dress.executors.base import (
    Executor,
    OnFailure,
    Progress,
    Task,
    TaskFailed,
    TaskFn,
    cpu_count,
)
from bayes_dress.executors.dask_cluster import DaskExecutor
from bayes_dress.executors.inline import InlineExecutor
from bayes_dress.executors.process import ProcessExecutor
from bayes_dress.executors.resolve import SCHEDULER_ENV, get_executor, resolve_scheduler

__all__ = [
    "DUPLICATE_AFTER", "SCHEDULER_ENV", "DaskExecutor", "Executor", "InlineExecutor",
    "KeyAffinity", "OnFailure", "ProcessExecutor", "Progress", "Task", "TaskFailed",
    "TaskFn", "cpu_count", "get_executor", "resolve_scheduler",
]
