"""What runs on Dask workers: the plugin holding a worker's contexts, and the task wrapper."""

# This module imports distributed: only DaskExecutor (and the Dask workers unpickling
# its tasks) import it.

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from distributed import get_worker
from distributed.diagnostics.plugin import WorkerPlugin

from bayes_dress.executors.base import TaskFn, make_context, run_task

_LOCK = threading.Lock()
_THREAD = threading.local()
#: Plugins made on this worker for tasks that arrived before their plugin (a fallback).
_LOCAL: dict[str, ContextPlugin] = {}


class ContextPlugin(WorkerPlugin):
    """Holds one worker's context for one context factory, made on first use and kept
    for the worker's life.

    Registered as idempotent: registering it again under the same name (a later run on
    the same cluster) leaves the workers' contexts, and what they hold, in place.

    Parameters
    ----------
    context_factory : callable
        Zero-argument and picklable.
    """

    idempotent = True

    def __init__(self, context_factory: Callable[[], Any]) -> None:
        self.context_factory = context_factory
        self._made = False
        self._context: Any = None

    def context(self) -> tuple[bool, Any]:
        """``(True, context)``, made now if this is the first task; or ``(False, reason)``
        if the factory raised (it is tried again on the next task)."""
        with _LOCK:
            if not self._made:
                ok, context = make_context(self.context_factory)
                if not ok:
                    return False, context
                self._context, self._made = context, True
        return True, self._context

    def teardown(self, worker: Any) -> None:
        """Drop the context."""
        self._context, self._made = None, False


def run_on_worker(fn: TaskFn, task: Any, plugin_name: str, context_factory: Callable[[], Any]
                  ) -> tuple[str, bool, Any]:
    """Run one task on this worker with its context.

    Returns
    -------
    tuple of (str, bool, object)
        This worker's address (how the client learns where each key is held), then
        :func:`~bayes_dress.executors.base.run_task`'s ``(ok, result or reason)``.
    """
    worker = get_worker()
    if not getattr(_THREAD, "limited", False):
        from bayes_dress.executors.process import limit_blas_threads

        limit_blas_threads()
        _THREAD.limited = True
    plugin = worker.plugins.get(plugin_name)
    if not isinstance(plugin, ContextPlugin):
        with _LOCK:
            plugin = _LOCAL.setdefault(plugin_name, ContextPlugin(context_factory))
    ok, context = plugin.context()
    if not ok:
        return worker.address, False, context
    return (worker.address, *run_task(fn, task, context))
