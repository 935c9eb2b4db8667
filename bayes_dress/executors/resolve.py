"""Choosing an executor from a scheduler setting (flag, config, environment) and a job count."""

from __future__ import annotations

import os
from collections.abc import Mapping

from bayes_dress.executors.base import Executor, cpu_count
from bayes_dress.executors.inline import InlineExecutor
from bayes_dress.executors.process import ProcessExecutor

#: The environment variable naming a scheduler when neither flag nor config does.
SCHEDULER_ENV = "BAYES_DRESS_SCHEDULER"


def resolve_scheduler(flag: str | None = None, config: str | None = None, *,
                      environ: Mapping[str, str] | None = None) -> str | None:
    """The scheduler to use: the command-line flag, else the config value, else the
    environment variable :data:`SCHEDULER_ENV`; an empty or blank value counts as unset.

    Parameters
    ----------
    flag : str, optional
        From the command line (e.g. ``--scheduler``).
    config : str, optional
        From a config file.
    environ : mapping, optional
        The environment (default: :data:`os.environ`).

    Returns
    -------
    str or None
        None for the local default (worker processes on this machine).
    """
    environ = os.environ if environ is None else environ
    for value in (flag, config, environ.get(SCHEDULER_ENV)):
        if value is not None and value.strip():
            return value.strip()
    return None


def get_executor(scheduler: str | None = None, *, jobs: int | None = None,
                 n_tasks: int | None = None) -> Executor:
    """An executor for a scheduler setting (see :func:`resolve_scheduler`).

    Parameters
    ----------
    scheduler : str, optional
        None: this machine's worker processes, :class:`ProcessExecutor` with ``jobs``
        of them (default one per core), or :class:`InlineExecutor` when that is one
        (``jobs == 1``, or a single task). ``"local"``: a Dask
        :class:`~distributed.LocalCluster` of ``jobs`` single-threaded worker
        processes (default one per core). Anything else: the address of a running Dask
        scheduler (``tcp://host:port``), connected to now; ``jobs`` is then ignored
        (the cluster's workers decide).
    jobs : int, optional
        Worker processes on this machine.
    n_tasks : int, optional
        How many tasks there will be, if known: no more workers than that are useful.

    Returns
    -------
    Executor
        To use as a context manager, which closes what it opened.

    Raises
    ------
    BayesDressError
        A scheduler address that cannot be reached within 10 s, or is malformed, or
        Dask is asked for but not installed.
    """
    if scheduler is None or not scheduler.strip():
        workers = jobs or cpu_count()
        if n_tasks is not None:
            workers = min(workers, n_tasks)
        return InlineExecutor() if workers <= 1 else ProcessExecutor(workers)
    from bayes_dress.executors.dask_cluster import DaskExecutor

    return DaskExecutor(scheduler, workers=jobs)
