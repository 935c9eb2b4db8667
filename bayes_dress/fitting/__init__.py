"""An analysis fitted end to end in memory: the engine, its reference, checks, summaries."""

from bayes_dress.fitting.fit import (
    AnalysisFit,
    FitResult,
    OutcomeFit,
    Prepared,
    derive_seed,
    fit_analysis,
    fit_outcome,
    prepare,
    run_fit,
)
from bayes_dress.models.analysis import Analysis

__all__ = ["Analysis", "AnalysisFit", "FitResult", "OutcomeFit", "Prepared", "derive_seed",
           "fit_analysis", "fit_outcome", "prepare", "run_fit"]
