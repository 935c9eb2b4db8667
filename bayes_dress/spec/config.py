"""Run configuration: what one ``fit`` does, from a TOML file, flags, or Python.

A config file looks like this (every key optional)::

    model = "beta_binomial"
    data = "my_studies.csv"          # relative to the config file; default: bundled
    outcomes = ["success", "severe_ae"]
    exclude = []
    thresholds = [0.1, 0.25, 0.5, 0.75]

    [priors]
    phi = "HalfNormal(1)"

    [definitions]
    success = "evaluable"

    [sampler]
    name = "nutpie"                  # or "pymc"
    draws = 2000
    tune = 1000
    chains = 4
    seed = 20260101
    target_accept = 0.99

Command-line flags override the file key by key (``--prior`` and ``--definition``
parameter by parameter).
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bayes_dress.errors import SpecError, choices

#: The seed used when none is given; recorded in every manifest like any other.
DEFAULT_SEED = 20260101
#: Outcomes fitted by default, when the data have them.
DEFAULT_OUTCOMES = ("success", "severe_ae")
DEFAULT_THRESHOLDS = (0.1, 0.25, 0.5, 0.75)
SAMPLERS = ("nutpie", "pymc")
ENGINES = ("nuts", "exact")


@dataclass(frozen=True)
class SamplerSettings:
    """MCMC settings.

    ``target_accept`` defaults to 0.99, not PyMC's 0.8: with two studies the
    hierarchical models have a funnel at small heterogeneity on which 0.8 diverges, and
    at 0.95 the default sensitivity sweep still met an occasional divergence (a
    single-study beta-binomial, a HalfCauchy(0.5) on tau). These models have two or
    three parameters, so the smaller steps cost little.
    """

    name: str = "nutpie"
    draws: int = 2000
    tune: int = 1000
    chains: int = 4
    seed: int = DEFAULT_SEED
    target_accept: float = 0.99
    cores: int | None = None

    def __post_init__(self):
        if self.name not in SAMPLERS:
            raise SpecError(f"unknown sampler '{self.name}'; valid: {choices(SAMPLERS)}")
        # nutpie needs at least one tuning step (it panics on zero).
        for key, low in (("draws", 1), ("tune", 1), ("chains", 1), ("seed", 0)):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise SpecError(f"sampler {key} must be a whole number >= {low}, got {value!r}")
        if self.cores is not None and (not isinstance(self.cores, int)
                                       or isinstance(self.cores, bool) or self.cores < 1):
            raise SpecError(f"sampler cores must be a whole number >= 1, got {self.cores!r}")
        if not (isinstance(self.target_accept, int | float)
                and 0.5 <= float(self.target_accept) < 1.0):
            raise SpecError(f"target_accept must be in [0.5, 1), got {self.target_accept!r}")


#: Harm weights of the benefit-risk acceptability curve: how many benefit events one harm
#: event is worth, from 0 (harm ignored) to 5.
DEFAULT_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0)


@dataclass(frozen=True)
class BenefitRiskSpec:
    """Which outcomes are benefit and harm, and the thresholds and weights judged."""

    benefit: str = "success"
    risk: str = "severe_ae"
    benefit_threshold: float = 0.5
    risk_threshold: float = 0.2
    weights: tuple[float, ...] = DEFAULT_WEIGHTS

    def __post_init__(self):
        for name in ("benefit_threshold", "risk_threshold"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0.0 < float(value) < 1.0):
                raise SpecError(f"benefit-risk {name} must be a rate strictly between 0 and "
                                f"1, got {value!r}")
        if not self.weights or not all(isinstance(w, int | float) and 0.0 <= w <= 1e3
                                       for w in self.weights):
            raise SpecError("benefit-risk harm weights must be numbers from 0 to 1000")
        if self.benefit == self.risk:
            raise SpecError("benefit-risk: the benefit and the harm outcome must differ")

    def event(self) -> str:
        return (f"{self.benefit} > {self.benefit_threshold:g} and {self.risk} < "
                f"{self.risk_threshold:g}")

    def to_dict(self) -> dict:
        return {"benefit": self.benefit, "risk": self.risk,
                "benefit_threshold": self.benefit_threshold,
                "risk_threshold": self.risk_threshold, "weights": list(self.weights)}



@dataclass(frozen=True)
class RunConfig:
    """Everything one ``fit`` needs besides the data file's contents."""

    model: str = "beta_binomial"
    data: Path | None = None
    outcomes: tuple[str, ...] | None = None
    priors: Mapping[str, str] = field(default_factory=dict)
    definitions: Mapping[str, str] = field(default_factory=dict)
    exclude: tuple[str, ...] = ()
    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS
    sampler: SamplerSettings = field(default_factory=SamplerSettings)
    engine: str = "nuts"
    benefit_risk: BenefitRiskSpec = field(default_factory=BenefitRiskSpec)
    #: The package's column name -> the data file's, where the automatic match does not
    #: find it (``--columns events=Responders``).
    columns: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if self.engine not in ENGINES:
            raise SpecError(f"unknown engine '{self.engine}'; valid: {choices(ENGINES)}")
        bad = [t for t in self.thresholds if not 0.0 < float(t) < 1.0]
        if bad or not self.thresholds:
            raise SpecError(f"thresholds must be rates strictly between 0 and 1, got "
                            f"{list(self.thresholds)}")

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with ``changes``; ``sampler_*`` keys change sampler settings."""
        sampler_changes = {k.removeprefix("sampler_"): v for k, v in changes.items()
                           if k.startswith("sampler_")}
        rest = {k: v for k, v in changes.items() if not k.startswith("sampler_")}
        if sampler_changes:
            rest["sampler"] = dataclasses.replace(self.sampler, **sampler_changes)
        return dataclasses.replace(self, **rest)

    def ignored_by_engine(self) -> list[str]:
        """Settings this run's engine does not use, when they differ from their defaults
        (so that a user is told, not left to wonder)."""
        if self.engine == "nuts":
            return []
        defaults = SamplerSettings()
        unused = [k for k in ("tune", "target_accept", "name", "cores")
                  if getattr(self.sampler, k) != getattr(defaults, k)]
        notes = []
        if unused:
            notes.append(f"the {self.engine} engine does not sample: sampler setting(s) "
                         f"{', '.join(unused)} are ignored")
        if (self.sampler.draws, self.sampler.chains) != (defaults.draws, defaults.chains):
            notes.append(f"the {self.engine} engine: draws x chains "
                         f"({self.sampler.draws} x {self.sampler.chains}) only sets the "
                         "number of prior draws (for the prior-versus-posterior "
                         "comparison); the posterior is computed, not sampled")
        return notes

    def to_dict(self) -> dict[str, Any]:
        """A TOML-shaped, JSON-serialisable view, as recorded in the manifest."""
        return {
            "model": self.model,
            "data": str(self.data) if self.data else None,
            "outcomes": list(self.outcomes) if self.outcomes else None,
            "priors": dict(self.priors),
            "definitions": dict(self.definitions),
            "exclude": list(self.exclude),
            "thresholds": list(self.thresholds),
            "engine": self.engine,
            "sampler": dataclasses.asdict(self.sampler),
            "benefit_risk": self.benefit_risk.to_dict(),
            "columns": dict(self.columns),
        }


_TOP_KEYS = {"model", "data", "outcomes", "priors", "definitions", "exclude", "thresholds",
             "sampler", "engine", "benefit_risk", "columns"}
_BENEFIT_RISK_KEYS = {"benefit", "risk", "benefit_threshold", "risk_threshold", "weights"}
_SAMPLER_KEYS = {f.name for f in dataclasses.fields(SamplerSettings)}


def read_toml(path: Path, *, what: str) -> dict[str, Any]:
    """A TOML file's contents; a missing or malformed file is a one-line SpecError."""
    if not path.is_file():
        raise SpecError(f"{what} '{path}' not found")
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"{path}: not valid TOML ({err})") from None
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not valid UTF-8") from None


