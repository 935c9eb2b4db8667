"""DaskExecutor: tasks on a Dask cluster (one started here, or a running scheduler)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import pickle
import queue
import time
import uuid
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bayes_dress.errors import BayesDressError
from bayes_dress.executors.affinity import DUPLICATE_AFTER, KeyAffinity
from bayes_dress.executors.base import Executor, OnFailure, Progress, TaskFn, cpu_count
from bayes_dress.executors.signals import sigterm_raises

#: Seconds to wait for a scheduler to answer before giving up on it.
CONNECT_SECONDS = 10.0
#: Seconds a run waits while the cluster has no workers before giving up.
NO_WORKERS_SECONDS = 60.0
#: Seconds to wait for a finished task's result at first; each later try (a result
#: lost with its worker is computed again; a large one may be slow) waits twice as long.
GATHER_SECONDS = 1.0
#: How often (seconds) the run looks at the cluster when nothing else happens.
_TICK = 1.0
#: What the scheduler argument says to start a cluster on this machine.
LOCAL = "local"


@dataclass(eq=False)
class _Submitted:
    """One submission of a task to the cluster."""

    index: int
    future: Any
    #: The worker it was sent to; None once that worker has gone.
    worker: str | None
    #: A retry, run with nothing else submitted to its worker.
    alone: bool = False


class DaskExecutor(Executor):
    """Runs tasks on a Dask cluster, sending each to a worker that holds its key.

    Each worker makes its context once (a :class:`~distributed.diagnostics.plugin.
    WorkerPlugin` holds it) and keeps it for its life. The client learns, from each
    result, which worker holds which key (the task wrapper returns its worker's
    address), and submits each task with ``workers=[address]`` and
    ``allow_other_workers=True`` to a worker with a free slot, choosing as
    :class:`~bayes_dress.executors.ProcessExecutor` does (a worker's own keys first).
    At most ``in_flight`` tasks per worker thread are submitted at a time; the rest
    wait here, where they can still go to whichever worker frees up first.

    A task whose worker dies is run once more; when its worker dies again, its result
    is ``on_failure(task, reason)``. The scheduler marks every task submitted to a
    worker that dies, running or queued, and gives up on one (``KilledWorker``) after
    ``distributed.scheduler.allowed-failures`` + 1 deaths. The local cluster started
    here sets that to 0: the executor then resubmits the task itself, alone on a
    worker (nothing else is sent there until it ends), so its second death is its own
    and a task that was only queued behind it gets its retry without blame. With an
    external scheduler (default allowed-failures 3) the scheduler reruns the task
    itself, and the executor fails it at its second death, counted from the
    scheduler's ``remove-worker`` events: then a task queued behind it on both dying
    workers fails with it. Start a scheduler with
    ``DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=0`` for the exact behaviour. After
    any death the run submits one task per worker thread at a time.

    Parameters
    ----------
    scheduler : str, optional
        ``"local"`` (default) starts a :class:`~distributed.LocalCluster` on this
        machine: ``workers`` single-threaded worker processes on 127.0.0.1, no
        dashboard, no work stealing, allowed-failures 0, its logs silenced (the
        executor reports failures as results). Closed by :meth:`close`. A script that
        uses it must guard its main code with ``if __name__ == "__main__":`` (Dask
        starts workers with the ``spawn`` method, which imports the main module).
        Anything else is a scheduler address (``tcp://host:8786``, or any address
        :class:`distributed.Client` accepts) to connect to.
    workers : int, optional
        Worker processes of a local cluster. Default: one per core.
    client : distributed.Client, optional
        Use this client (and its cluster) instead; it is not closed by :meth:`close`.
    timeout : float, optional
        Seconds to wait for a scheduler to answer. Default :data:`CONNECT_SECONDS`.
    in_flight : int, optional
        Tasks submitted at a time per worker thread (default 2). More than one hides the
        round trip through the scheduler (about 10 ms a task here: at one, 50 ms tasks
        kept the workers 83-86% busy, at two 97-98%); one leaves nothing queued on a
        worker for work stealing (on in external schedulers) to move or for a death to
        blame. A task queued behind another is always one of a key its worker holds.
    duplicate_after : int, optional
        See :data:`~bayes_dress.executors.affinity.DUPLICATE_AFTER`.

    Raises
    ------
    BayesDressError
        When ``distributed`` is not installed, the address is malformed, or the
        scheduler does not answer within ``timeout`` seconds.

    Notes
    -----
    Workers must be able to import ``bayes_dress`` and the modules of the tasks, ``fn``
    and ``context_factory``, and should run one thread each (``dask worker --nthreads 1``):
    a context is shared by a worker's threads. Ctrl-C cancels the submitted futures, but
    a task already running on a worker of an external cluster runs to its end there.
    """

    def __init__(self, scheduler: str = LOCAL, *, workers: int | None = None,
                 client: Any | None = None, timeout: float | None = None,
                 in_flight: int = 2, duplicate_after: int = DUPLICATE_AFTER) -> None:
        try:
            import distributed
        except ImportError:
            raise BayesDressError(
                "running on Dask needs the 'distributed' package: pip install distributed"
            ) from None
        self.in_flight = max(1, in_flight)
        self.timeout = CONNECT_SECONDS if timeout is None else timeout
        self.duplicate_after = duplicate_after
        self._cluster: Any = None
        self._closed = False
        self._own_client = client is None
        self._plugins: set[str] = set()
        #: The keys each worker holds, per context plugin, kept from run to run.
        self._held: dict[str, defaultdict[str, set]] = {}
        if client is not None:
            self.client = client
        elif scheduler.strip().lower() == LOCAL:
            self._cluster = _start_local_cluster(workers or cpu_count())
            self.client = distributed.Client(self._cluster, timeout=self.timeout,
                                             set_as_default=False)
        else:
            self.client = _connect(scheduler.strip(), self.timeout)
        self.address: str = self.client.scheduler.address

    def _execute(self, tasks: list[Any], fn: TaskFn, *, context_factory: Callable[[], Any],
                 progress: Progress | None, on_failure: OnFailure) -> list[Any]:
        from bayes_dress.executors import dask_worker

        if self._closed:
            raise RuntimeError("this DaskExecutor is closed")
        name = self._register(context_factory, dask_worker.ContextPlugin)
        run = _Run(self, tasks, fn, name, context_factory, progress, on_failure)
        with sigterm_raises():
            try:
                run.run()
            except BaseException:
                run.cancel()
                if self._own_client:
                    self.close()
                raise
            finally:
                run.unsubscribe()
        return run.results

    def _register(self, context_factory: Callable[[], Any], plugin_class: type) -> str:
        """Register the context plugin for this factory (once) and return its name."""
        digest = hashlib.sha1(pickle.dumps(context_factory)).hexdigest()[:12]
        label = getattr(context_factory, "__qualname__", type(context_factory).__name__)
        name = f"bayes-dress-context-{label}-{digest}"
        if name not in self._plugins:
            self.client.register_plugin(plugin_class(context_factory), name=name)
            self._plugins.add(name)
        return name

    def workers(self) -> dict[str, int]:
        """The cluster's workers now: address -> threads."""
        info = self.client.scheduler_info(n_workers=-1)
        return {address: int(w.get("nthreads", 1)) for address, w in info["workers"].items()}

    def close(self) -> None:
        """Close the client and local cluster this executor opened (not a given client,
        and never an external scheduler or its workers)."""
        self._closed = True
        if self._own_client:
            with contextlib.suppress(Exception):
                self.client.close()
        if self._cluster is not None:
            cluster, self._cluster = self._cluster, None
            with contextlib.suppress(Exception):
                cluster.close()


def _start_local_cluster(n_workers: int) -> Any:
    import dask
    from distributed import LocalCluster

    # The executor retries a task whose worker died itself (see DaskExecutor), and
    # places tasks by key itself: no work stealing.
    with dask.config.set({"distributed.scheduler.allowed-failures": 0,
                          "distributed.scheduler.work-stealing": False}):
        return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                            host="127.0.0.1", dashboard_address=None,
                            silence_logs=logging.CRITICAL)


