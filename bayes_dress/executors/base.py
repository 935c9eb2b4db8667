"""The executor interface: what a task, a task function and an executor are."""

from __future__ import annotations

import os
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, Self


class Task(Protocol):
    """What an executor needs of a task: a key naming what a worker must prepare to run it.

    Tasks with equal keys reuse one preparation (e.g. one compiled model) held in a
    worker's context; ``None`` means the task needs none. A task is otherwise opaque to
    executors, which never change it; it must be picklable for every executor but
    :class:`~bayes_dress.executors.InlineExecutor`.
    """

    def key(self) -> Hashable | None:
        """What a worker must hold to run this task cheaply, or None."""
        ...


#: ``fn(task, context) -> result``: the work, a module-level (picklable) function.
TaskFn = Callable[[Any, Any], Any]
#: ``progress(result, done, total)``, called in the calling process per result.
Progress = Callable[[Any, int, int], None]
#: ``on_failure(task, reason) -> result`` for a task that could not be run.
OnFailure = Callable[[Any, str], Any]


@dataclass(frozen=True)
class TaskFailed:
    """The default result for a task that could not be run.

    Parameters
    ----------
    task : object
        The task, as given.
    reason : str
        One line: why (its worker died twice, or the task function raised).
    """

    task: Any
    reason: str


class Executor(ABC):
    """Runs many independent tasks and returns their results in task order.

    Executors are context managers: leaving the ``with`` block closes whatever the
    executor opened (processes, clusters, clients), never anything it was given.
    """

    def execute(self, tasks: Sequence[Any], fn: TaskFn, *, context_factory: Callable[[], Any],
                progress: Progress | None = None,
                on_failure: OnFailure = TaskFailed) -> list[Any]:
        """Run ``fn(task, context)`` for every task.

        Parameters
        ----------
        tasks : sequence
            Objects with a ``key()`` method (:class:`Task`), picklable.
        fn : callable
            ``fn(task, context) -> result``, a module-level function (picklable by
            reference). It owns everything that makes a result reproducible (e.g. its
            seeds): every executor gives it the same task and returns what it returns.
        context_factory : callable
            Zero-argument and picklable (e.g. a class). Each worker process calls it once,
            before its first task with this factory, and passes the object it returns to
            every task it runs for its whole life: the place to keep compiled models warm.
        progress : callable, optional
            ``progress(result, done, total)``, called in this process as each result
            arrives (in completion order, which is not task order).
        on_failure : callable, optional
            ``on_failure(task, reason) -> result`` builds the result of a task that
            could not be run: its worker process died on it twice (it is retried once,
            on another worker process), or ``fn`` raised (not retried: it would raise
            again). ``fn`` should turn its expected failures into results itself.
            Default: :class:`TaskFailed`.

        Returns
        -------
        list
            One result per task, in task order.

        Raises
        ------
        KeyboardInterrupt, SystemExit
            On Ctrl-C, or SIGTERM (as ``SystemExit(143)``) where no other SIGTERM
            handler is installed, after stopping the work this executor started.
        """
        tasks = list(tasks)
        if not tasks:
            return []
        return self._execute(tasks, fn, context_factory=context_factory, progress=progress,
                             on_failure=on_failure)

    @abstractmethod
    def _execute(self, tasks: list[Any], fn: TaskFn, *, context_factory: Callable[[], Any],
                 progress: Progress | None, on_failure: OnFailure) -> list[Any]:
        """:meth:`execute` for at least one task."""

    @abstractmethod
    def close(self) -> None:
        """Stop whatever this executor started; it cannot be used afterwards."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def run_task(fn: TaskFn, task: Any, context: Any) -> tuple[bool, Any]:
    """Call ``fn(task, context)``, catching what it raises.

    Returns
    -------
    tuple of (bool, object)
        ``(True, result)``, or ``(False, reason)`` with a one-line reason when ``fn``
        raised an :class:`Exception` (anything else, e.g. KeyboardInterrupt, propagates).
    """
    try:
        return True, fn(task, context)
    except Exception as err:  # a failed task is a result, never an exception
        return False, describe_error(err)


def make_context(context_factory: Callable[[], Any]) -> tuple[bool, Any]:
    """Call ``context_factory()``, catching what it raises.

    Returns
    -------
    tuple of (bool, object)
        ``(True, context)``, or ``(False, reason)`` as :func:`run_task`.
    """
    try:
        return True, context_factory()
    except Exception as err:
        return False, describe_error(err, what="the context factory")


def describe_error(err: BaseException, *, what: str = "the task") -> str:
    """One line for an exception: who raised it, its type, its message and where."""
    frames = traceback.extract_tb(err.__traceback__)
    where = f" (at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno})" if frames else ""
    message = " ".join(str(err).split())
    return f"{what} raised {type(err).__name__}: {message}{where}"


def cpu_count() -> int:
    """The cores this process may use (its CPU affinity where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1
