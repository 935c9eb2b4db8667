"""Engines: turn an analysis (model, data, priors) into a posterior; each says which models
it supports.

``nuts`` samples (PyMC models compiled by nutpie) and fits every model; ``exact``
integrates numerically the models it can grid; ``importance`` is a reference for models
the exact engine cannot grid. A sampling engine's fits are checked against the first
reference engine that supports the model (:func:`reference_for`); where none does, the
fit says so and nothing else changes. Engines are imported on first use (NUTS pulls in
PyMC, PyTensor, nutpie and numba).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from bayes_dress.errors import SpecError, choices
from bayes_dress.spec.config import ENGINES

#: Engine name -> the module that defines ``ENGINE``; reference engines in order of
#: preference.
ENGINE_MODULES = {"nuts": "bayes_dress.engines.nuts", "exact": "bayes_dress.engines.exact",
                  "importance": "bayes_dress.engines.importance.engine"}
#: Engines a user may choose with ``--engine``.
SELECTABLE = ENGINES
REFERENCES = ("exact", "importance")

_LOADED: dict = {}


def get_engine(name: str):
    """The engine called ``name``; the error lists the valid names."""
    if name not in ENGINE_MODULES:
        raise SpecError(f"unknown engine '{name}'; valid: {choices(SELECTABLE)}")
    if name not in _LOADED:
        _LOADED[name] = importlib.import_module(ENGINE_MODULES[name]).ENGINE
    return _LOADED[name]


def reference_for(model, priors: Mapping, *, exclude: str | None = None):
    """(the reference engine for ``model`` under ``priors``, or None; the reasons the
    reference engines gave when none supports it)."""
    reasons = []
    for name in REFERENCES:
        if name == exclude:
            continue
        try:
            engine = get_engine(name)
        except ImportError:  # an engine whose module is not installed
            continue
        reason = engine.supports(model, priors)
        if reason is None:
            return engine, []
        reasons.append(f"{name}: {reason}")
    return None, reasons
