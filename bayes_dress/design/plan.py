"""The design config: what ``bayes-dress design`` plans, from TOML, flags or Python.

A config names the outcome whose MAP prior is used, how the MAP is approximated and
robustified, the single-arm trial and its targets, and optionally a safety rule on a
second outcome (the two-endpoint rule), a two-arm trial with the MAP as the control
prior, and the sensitivity of the design across sweep scenarios. Every key is optional;
the defaults are those below (``default_design.toml`` is the bundled config, with its
numbers for the DRESS data explained)::

    outcome = "success"              # the outcome whose MAP prior is the trial's prior

    [map]
    source = "auto"                  # "auto", "exact" or "draws" (see below)
    components = [1, 2, 3, 4]        # numbers of Beta components tried (RBesT automixfit)
    aic_penalty = 6                  # AIC penalty per parameter (RBesT's k = 6)

    [robust]
    weight = 0.2                     # weight of the robust component (0: no robustification)
    mean = 0.5                       # its mean; Beta(mean (n + 1), (1 - mean) (n + 1))
    n = 1                            # its size in patients (n = 1 with mean 0.5: Beta(1, 1))

    [trial]                          # a single-arm trial
    n = 40                           # patients
    rule = "P(theta > 0.3) > 0.95"   # success rule (RBesT decision1S semantics)
    null = 0.3                       # true rate at which success is a type I error
    alternative = 0.5                # true rate at which success is wanted (power)
    alpha = 0.1                      # largest type I error aimed at
    power = 0.8                      # smallest power aimed at
    n_min = 10                       # sample-size search range
    n_max = 200

    [safety]                         # optional: the two-endpoint rule (efficacy AND safety)
    outcome = "severe_ae"
    rule = "P(theta < 0.2) > 0.8"
    robust_weight = 0.2
    acceptable = 0.1                 # an SAE rate at which the safety rule should pass
    unacceptable = 0.3               # one at which it should not

    [two_arm]                        # optional: a randomised trial, the MAP as control prior
    n_treatment = 24
    n_control = 6
    treatment_prior = "Beta(0.5, 1)"
    rule = "P(theta1 - theta2 > 0) > 0.95"   # theta1: treatment, theta2: control
    power = 0.8                      # the effect (delta) reaching this power is reported

    [sensitivity]
    enabled = true                   # the design under every scenario of a sweep
    sweep = "default"                # "default" (the bundled sweep) or a sweep TOML path

    [oc]
    points = 1001                    # true rates 0, 0.001, ..., 1 for the OC curves

``map.source``: ``"exact"`` uses the exact engine's tabulated MAP (the run's own
marginals, or an exact refit of the run's data and priors for a sampler run);
``"draws"`` fits the mixture to the run's NUTS draws of ``theta_new`` as RBesT does;
``"auto"`` is exact where the exact engine supports the model, else draws. Either way,
a sampler run's draws are compared with the exact MAP when both exist.

Command-line flags override the file key by key (``--n``, ``--rule``,
``--robust-weight``, ``--outcome``, ``--sensitivity/--no-sensitivity``). Every error is a
one-line :class:`~bayes_dress.errors.SpecError` that names the key.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from bayes_dress.errors import SpecError, choices, shorten

SOURCES = ("auto", "exact", "draws")
#: Where a config that came from no file says it came from.
BUNDLED = "bundled default design"
_TOP = ("outcome", "map", "robust", "trial", "safety", "two_arm", "sensitivity", "oc")
_MAP = ("source", "components", "aic_penalty")
_ROBUST = ("weight", "mean", "n")
_TRIAL = ("n", "rule", "null", "alternative", "alpha", "power", "n_min", "n_max")
_SAFETY = ("outcome", "rule", "robust_weight", "acceptable", "unacceptable")
_TWO_ARM = ("n_treatment", "n_control", "treatment_prior", "rule", "power")
_SENSITIVITY = ("enabled", "sweep")
_OC = ("points",)
#: Largest planned sample size (an OC over n + 1 outcomes per rate stays cheap).
MAX_N = 10_000


def default_plan_path() -> Path:
    return Path(__file__).resolve().parent / "default_design.toml"


# ---------------------------------------------------------------------------- parts
@dataclass(frozen=True)
class MapSpec:
    source: str = "auto"
    components: tuple[int, ...] = (1, 2, 3, 4)
    aic_penalty: float = 6.0


@dataclass(frozen=True)
class RobustSpec:
    weight: float = 0.2
    mean: float = 0.5
    n: float = 1.0


@dataclass(frozen=True)
class TrialSpec:
    n: int = 40
    rule: str = "P(theta > 0.3) > 0.95"
    null: float = 0.3
    alternative: float = 0.5
    alpha: float = 0.1
    power: float = 0.8
    n_min: int = 10
    n_max: int = 200


@dataclass(frozen=True)
class SafetySpec:
    outcome: str = "severe_ae"
    rule: str = "P(theta < 0.2) > 0.8"
    robust_weight: float = 0.2
    acceptable: float = 0.1
    unacceptable: float = 0.3


@dataclass(frozen=True)
class TwoArmSpec:
    n_treatment: int = 24
    n_control: int = 6
    treatment_prior: tuple[float, float] = (0.5, 1.0)
    rule: str = "P(theta1 - theta2 > 0) > 0.95"
    power: float = 0.8


@dataclass(frozen=True)
class SensitivitySpec:
    enabled: bool = True
    #: "default" or a path to a sweep TOML.
    sweep: str = "default"


@dataclass(frozen=True)
class DesignPlan:
    """A validated design config (see the module docstring for every key)."""

    outcome: str = "success"
    map: MapSpec = field(default_factory=MapSpec)
    robust: RobustSpec = field(default_factory=RobustSpec)
    trial: TrialSpec = field(default_factory=TrialSpec)
    safety: SafetySpec | None = None
    two_arm: TwoArmSpec | None = None
    sensitivity: SensitivitySpec = field(default_factory=SensitivitySpec)
    oc_points: int = 1001
    #: Where the config came from (a file path, or :data:`BUNDLED`).
    where: str = "design config"
    #: The given config is the bundled default: a run without its safety outcome then
    #: skips the safety rule with a note instead of an error.
    bundled: bool = False

    # ------------------------------------------------------------------ rules
    @property
    def rule(self):
        from bayes_dress.design.decision import parse_rule

        return parse_rule(self.trial.rule)

    @property
    def safety_rule(self):
        from bayes_dress.design.decision import parse_rule

        return parse_rule(self.safety.rule) if self.safety is not None else None

    @property
    def two_arm_rule(self):
        from bayes_dress.design.decision import parse_rule

        return parse_rule(self.two_arm.rule) if self.two_arm is not None else None

    # ------------------------------------------------------------------ flags
    def with_flags(self, *, n: int | None = None, rule: str | None = None,
                   robust_weight: float | None = None, outcome: str | None = None,
                   sensitivity: bool | None = None) -> DesignPlan:
        """The plan with command-line flags laid over it (None: keep the file's)."""
        if all(v is None for v in (n, rule, robust_weight, outcome, sensitivity)):
            return self
        raw = self.to_dict()
        if n is not None:
            raw["trial"]["n"] = n
        if rule is not None:
            raw["trial"]["rule"] = rule
        if robust_weight is not None:
            raw["robust"]["weight"] = robust_weight
        if outcome is not None:
            raw["outcome"] = outcome
        if sensitivity is not None:
            raw["sensitivity"]["enabled"] = sensitivity
        flagged = plan_from_dict(raw, where=f"{self.where} with command-line flags")
        return dataclasses.replace(flagged, bundled=self.bundled)

    def to_dict(self) -> dict[str, Any]:
        """A TOML-shaped, JSON-serialisable view (recorded in the design's manifest)."""
        out: dict[str, Any] = {
            "outcome": self.outcome,
            "map": {"source": self.map.source, "components": list(self.map.components),
                    "aic_penalty": self.map.aic_penalty},
            "robust": dataclasses.asdict(self.robust),
            "trial": dataclasses.asdict(self.trial),
            "sensitivity": dataclasses.asdict(self.sensitivity),
            "oc": {"points": self.oc_points},
        }
        if self.safety is not None:
            out["safety"] = dataclasses.asdict(self.safety)
        if self.two_arm is not None:
            two = dataclasses.asdict(self.two_arm)
            a, b = self.two_arm.treatment_prior
            two["treatment_prior"] = f"Beta({_num(a)}, {_num(b)})"
            out["two_arm"] = two
        return out


def _num(x: float) -> str:
    text = repr(float(x))
    return text[:-2] if text.endswith(".0") else text


# ---------------------------------------------------------------------------- reading
def load_plan(path: str | Path | None = None) -> DesignPlan:
    """Read and validate a design config (the bundled default when ``path`` is None)."""
    from bayes_dress.spec.config import read_toml

    bundled = path is None
    path = default_plan_path() if bundled else Path(path)
    raw = read_toml(path, what="design config")
    plan = plan_from_dict(raw, where=BUNDLED if bundled else str(path),
                          base=path.parent)
    return dataclasses.replace(plan, bundled=bundled)


class _Reader:
    """Typed access to one table of the config, with errors that name the key."""

    def __init__(self, raw: Any, section: str, keys: tuple[str, ...], where: str):
        self.where, self.section = where, section
        if not isinstance(raw, Mapping):
            raise SpecError(f"{where}: '{section}' must be a table, e.g. [{section}]")
        unknown = sorted(set(raw) - set(keys))
        if unknown:
            raise SpecError(f"{where}: unknown key '{self.name(unknown[0])}'; valid: "
                            f"{choices(keys)}")
        self.raw = raw

    def name(self, key: str) -> str:
        return f"{self.section}.{key}" if self.section else key

    def fail(self, key: str, what: str, value: Any) -> SpecError:
        return SpecError(f"{self.where}: '{self.name(key)}' must be {what}, got "
                         f"{shorten(repr(value))}")

    def number(self, key: str, default: float, *, low: float | None = None,
               high: float | None = None, open_low: bool = False, open_high: bool = False,
               what: str | None = None) -> float:
        value = self.raw.get(key, default)
        desc = what or "a number"
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(
                float(value)):
            raise self.fail(key, desc, value)
        value = float(value)
        if low is not None and (value < low or (open_low and value == low)):
            raise self.fail(key, desc, value)
        if high is not None and (value > high or (open_high and value == high)):
            raise self.fail(key, desc, value)
        return value

    def rate(self, key: str, default: float, *, open_ends: bool = True) -> float:
        what = ("a rate strictly between 0 and 1" if open_ends
                else "a probability from 0 to 1")
        return self.number(key, default, low=0.0, high=1.0, open_low=open_ends,
                           open_high=open_ends, what=what)

    def whole(self, key: str, default: int, *, low: int, high: int = MAX_N) -> int:
        value = self.raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(key, f"a whole number from {low} to {high:,}", value)
        return int(value)

    def text(self, key: str, default: str) -> str:
        value = self.raw.get(key, default)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, "a non-empty string", value)
        return value.strip()

    def flag(self, key: str, default: bool) -> bool:
        value = self.raw.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(key, "true or false", value)
        return value

    def rule(self, key: str, default: str, *, two_sample: bool) -> str:
        from bayes_dress.design.decision import parse_rule

        text = self.text(key, default)
        try:
            rule = parse_rule(text)
        except SpecError as err:
            raise SpecError(f"{self.where}: '{self.name(key)}': {err}") from None
        if rule.two_sample != two_sample:
            want = ("a two-sample rule on theta1 - theta2, e.g. "
                    "'P(theta1 - theta2 > 0) > 0.95'" if two_sample else
                    "a one-sample rule on theta, e.g. 'P(theta > 0.3) > 0.95'")
            raise SpecError(f"{self.where}: '{self.name(key)}' must be {want}, got "
                            f"{shorten(repr(text))}")
        return rule.text()


