"""Simulation-based calibration (SBC): does an engine recover what generated the data?

Talts et al. (2018, arXiv:1804.06788) and Modrák et al. (2023, Bayesian Analysis,
doi:10.1214/23-BA1404): draw the hyperparameters from the prior, the study rates (and a
new study's rate) given them, and counts for the user's studies and study sizes; fit
the simulated table with the chosen engine; see where each true value falls in its
posterior. If the engine computes the posterior of the model it simulates from, that
position is uniform on [0, 1] for every quantity, whatever the prior and the data; a
departure says the engine (or the prior it fits, against the one that simulated) is
off, and its shape says how (:mod:`bayes_dress.calibration.run`). Every reported scalar
is tested: the hyperparameters, the derived population quantities (mean_rate, sd_rates,
kappa), the new-study rate theta_new (jointly simulated with the data, so SBC applies
to it as to any parameter) and each study's rate theta[study].

* positions (:mod:`~bayes_dress.calibration.ranks`): the posterior CDF at the true
  value for the exact engine; for NUTS the rank among draws thinned to about the ESS,
  as a randomised PIT;
* verdicts (:mod:`~bayes_dress.calibration.uniformity`): the simultaneous ECDF band of
  Säilynoja, Bürkner and Vehtari (2022) and a test of the extremes, at levels that
  make "calibrated on every quantity" a 95% statement for a calibrated engine;
* replications run through :mod:`bayes_dress.executors` (this machine's processes, or
  a Dask cluster), with results that do not depend on which.

Python::

    from bayes_dress.calibration import plan_calibration, run_calibration, write_calibration
    plan = plan_calibration(replications=500)                  # beta-binomial, bundled data
    result = run_calibration(plan, scheduler=None, jobs=None)  # or "local", "tcp://..."
    write_calibration(result, "results/calibration")
    saved = load_calibration("results/calibration")

Command line: ``bayes-dress calibrate`` (:mod:`bayes_dress.calibration.cli`).
"""

from importlib import import_module
from typing import TYPE_CHECKING

#: Public name -> the module defining it, imported on first use: reading a saved
#: calibration (the report) then imports neither the fitting code nor the plotting.
_EXPORTS = {
    "DEFAULT_CHAINS": "plan", "DEFAULT_DRAWS": "plan", "DEFAULT_LEVEL": "plan",
    "DEFAULT_REPLICATIONS": "plan", "DEFAULT_TUNE": "plan", "CalibrationPlan": "plan",
    "Replication": "plan", "default_settings": "plan", "plan_calibration": "plan",
    "SavedCalibration": "read", "load_calibration": "read",
    "CalibrationContext": "run", "CalibrationResult": "run", "ReplicationResult": "run",
    "run_calibration": "run", "run_replication": "run",
    "write_calibration": "write",
}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from bayes_dress.calibration.plan import (  # noqa: F401
        DEFAULT_CHAINS,
        DEFAULT_DRAWS,
        DEFAULT_LEVEL,
        DEFAULT_REPLICATIONS,
        DEFAULT_TUNE,
        CalibrationPlan,
        Replication,
        default_settings,
        plan_calibration,
    )
    from bayes_dress.calibration.read import SavedCalibration, load_calibration  # noqa: F401
    from bayes_dress.calibration.run import (  # noqa: F401
        CalibrationContext,
        CalibrationResult,
        ReplicationResult,
        run_calibration,
        run_replication,
    )
    from bayes_dress.calibration.write import write_calibration  # noqa: F401


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'bayes_dress.calibration' has no attribute '{name}'")
    value = getattr(import_module(f"bayes_dress.calibration.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
