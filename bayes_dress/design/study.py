"""A whole design in memory: from a saved run and a design config to every number that
``bayes-dress design`` writes (nothing here writes files; see
:mod:`bayes_dress.design.write`).

Steps, for the design's outcome (and, with a ``[safety]`` table, for the safety outcome):

1. the MAP prior (:func:`bayes_dress.design.map_prior.map_prior`): exact where the exact
   engine gives it, else NUTS draws; a sampler run's draws are compared with the exact;
2. its Beta-mixture approximation (RBesT's ``automixfit``: deterministic EM on the exact
   MAP, or EM on the draws) and the robustified mixture (``robustify``);
3. the ESS of the exact MAP, the mixture and the robust prior by every method, and the
   plain-words verdict (:func:`~bayes_dress.design.ess.ess_verdict`) of the MAP itself,
   which the output always prints beside any ESS;
4. the single-arm trial with the robust prior: decision boundary, the conflict table for
   every outcome, exact OC curves (robust MAP, MAP mixture, exact MAP, uniform prior),
   type I error and power at the null and alternative, the sample-size search, the
   robust-weight map and the check that the mixture approximation does not change the
   conclusions;
5. optionally the two-endpoint rule (efficacy AND safety on the same patients), and a
   two-arm trial with the robust MAP as the control prior (RBesT's ``oc2S``);
6. optionally the design across sensitivity scenarios
   (:mod:`bayes_dress.design.scenarios`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import optimize

from bayes_dress.design.approximation import ApproximationCheck, check_approximation
from bayes_dress.design.conflict import ConflictTable, conflict_table
from bayes_dress.design.decision import Rule
from bayes_dress.design.endpoints import TwoEndpointDesign
from bayes_dress.design.map_design import MapDesign, map_design
from bayes_dress.design.map_prior import map_prior
from bayes_dress.design.mixture import BetaMixture
from bayes_dress.design.oc import Boundary1S, boundary1s, success_probability
from bayes_dress.design.plan import DesignPlan, RobustSpec
from bayes_dress.design.robust_map import WeightMap, weight_map
from bayes_dress.design.sizing import SampleSizeResult, sample_size
from bayes_dress.design.two_arms import Design2S
from bayes_dress.errors import SpecError, choices, shorten
from bayes_dress.spec.names import did_you_mean, match_name

UNIFORM = BetaMixture.beta(1.0, 1.0, name="uniform")
#: Grid of the two-endpoint OC (each rate), and of the two-arm type I error and power.
GRID_2D = np.round(np.linspace(0.0, 1.0, 101), 10)
TWO_ARM_STEP = 0.01


# ---------------------------------------------------------------------------- two arms
@dataclass
class TwoArmResult:
    """A two-arm trial with the MAP as the control prior, against reference designs
    (RBesT's introduction vignette: robust MAP, MAP, uniform, uniform with equal arms).

    ``type1[label]`` is P(success | theta1 = theta2 = theta) on ``theta``;
    ``power[label]`` is P(success | theta2 = control_mean, theta1 = control_mean +
    delta) on ``delta``; ``delta_for_power[label]`` the delta at which it reaches the
    target power (NaN when it does not on [0, 1 - control_mean]).
    """

    rule: Rule
    n_treatment: int
    n_control: int
    treatment_prior: BetaMixture
    target_power: float
    control_mean: float
    designs: dict[str, tuple[BetaMixture, BetaMixture, int, int]]
    theta: np.ndarray
    type1: dict[str, np.ndarray]
    delta: np.ndarray
    power: dict[str, np.ndarray]
    delta_for_power: dict[str, float]

    def rows(self) -> list[dict]:
        out = []
        for label, (p1, p2, n1, n2) in self.designs.items():
            t1 = self.type1[label]
            i = int(np.argmax(t1))
            out.append({"design": label, "n_treatment": n1, "n_control": n2,
                        "treatment_prior": _mix_text(p1), "control_prior": _mix_text(p2),
                        "type1_at_control_mean": float(_design_oc(
                            p1, p2, n1, n2, self.rule, self.control_mean,
                            self.control_mean)),
                        "type1_max": float(t1[i]), "theta_at_type1_max": float(self.theta[i]),
                        "target_power": self.target_power,
                        "delta_for_power": self.delta_for_power[label]})
        return out


def _mix_text(mix: BetaMixture) -> str:
    parts = [f"{w:.3g} Beta({a:.4g}, {b:.4g})" for w, a, b in zip(mix.weights, mix.a, mix.b,
                                                                    strict=True)]
    return " + ".join(parts)


def _design_oc(p1, p2, n1, n2, rule, theta1, theta2):
    return Design2S(p1, p2, n1, n2, rule).oc(theta1, theta2)


def delta_for_power(design: Design2S, control: float, target: float) -> float:
    """Smallest delta on [0, 1 - control] where the OC reaches ``target`` (Brent's root
    of OC(control + delta, control) - target; NaN when there is no crossing)."""
    f = lambda d: float(design.oc(min(control + d, 1.0), control)) - target  # noqa: E731
    hi = 1.0 - control
    if f(0.0) >= 0:
        return 0.0
    if f(hi) < 0:
        return float("nan")
    return float(optimize.brentq(f, 0.0, hi, xtol=1e-9))


def two_arm_design(control_map: BetaMixture, robust: BetaMixture, spec, rule: Rule
                   ) -> TwoArmResult:
    """The two-arm trial of ``spec`` (a :class:`~bayes_dress.design.plan.TwoArmSpec`)."""
    treat = BetaMixture.beta(*spec.treatment_prior, name="treatment")
    nt, nc = spec.n_treatment, spec.n_control
    designs = {"robust MAP": (treat, robust, nt, nc), "MAP": (treat, control_map, nt, nc),
               "uniform": (UNIFORM, UNIFORM, nt, nc),
               f"uniform, {nt}:{nt}": (UNIFORM, UNIFORM, nt, nt)}
    mean = float(control_map.mean())
    theta = np.round(np.arange(0.01, 0.99 + 1e-9, TWO_ARM_STEP), 10)
    delta = np.round(np.arange(0.0, 1.0 - mean, TWO_ARM_STEP), 10)
    type1, power, found = {}, {}, {}
    for label, (p1, p2, n1, n2) in designs.items():
        d = Design2S(p1, p2, n1, n2, rule)
        type1[label] = d.oc(theta, theta)
        power[label] = d.oc(np.minimum(mean + delta, 1.0), np.full(delta.shape, mean))
        found[label] = delta_for_power(d, mean, spec.power)
    return TwoArmResult(rule, nt, nc, treat, spec.power, mean, designs, theta, type1,
                        delta, power, found)


# ---------------------------------------------------------------------------- the design
@dataclass
class SingleArm:
    """The single-arm trial with the robust MAP prior, and its reference OCs."""

    n: int
    rule: Rule
    null: float
    alternative: float
    boundary: Boundary1S
    conflict: ConflictTable
    theta: np.ndarray
    #: OC curves by prior: "robust MAP" (the design), "MAP mixture", "exact MAP" (where
    #: there is one) and "uniform" (no borrowing).
    oc: dict[str, np.ndarray]
    boundaries: dict[str, Boundary1S]
    sample_size: SampleSizeResult
    weight_map: WeightMap
    approximation: ApproximationCheck | None

    @property
    def type1(self) -> float:
        return float(success_probability(self.boundary.success, self.null))

    @property
    def power(self) -> float:
        return float(success_probability(self.boundary.success, self.alternative))

    def at(self, prior: str, theta: float) -> float:
        return float(success_probability(self.boundaries[prior].success, theta))


@dataclass
class SafetyRule:
    """The two-endpoint rule: efficacy (the single-arm rule) AND safety."""

    map_design: MapDesign
    rule: Rule
    acceptable: float
    unacceptable: float
    design: TwoEndpointDesign
    theta_eff: np.ndarray
    theta_sae: np.ndarray
    grid: np.ndarray  # P(both) on theta_eff x theta_sae

    @property
    def boundary(self) -> Boundary1S:
        return self.design.boundaries[1]

    def describe(self) -> str:
        """The safety boundary in words (patients with the event, not responders)."""
        b = self.boundary
        n = b.n
        if b.never:
            return f"the safety rule never passes with {n} patients"
        if b.always:
            return f"the safety rule passes whatever the outcome of {n} patients"
        lo, hi = b.y_success
        if lo == 0:
            return f"safety passes if {hi} or fewer of {n} patients have the event"
        if hi == n:
            return f"safety passes if {lo} or more of {n} patients have the event"
        return f"safety passes if {lo} to {hi} of {n} patients have the event"

    def pass_probability(self, theta_sae: float) -> float:
        return float(self.design.oc_safety(theta_sae))


@dataclass
class DesignResult:
    """Everything ``bayes-dress design`` computes (see the module notes)."""

    plan: DesignPlan
    run_path: Path
    run_manifest_sha256: str
    run_seed: int | None
    run_engine: str
    efficacy: MapDesign
    trial: SingleArm
    safety: SafetyRule | None = None
    two_arm: TwoArmResult | None = None
    scenarios: object | None = None  # bayes_dress.design.scenarios.ScenarioTable
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def outcome(self) -> str:
        return self.efficacy.outcome

    def headline(self) -> list[str]:
        """What the command prints: the MAP with its honest ESS verdict, the trial's
        boundary and OC, the two-endpoint rule and the sensitivity verdict."""
        e = self.efficacy
        s = e.map.summary()
        lines = [f"MAP prior of {self.outcome} ({e.map.source}, model {e.map.model}): mean "
                 f"{s['mean']:.3f}, 95% interval {s['q2.5']:.3f} to {s['q97.5']:.3f}; "
                 f"mixture of {e.mixture.n_components} Beta component(s), robust weight "
                 f"{e.robust_spec.weight:g}",
                 f"ESS verdict ({e.verdict.level}): {e.verdict.message}"]
        if e.map.agreement is not None:
            lines.append(f"MAP of {self.outcome}: {e.map.agreement.describe()}")
        t = self.trial
        lines.append(f"single-arm trial, {t.rule.text()}: {t.boundary.describe()}; "
                     f"P(success) {t.type1:.3f} at theta = {t.null:g} (type I error), "
                     f"{t.power:.3f} at theta = {t.alternative:g} (power); uniform prior "
                     f"instead: {t.at('uniform', t.null):.3f} and "
                     f"{t.at('uniform', t.alternative):.3f}")
        lines.append(f"sample size for type I error <= {t.sample_size.alpha:g} and power >= "
                     f"{t.sample_size.target_power:g}: {t.sample_size.describe()}")
        if t.approximation is not None:
            a = t.approximation
            lines.append("mixture approximation: " + ("changes the conclusions: "
                         + "; ".join(a.flags) if a.flags else
                         f"does not change the conclusions (CDFs within {a.cdf_max_diff:.2g},"
                         f" OCs within {a.oc_max_diff:.2g})"))
        if self.safety is not None:
            f = self.safety
            lines.append(f"ESS verdict of the {f.map_design.outcome} MAP "
                         f"({f.map_design.verdict.level}): {f.map_design.verdict.message}")
            lines.append(f"two-endpoint rule ({t.rule.text()} AND {f.rule.text()} on "
                         f"{f.map_design.outcome}): {f.describe()}; "
                         f"P(safety passes) {f.pass_probability(f.acceptable):.3f} at "
                         f"{f.acceptable:g}, {f.pass_probability(f.unacceptable):.3f} at "
                         f"{f.unacceptable:g}; P(both) "
                         f"{t.power * f.pass_probability(f.acceptable):.3f} at "
                         f"({t.alternative:g}, {f.acceptable:g}), "
                         f"{t.type1 * f.pass_probability(f.acceptable):.3f} at "
                         f"({t.null:g}, {f.acceptable:g})")
        if self.two_arm is not None:
            a = self.two_arm
            found = ", ".join(f"{k} {v:.3f}" if np.isfinite(v) else f"{k} not reached"
                              for k, v in a.delta_for_power.items())
            lines.append(f"two-arm trial ({a.n_treatment}:{a.n_control}, {a.rule.text()}): "
                         f"effect for power {a.target_power:g} at control rate "
                         f"{a.control_mean:.3f}: {found}")
        if self.scenarios is not None:
            lines.extend(self.scenarios.verdicts)
        return lines


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _run_outcome(run, name: str, *, flag: str | None, key: str, where: str) -> str:
    """The outcome of ``run`` that ``name`` spells (hyphens for underscores, any case), or
    a one-line error naming the nearest the run analysed."""
    found = match_name(name, run.outcomes)
    if found is not None:
        return found
    hint = did_you_mean(name, run.outcomes)
    said = (f"{flag} '{shorten(name)}': run '{run.path}' did not analyse it" if flag else
            f"{where}: '{key}' is '{shorten(name)}', which run '{run.path}' did not analyse")
    raise SpecError(f"{said}{hint}; its outcomes: {choices(run.outcomes)}")


def plan_for_run(run, plan: DesignPlan, outcome: str | None = None
                 ) -> tuple[DesignPlan, list[str]]:
    """``plan`` with its outcomes spelled as ``run`` spells them, and the notes to print.

    Parameters
    ----------
    run : SavedRun
    plan : DesignPlan
    outcome : str, optional
        The ``--outcome`` flag: the design's outcome, over the plan's.

    Returns
    -------
    plan : DesignPlan
        Its ``outcome`` (and safety outcome) one the run analysed. Without
        ``outcome``, the bundled config's ``success`` stands in for the run's only outcome
        when the run did not analyse ``success``: so a run on a user's table, whose one
        outcome is ``events``, is designed without flags. The bundled config's safety
        rule is dropped, with a note, when the run has no outcome of its name or when it
        is the design's own outcome.
    notes : list of str

    Raises
    ------
    SpecError
        An outcome the run did not analyse (with the nearest it did), or a bundled
        default the run cannot stand in for because it analysed several outcomes.
    """
    notes: list[str] = []
    outcomes = run.outcomes
    if outcome is not None:
        chosen = _run_outcome(run, outcome, flag="--outcome", key="outcome", where=plan.where)
    elif (plan.bundled and match_name(plan.outcome, outcomes) is None
          and plan.outcome == _bundled_outcome()):
        if len(outcomes) != 1:
            raise SpecError(f"{plan.where}: 'outcome' is '{plan.outcome}', which run "
                            f"'{run.path}' did not analyse; it analysed several outcomes, "
                            f"{choices(outcomes)}: pass --outcome with the one whose MAP "
                            "prior is the trial's prior")
        chosen = outcomes[0]
        notes.append(f"the design's outcome is '{chosen}', the run's only outcome (the "
                     f"bundled config names '{plan.outcome}', which the run did not "
                     "analyse)")
    else:
        chosen = _run_outcome(run, plan.outcome, flag=None, key="outcome", where=plan.where)
    safety = plan.safety
    if safety is not None:
        found = match_name(safety.outcome, outcomes)
        if plan.bundled and found is None:
            notes.append(f"no safety rule: the run has no outcome '{safety.outcome}' "
                         "(the bundled config's safety outcome)")
            safety = None
        elif plan.bundled and found == chosen:
            notes.append(f"no safety rule: '{chosen}', the bundled config's safety "
                         "outcome, is the design's outcome")
            safety = None
        else:
            found = _run_outcome(run, safety.outcome, flag=None, key="safety.outcome",
                                 where=plan.where)
            if found == chosen:
                raise SpecError(f"{plan.where}: 'safety.outcome' ('{found}') must differ "
                                f"from the design's outcome ('{chosen}'): the safety rule "
                                "is on a second outcome")
            safety = dataclasses.replace(safety, outcome=found)
    return dataclasses.replace(plan, outcome=chosen, safety=safety), notes


def _bundled_outcome() -> str:
    """The outcome the bundled design config names (``success``)."""
    from bayes_dress.design.plan import load_plan

    return load_plan().outcome


def single_arm(md: MapDesign, plan: DesignPlan) -> SingleArm:
    """The single-arm trial of ``plan`` with the robust MAP prior of ``md``."""
    t = plan.trial
    rule = plan.rule
    theta = np.linspace(0.0, 1.0, plan.oc_points)
    priors = {"robust MAP": md.robust, "MAP mixture": md.mixture}
    if md.exact is not None:
        priors["exact MAP"] = md.exact
    priors["uniform"] = UNIFORM
    boundaries = {k: boundary1s(p, t.n, rule) for k, p in priors.items()}
    oc = {k: success_probability(b.success, theta) for k, b in boundaries.items()}
    conflict = conflict_table(md.robust, t.n, rule)
    size = sample_size(md.robust, rule, theta0=t.null, theta1=t.alternative, alpha=t.alpha,
                       power=t.power, n_min=t.n_min, n_max=t.n_max)
    wmap = weight_map(md.mixture, mean=md.robust_spec.mean, n_robust=md.robust_spec.n,
                      n=t.n, rule=rule, theta0=t.null, theta1=t.alternative)
    approx = None
    if md.exact is not None:
        approx = check_approximation(md.exact, md.mixture, n=t.n, rule=rule, theta=theta)
    return SingleArm(t.n, rule, t.null, t.alternative, boundaries["robust MAP"], conflict,
                     theta, oc, boundaries, size, wmap, approx)


def run_design(run, plan: DesignPlan | None = None, *, outcome: str | None = None,
               progress=None, jobs: int | None = None) -> DesignResult:
    """Run a whole design for a saved run (``bayes-dress design`` without the writing).

    Parameters
    ----------
    run : SavedRun or str or Path
        A run directory written by ``bayes-dress fit`` (read and verified through
        :func:`bayes_dress.rundir.read.load_run`), or one already loaded.
    plan : DesignPlan, optional
        Default: the bundled default design config.
    outcome : str, optional
        The design's outcome, over the plan's (as ``--outcome``; see
        :func:`plan_for_run` for how outcome names are matched to the run's).
    progress : callable, optional
        ``progress(message)`` as each step starts.
    jobs : int, optional
        Worker processes for the sensitivity scenarios (default one per core; 1: all in
        this process).

    Returns
    -------
    DesignResult

    Raises
    ------
    SpecError
        The config asks for an outcome the run does not have, a MAP source it cannot
        give, ...; RunDirError when the run directory cannot be read.
    """
    from bayes_dress.design.plan import load_plan

    plan = plan or load_plan()
    # The numerical core meets 0 * inf and log(0) at the bounds of U-shaped priors (and
    # handles them); its RuntimeWarnings would only clutter a user's terminal.
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return _run_design(run, plan, outcome=outcome, progress=progress, jobs=jobs)


def _run_design(run, plan: DesignPlan, *, outcome=None, progress=None,
                jobs=None) -> DesignResult:
    from bayes_dress.rundir import layout
    from bayes_dress.rundir.read import SavedRun, load_run

    say = progress or (lambda message: None)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    if not isinstance(run, SavedRun):
        run = load_run(run)
    plan, notes = plan_for_run(run, plan, outcome)
    seed = run.manifest.get("seed")
    source = plan.map.source

    def build(outcome: str, weight: float | None = None) -> MapDesign:
        analysis = run.analysis_of(outcome)  # plan_for_run matched it to the run's
        say(f"MAP prior of {outcome}")
        t0 = time.perf_counter()
        mp = map_prior(analysis, outcome, source=source, seed=seed)
        timings[f"map {outcome}"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        spec = plan.robust if weight is None else RobustSpec(weight, plan.robust.mean,
                                                             plan.robust.n)
        md = map_design(mp, components=plan.map.components, aic_penalty=plan.map.aic_penalty,
                        robust=spec, n_planned=plan.trial.n)
        timings[f"mixture and ESS {outcome}"] = time.perf_counter() - t0
        notes.extend(f"{outcome}: {n}" for n in mp.notes)
        return md

    efficacy = build(plan.outcome)
    say("single-arm trial: boundary, operating characteristics, sample size")
    t0 = time.perf_counter()
    trial = single_arm(efficacy, plan)
    timings["single-arm trial"] = time.perf_counter() - t0
    safety = None
    if plan.safety is not None:
        md = build(plan.safety.outcome, plan.safety.robust_weight)
        rule = plan.safety_rule
        design = TwoEndpointDesign(plan.trial.n, efficacy.robust, plan.rule, md.robust, rule)
        safety = SafetyRule(md, rule, plan.safety.acceptable, plan.safety.unacceptable,
                            design, GRID_2D, GRID_2D, design.oc(GRID_2D, GRID_2D))
    two_arm = None
    if plan.two_arm is not None:
        say("two-arm trial")
        t0 = time.perf_counter()
        two_arm = two_arm_design(efficacy.mixture, efficacy.robust, plan.two_arm,
                                 plan.two_arm_rule)
        timings["two-arm trial"] = time.perf_counter() - t0
    result = DesignResult(plan=plan, run_path=run.path.resolve(),
                          run_manifest_sha256=_sha256(run.path / layout.MANIFEST),
                          run_seed=seed, run_engine=run.engine, efficacy=efficacy,
                          trial=trial, safety=safety, two_arm=two_arm, notes=notes,
                          timings=timings)
    if plan.sensitivity.enabled:
        from bayes_dress.design.scenarios import design_scenarios

        t0 = time.perf_counter()
        result.scenarios = design_scenarios(run, plan, result, progress=progress, jobs=jobs)
        timings["sensitivity scenarios"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - start
    return result
