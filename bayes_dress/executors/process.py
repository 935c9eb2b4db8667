"""ProcessExecutor: forked worker processes on this machine, with key affinity and retries."""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import os
import pickle
import signal
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from bayes_dress.errors import BayesDressError
from bayes_dress.executors.affinity import DUPLICATE_AFTER, KeyAffinity
from bayes_dress.executors.base import (
    Executor,
    OnFailure,
    Progress,
    TaskFn,
    cpu_count,
    describe_error,
    make_context,
    run_task,
)
from bayes_dress.executors.signals import die_with_parent, sigterm_raises

#: Seconds a closing executor waits for its workers to finish before terminating them.
CLOSE_SECONDS = 5.0
#: Seconds it waits after terminating (SIGTERM) before killing (SIGKILL).
TERMINATE_SECONDS = 2.0
#: Workers a run may find dead when sending them a task before it gives up.
MAX_IDLE_DEATHS = 8
#: The message that tells a worker to exit.
_STOP = b""


@dataclass(eq=False)
class _Worker:
    """A worker process as the parent sees it."""

    id: int
    process: BaseProcess
    connection: Connection
    #: The keys it holds, per context factory (pickled): shared with the KeyAffinity
    #: of an execute with that factory.
    held: dict[bytes, set] = field(default_factory=dict)
    #: The index of the task it is running, if any.
    running: int | None = None


class ProcessExecutor(Executor):
    """Runs tasks in worker processes started from this one (fork where available).

    Each worker keeps its contexts (one per ``context_factory``) for its life, and is
    sent the tasks whose key it already holds (:class:`~bayes_dress.executors.affinity.
    KeyAffinity`), one task at a time. Workers limit BLAS to one thread (they fill the
    cores already), ignore Ctrl-C (the parent stops them), and exit within a second or so
    if the parent dies, even by SIGKILL. A task whose worker dies (a crash, the OOM
    killer) is run again on a fresh worker; if that one dies too, its result is
    ``on_failure(task, reason)``.

    Workers start on the first :meth:`execute` and are kept until :meth:`close` (or
    the end of the ``with`` block, or of the program), so later calls find their
    contexts warm. Forked workers inherit the modules this process has imported.

    Parameters
    ----------
    jobs : int, optional
        Worker processes (at most one per task is started). Default: one per core.
    duplicate_after : int, optional
        See :data:`~bayes_dress.executors.affinity.DUPLICATE_AFTER`.
    start_method : str, optional
        A :mod:`multiprocessing` start method. Default: ``"fork"`` where available
        (POSIX), else ``"spawn"`` (then tasks, ``fn`` and the factory must be importable).
    """

    def __init__(self, jobs: int | None = None, *, duplicate_after: int = DUPLICATE_AFTER,
                 start_method: str | None = None) -> None:
        self.jobs = max(1, jobs or cpu_count())
        self.duplicate_after = duplicate_after
        methods = multiprocessing.get_all_start_methods()
        self._method = start_method or ("fork" if "fork" in methods else "spawn")
        self._mp = multiprocessing.get_context(self._method)
        self._workers: list[_Worker] = []
        self._next_id = 0
        self._closed = False
        _LIVE.add(self)

    @property
    def worker_pids(self) -> list[int]:
        """The process ids of the live workers (for diagnostics and tests)."""
        return [w.process.pid for w in self._workers if w.process.pid is not None]

    def _execute(self, tasks: list[Any], fn: TaskFn, *, context_factory: Callable[[], Any],
                 progress: Progress | None, on_failure: OnFailure) -> list[Any]:
        if self._closed:
            raise RuntimeError("this ProcessExecutor is closed")
        header = (pickle.dumps(fn), pickle.dumps(context_factory))
        run = _Run(self, tasks, header, progress, on_failure)
        with sigterm_raises():
            try:
                run.run()
            except BaseException:
                self._stop(now=True)
                raise
        return run.results

    def _spawn(self) -> _Worker:
        parent_end, child_end = self._mp.Pipe()
        # A forked worker would otherwise keep copies of the other workers' pipe ends.
        inherited = [w.connection for w in self._workers] if self._method == "fork" else []
        in_main_thread = threading.current_thread() is threading.main_thread()
        process = self._mp.Process(
            target=_worker_main, args=(child_end, os.getpid(), inherited, in_main_thread),
            name=f"bayes-dress-worker-{self._next_id}")
        process.start()
        child_end.close()
        worker = _Worker(id=self._next_id, process=process, connection=parent_end)
        self._next_id += 1
        self._workers.append(worker)
        return worker

    def _remove(self, worker: _Worker) -> None:
        self._workers.remove(worker)
        worker.connection.close()
        worker.process.join(timeout=TERMINATE_SECONDS)
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join(timeout=TERMINATE_SECONDS)

    def _stop(self, *, now: bool) -> None:
        """Stop every worker: ask and wait (up to :data:`CLOSE_SECONDS`), or terminate."""
        workers, self._workers = self._workers, []
        if not now:
            for worker in workers:
                with contextlib.suppress(OSError):
                    worker.connection.send_bytes(_STOP)
            _join_all(workers, CLOSE_SECONDS)
        for worker in workers:
            if worker.process.is_alive():
                worker.process.terminate()
        _join_all(workers, TERMINATE_SECONDS)
        for worker in workers:
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(timeout=TERMINATE_SECONDS)
            worker.connection.close()

    def close(self) -> None:
        """Stop the workers (they finish the task they run, for up to a few seconds)."""
        self._closed = True
        self._stop(now=False)
        _LIVE.discard(self)


