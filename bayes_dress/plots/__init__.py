"""Plots of a saved run, drawn from its files: forest, prior vs posterior, predictive
checks, traces and ranks, benefit-risk; PNG and SVG with an index."""

from __future__ import annotations


def plot_run(run_dir, **kwargs):
    """(Re)draw a saved run's plots; see :func:`bayes_dress.plots.make.plot_run`."""
    from bayes_dress.plots.make import plot_run as _plot_run

    return _plot_run(run_dir, **kwargs)


def draw_plots(run, directory, **kwargs):
    """Draw a saved run's plots; see :func:`bayes_dress.plots.make.draw_plots`."""
    from bayes_dress.plots.make import draw_plots as _draw_plots

    return _draw_plots(run, directory, **kwargs)


__all__ = ["draw_plots", "plot_run"]