def load_config(path: str | Path) -> RunConfig:
    """Read a run config from TOML; unknown keys are errors that list the valid ones."""
    path = Path(path)
    raw = read_toml(path, what="config file")
    return config_from_dict(raw, where=str(path), base=path.parent)


def config_from_dict(raw: Mapping[str, Any], *, where: str = "config",
                     base: Path | None = None) -> RunConfig:
    """Build a :class:`RunConfig` from a TOML-shaped mapping."""
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise SpecError(f"{where}: unknown key '{sorted(unknown)[0]}'; valid: "
                        f"{choices(_TOP_KEYS)}")
    if not isinstance(raw.get("sampler", {}), Mapping):
        raise SpecError(f"{where}: 'sampler' must be a table, e.g. [sampler] draws = 2000")
    sampler_raw = dict(raw.get("sampler", {}))
    unknown = set(sampler_raw) - _SAMPLER_KEYS
    if unknown:
        raise SpecError(f"{where}: unknown key 'sampler.{sorted(unknown)[0]}'; valid: "
                        f"{choices(_SAMPLER_KEYS)}")
    for key in ("priors", "definitions", "columns"):
        table = raw.get(key, {})
        if not isinstance(table, Mapping) or not all(isinstance(v, str) for v in
                                                      table.values()):
            raise SpecError(f"{where}: [{key}] must map names to strings, e.g. "
                            + {"priors": 'tau = "HalfNormal(0.5)"',
                               "definitions": 'success = "evaluable"',
                               "columns": 'events = "Responders"'}[key])
    for key in ("outcomes", "exclude", "thresholds"):
        if key in raw and not isinstance(raw[key], list):
            raise SpecError(f"{where}: '{key}' must be a list")
    for key in ("model", "data", "engine"):
        if key in raw and not isinstance(raw[key], str):
            raise SpecError(f"{where}: '{key}' must be a string, got {raw[key]!r}")
    for key in ("outcomes", "exclude"):
        if not all(isinstance(v, str) for v in raw.get(key, ())):
            raise SpecError(f"{where}: '{key}' must be a list of strings")
    if not all(isinstance(t, int | float) and not isinstance(t, bool)
               for t in raw.get("thresholds", ())):
        raise SpecError(f"{where}: 'thresholds' must be a list of numbers")
    data = raw.get("data")
    if data is not None:
        data = Path(data)
        if base is not None and not data.is_absolute():
            data = base / data
    try:
        sampler = SamplerSettings(**sampler_raw)
    except TypeError as err:
        raise SpecError(f"{where}: [sampler] {err}") from None
    benefit_raw = raw.get("benefit_risk", {})
    if not isinstance(benefit_raw, Mapping):
        raise SpecError(f"{where}: 'benefit_risk' must be a table, e.g. [benefit_risk] "
                        "risk_threshold = 0.2")
    unknown = set(benefit_raw) - _BENEFIT_RISK_KEYS
    if unknown:
        raise SpecError(f"{where}: unknown key 'benefit_risk.{sorted(unknown)[0]}'; valid: "
                        f"{choices(_BENEFIT_RISK_KEYS)}")
    if "weights" in benefit_raw:
        if not isinstance(benefit_raw["weights"], list):
            raise SpecError(f"{where}: 'benefit_risk.weights' must be a list of numbers")
        benefit_raw = {**benefit_raw, "weights": tuple(benefit_raw["weights"])}
    benefit_risk = BenefitRiskSpec(**benefit_raw)
    return RunConfig(
        model=raw.get("model", "beta_binomial"),
        data=data,
        outcomes=tuple(raw["outcomes"]) if raw.get("outcomes") else None,
        priors=dict(raw.get("priors", {})),
        definitions=dict(raw.get("definitions", {})),
        exclude=tuple(raw.get("exclude", ())),
        thresholds=tuple(float(t) for t in raw.get("thresholds", DEFAULT_THRESHOLDS)),
        sampler=sampler,
        engine=raw.get("engine", "nuts"),
        benefit_risk=benefit_risk,
        columns=dict(raw.get("columns", {})),
    )
