"""The exact engine: an analysis's posterior by numerical integration, for the models it
can grid (each model's integrator is in :mod:`bayes_dress.engines.exact.integrators`)."""

from __future__ import annotations

import time

import numpy as np

from bayes_dress.engines.base import Engine, EngineFit, FitOptions
from bayes_dress.engines.exact.integrators import GRID_TOLERANCE, INTEGRATORS, exact_fit
from bayes_dress.models.analysis import Analysis
from bayes_dress.posterior.marginals import Marginal, MarginalsPosterior

#: Models of several outcomes that factorise into one single-outcome model per outcome
#: when a parameter is fixed at a value: model -> (single-outcome model, parameter,
#: value). The joint logit-normal model with rho = 0 is two logit-normal models.
FACTORISED = {"joint_logit_normal": ("logit_normal", "rho", 0.0)}


class ExactEngine(Engine):
    """Numerical integration with a measured error: grids over at most two
    hyperparameters (the study rates integrated out), closed forms where they exist."""

    name = "exact"
    reference = True

    def supports(self, model, priors):
        factorised = FACTORISED.get(model.name)
        if factorised is not None:
            _, parameter, value = factorised
            if priors[parameter].fixed_value != value:
                return (f"the grids integrate at most two hyperparameters; model "
                        f"'{model.name}' has that few per outcome only with "
                        f"{parameter}=Fixed({value:g}), not {parameter} ~ "
                        f"{priors[parameter]}")
            priors = {k: p for k, p in priors.items() if k != parameter}
        elif model.name not in INTEGRATORS:
            return f"no integrator for model '{model.name}'"
        fixed = [name for name, prior in priors.items() if prior.fixed_value is not None]
        if fixed:
            return f"fixed parameter(s) {', '.join(fixed)}: the grids integrate over them"
        return None

    def fit(self, analysis: Analysis, *, settings, seeds, options: FitOptions) -> EngineFit:
        start = time.perf_counter()
        refine = options.refine and not options.reference
        model_name, priors = analysis.model.name, dict(analysis.priors)
        marginals, fixed = {}, {}
        factorised = FACTORISED.get(model_name)
        if factorised is not None:
            model_name, parameter, value = factorised
            fixed[(parameter, "", "")] = Marginal.point(value)
            priors.pop(parameter)
        fits = [exact_fit(block, model=model_name, priors=priors, check=refine)
                for block in analysis.data.blocks]
        for exact in fits:
            outcome = exact.outcome
            for name, marginal in exact.quantities.items():
                if name == "theta" and exact.studies:
                    continue  # the common-effect rate: reported per study below
                marginals[(name, outcome, "")] = marginal
            for study, marginal in exact.studies.items():
                marginals[("theta", outcome, study)] = marginal
        marginals.update(fixed)
        order = [q.name for q in analysis.model.quantities if q.reported]
        rank = {name: i for i, name in enumerate(order)}
        outcomes = {o: i for i, o in enumerate(analysis.outcomes)}
        ordered = dict(sorted(marginals.items(), key=lambda item: (
            outcomes.get(item[0][1], len(outcomes)), bool(item[0][2]),
            rank.get(item[0][0], 99))))
        has_grid = any(exact.grid is not None for exact in fits)
        grid_error = (max(exact.grid_error for exact in fits) if refine and has_grid
                      else (0.0 if not has_grid else float("nan")))
        points = max(exact.grid_points for exact in fits)
        details = {"grid_points": points if has_grid else None,
                   "grid_error": None if not np.isfinite(grid_error) else grid_error,
                   "seconds": round(sum(exact.seconds for exact in fits), 4),
                   "method": ("grid" if has_grid else "closed form or one-dimensional "
                              "quadrature")
                   + (f", one per outcome ({factorised[1]} fixed at {factorised[2]:g})"
                      if factorised else "")}
        notes = [note for exact in fits for note in exact.notes]
        if has_grid and not refine and not options.reference:
            notes.append("grid error not measured for this fit (a sweep measures it on "
                         "its primary analysis only)")
        return EngineFit(
            posterior=MarginalsPosterior(ordered, tolerance=GRID_TOLERANCE),
            evidence={"grid_error": grid_error, "grid_tolerance": GRID_TOLERANCE,
                      "grid_points": points, "has_grid": has_grid},
            details=details, notes=notes, seconds=time.perf_counter() - start)


ENGINE = ExactEngine()