def _connect(address: str, timeout: float) -> Any:
    from distributed import Client

    try:
        return Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as err:
        raise BayesDressError(f"cannot connect to the Dask scheduler at {address} "
                              f"within {timeout:g} s ({_one_line(err)})") from None
    except (ValueError, TypeError) as err:
        raise BayesDressError(f"'{address}' is not a Dask scheduler address: "
                              f"{_one_line(err)}") from None


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


class _Run:
    """One :meth:`DaskExecutor.execute` call: submissions, results, worker deaths."""

    def __init__(self, executor: DaskExecutor, tasks: list[Any], fn: TaskFn, plugin_name: str,
                 context_factory: Callable[[], Any], progress: Progress | None,
                 on_failure: OnFailure) -> None:
        from bayes_dress.executors import dask_worker

        self.executor = executor
        self.client = executor.client
        self.tasks = tasks
        self.fn = fn
        self.plugin_name = plugin_name
        self.context_factory = context_factory
        self.progress = progress
        self.on_failure = on_failure
        self.wrapper = dask_worker.run_on_worker
        self.prefix = f"bayes-dress-{getattr(fn, '__name__', 'task')}"
        self.results: list[Any] = [None] * len(tasks)
        self.done = 0
        self.keys = [task.key() for task in tasks]
        #: The workers each task was running on when they died (or "cancelled").
        self.deaths: list[list[str]] = [[] for _ in tasks]
        self.affinity = KeyAffinity(duplicate_after=executor.duplicate_after)
        self.affinity.held = executor._held.setdefault(plugin_name, defaultdict(set))
        for index, key in enumerate(self.keys):
            self.affinity.add(index, key)
        self.submitted: dict[str, _Submitted] = {}
        self.busy: Counter[str] = Counter()
        self.threads: dict[str, int] = {}
        self.events: queue.SimpleQueue = queue.SimpleQueue()
        self.subscribed = False
        self.disconnected_since: float | None = None
        #: Tasks to submit again, each alone on a worker.
        self.retries: deque[int] = deque()
        #: A worker kept from taking more tasks until it is free for a retry.
        self.reserved: str | None = None
        #: Whether a worker running a task of this run has died (then one task per
        #: worker thread at a time).
        self.careful = False
        #: Whether any worker has left the cluster during this run.
        self.lost_workers = False
        #: Futures done (by their callbacks) whose results are not taken yet.
        self.arrived: dict[str, Any] = {}
        #: How long to wait for a result whose gather timed out before.
        self.gather_seconds: dict[str, float] = {}

    def run(self) -> None:
        self.client.subscribe_topic("all", lambda event: self.events.put(("event", event[1])))
        self.subscribed = True
        self._refresh_workers()
        no_workers_since: float | None = None
        while self.done < len(self.tasks):
            self._submit_ready()
            if not self.threads and not self.submitted:
                no_workers_since = no_workers_since or time.monotonic()
                if time.monotonic() - no_workers_since > NO_WORKERS_SECONDS:
                    raise BayesDressError(
                        f"the Dask scheduler at {self.executor.address} has had no workers "
                        f"for {NO_WORKERS_SECONDS:g} s")
            else:
                no_workers_since = None
            try:
                items = [self.events.get(timeout=_TICK)]
            except queue.Empty:
                self._check_connection()
                if self.disconnected_since is None:
                    self._refresh_workers()
                    self._collect()
                    self._unstick()
                continue
            while not self.events.empty():
                items.append(self.events.get())
            self._handle(items)

    def _refresh_workers(self) -> None:
        """Ask the scheduler for its workers; forget the keys of those gone."""
        self.threads = self.executor.workers()
        for address in list(self.affinity.held):
            if address not in self.threads:
                self.affinity.forget(address)

    def _check_connection(self) -> None:
        if self.client.status == "running":
            self.disconnected_since = None
            return
        self.disconnected_since = self.disconnected_since or time.monotonic()
        if (self.client.status in ("closing", "closed")
                or time.monotonic() - self.disconnected_since > self.executor.timeout):
            raise BayesDressError(f"lost the connection to the Dask scheduler at "
                                  f"{self.executor.address}")

    def _submit_ready(self) -> None:
        """Give each worker with free threads its next tasks; a retried task goes to a
        worker with nothing else to do, and is left alone there (so that if its worker
        dies again, the death is its own)."""
        alone = {sub.worker for sub in self.submitted.values() if sub.alone}
        while self.retries:
            free = [a for a in self.threads if self.busy[a] == 0 and a not in alone]
            if not free:  # keep one worker from taking more until it is free
                if self.reserved not in self.threads:
                    others = [a for a in self.threads if a not in alone]
                    self.reserved = min(others, key=self.busy.__getitem__, default=None)
                break
            index = self.retries.popleft()
            holders = [a for a in free if self.keys[index] in self.affinity.held.get(a, ())]
            address = (holders or free)[0]
            self._submit(index, address, alone=True)
            alone.add(address)
            self.affinity.hold(address, self.keys[index])
            if self.reserved == address:
                self.reserved = None
        # Each worker thread gets a task before any gets a second; a task queued behind
        # another is one of a key its worker holds.
        depth = 1 if self.careful else self.executor.in_flight
        for level in range(1, depth + 1):
            for address in sorted(self.threads):
                if address in alone or address == self.reserved:
                    continue
                while self.busy[address] < self.threads[address] * level:
                    index = self.affinity.next_for(
                        address, own_only=self.busy[address] >= self.threads[address])
                    if index is None:
                        break
                    self._submit(index, address)
        if (len(self.affinity) or self.retries) and self.threads and not self.submitted:
            raise RuntimeError("tasks are waiting but none was submitted")  # a bug

    def _submit(self, index: int, address: str, *, alone: bool = False) -> None:
        future = self.client.submit(
            self.wrapper, self.fn, self.tasks[index], self.plugin_name, self.context_factory,
            key=f"{self.prefix}-{uuid.uuid4().hex}", workers=[address],
            allow_other_workers=True, pure=False, retries=0)
        self.submitted[future.key] = _Submitted(index=index, future=future, worker=address,
                                                alone=alone)
        self.busy[address] += 1
        future.add_done_callback(lambda f: self.events.put(("done", f)))

    def _handle(self, items: list[tuple[str, Any]]) -> None:
        for kind, item in items:
            if kind == "event":
                self._on_event(item)
            elif item.key in self.submitted:
                self.arrived[item.key] = item
        self._collect()

    def _collect(self) -> None:
        """Take the results (or errors) of the futures that have arrived.

        A result lost with its worker before it was gathered is computed again: its
        future is pending again, and is looked at again on every pass (its done callback
        does not fire twice). Each is gathered with a timeout, so that such a loss
        during a gather never blocks this loop.
        """
        for key, future in list(self.arrived.items()):
            if key not in self.submitted:
                del self.arrived[key]
            elif future.status in ("error", "cancelled"):
                del self.arrived[key]
                self._on_error(future)
            elif future.status == "finished":
                wait = self.gather_seconds.get(key, GATHER_SECONDS)
                try:
                    value = future.result(timeout=wait)
                except TimeoutError:
                    self.gather_seconds[key] = 2 * wait
                    continue
                except BaseException as err:
                    if isinstance(err, (KeyboardInterrupt, SystemExit)):
                        raise
                    del self.arrived[key]
                    self._on_error(future)
                else:
                    del self.arrived[key]
                    self._on_result(future, value)

    def _unstick(self) -> None:
        """Submit again the tasks the scheduler will never run.

        A task submitted with ``allow_other_workers=True`` whose worker left while no
        worker was running (all dead or restarting) waits in the scheduler's
        ``no-worker`` state, and distributed (2026.8) does not run it on a worker that
        joins later unless that worker has the address it was submitted to. Only looked
        for after a worker has died in this run.
        """
        if not (self.lost_workers and self.threads and self.submitted):
            return
        try:
            states = self.client.sync(self.client.scheduler.get_task_status,
                                      keys=list(self.submitted))
        except Exception:  # a scheduler without this handler: nothing to be done
            return
        for key, state in states.items():
            if state == "no-worker" and key in self.submitted:
                sub = self._release(key)
                self.arrived.pop(key, None)
                with contextlib.suppress(Exception):
                    sub.future.cancel()
                if self.deaths[sub.index]:
                    self.retries.append(sub.index)
                else:
                    self.affinity.add(sub.index, self.keys[sub.index], first=True)

    def _on_result(self, future: Any, value: tuple[str, bool, Any]) -> None:
        address, ok, result = value
        sub = self._release(future.key)
        self.affinity.hold(address, self.keys[sub.index])
        task = self.tasks[sub.index]
        self._finish(sub.index, result if ok else self.on_failure(task, result))

    def _on_event(self, message: Any) -> None:
        if not isinstance(message, dict):
            return
        action = message.get("action")
        if action == "add-worker":
            self._refresh_workers()
            self._unstick()
        elif action == "remove-worker":
            address = message.get("worker")
            self.lost_workers = True
            self.threads.pop(address, None)
            self.busy.pop(address, None)
            if self.reserved == address:
                self.reserved = None
            self.affinity.forget(address)
            for sub in self.submitted.values():
                if sub.worker == address:
                    sub.worker = None
            if not message.get("expected", False):
                for key in message.get("processing-tasks", ()):
                    if key in self.submitted:
                        self._died(key, address)

    def _on_error(self, future: Any) -> None:
        from distributed import KilledWorker

        sub = self.submitted[future.key]
        if future.status == "cancelled":  # not by this run: e.g. the scheduler restarted
            self._died(future.key, "cancelled", retry_here=True)
            return
        error = future.exception()
        if isinstance(error, KilledWorker):
            worker = getattr(error.last_worker, "address", None) or "a worker"
            self._died(future.key, worker, retry_here=True)
            return
        self._release(future.key)
        reason = f"the Dask task failed: {type(error).__name__}: {_one_line(error)}"
        self._finish(sub.index, self.on_failure(self.tasks[sub.index], reason))

    def _died(self, key: str, where: str, *, retry_here: bool = False) -> None:
        """Task ``key``'s worker died (or its future is gone): fail it at the second
        death, else submit it again if the scheduler will not run it again itself."""
        sub = self.submitted[key]
        self.careful = True  # one task per worker thread from now on
        if where == "cancelled" or where not in self.deaths[sub.index]:
            self.deaths[sub.index].append(where)
        if len(self.deaths[sub.index]) < 2 and not retry_here:
            return  # the scheduler runs it again (its allowed-failures > 0)
        self._release(key)
        with contextlib.suppress(Exception):
            sub.future.cancel()
        if len(self.deaths[sub.index]) < 2:
            self.retries.append(sub.index)
            return
        reason = ("its worker process died twice running it ("
                  + ", ".join(self.deaths[sub.index]) + "); out of memory?")
        self._finish(sub.index, self.on_failure(self.tasks[sub.index], reason))

    def _release(self, key: str) -> _Submitted:
        sub = self.submitted.pop(key)
        if sub.worker is not None and self.busy[sub.worker] > 0:
            self.busy[sub.worker] -= 1
        return sub

    def _finish(self, index: int, result: Any) -> None:
        self.results[index] = result
        self.done += 1
        if self.progress is not None:
            self.progress(result, self.done, len(self.tasks))

    def cancel(self) -> None:
        """Cancel every future still submitted."""
        futures = [sub.future for sub in self.submitted.values()]
        self.submitted.clear()
        if futures:
            with contextlib.suppress(Exception):
                self.client.cancel(futures)

    def unsubscribe(self) -> None:
        if self.subscribed:
            self.subscribed = False
            with contextlib.suppress(Exception):
                self.client.unsubscribe_topic("all")
