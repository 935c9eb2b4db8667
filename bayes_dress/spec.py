"""Declarative model specs (``models/*.toml``) and the merging of priors over defaults.

A model spec names the model's parameters, their supports, default priors and the
rationale for each, and the equations, so that what is documented and what is run are
the same text. :func:`resolve_priors` merges user priors over those defaults, parameter
by parameter, and rejects anything that does not fit.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

from bayes_dress.errors import SpecError, choices
from bayes_dress.priors import Prior, parse_prior
from bayes_dress.resources import bundled_path


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
    """A model as declared in ``models/NAME.toml``."""

    name: str
    title: str
    equations: tuple[str, ...]
    sampling: str
    heterogeneity: tuple[str, ...]
    heterogeneity_note: str
    parameters: Mapping[str, ParameterSpec]

    @property
    def default_priors(self) -> dict[str, Prior]:
        return {name: p.default for name, p in self.parameters.items()}


def _read_spec(path) -> ModelSpec:
    with open(path, "rb") as handle:
        raw = tomllib.load(handle)
    params = {}
    for name, entry in raw["parameters"].items():
        params[name] = ParameterSpec(
            name=name,
            support=entry["support"],
            description=entry["description"],
            default=parse_prior(entry["prior"], parameter=name),
            rationale=" ".join(entry["rationale"].split()),
            improper_allowed=tuple(entry.get("improper_allowed", ())),
        )
    return ModelSpec(
        name=raw["name"],
        title=raw["title"],
        equations=tuple(raw["equations"]),
        sampling=" ".join(raw["sampling"].split()),
        heterogeneity=tuple(raw["heterogeneity"]),
        heterogeneity_note=" ".join(raw["heterogeneity_note"].split()),
        parameters=params,
    )


@cache
def model_specs() -> dict[str, ModelSpec]:
    """Every bundled model spec, by name."""
    specs = {}
    for path in sorted(bundled_path("models").glob("*.toml")):
        with open(path, "rb") as handle:
            if "parameters" not in tomllib.load(handle):
                continue  # a TOML file that is not a model spec
        spec = _read_spec(path)
        specs[spec.name] = spec
    return specs


def get_model_spec(name: str) -> ModelSpec:
    """The spec of model ``name``; the error lists the valid names."""
    specs = model_specs()
    if name not in specs:
        raise SpecError(f"unknown model '{name}'; valid: {choices(specs)}")
    return specs[name]


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
            raise SpecError(f"model '{spec.name}' has no parameter '{name}'; its parameters: "
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
                            f"support ({param.support}: {_SUPPORT_TEXT[param.support]})")
        priors[name] = prior
    return priors


_SUPPORT_TEXT = {"unit": "0 < x < 1", "positive": "x > 0", "real": "any real x"}
