"""The self-contained HTML report of a run (and, optionally, a sensitivity sweep).

``report.html`` is one file that reads anywhere, offline and printed: CSS inline, plots
embedded as data URIs, no scripts, fonts or other network resources. Every value read
from a file is HTML-escaped. The run and sweep are read through
:mod:`bayes_dress.rundir` (which checks them); the sections are rendered in
:mod:`bayes_dress.report.sections`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from bayes_dress.errors import OutputError
from bayes_dress.rundir.atomic import atomic_write_text
from bayes_dress.rundir.layout import REPORT

REPORT_NAME = REPORT


def render_report(run_dir: str | Path, sensitivity_dir: str | Path | None = None, *,
                  title: str | None = None, date: dt.date | None = None,
                  design_dir: str | Path | None = None,
                  calibration_dir: str | Path | None = None) -> str:
    """The report of a run as one HTML document (a string); nothing is written.

    Parameters and errors as :func:`write_report`; ``date`` defaults to today.
    """
    from bayes_dress.report.sections import render
    from bayes_dress.rundir.design_read import load_design
    from bayes_dress.rundir.read import load_run, load_sweep

    run = load_run(run_dir)
    sweep = load_sweep(sensitivity_dir) if sensitivity_dir is not None else None
    design = load_design(design_dir) if design_dir is not None else None
    calibration = None
    if calibration_dir is not None:
        from bayes_dress.calibration import load_calibration

        calibration = load_calibration(calibration_dir)
    return render(run, sweep, title=title, date=date or dt.date.today(), design=design,
                  calibration=calibration)


def write_report(run_dir: str | Path, sensitivity_dir: str | Path | None = None, *,
                 title: str | None = None, date: dt.date | None = None,
                 design_dir: str | Path | None = None,
                 calibration_dir: str | Path | None = None) -> Path:
    """Write ``RUN_DIR/report.html``, a self-contained HTML report of a run.

    The file is written to a temporary name and moved into place, so a reader never sees
    half a report; an existing report is replaced. Nothing else in the run directory
    changes.

    Parameters
    ----------
    run_dir : str or Path
        A run directory written by ``bayes-dress fit`` (or :func:`bayes_dress.write_run`).
    sensitivity_dir : str or Path, optional
        A sweep directory written by ``bayes-dress sensitivity``; adds its section.
    title : str, optional
        The report's title. Default: the model's title and the outcomes.
    date : datetime.date, optional
        The date printed on the report. Default: today.
    design_dir : str or Path, optional
        A design directory written by ``bayes-dress design``; adds its section.
    calibration_dir : str or Path, optional
        A calibration directory written by ``bayes-dress calibrate``; adds its section.

    Returns
    -------
    Path
        The path of ``report.html``.

    Raises
    ------
    RunDirError
        A directory is missing, incomplete, of another format, or changed since written.
    OutputError
        ``report.html`` cannot be written.
    """
    html = render_report(run_dir, sensitivity_dir, title=title, date=date,
                         design_dir=design_dir, calibration_dir=calibration_dir)
    out = Path(run_dir) / REPORT
    try:
        atomic_write_text(out, html)
    except OSError as err:
        raise OutputError(f"cannot write '{out}': {err.strerror or err}") from None
    return out


__all__ = ["REPORT_NAME", "render_report", "write_report"]
