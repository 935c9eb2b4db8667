"""Toy tasks and a throwaway Dask cluster for the executors' tests and benchmark.

In the package so that separate Dask worker processes can import the tasks (classes in
a test module would not unpickle there). Not part of the API.

A :class:`ToyTask` computes a deterministic numpy result from its seed. Its worker's
:class:`ToyContext` "compiles" each key once (sleeping to stand in for the cost) and
counts it, so tests can check that routing kept compiles few; a task can also kill
its worker process (once, or every time) or raise, to test retries and failures.
:func:`start_dask_cluster` runs ``dask scheduler`` and ``dask worker`` processes on
127.0.0.1 for as long as a ``with`` block.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class ToyTask:
    """A toy task.

    Parameters
    ----------
    seed : int
        Seeds the result.
    group : str or None
        The key's name (tasks of one group share a "compiled model"); None: no key.
    compile_seconds, work_seconds : float
        Sleeps standing in for compiling a key and for the work.
    crash : str
        ``""``; ``"always"`` (kill the worker process every time); ``"once:PATH"`` (kill
        it if the file PATH does not exist yet, creating it: so only the first time); or
        ``"raise"`` (raise ValueError).
    announce : bool
        Print ``worker-pid PID`` to stdout when starting (for interrupt tests).
    """

    seed: int
    group: str | None = "a"
    compile_seconds: float = 0.0
    work_seconds: float = 0.0
    crash: str = ""
    announce: bool = False

    def key(self) -> Hashable | None:
        """``("toy", group)``, or None."""
        return None if self.group is None else ("toy", self.group)


@dataclass(frozen=True)
class ToyResult:
    """A toy result: equal across executors (``worker`` and ``compiled`` don't compare)."""

    seed: int
    value: float
    digest: tuple[float, ...]
    #: ``host:pid`` of the worker process that ran it.
    worker: str = field(default="", compare=False)
    #: Whether this task compiled its key on that worker.
    compiled: bool = field(default=False, compare=False)


class ToyContext:
    """A worker's context: the keys it has compiled, with how many times each."""

    def __init__(self) -> None:
        self.compiles: Counter = Counter()
        self._lock = threading.Lock()

    def prepare(self, key: Hashable | None, seconds: float) -> bool:
        """Compile ``key`` unless held already; return whether it was compiled now."""
        if key is None:
            return False
        with self._lock:
            if key in self.compiles:
                return False
            time.sleep(seconds)
            self.compiles[key] += 1
            return True


def toy_fn(task: ToyTask, context: ToyContext) -> ToyResult:
    """Run a toy task (module level, so it pickles by reference)."""
    if task.announce:  # one write: atomic on a pipe shared with other workers
        os.write(sys.stdout.fileno(), f"worker-pid {os.getpid()}\n".encode())
    if task.crash == "always":
        _die()
    if task.crash.startswith("once:"):
        try:
            os.close(os.open(task.crash[5:], os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            pass
        else:
            _die()
    if task.crash == "raise":
        raise ValueError(f"toy task {task.seed} fails on purpose")
    compiled = context.prepare(task.key(), task.compile_seconds)
    if task.work_seconds:
        time.sleep(task.work_seconds)
    rng = np.random.default_rng(task.seed)
    x = rng.normal(size=(20, 20))
    values = np.linalg.eigvalsh(x @ x.T)
    return ToyResult(seed=task.seed, value=float(values.sum()),
                     digest=tuple(float(v) for v in values[-3:]),
                     worker=f"{socket.gethostname()}:{os.getpid()}", compiled=compiled)


def toy_failed(task: ToyTask, reason: str) -> tuple[str, int, str]:
    """An ``on_failure`` for toy tasks: ``("failed", seed, reason)``."""
    return ("failed", task.seed, reason)


def _die() -> None:
    sys.stdout.flush()
    os._exit(17)


@contextlib.contextmanager
def start_dask_cluster(directory: Path, *, workers: int = 2, timeout: float = 60.0,
                 env: dict[str, str] | None = None) -> Iterator[str]:
    """A Dask scheduler and ``workers`` single-threaded worker processes on 127.0.0.1
    (each ``dask worker --nworkers 1 --nthreads 1``, under its nanny), no dashboards.

    Parameters
    ----------
    directory : Path
        For the scheduler file, the processes' logs and the workers' files.
    workers : int, optional
        How many worker processes.
    timeout : float, optional
        Seconds to wait for the scheduler and every worker to be up.
    env : dict, optional
        Extra environment variables for the processes (e.g. Dask config).

    Yields
    ------
    str
        The scheduler's address. On leaving, every process started (each in its own
        session, with what it started) gets SIGTERM, then SIGKILL after 10 s.
    """
    from distributed import Client

    directory.mkdir(parents=True, exist_ok=True)
    scheduler_file = directory / "scheduler.json"
    scheduler_file.unlink(missing_ok=True)
    environ = {**os.environ, **(env or {})}
    processes: list[subprocess.Popen] = []

    def start(name: str, *args: str) -> None:
        with open(directory / f"{name}.log", "w") as log:
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "dask", *args], cwd=directory, env=environ,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True))

    try:
        start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", "0",
              "--no-dashboard", "--scheduler-file", str(scheduler_file))
        deadline = time.monotonic() + timeout
        address = None
        while address is None:
            if time.monotonic() > deadline or processes[0].poll() is not None:
                raise RuntimeError("the Dask scheduler did not start: "
                                   + (directory / "scheduler.log").read_text()[-2000:])
            with contextlib.suppress(FileNotFoundError, json.JSONDecodeError, KeyError):
                address = json.loads(scheduler_file.read_text())["address"]
            time.sleep(0.1)
        for i in range(workers):
            start(f"worker-{i}", "worker", address, "--nworkers", "1", "--nthreads", "1",
                  "--no-dashboard", "--host", "127.0.0.1", "--name", f"worker-{i}",
                  "--local-directory", str(directory / f"worker-{i}"))
        with Client(address, timeout=timeout, set_as_default=False) as client:
            client.wait_for_workers(workers, timeout=max(1.0, deadline - time.monotonic()))
        yield address
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