class _Run:
    """One :meth:`ProcessExecutor.execute` call: its tasks, results and retries."""

    def __init__(self, executor: ProcessExecutor, tasks: list[Any], header: tuple[bytes, bytes],
                 progress: Progress | None, on_failure: OnFailure) -> None:
        self.executor = executor
        self.tasks = tasks
        self.header = header
        self.progress = progress
        self.on_failure = on_failure
        self.results: list[Any] = [None] * len(tasks)
        self.done = 0
        #: How each task's workers died, per task.
        self.deaths: list[list[str]] = [[] for _ in tasks]
        self.keys = [task.key() for task in tasks]
        self.affinity = KeyAffinity(duplicate_after=executor.duplicate_after)
        for index, key in enumerate(self.keys):
            self.affinity.add(index, key)
        #: Workers found dead when sent a task.
        self.lost_idle = 0

    def run(self) -> None:
        executor = self.executor
        for worker in list(executor._workers):  # died while idle since the last call
            if not worker.process.is_alive():
                executor._remove(worker)
        for worker in executor._workers:
            self._adopt(worker)
        while self.done < len(self.tasks):
            self._top_up()
            for worker in list(executor._workers):
                if worker.running is None:
                    index = self.affinity.next_for(worker.id)
                    if index is not None:
                        self._send(worker, index)
            busy = [w for w in executor._workers if w.running is not None]
            if not busy:
                if not len(self.affinity):
                    raise RuntimeError("no task is running but some have no result")  # a bug
                if self.lost_idle > MAX_IDLE_DEATHS:
                    raise BayesDressError("worker processes keep dying before they take a task "
                                          "(out of memory?)")
                continue  # the workers died idle: start others
            ready = set(wait([w.connection for w in busy] + [w.process.sentinel for w in busy]))
            for worker in busy:
                if worker.connection in ready or worker.process.sentinel in ready:
                    self._collect(worker)

    def _top_up(self) -> None:
        """Start workers while there are fewer than jobs and tasks waiting for one."""
        executor = self.executor
        idle = sum(w.running is None for w in executor._workers)
        for _ in range(min(executor.jobs - len(executor._workers), len(self.affinity) - idle)):
            self._adopt(executor._spawn())

    def _adopt(self, worker: _Worker) -> _Worker:
        """Let the affinity see (and update) the keys ``worker`` holds for this factory."""
        self.affinity.held[worker.id] = worker.held.setdefault(self.header[1], set())
        return worker

    def _send(self, worker: _Worker, index: int) -> None:
        message = pickle.dumps((self.header, self.tasks[index]))
        try:
            worker.connection.send_bytes(message)
        except OSError:  # it died while idle: not this task's fault
            self.lost_idle += 1
            self._bury(worker)
            self.affinity.add(index, self.keys[index], first=True)
            return
        worker.running = index

    def _collect(self, worker: _Worker) -> None:
        index = worker.running
        try:
            if not worker.connection.poll():
                raise EOFError
            ok, value = pickle.loads(worker.connection.recv_bytes())
        except (EOFError, OSError):
            self._died(worker, index)
            return
        worker.running = None
        self._finish(index, value if ok else self.on_failure(self.tasks[index], value))

    def _died(self, worker: _Worker, index: int) -> None:
        worker.running = None
        self._bury(worker)
        self.deaths[index].append(_exit_reason(worker.process.exitcode))
        if len(self.deaths[index]) >= 2:
            reason = ("its worker process died twice running it ("
                      + "; ".join(self.deaths[index]) + "); out of memory?")
            self._finish(index, self.on_failure(self.tasks[index], reason))
            return
        fresh = self._adopt(self.executor._spawn())  # the retry goes to a fresh worker
        self.affinity.hold(fresh.id, self.keys[index])
        self._send(fresh, index)

    def _bury(self, worker: _Worker) -> None:
        self.executor._remove(worker)
        self.affinity.forget(worker.id)

    def _finish(self, index: int, result: Any) -> None:
        self.results[index] = result
        self.done += 1
        if self.progress is not None:
            self.progress(result, self.done, len(self.tasks))


