"""Declarative model specs and the merging of priors over their defaults.

A model spec (``bayes_dress/models/NAME.toml``, beside the model's module) names the
model's parameters, their supports, default priors and the rationale for each, the
equations, and how many outcomes an analysis of the model takes, so that what is
documented and what is run are the same text. :func:`resolve_priors` merges user priors
over those defaults, parameter by parameter, and rejects anything that does not fit.

Reading specs imports no model code (``bayes-dress models`` stays light); a model added
at run time (:func:`bayes_dress.models.register_model`) registers its spec here.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from bayes_dress.errors import SpecError, canonical_name, choices, shorten
from bayes_dress.spec.names import did_you_mean
from bayes_dress.spec.priors import SUPPORTS, Prior, parse_prior

#: Where the bundled model specs live: beside the model modules.
SPECS_DIR = Path(__file__).resolve().parent.parent / "models"


@dataclass(frozen=True)
class ParameterSpec:
    """A model parameter: support, description, default prior and its rationale."""

    name: str
    support: str
    description: str
    default: Prior
    rationale: str
    improper_allowed: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelSpec:
    """A model as declared in its TOML spec.

    Attributes
    ----------
    outcomes : int
        How many outcomes one analysis of this model takes (1, or 2 for a joint model).
    heterogeneity : tuple of str
        Its heterogeneity parameters (reported beside every pooled rate).
    default_outcomes : tuple of str
        For a model of several outcomes, the outcomes it takes when none are named.
    """

    name: str
    title: str
    equations: tuple[str, ...]
    sampling: str
    heterogeneity: tuple[str, ...]
    heterogeneity_note: str
    parameters: Mapping[str, ParameterSpec]
    outcomes: int = 1
    default_outcomes: tuple[str, ...] = ()

    @property
    def default_priors(self) -> dict[str, Prior]:
        return {name: p.default for name, p in self.parameters.items()}


def _text(value: Any) -> str:
    return " ".join(str(value).split())


def spec_from_dict(raw: Mapping[str, Any], *, where: str = "model spec") -> ModelSpec:
    """Validate a TOML-shaped model spec; errors name the key."""
    required = ("name", "title", "equations", "sampling", "parameters")
    missing = [k for k in required if k not in raw]
    if missing:
        raise SpecError(f"{where}: missing key '{missing[0]}'")
    params = {}
    for name, entry in raw["parameters"].items():
        if entry.get("support") not in SUPPORTS:
            raise SpecError(f"{where}: parameter '{name}' needs a support, one of "
                            f"{choices(SUPPORTS)}")
        params[name] = ParameterSpec(
            name=name, support=entry["support"],
            description=_text(entry.get("description", "")),
            default=parse_prior(entry["prior"], parameter=name),
            rationale=_text(entry.get("rationale", "")),
            improper_allowed=tuple(entry.get("improper_allowed", ())))
    outcomes = int(raw.get("outcomes", 1))
    if outcomes < 1:
        raise SpecError(f"{where}: 'outcomes' must be a whole number >= 1")
    return ModelSpec(
        name=raw["name"], title=raw["title"], equations=tuple(raw["equations"]),
        sampling=_text(raw["sampling"]), heterogeneity=tuple(raw.get("heterogeneity", ())),
        heterogeneity_note=_text(raw.get("heterogeneity_note", "")), parameters=params,
        outcomes=outcomes, default_outcomes=tuple(raw.get("default_outcomes", ())))


#: Specs added at run time, by name (see :func:`register_spec`).
_REGISTERED: dict[str, ModelSpec] = {}


@cache
def _bundled_specs() -> dict[str, ModelSpec]:
    specs = {}
    for path in sorted(SPECS_DIR.glob("*.toml")):
        with open(path, "rb") as handle:
            raw = tomllib.load(handle)
        spec = spec_from_dict(raw, where=str(path))
        specs[spec.name] = spec
    return specs


def register_spec(spec: ModelSpec) -> None:
    """Make ``spec`` known by its name (a model added at run time)."""
    _REGISTERED[spec.name] = spec


def model_specs() -> dict[str, ModelSpec]:
    """Every known model spec, by name: the bundled ones, then any registered."""
    return {**_bundled_specs(), **_REGISTERED}


def get_model_spec(name: str) -> ModelSpec:
    """The spec of model ``name``; the error lists the valid names."""
    specs = model_specs()
    return specs[canonical_name(name, specs, what="model")]


def resolve_priors(spec: ModelSpec, overrides: Mapping[str, str | Prior] | None = None
                   ) -> dict[str, Prior]:
    """Merge user priors over a model's defaults.

    Parameters
    ----------
    spec : ModelSpec
    overrides : mapping of parameter name to prior text or Prior, optional

    Returns
    -------
    dict of str to Prior
        One prior per model parameter.

    Raises
    ------
    SpecError
        Unknown parameter (the message lists the model's parameters), a prior whose
        support does not fit the parameter, or an improper prior the model does not allow.
    """
    priors = spec.default_priors
    for name, value in (overrides or {}).items():
        if name not in spec.parameters:
            raise SpecError(f"model '{spec.name}' has no parameter '{shorten(name)}'"
                            f"{did_you_mean(name, spec.parameters)}; its parameters: "
                            f"{choices(spec.parameters)}")
        param = spec.parameters[name]
        prior = value if isinstance(value, Prior) else parse_prior(value, parameter=name)
        if not prior.proper and prior.family not in param.improper_allowed:
            allowed = (f"; allowed here: {choices(param.improper_allowed)}"
                       if param.improper_allowed else "")
            raise SpecError(f"prior {prior} for '{name}' is improper and model "
                            f"'{spec.name}' does not allow it{allowed}")
        if not prior.fits_support(param.support):
            raise SpecError(f"prior {prior} for '{name}' puts mass outside the parameter's "
                            f"support ({param.support}: {SUPPORTS[param.support]})")
        priors[name] = prior
    return priors
