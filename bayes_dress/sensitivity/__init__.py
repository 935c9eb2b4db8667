"""Sensitivity sweeps: refit under every scenario of a spec, and judge the conclusions.

``load_sweep_spec`` -> ``plan_sweep`` (validated scenarios and fits) -> ``run_sweep``
(parallel fits) -> ``write_sweep`` (tables, plots, manifest), as ``bayes-dress
sensitivity`` runs them.
"""

from bayes_dress.sensitivity.spec import Scenario, SweepSpec, expand, load_sweep_spec
from bayes_dress.sensitivity.sweep import SweepPlan, SweepResult, plan_sweep, run_sweep
from bayes_dress.sensitivity.write import write_sweep

__all__ = ["Scenario", "SweepPlan", "SweepResult", "SweepSpec", "expand",
           "load_sweep_spec", "plan_sweep", "run_sweep", "write_sweep"]
