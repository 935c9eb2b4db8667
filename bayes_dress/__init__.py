"""bayes-dress: Bayesian meta-analysis of study-level event counts.

The same operations as the command line, as plain functions::

    from bayes_dress import RunConfig, run_fit, write_run
    result = run_fit(RunConfig(model="logit_normal", priors={"tau": "HalfNormal(0.5)"}))
    result.summary            # tidy posterior summary (pandas)
    write_run(result, "results/my-run")

Data flow, one subpackage per step: ``spec`` (priors, model specs, run configs) ->
``data`` (a validated study table, the counts an analysis uses) -> ``models`` (model
plug-ins) -> ``engines`` (NUTS; exact quadrature; importance sampling, the joint model's
reference) -> ``posterior`` (one interface to draws, weighted draws and marginals) ->
``checks`` and ``fitting`` (diagnostics, summaries, benefit-risk) -> ``rundir`` (the run
directory) -> ``plots``, ``report``. ``sensitivity`` sweeps analyses and
``calibration`` checks an engine by simulation, both through ``executors`` (this
machine's processes or Dask); ``design`` plans the next trial from a saved run.

Names are imported on first use, so ``import bayes_dress`` stays light.
"""

from __future__ import annotations

import importlib

#: Public name -> the module that defines it.
_EXPORTS = {
    "BayesDressError": "bayes_dress.errors", "DataError": "bayes_dress.errors",
    "SpecError": "bayes_dress.errors",
    "RunConfig": "bayes_dress.spec.config", "SamplerSettings": "bayes_dress.spec.config",
    "load_config": "bayes_dress.spec.config",
    "Prior": "bayes_dress.spec.priors", "parse_prior": "bayes_dress.spec.priors",
    "get_model_spec": "bayes_dress.spec.models", "model_specs": "bayes_dress.spec.models",
    "resolve_priors": "bayes_dress.spec.models",
    "StudyTable": "bayes_dress.data", "OutcomeData": "bayes_dress.data",
    "AnalysisData": "bayes_dress.data", "load_table": "bayes_dress.data",
    "select_outcome": "bayes_dress.data", "select_analysis": "bayes_dress.data",
    "get_model": "bayes_dress.models", "register_model": "bayes_dress.models",
    "Analysis": "bayes_dress.fitting", "AnalysisFit": "bayes_dress.fitting",
    "FitResult": "bayes_dress.fitting", "OutcomeFit": "bayes_dress.fitting",
    "fit_analysis": "bayes_dress.fitting", "fit_outcome": "bayes_dress.fitting",
    "run_fit": "bayes_dress.fitting",
    "write_run": "bayes_dress.workflow", "load_run": "bayes_dress.rundir",
    "plot_run": "bayes_dress.plots", "write_report": "bayes_dress.report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bayes_dress' has no attribute '{name}'")


def __dir__():
    return sorted(set(globals()) | set(__all__))
