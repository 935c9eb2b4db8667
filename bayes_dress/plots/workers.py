"""Plot-drawing processes started before the fit, so plots are drawn on every core.

Drawing and saving a run's dozen figures is the longest step of ``bayes-dress fit``
(matplotlib lays out text for every tick label, once per file). The figures are
independent, so they are shared between this process and :class:`PlotWorkers`:
processes forked when the command starts, while the process holds no threads (a fork
after the sampler's threads exist could inherit a lock held by one of them). Each
worker imports the plotting libraries at once, overlapping the fit's own imports and
sampling, then waits. When the run's files are written, every process reads the run
(:func:`bayes_dress.rundir.load_run`, the one reader) and takes plots from a shared
counter, the costliest first, until none is left. The files are what one process would
write, byte for byte: drawing does not depend on which process draws.

A worker that fails or dies costs nothing but time: the plots it did not deliver are
drawn by the calling process. Workers ignore Ctrl-C (the command, their parent, stops
them) and leave when the parent goes away.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable
from pathlib import Path

#: A worker's answer: ("ok", [(job number, index entry), ...]) or ("error", message).
Answer = tuple[str, object]


def default_count() -> int:
    """Workers beside the calling process: one per further core, at most 7."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(0, min(cores, 8) - 1)


def _thread_count() -> int:
    """Threads of this process, native ones (a sampler's) included."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:  # pragma: no cover - no /proc: trust Python's own count
        import threading

        return threading.active_count()


class PlotWorkers:
    """Processes that draw a share of a run's plots; see the module docstring.

    Use :meth:`start` (no processes where forking is unavailable or there is one core)
    and pass the result to :func:`bayes_dress.plots.draw.draw_plots` (``workers=``), or to
    :func:`bayes_dress.workflow.write_run`; :meth:`close` when done (or ``with``).
    """

    def __init__(self, processes, connections, counter, lock):
        self._processes = processes
        self._connections = connections
        self.counter = counter
        self.lock = lock

    @classmethod
    def start(cls, count: int | None = None) -> PlotWorkers:
        """Fork ``count`` workers [:func:`default_count`]. None are started with one
        core (``count=0``), where the platform cannot fork, or where this process
        already runs other threads: then the plots are drawn in the calling process."""
        count = default_count() if count is None else count
        if (count < 1 or "fork" not in multiprocessing.get_all_start_methods()
                or _thread_count() != 1):
            return cls([], [], None, None)
        context = multiprocessing.get_context("fork")
        counter, lock = context.RawValue("i", 0), context.Lock()
        processes, connections = [], []
        for _ in range(count):
            parent_end, child_end = context.Pipe()
            process = context.Process(target=_serve, args=(child_end, counter, lock),
                                      daemon=True, name="bayes-dress-plots")
            process.start()
            child_end.close()
            processes.append(process)
            connections.append(parent_end)
        return cls(processes, connections, counter, lock)

    @property
    def count(self) -> int:
        """Worker processes running (0: the caller draws alone)."""
        return len(self._processes)

    def next_job(self) -> int:
        """The next plot to draw, in the shared order (every process calls this)."""
        with self.lock:
            number = self.counter.value
            self.counter.value = number + 1
        return number

    def draw(self, run_dir: Path, directory: Path, options: dict,
             draw_own: Callable[[], list]) -> list:
        """Have every worker and this process (``draw_own``) draw plots of the run in
        ``run_dir`` until none is left; the (job number, entry) pairs delivered.
        Workers that fail are reported by what they leave undone (the caller draws it)."""
        self.counter.value = 0
        live = []
        for connection in self._connections:
            try:
                connection.send((str(run_dir), str(directory), options))
                live.append(connection)
            except (BrokenPipeError, OSError):
                continue
        delivered = list(draw_own())
        for connection in live:
            try:
                status, payload = connection.recv()
            except (EOFError, OSError):
                continue  # the worker died; its plots are drawn again by the caller
            if status == "ok":
                delivered.extend(payload)
        return delivered

    def close(self) -> None:
        """Stop the workers (idempotent)."""
        for connection in self._connections:
            try:
                connection.send(None)
            except (BrokenPipeError, OSError):
                pass
            connection.close()
        for process in self._processes:
            process.join(timeout=2)
            if process.is_alive():
                process.terminate()
                process.join()
        self._connections, self._processes = [], []

    def __enter__(self) -> PlotWorkers:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _serve(connection, counter, lock) -> None:
    """A worker's life: import the plotting stack, then draw shares of runs on demand."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # One BLAS thread: a worker's arrays are small, and idle BLAS threads spinning in
    # every process would take the cores the processes draw on.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from bayes_dress.plots import draw
    from bayes_dress.rundir.read import load_run

    draw.warm_up()
    workers = PlotWorkers([], [], counter, lock)
    while True:
        try:
            request = connection.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return  # the parent is gone
        if request is None:
            return
        run_dir, directory, options = request
        try:
            run = load_run(run_dir)
            answer: Answer = ("ok", draw.draw_share(run, Path(directory), workers.next_job,
                                                   **options))
        except Exception as err:  # reported as undone plots: the caller draws them
            answer = ("error", f"{type(err).__name__}: {err}")
        try:
            connection.send(answer)
        except (BrokenPipeError, OSError):
            return
