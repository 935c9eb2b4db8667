"""Whole runs as the command line does them: fit files, then plots, in one atomic step.

The Python face of ``bayes-dress fit``'s writing: :func:`write_run` writes a run
directory (:mod:`bayes_dress.rundir`) and draws its plots from the files just written
(:mod:`bayes_dress.plots`), so the plots of a fit and of a later ``bayes-dress plot``
are the same; the directory appears complete, or not at all.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bayes_dress.fitting.fit import FitResult
from bayes_dress.rundir.fit_files import write_fit
from bayes_dress.rundir.layout import PLOTS_DIR
from bayes_dress.rundir.read import load_run
from bayes_dress.rundir.write import RunWriter

if TYPE_CHECKING:
    from bayes_dress.plots.make import SharedDrawing


def write_run(result: FitResult, out: str | Path, *, overwrite: bool = False,
              plots: bool = True, progress: Callable[[str], None] | None = None,
              plot_workers: SharedDrawing | None = None) -> Path:
    """Write a complete run directory for ``result``.

    Parameters
    ----------
    result : FitResult
    out : str or Path
        The run directory. It must not exist unless ``overwrite``.
    overwrite : bool
        Replace an existing directory, once the new one is complete.
    plots : bool
        Draw the plots (``plots/`` with PNG, SVG and ``index.json``).
    progress : callable, optional
        ``progress(message)`` as each step starts.
    plot_workers : PlotWorkers, optional
        Processes that share the drawing (:meth:`PlotWorkers.start`, best called before
        the fit); the plots are the same without them, drawn here one by one.

    Returns
    -------
    Path
        ``out``.
    """
    out = Path(out)
    with RunWriter(out, overwrite=overwrite) as writer:
        if progress:
            progress("writing tables and posteriors")
        write_fit(writer, result)
        if plots:
            from bayes_dress.plots.make import draw_plots

            draw_plots(load_run(writer.path), writer.path / PLOTS_DIR, progress=progress,
                       workers=plot_workers)
    return out
