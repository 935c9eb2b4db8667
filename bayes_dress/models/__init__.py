"""Model plug-ins: one module and one TOML spec per model, found by name.

A model is a module ``bayes_dress/models/NAME.py`` that defines ``MODEL`` (an instance
of a :class:`~bayes_dress.models.base.Model` subclass) beside its spec ``NAME.toml``:
adding one touches nothing else. :func:`register_model` adds a model defined elsewhere
(a user's module, a test) with its spec, for the rest of the process.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from bayes_dress.models.base import (
    OUTCOME_DIM,
    POPULATION_QUANTITIES,
    STUDY_DIM,
    Model,
    Quantity,
    SharedFamilies,
    SingleOutcomeModel,
)
from bayes_dress.spec.models import (
    ModelSpec,
    canonical_name,
    model_specs,
    register_spec,
    spec_from_dict,
)

__all__ = ["OUTCOME_DIM", "POPULATION_QUANTITIES", "STUDY_DIM", "Model", "Quantity",
           "SharedFamilies", "SingleOutcomeModel", "get_model", "model_names",
           "register_model"]

_LOADED: dict[str, Model] = {}


def model_names() -> list[str]:
    """Every known model, by name."""
    return list(model_specs())


def get_model(name: str) -> Model:
    """The model called ``name`` (a hyphen may stand for an underscore); the error lists
    the valid names and suggests the nearest."""
    name = canonical_name(name, model_specs(), what="model")
    if name not in _LOADED:
        module = importlib.import_module(f"bayes_dress.models.{name}")
        _LOADED[name] = module.MODEL
    return _LOADED[name]


def register_model(model: Model, spec: ModelSpec | Mapping[str, Any]) -> Model:
    """Make ``model`` (with its spec, or the TOML-shaped mapping of one) known by name
    to every command and function of the package, for the rest of this process."""
    if not isinstance(spec, ModelSpec):
        spec = spec_from_dict(spec, where=f"spec of model '{model.name}'")
    if spec.name != model.name:
        raise ValueError(f"spec '{spec.name}' registered for model '{model.name}'")
    register_spec(spec)
    _LOADED[model.name] = model
    return model
