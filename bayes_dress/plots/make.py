"""Making a run's plots: who draws them, their index, and redrawing a saved run.

``bayes-dress fit`` and ``bayes-dress plot RUN_DIR`` both call :func:`draw_plots` on a
run read by :func:`bayes_dress.rundir.load_run`, so a redraw gives the same figures as
the fit did. Each plot is written as ``plots/NAME.png`` and ``plots/NAME.svg``, and
``plots/index.json`` lists them in reading order with their hashes::

    [{"name": "forest-success", "title": "...", "caption": "...", "outcome": "success",
      "png": "plots/forest-success.png", "svg": "plots/forest-success.svg",
      "png_sha256": "...", "svg_sha256": "..."}, ...]

The plots are drawn by plot workers when the command started some
(:mod:`bayes_dress.plots.workers`), else here. What each plot is, and the drawing, are
in :mod:`bayes_dress.plots.draw`, imported only when this process draws: the plotting
stack takes half a second to import, which a command whose workers draw every plot
need not pay.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from bayes_dress.errors import RunDirError
from bayes_dress.rundir import layout
from bayes_dress.rundir.atomic import atomic_directory
from bayes_dress.rundir.read import SavedRun, load_run
from bayes_dress.rundir.write import json_text


class SharedDrawing(Protocol):
    """Processes that draw a run's plots (:class:`bayes_dress.plots.workers.PlotWorkers`)."""

    count: int

    def draw(self, run_dir: Path, directory: Path, options: dict
             ) -> tuple[int | None, list[tuple[int, dict]]]: ...


def draw_plots(run: SavedRun, directory: str | Path, *,
               benefit_threshold: float | None = None, risk_threshold: float | None = None,
               progress: Callable[[str], None] | None = None,
               workers: SharedDrawing | None = None) -> list[dict]:
    """Draw every plot of a saved run into ``directory`` (its ``plots`` folder).

    Parameters
    ----------
    run : SavedRun
        The run, as :func:`bayes_dress.rundir.load_run` reads it.
    directory : str or Path
    benefit_threshold, risk_threshold : float, optional
        The benefit-risk plot's thresholds [the run's].
    progress : callable, optional
        ``progress(message)`` once, as drawing starts.
    workers : SharedDrawing, optional
        Processes that draw the plots (``PlotWorkers.start()`` of
        :mod:`bayes_dress.plots.workers`); the files are the same as without them, and
        plots a failed worker left undone are drawn here.

    Returns
    -------
    list of dict
        The index written to ``index.json``: name, title, caption, outcome (or None),
        png, svg and their SHA-256, in reading order.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    options = {"benefit_threshold": benefit_threshold, "risk_threshold": risk_threshold}
    total, entries = None, {}
    if workers is not None and workers.count:
        if progress:
            progress(f"drawing the plots (PNG and SVG) in {workers.count} processes")
        total, delivered = workers.draw(run.path, directory, options)
        entries = dict(delivered)
    if total is None or len(entries) < total:
        from bayes_dress.plots import draw

        jobs = draw.plot_jobs(run, **options)
        if progress and not entries:
            progress(f"drawing {len(jobs)} plots (PNG and SVG)")
        for number, (name, outcome, job) in enumerate(jobs):
            if number not in entries:
                entries[number] = draw.draw_one(name, outcome, job, directory)
        total = len(jobs)
    index = [entries[number] for number in range(total)]
    (directory / layout.PLOT_INDEX).write_text(json_text(index), encoding="utf-8")
    return index


def stale_report_note(run_dir: str | Path) -> str | None:
    """A note when ``run_dir/report.html`` exists: it embeds the plots it was written
    with, not a redraw's."""
    report = Path(run_dir) / layout.REPORT
    if not report.is_file():
        return None
    return (f"note: {report} embeds the previous plots: rerun bayes-dress report "
            f"{run_dir} [SENS_DIR] to update it")


def plot_run(run_dir: str | Path, *, benefit_threshold: float | None = None,
             risk_threshold: float | None = None, workers: SharedDrawing | None = None,
             progress: Callable[[str], None] | None = None) -> list[dict]:
    """(Re)draw every plot of a saved run from the files in ``run_dir`` only.

    ``run_dir/plots`` is replaced atomically (drawn in a hidden sibling, then moved into
    place); nothing else in the run directory changes. ``workers`` draw the plots (see
    :func:`draw_plots`).

    Raises
    ------
    RunDirError
        ``run_dir`` is not a readable run directory.
    """
    run = load_run(run_dir)
    for analysis in run.analyses.values():
        analysis.tree  # noqa: B018 - fail on a missing posterior before replacing plots
    try:
        with atomic_directory(run.path / layout.PLOTS_DIR, overwrite=True) as tmp:
            index = draw_plots(run, tmp, benefit_threshold=benefit_threshold,
                               risk_threshold=risk_threshold, workers=workers,
                               progress=progress)
    except PermissionError as err:
        raise RunDirError(f"cannot write plots in '{run.path}': {err.strerror}") from None
    return index
