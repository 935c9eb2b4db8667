"""InlineExecutor: every task in this process, one after another (``--jobs 1``)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from bayes_dress.executors.base import Executor, OnFailure, Progress, TaskFn, make_context, run_task


class InlineExecutor(Executor):
    """Runs tasks one by one in this process, all sharing one context per factory.

    The contexts live as long as the executor, so successive :meth:`execute` calls with
    the same ``context_factory`` reuse what earlier tasks prepared. Tasks need not be
    picklable here. Ctrl-C stops at once (the task running is abandoned). BLAS runs on
    one thread during :meth:`execute`, as in the other executors' workers, so that
    results agree to the last bit whichever executor ran them.
    """

    def __init__(self) -> None:
        self._contexts: dict[Any, Any] = {}

    def _execute(self, tasks: list[Any], fn: TaskFn, *, context_factory: Callable[[], Any],
                 progress: Progress | None, on_failure: OnFailure) -> list[Any]:
        results = []
        with _one_blas_thread():
            self._loop(tasks, fn, context_factory, progress, on_failure, results)
        return results

    def _loop(self, tasks: list[Any], fn: TaskFn, context_factory: Callable[[], Any],
              progress: Progress | None, on_failure: OnFailure, results: list[Any]) -> None:
        for task in tasks:
            ok, value = self._run(fn, task, context_factory)
            results.append(value if ok else on_failure(task, value))
            if progress is not None:
                progress(results[-1], len(results), len(tasks))

    def _run(self, fn: TaskFn, task: Any, context_factory: Callable[[], Any]
             ) -> tuple[bool, Any]:
        if context_factory not in self._contexts:
            ok, context = make_context(context_factory)
            if not ok:
                return False, context
            self._contexts[context_factory] = context
        return run_task(fn, task, self._contexts[context_factory])

    def close(self) -> None:
        """Drop the contexts."""
        self._contexts.clear()


def _one_blas_thread() -> contextlib.AbstractContextManager:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(1)
