"""Plot-drawing processes started before the fit, so plots are drawn on every core.

Drawing and saving a run's dozen figures is the longest step of ``bayes-dress fit``
(matplotlib lays out text for every tick label, once per file). The figures are
independent, so they are drawn by :class:`PlotWorkers`: one process per core, forked
when the command starts, while the process holds no threads (a fork after the
sampler's threads exist could inherit a lock held by one of them). Each worker imports
the plotting libraries and draws a first text at once, at a lower scheduling priority,
so that this overlaps the fit without slowing it; then it waits. When the run's files
are written, every worker reads the run (:func:`bayes_dress.rundir.load_run`, the one
reader) and takes plots from a shared counter, the costliest first, until none is
left, while the command waits. The files are what one process would write, byte for
byte: drawing does not depend on which process draws.

A worker that fails or dies costs nothing but time: the plots it did not deliver are
drawn by the calling process. Workers ignore Ctrl-C (the command, their parent, stops
them) and leave when the parent goes away.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
from pathlib import Path

#: A worker's answer: ("ok", (plots of the run, [(job number, index entry), ...])) or
#: ("error", message).
Answer = tuple[str, object]


def default_count() -> int:
    """One worker per core, at most 8; none on one core (drawing there is no faster in
    another process)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return min(cores, 8) if cores > 1 else 0


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
    and pass the result to :func:`bayes_dress.plots.make.draw_plots` (``workers=``), or to
    :func:`bayes_dress.workflow.write_run`; :meth:`close` when done (or ``with``).
    """

    def __init__(self, process, connections, counter, lock):
        self._process = process
        self._connections = connections
        self.counter = counter
        self.lock = lock

    @classmethod
    def start(cls, count: int | None = None) -> PlotWorkers:
        """Start ``count`` workers [:func:`default_count`]. None are started with one
        core (``count=0``), where the platform cannot fork, or where this process
        already runs other threads: then the plots are drawn in the calling process.

        One process is forked now; once it has warmed up it forks the others, which so
        start warm (a second warm-up would only take a core from the fit).
        """
        count = default_count() if count is None else count
        if (count < 1 or "fork" not in multiprocessing.get_all_start_methods()
                or _thread_count() != 1):
            return cls(None, [], None, None)
        context = multiprocessing.get_context("fork")
        counter, lock = context.RawValue("i", 0), context.Lock()
        ends = [context.Pipe() for _ in range(count)]
        process = context.Process(target=_serve, args=([c for _, c in ends], counter, lock),
                                  daemon=True, name="bayes-dress-plots")
        process.start()
        for _, child_end in ends:
            child_end.close()
        return cls(process, [p for p, _ in ends], counter, lock)

    @property
    def count(self) -> int:
        """Drawing processes (0: the caller draws alone)."""
        return len(self._connections)

    def next_job(self) -> int:
        """The next plot to draw, in the shared order (every process calls this)."""
        with self.lock:
            number = self.counter.value
            self.counter.value = number + 1
        return number

    def draw(self, run_dir: Path, directory: Path, options: dict
             ) -> tuple[int | None, list[tuple[int, dict]]]:
        """Have the workers draw the plots of the run in ``run_dir`` into ``directory``
        until none is left: the number of plots of the run (None if no worker
        answered) and the (job number, entry) pairs delivered. Plots a failed or dead
        worker took are missing from them (the caller draws those)."""
        self.counter.value = 0
        live = []
        for connection in self._connections:
            try:
                connection.send((str(run_dir), str(directory), options))
                live.append(connection)
            except (BrokenPipeError, OSError):
                continue
        total, delivered = None, []
        for connection in live:
            try:
                status, payload = connection.recv()
            except (EOFError, OSError):
                continue  # the worker died; its plots are drawn again by the caller
            if status == "ok":
                total, pairs = payload
                delivered.extend(pairs)
        return total, delivered

    def close(self) -> None:
        """Stop the workers (idempotent)."""
        for connection in self._connections:
            try:
                connection.send(None)
            except (BrokenPipeError, OSError):
                pass
            connection.close()
        if self._process is not None:
            self._process.join(timeout=2)
            if self._process.is_alive():
                self._process.terminate()
                self._process.join()
        self._connections, self._process = [], None

    def __enter__(self) -> PlotWorkers:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _serve(connections, counter, lock) -> None:
    """The first worker: import the plotting stack, fork the other workers from this warm
    process, then draw shares of runs on demand like them."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # No helper threads, so that this process stays single-threaded and can fork the
    # other workers safely: one BLAS thread (a worker's arrays are small) and no
    # background thread for Arrow's allocator (pandas loads Arrow; this process barely
    # allocates through it).
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("JE_ARROW_MALLOC_CONF", "background_thread:false")
    # Warming up must not slow the fit, which is what the command waits for: the lower
    # priority gives the fit the core first. By the time plots are drawn the command
    # only waits for them, so the priority no longer matters.
    with contextlib.suppress(OSError):
        os.nice(10)
    from bayes_dress.plots import draw

    draw.warm_up()
    own, others = connections[0], connections[1:]
    clones = []
    for connection in others:
        if _thread_count() != 1:  # not safe to fork: the caller draws this share
            connection.close()
            continue
        pid = os.fork()
        if pid == 0:
            for other in connections:
                if other is not connection:
                    other.close()
            _draw_on_demand(connection, counter, lock)
            os._exit(0)
        connection.close()
        clones.append(pid)
    _draw_on_demand(own, counter, lock)
    for pid in clones:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


def _draw_on_demand(connection, counter, lock) -> None:
    """Draw a share of each run the parent names, until it says stop or goes away."""
    from bayes_dress.plots import draw
    from bayes_dress.rundir.read import load_run

    workers = PlotWorkers(None, [], counter, lock)
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