def _exit_reason(exitcode: int | None) -> str:
    if exitcode is None:
        return "no exit status"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


def _join_all(workers: list[_Worker], seconds: float) -> None:
    """Wait up to ``seconds`` in all for the workers to exit."""
    sentinels = [w.process.sentinel for w in workers if w.process.is_alive()]
    deadline = time.monotonic() + seconds
    while sentinels and (left := deadline - time.monotonic()) > 0:
        for sentinel in wait(sentinels, timeout=left):
            sentinels.remove(sentinel)
    for worker in workers:
        if not worker.process.is_alive():
            worker.process.join(timeout=0)


def _worker_main(connection: Connection, parent_pid: int, inherited: list[Connection],
                 use_prctl: bool) -> None:
    """A worker process: run the tasks the parent sends until told to stop."""
    for other in inherited:
        with contextlib.suppress(OSError):
            other.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    die_with_parent(parent_pid, use_prctl=use_prctl)
    limit_blas_threads()
    functions: dict[bytes, TaskFn] = {}
    contexts: dict[bytes, Any] = {}
    while True:
        try:
            message = connection.recv_bytes()
        except (EOFError, OSError):
            return
        if message == _STOP:
            return
        ok, value = _run_message(message, functions, contexts)
        try:
            connection.send_bytes(pickle.dumps((ok, value)))
        except (EOFError, OSError):
            return
        except Exception as err:  # the result does not pickle
            connection.send_bytes(pickle.dumps(
                (False, describe_error(err, what="sending the result"))))


def _run_message(message: bytes, functions: dict[bytes, TaskFn], contexts: dict[bytes, Any]
                 ) -> tuple[bool, Any]:
    try:
        (fn_bytes, factory_bytes), task = pickle.loads(message)
        if fn_bytes not in functions:
            functions[fn_bytes] = pickle.loads(fn_bytes)
        if factory_bytes not in contexts:
            ok, context = make_context(pickle.loads(factory_bytes))
            if not ok:
                return False, context
            contexts[factory_bytes] = context
    except Exception as err:
        return False, describe_error(err, what="unpickling the task")
    return run_task(functions[fn_bytes], task, contexts[factory_bytes])


def limit_blas_threads() -> None:
    """One BLAS/OpenMP thread in this process: the workers fill the cores already, and
    BLAS's own threads (one per core by default) would only contend with them."""
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = "1"  # for libraries loaded from now on
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(1)  # for those loaded already


#: The executors with workers that may be running, closed at exit (weakly held).
_LIVE: weakref.WeakSet[ProcessExecutor] = weakref.WeakSet()


@atexit.register
def _close_at_exit() -> None:
    # Runs before multiprocessing's own exit handler (registered earlier), which would
    # otherwise wait forever for workers that are waiting for their next task.
    for executor in list(_LIVE):
        executor._stop(now=True)
