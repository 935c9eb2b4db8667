"""The sweep spec (``default_sweep.toml`` by default) and its expansion into scenarios.

A spec names a primary analysis (a ``fit`` run config), the dimensions to vary and how
to combine them. :func:`expand` turns it, with the study table, into the scenarios a
sweep fits: each a complete set of fit settings for one or more outcomes.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bayes_dress.data.table import StudyTable
from bayes_dress.errors import SpecError, choices
from bayes_dress.models.base import POPULATION_QUANTITIES
from bayes_dress.spec.config import RunConfig, config_from_dict, read_toml
from bayes_dress.spec.models import get_model_spec, model_specs, resolve_priors
from bayes_dress.spec.priors import Prior, parse_prior

COMBINE = ("one_at_a_time", "cross")
DIMENSIONS = ("model", "heterogeneity_prior", "mean_prior", "correlation_prior", "definition",
              "leave_one_out")
#: The prior dimensions and the role of the parameter each varies.
PRIOR_DIMENSIONS = (("heterogeneity_prior", "heterogeneity"), ("mean_prior", "mean"),
                    ("correlation_prior", "correlation"))
_TOP_KEYS = ("combine", "primary", "dimensions", "headline", "benefit_risk", "scheduler")
_HEADLINE_KEYS = ("outcome", "quantity", "thresholds")


@dataclass(frozen=True)
class Headline:
    """A headline probability, P(``quantity`` > threshold), judged for robustness."""

    outcome: str
    quantity: str
    thresholds: tuple[float, ...]


@dataclass(frozen=True)
class SweepSpec:
    """A parsed sweep spec; see ``default_sweep.toml`` for the format."""

    combine: str
    primary: RunConfig
    models: tuple[str, ...]
    heterogeneity_priors: Mapping[str, tuple[Prior, ...]]
    mean_priors: Mapping[str, tuple[Prior, ...]]
    #: "all", or outcome -> definitions.
    definitions: str | Mapping[str, tuple[str, ...]]
    #: True (every study), or the studies to leave out in turn.
    leave_one_out: bool | tuple[str, ...]
    headlines: tuple[Headline, ...]
    where: str = "sweep spec"
    #: Priors of a correlation between outcomes (a joint model's rho), per model.
    correlation_priors: Mapping[str, tuple[Prior, ...]] = field(default_factory=dict)
    #: Harm weights w whose P(net clinical benefit > 0) is judged for robustness.
    benefit_risk_weights: tuple[float, ...] = (1.0,)
    #: Where the fits run: None (this machine), "local" (a Dask LocalCluster) or a Dask
    #: scheduler's address; --scheduler and $BAYES_DRESS_SCHEDULER override it.
    scheduler: str | None = None
    #: The bundled default spec: its headlines name the bundled outcomes, so on other
    #: data those it cannot judge are skipped instead of refused.
    bundled: bool = False


@dataclass(frozen=True)
class Scenario:
    """One set of fit settings, applied to each of ``outcomes``."""

    id: str
    label: str
    #: The dimension changed from the model's base analysis ("primary" for the primary
    #: analysis, "cross" in a full cross).
    varied: str
    model: str
    priors: Mapping[str, Prior]
    outcomes: tuple[str, ...]
    definitions: Mapping[str, str] = field(default_factory=dict)
    exclude: tuple[str, ...] = ()

    @property
    def primary(self) -> bool:
        return self.varied == "primary"

    def priors_text(self) -> str:
        return "; ".join(f"{k} ~ {p}" for k, p in self.priors.items())


def default_spec_path() -> Path:
    return Path(__file__).resolve().parent / "default_sweep.toml"


def load_sweep_spec(path: str | Path | None = None) -> SweepSpec:
    """Read and validate a sweep spec (the bundled default when ``path`` is None)."""
    bundled = path is None
    path = Path(path) if path is not None else default_spec_path()
    raw = read_toml(path, what="sweep spec")
    return replace(sweep_spec_from_dict(raw, where=str(path), base=path.parent),
                   bundled=bundled)


def _prior_dimension(raw: Any, dimension: str, role: str, where: str
                     ) -> dict[str, tuple[Prior, ...]]:
    if not isinstance(raw, Mapping):
        raise SpecError(f"{where}: [dimensions.{dimension}] must map model names to lists "
                        'of priors, e.g. logit_normal = ["HalfNormal(1)"]')
    result = {}
    for model, values in raw.items():
        if model not in model_specs():
            raise SpecError(f"{where}: unknown model '{model}' in dimensions.{dimension}; "
                            f"valid: {choices(model_specs())}")
        parameter = role_parameter(model, role)
        if parameter is None:
            raise SpecError(f"{where}: model '{model}' has no {role} parameter, so "
                            f"dimensions.{dimension} cannot vary it")
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise SpecError(f"{where}: dimensions.{dimension}.{model} must be a list of "
                            'priors, e.g. ["HalfNormal(1)"]')
        if not values:
            raise SpecError(f"{where}: dimensions.{dimension}.{model} is empty; list at "
                            "least one prior or remove it")
        priors = tuple(parse_prior(v, parameter=parameter) for v in values)
        # Check support and propriety now, not after an hour of fitting.
        for prior in priors:
            try:
                resolve_priors(get_model_spec(model), {parameter: prior})
            except SpecError as err:
                raise SpecError(f"{where}: dimensions.{dimension}.{model}: {err}") from None
        result[model] = priors
    return result


def role_parameter(model: str, role: str) -> str | None:
    """The parameter playing ``role`` in ``model``: "correlation" (a parameter whose
    support is a correlation), "heterogeneity" (the first of the spec's heterogeneity
    parameters that is not a correlation) or "mean" (the first of the others)."""
    spec = get_model_spec(model)
    correlation = [p for p, ps in spec.parameters.items() if ps.support == "correlation"]
    heterogeneity = [p for p in spec.parameters if p in spec.heterogeneity
                     and p not in correlation]
    others = [p for p in spec.parameters if p not in spec.heterogeneity
              and p not in correlation]
    found = {"correlation": correlation, "heterogeneity": heterogeneity,
             "mean": others}[role]
    return found[0] if found else None



def sweep_spec_from_dict(raw: Mapping[str, Any], *, where: str = "sweep spec",
                         base: Path | None = None) -> SweepSpec:
    """Validate a TOML-shaped sweep spec; every error names the key and the valid values."""
    unknown = sorted(set(raw) - set(_TOP_KEYS))
    if unknown:
        raise SpecError(f"{where}: unknown key '{unknown[0]}'; valid: {choices(_TOP_KEYS)}")
    combine = raw.get("combine", "one_at_a_time")
    if combine not in COMBINE:
        raise SpecError(f"{where}: unknown combine '{combine}'; valid: {choices(COMBINE)}")
    primary_raw = raw.get("primary", {})
    if not isinstance(primary_raw, Mapping):
        raise SpecError(f"{where}: [primary] must be a table (a fit run config)")
    primary = config_from_dict(primary_raw, where=f"{where} [primary]", base=base)
    if primary.model not in model_specs():
        raise SpecError(f"{where}: unknown model '{primary.model}' in [primary]; valid: "
                        f"{choices(model_specs())}")
    dims = raw.get("dimensions", {})
    if not isinstance(dims, Mapping):
        raise SpecError(f"{where}: [dimensions] must be a table")
    unknown = sorted(set(dims) - set(DIMENSIONS))
    if unknown:
        raise SpecError(f"{where}: unknown dimension '{unknown[0]}'; valid: "
                        f"{choices(DIMENSIONS)}")
    models = dims.get("model", [primary.model])
    if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
        raise SpecError(f"{where}: dimensions.model must be a list of model names")
    if not models:
        raise SpecError(f"{where}: dimensions.model is empty; list at least one model")
    for model in models:
        if model not in model_specs():
            raise SpecError(f"{where}: unknown model '{model}' in dimensions.model; valid: "
                            f"{choices(model_specs())}")
    definitions = dims.get("definition", False)
    if definitions is False:
        definitions = {}
    elif definitions != "all":
        if not isinstance(definitions, Mapping) or not all(
                isinstance(v, list) and all(isinstance(d, str) for d in v)
                for v in definitions.values()):
            raise SpecError(f"{where}: dimensions.definition must be \"all\", false, or a "
                            'table such as { success = ["evaluable"] }')
        definitions = {k: tuple(v) for k, v in definitions.items()}
    leave_one_out = dims.get("leave_one_out", False)
    if isinstance(leave_one_out, list):
        if not all(isinstance(s, str) for s in leave_one_out):
            raise SpecError(f"{where}: dimensions.leave_one_out must be true, false or a "
                            "list of study ids")
        leave_one_out = tuple(leave_one_out)
    elif not isinstance(leave_one_out, bool):
        raise SpecError(f"{where}: dimensions.leave_one_out must be true, false or a list "
                        "of study ids")
    headlines = raw.get("headline", [])
    if not isinstance(headlines, list):
        raise SpecError(f"{where}: headline must be an array of tables ([[headline]])")
    return SweepSpec(
        combine=combine, primary=primary, models=tuple(dict.fromkeys(models)),
        heterogeneity_priors=_prior_dimension(dims.get("heterogeneity_prior", {}),
                                              "heterogeneity_prior", "heterogeneity",
                                              where),
        mean_priors=_prior_dimension(dims.get("mean_prior", {}), "mean_prior", "mean",
                                     where),
        correlation_priors=_prior_dimension(dims.get("correlation_prior", {}),
                                            "correlation_prior", "correlation", where),
        definitions=definitions, leave_one_out=leave_one_out,
        headlines=tuple(_headline(h, where) for h in headlines), where=where,
        benefit_risk_weights=_benefit_risk_weights(raw.get("benefit_risk", {}), where),
        scheduler=_scheduler(raw.get("scheduler"), where))


def _scheduler(raw: Any, where: str) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw.strip():
        raise SpecError(f"{where}: 'scheduler' must be \"local\" or a Dask scheduler's "
                        "address, e.g. \"tcp://10.0.0.5:8786\"")
    return raw.strip()


def _benefit_risk_weights(raw: Any, where: str) -> tuple[float, ...]:
    if not isinstance(raw, Mapping) or set(raw) - {"weights"}:
        raise SpecError(f"{where}: [benefit_risk] takes one key, weights (the harm weights "
                        "whose P(net benefit > 0) is judged), e.g. weights = [1.0]")
    weights = raw.get("weights", [1.0])
    if not isinstance(weights, list) or not all(
            isinstance(w, int | float) and not isinstance(w, bool) and 0 <= w <= 1e3
            for w in weights):
        raise SpecError(f"{where}: benefit_risk.weights must be a list of numbers from 0 "
                        "to 1000")
    return tuple(float(w) for w in weights)


def _headline(raw: Any, where: str) -> Headline:
    if not isinstance(raw, Mapping):
        raise SpecError(f"{where}: each [[headline]] must be a table")
    unknown = sorted(set(raw) - set(_HEADLINE_KEYS))
    missing = [k for k in _HEADLINE_KEYS if k not in raw]
    if unknown or missing:
        bad = f"unknown key '{unknown[0]}'" if unknown else f"missing key '{missing[0]}'"
        raise SpecError(f"{where}: [[headline]] {bad}; keys: {choices(_HEADLINE_KEYS)}")
    if raw["quantity"] not in POPULATION_QUANTITIES[:2]:
        raise SpecError(f"{where}: [[headline]] unknown quantity '{raw['quantity']}'; "
                        f"valid: {choices(POPULATION_QUANTITIES[:2])}")
    thresholds = raw["thresholds"]
    if (not isinstance(thresholds, list) or not thresholds
            or not all(isinstance(t, int | float) and not isinstance(t, bool) and 0 < t < 1
                       for t in thresholds)):
        raise SpecError(f"{where}: [[headline]] thresholds must be a non-empty list of "
                        "rates strictly between 0 and 1")
    if not isinstance(raw["outcome"], str):
        raise SpecError(f"{where}: [[headline]] outcome must be an outcome's name")
    return Headline(raw["outcome"], raw["quantity"],
                    tuple(float(t) for t in thresholds))


def check_outcomes(spec: SweepSpec, table: StudyTable, *, headlines: bool = True) -> None:
    """Every outcome the spec names (definitions, and headlines unless --threshold
    replaces them) must be in the data: a typo would otherwise silently drop a dimension
    or a headline."""
    named = [("dimensions.definition", o) for o in
             (spec.definitions if isinstance(spec.definitions, Mapping) else ())]
    if headlines:
        named += [("[[headline]]", h.outcome) for h in spec.headlines]
    for place, outcome in named:
        if outcome not in table.outcomes:
            raise SpecError(f"{spec.where}: unknown outcome '{outcome}' in {place}; "
                            f"outcomes: {choices(table.outcomes)}")


def headlines_for(spec: SweepSpec, outcomes: Sequence[str],
                  thresholds: Sequence[float] | None = None) -> tuple[Headline, ...]:
    """The headline probabilities of the analysed ``outcomes``; ``thresholds`` (the
    --threshold flag) replaces them with P(mean_rate > t) and P(theta_new > t)."""
    if thresholds:
        return tuple(Headline(o, q, tuple(thresholds)) for o in outcomes
                     for q in ("theta_new", "mean_rate"))
    chosen = tuple(h for h in spec.headlines if h.outcome in outcomes)
    if chosen:
        return chosen
    return tuple(Headline(o, "theta_new", (0.5,)) for o in outcomes)


def _label(model: str, changes: Sequence[str]) -> str:
    return f"{model}: {', '.join(changes)}" if changes else f"{model}: default priors"


def expand(spec: SweepSpec, table: StudyTable, *, base: RunConfig,
           outcomes: Sequence[str]) -> list[Scenario]:
    """The scenarios of a sweep, the primary analysis first.

    Parameters
    ----------
    spec : SweepSpec
    table : StudyTable
        The data, for the outcome definitions and studies to vary over.
    base : RunConfig
        The primary analysis, after command-line overrides.
    outcomes : sequence of str
        The outcomes analysed.

    Returns
    -------
    list of Scenario
        Identical settings are fitted once (the first, most basic label is kept).
    """
    included = [s for s in table.studies if s not in base.exclude]
    if spec.leave_one_out is True:
        left_out = included
    else:
        left_out = list(spec.leave_one_out or ())
        unknown = [s for s in left_out if s not in table.studies]
        if unknown:
            raise SpecError(f"{spec.where}: unknown study '{unknown[0]}' in "
                            f"dimensions.leave_one_out; studies: {choices(table.studies)}")
    # Leaving out the only remaining study leaves nothing to fit.
    left_out = [s for s in left_out if s in included] if len(included) > 1 else []

    def alternatives(outcome: str) -> list[str]:
        primary_definition = base.definitions.get(outcome)
        available = table.definitions(outcome)
        if spec.definitions == "all":
            wanted = list(available)
        else:
            wanted = list(spec.definitions.get(outcome, ()))
            unknown = [d for d in wanted if d not in available]
            if unknown:
                raise SpecError(f"{spec.where}: outcome '{outcome}' has no definition "
                                f"'{unknown[0]}'; available: {choices(available)}")
        primary_name = primary_definition or _primary_definition(table, outcome)
        return [d for d in wanted if d != primary_name]

    scenarios: list[Scenario] = []
    seen: set[tuple] = set()

    def add(varied: str, model: str, priors: Mapping[str, Prior], changes: Sequence[str],
            scenario_outcomes: Sequence[str], definitions: Mapping[str, str],
            exclude: Sequence[str]) -> None:
        definitions = {**base.definitions, **definitions}
        exclude = tuple(dict.fromkeys([*base.exclude, *exclude]))
        prior_key = tuple(sorted((k, str(p)) for k, p in priors.items()))
        fresh = []
        for outcome in scenario_outcomes:
            key = (model, prior_key, definitions.get(outcome), tuple(sorted(exclude)),
                   outcome)
            if key not in seen:
                seen.add(key)
                fresh.append(outcome)
        if not fresh:
            return
        scenarios.append(Scenario(
            id="", label=_label(model, changes), varied=varied,
            model=model, priors=dict(priors), outcomes=tuple(fresh),
            definitions={o: d for o, d in definitions.items() if o in fresh},
            exclude=exclude))

    for model in spec.models:
        model_spec = get_model_spec(model)
        # The primary model keeps the user's priors; other models start from their own
        # defaults, with any user prior on a parameter they share.
        user = {k: v for k, v in base.priors.items() if k in model_spec.parameters}
        base_priors = resolve_priors(model_spec, user)
        varied_priors = [(role_parameter(model, role), values.get(model, ()), dimension)
                         for (dimension, role), values in zip(
                             PRIOR_DIMENSIONS, (spec.heterogeneity_priors, spec.mean_priors,
                                                spec.correlation_priors), strict=True)]
        is_primary = model == base.model
        base_label = (["primary analysis"] if is_primary else ["default priors"]) + [
            f"{k} ~ {base_priors[k]}" for k in user]
        if spec.combine == "one_at_a_time":
            add("primary" if is_primary else "model", model, base_priors, base_label,
                outcomes, {}, ())
            for parameter, values, varied in varied_priors:
                for prior in values:
                    if str(prior) != str(base_priors[parameter]):
                        add(varied, model, {**base_priors, parameter: prior},
                            [f"{parameter} ~ {prior}"], outcomes, {}, ())
            for outcome in outcomes:
                for definition in alternatives(outcome):
                    add("definition", model, base_priors, [f"{outcome} = {definition}"],
                        [outcome], {outcome: definition}, ())
            for study in left_out:
                add("leave_one_out", model, base_priors, [f"without {study}"], outcomes,
                    {}, (study,))
            continue
        options = [([base_priors[parameter]] if parameter and not values else list(values))
                   or [None] for parameter, values, _ in varied_priors]
        for chosen in itertools.product(*options):
            priors = dict(base_priors)
            changes = []
            for (parameter, _, _), prior in zip(varied_priors, chosen, strict=True):
                if prior is not None:
                    priors[parameter] = prior
                    if str(prior) != str(base_priors[parameter]):
                        changes.append(f"{parameter} ~ {prior}")
            for study in [None, *left_out]:
                dropped = [f"without {study}"] if study else []
                exclude = (study,) if study else ()
                primary = is_primary and not changes and not dropped
                add("primary" if primary else "cross", model, priors,
                    (base_label if primary else changes + dropped), outcomes, {}, exclude)
                for outcome in outcomes:
                    for definition in alternatives(outcome):
                        add("cross", model, priors,
                            [*changes, f"{outcome} = {definition}", *dropped], [outcome],
                            {outcome: definition}, exclude)
    scenarios.sort(key=lambda s: not s.primary)  # the primary analysis first
    return [replace(s, id=f"S{i + 1:02d}") for i, s in enumerate(scenarios)]


def _primary_definition(table: StudyTable, outcome: str) -> str | None:
    names = {row.definition for row in table.rows if row.outcome == outcome and row.primary}
    return next(iter(names)) if len(names) == 1 else None
