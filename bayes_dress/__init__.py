"""bayes-dress: Bayesian meta-analysis of study-level event counts.

The same operations as the command line, as plain functions::

    from bayes_dress import RunConfig, run_fit, write_run
    result = run_fit(RunConfig(model="logit_normal", priors={"tau": "HalfNormal(0.5)"}))
    result.summary            # tidy posterior summary (pandas)
    write_run(result, "results/my-run")

Data flow: :func:`load_table` -> :func:`select_outcome` -> a model spec and
:func:`resolve_priors` -> :func:`fit_outcome` (PyMC + nutpie, a DataTree) ->
summaries, diagnostics, plots, :func:`write_run`.
"""

from bayes_dress.config import RunConfig, SamplerSettings, load_config
from bayes_dress.data import OutcomeData, StudyTable, load_table, select_outcome
from bayes_dress.errors import BayesDressError, DataError, SpecError
from bayes_dress.fitting import FitResult, OutcomeFit, fit_outcome, run_fit
from bayes_dress.outputs import write_run
from bayes_dress.priors import Prior, parse_prior
from bayes_dress.spec import get_model_spec, model_specs, resolve_priors

__all__ = [
    "BayesDressError", "DataError", "FitResult", "OutcomeData", "OutcomeFit", "Prior",
    "RunConfig", "SamplerSettings", "SpecError", "StudyTable", "fit_outcome",
    "get_model_spec", "load_config", "load_table", "model_specs", "parse_prior",
    "resolve_priors", "run_fit", "select_outcome", "write_run",
]
