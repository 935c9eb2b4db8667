"""The exact engine: posteriors by deterministic numerical integration, error measured."""

from bayes_dress.engines.exact.engine import ENGINE, ExactEngine
from bayes_dress.engines.exact.integrators import GRID_POINTS, GRID_TOLERANCE, exact_fit

__all__ = ["ENGINE", "GRID_POINTS", "GRID_TOLERANCE", "ExactEngine", "exact_fit"]
