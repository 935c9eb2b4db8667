"""The exact engine: an analysis's posterior by numerical integration, for the models it
can grid (each model's integrator is in :mod:`bayes_dress.engines.exact.integrators`)."""

from __future__ import annotations

import time

import numpy as np

from bayes_dress.engines.base import Engine, EngineFit, FitOptions
from bayes_dress.engines.exact.integrators import GRID_TOLERANCE, INTEGRATORS, exact_fit
from bayes_dress.models.analysis import Analysis
from bayes_dress.posterior.marginals import MarginalsPosterior


class ExactEngine(Engine):
    """Numerical integration with a measured error: grids over at most two
    hyperparameters (the study rates integrated out), closed forms where they exist."""

    name = "exact"
    reference = True

    def supports(self, model, priors):
        if model.name not in INTEGRATORS:
            return f"no integrator for model '{model.name}'"
        fixed = [name for name, prior in priors.items() if prior.fixed_value is not None]
        if fixed:
            return f"fixed parameter(s) {', '.join(fixed)}: the grids integrate over them"
        return None

    def fit(self, analysis: Analysis, *, settings, seeds, options: FitOptions) -> EngineFit:
        start = time.perf_counter()
        data = analysis.data.single
        refine = options.refine and not options.reference
        exact = exact_fit(data, model=analysis.model.name, priors=analysis.priors,
                          check=refine)
        outcome = data.outcome
        marginals = {}
        for name, marginal in exact.quantities.items():
            if name == "theta" and exact.studies:
                continue  # the common-effect rate: reported per study below
            marginals[(name, outcome, "")] = marginal
        for study, marginal in exact.studies.items():
            marginals[("theta", outcome, study)] = marginal
        order = [q.name for q in analysis.model.quantities if q.reported]
        rank = {name: i for i, name in enumerate(order)}
        ordered = dict(sorted(marginals.items(),
                              key=lambda item: (bool(item[0][2]), rank.get(item[0][0], 99))))
        has_grid = exact.grid is not None
        grid_error = exact.grid_error if refine and has_grid else (0.0 if not has_grid
                                                                  else float("nan"))
        details = {"grid_points": exact.grid_points if has_grid else None,
                   "grid_error": None if not np.isfinite(grid_error) else grid_error,
                   "seconds": round(exact.seconds, 4),
                   "method": ("grid" if has_grid else "closed form or one-dimensional "
                              "quadrature")}
        notes = list(exact.notes)
        if has_grid and not refine and not options.reference:
            notes.append("grid error not measured for this fit (a sweep measures it on "
                         "its primary analysis only)")
        return EngineFit(
            posterior=MarginalsPosterior(ordered, tolerance=GRID_TOLERANCE),
            evidence={"grid_error": grid_error, "grid_tolerance": GRID_TOLERANCE,
                      "grid_points": exact.grid_points, "has_grid": has_grid},
            details=details, notes=notes, seconds=time.perf_counter() - start)


ENGINE = ExactEngine()