_BETA = re.compile(r"^\s*Beta\s*\(\s*(?:alpha\s*=\s*)?(?P<a>[-+0-9.eE]+)\s*,\s*"
                   r"(?:beta\s*=\s*)?(?P<b>[-+0-9.eE]+)\s*\)\s*$", re.IGNORECASE)


def _beta_prior(reader: _Reader, key: str, default: tuple[float, float]) -> tuple[float, float]:
    value = reader.raw.get(key)
    if value is None:
        return default
    what = "a Beta prior such as \"Beta(0.5, 1)\" (a, b > 0) or \"uniform\""
    if isinstance(value, str) and value.strip().lower() == "uniform":
        return (1.0, 1.0)
    if isinstance(value, list) and len(value) == 2 and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        a, b = float(value[0]), float(value[1])
    elif isinstance(value, str) and (m := _BETA.match(value)):
        try:
            a, b = float(m["a"]), float(m["b"])
        except ValueError:
            raise reader.fail(key, what, value) from None
    else:
        raise reader.fail(key, what, value)
    if not (math.isfinite(a) and math.isfinite(b) and a > 0 and b > 0):
        raise reader.fail(key, what, value)
    return (a, b)


def plan_from_dict(raw: Mapping[str, Any], *, where: str = "design config",
                   base: Path | None = None) -> DesignPlan:
    """Build a :class:`DesignPlan` from a TOML-shaped mapping; errors name the key."""
    top = _Reader(raw, "", _TOP, where)
    outcome = top.text("outcome", DesignPlan.outcome)

    m = _Reader(raw.get("map", {}), "map", _MAP, where)
    source = m.text("source", "auto")
    if source not in SOURCES:
        raise SpecError(f"{where}: 'map.source' must be {choices(SOURCES)}, got "
                        f"{shorten(repr(source))}")
    comps = m.raw.get("components", [1, 2, 3, 4])
    if (not isinstance(comps, list) or not comps
            or not all(isinstance(c, int) and not isinstance(c, bool) and 1 <= c <= 8
                       for c in comps)
            or any(b <= a for a, b in pairwise(comps))):
        raise m.fail("components", "an increasing list of whole numbers from 1 to 8, "
                     "e.g. [1, 2, 3, 4]", comps)
    map_spec = MapSpec(source, tuple(int(c) for c in comps),
                       m.number("aic_penalty", 6.0, low=0.0, high=100.0,
                                what="a number from 0 to 100"))

    r = _Reader(raw.get("robust", {}), "robust", _ROBUST, where)
    robust = RobustSpec(_weight(r, "weight"), r.rate("mean", 0.5),
                        r.number("n", 1.0, low=0.0, high=1e6, open_low=True,
                                 what="a positive number of patients"))

    t = _Reader(raw.get("trial", {}), "trial", _TRIAL, where)
    trial = TrialSpec(
        n=t.whole("n", 40, low=1), rule=t.rule("rule", TrialSpec.rule, two_sample=False),
        null=t.rate("null", 0.3), alternative=t.rate("alternative", 0.5),
        alpha=t.rate("alpha", 0.1), power=t.rate("power", 0.8),
        n_min=t.whole("n_min", 10, low=1), n_max=t.whole("n_max", 200, low=1))
    if trial.n_max < trial.n_min:
        raise SpecError(f"{where}: 'trial.n_max' ({trial.n_max}) must not be below "
                        f"'trial.n_min' ({trial.n_min})")
    if trial.null == trial.alternative:
        raise SpecError(f"{where}: 'trial.alternative' must differ from 'trial.null' "
                        f"({trial.null:g})")

    safety = None
    if "safety" in raw:
        s = _Reader(raw["safety"], "safety", _SAFETY, where)
        safety = SafetySpec(
            outcome=s.text("outcome", SafetySpec.outcome),
            rule=s.rule("rule", SafetySpec.rule, two_sample=False),
            robust_weight=_weight(s, "robust_weight"),
            acceptable=s.rate("acceptable", 0.1), unacceptable=s.rate("unacceptable", 0.3))
        if safety.outcome == outcome:
            raise SpecError(f"{where}: 'safety.outcome' must differ from 'outcome' "
                            f"('{outcome}'): the safety rule is on a second outcome")
        if safety.acceptable == safety.unacceptable:
            raise SpecError(f"{where}: 'safety.unacceptable' must differ from "
                            f"'safety.acceptable' ({safety.acceptable:g})")

    two_arm = None
    if "two_arm" in raw:
        a = _Reader(raw["two_arm"], "two_arm", _TWO_ARM, where)
        two_arm = TwoArmSpec(
            n_treatment=a.whole("n_treatment", 24, low=1, high=2000),
            n_control=a.whole("n_control", 6, low=0, high=2000),
            treatment_prior=_beta_prior(a, "treatment_prior", (0.5, 1.0)),
            rule=a.rule("rule", TwoArmSpec.rule, two_sample=True),
            power=a.rate("power", 0.8))

    s = _Reader(raw.get("sensitivity", {}), "sensitivity", _SENSITIVITY, where)
    sweep = s.text("sweep", "default")
    if sweep != "default":
        path = Path(sweep)
        if not path.is_absolute() and base is not None:
            path = base / path
        if not path.is_file():
            raise SpecError(f"{where}: 'sensitivity.sweep': sweep spec '{shorten(sweep)}' "
                            "not found (use \"default\" for the bundled sweep)")
        sweep = str(path)
    sensitivity = SensitivitySpec(s.flag("enabled", True), sweep)

    o = _Reader(raw.get("oc", {}), "oc", _OC, where)
    points = o.whole("points", 1001, low=11, high=100_001)
    return DesignPlan(outcome=outcome, map=map_spec, robust=robust, trial=trial,
                      safety=safety, two_arm=two_arm, sensitivity=sensitivity,
                      oc_points=points, where=where)


def _weight(reader: _Reader, key: str) -> float:
    """A robust weight: from 0 (the MAP as it is) to below 1."""
    weight = reader.rate(key, 0.2, open_ends=False)
    if weight == 1:
        raise SpecError(f"{reader.where}: '{reader.name(key)}' must be below 1: a robust "
                        "weight of 1 discards the MAP prior altogether (use a uniform "
                        "prior)")
    return weight
