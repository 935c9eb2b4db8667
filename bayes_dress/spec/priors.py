"""Prior distributions as data.

A prior is written the way a statistician writes it, ``HalfNormal(0.5)`` or
``Beta(alpha=2, beta=8)``, in a TOML spec or on the command line. The text is parsed
with :mod:`ast` and only numeric literals are accepted: nothing is ever evaluated as
code. Argument names and their order follow PyMC, so a PyMC user reads them as usual.

One :class:`Prior` serves both sides, so a prior means the same thing everywhere:

* the PyMC model (:meth:`Prior.add_to_model`), with the prior's arguments held in
  ``pm.Data`` containers so that a compiled model can be re-run with new prior
  values without recompiling;
* the exact engine and the prior-versus-posterior diagnostics (:meth:`Prior.logpdf`,
  :meth:`Prior.draw`), through SciPy.
"""

from __future__ import annotations

import ast
import difflib
import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bayes_dress.errors import SpecError, choices, shorten

#: Parameter supports a model spec may declare, and what they mean.
SUPPORTS = {"unit": "0 < x < 1", "positive": "x > 0", "real": "any real x",
            "correlation": "-1 < x < 1"}
#: Largest magnitude of any prior argument, and smallest value of a positive one. Beyond
#: these, the sampler's floating point cannot hold the prior's scale (HalfNormal(1e308)
#: overflows in the first gradient; HalfNormal(5e-324) is a subnormal that SciPy
#: rejects): no analysis of event counts needs a scale outside [1e-6, 1e6].
ARGUMENT_LIMIT = 1e6
SMALLEST_POSITIVE = 1e-6
#: Longest prior text parsed: anything longer is not a prior and is refused unread.
MAX_PRIOR_TEXT = 200


class _Stats:
    """scipy.stats, imported on first use: it costs ~0.3 s, which commands that only
    parse or list priors (``bayes-dress models``) should not pay."""

    def __getattr__(self, name):
        from scipy import stats as _scipy_stats

        return getattr(_scipy_stats, name)


stats = _Stats()


class _HalfStudentT:
    """Half-Student-t (folded at zero), which SciPy does not ship."""

    def __init__(self, nu: float, sigma: float):
        self._t = stats.t(nu, loc=0.0, scale=sigma)

    def logpdf(self, x):
        x = np.asarray(x, dtype=float)
        return np.where(x >= 0, math.log(2.0) + self._t.logpdf(x), -np.inf)

    def ppf(self, q):
        return self._t.ppf(0.5 + 0.5 * np.asarray(q))

    def rvs(self, size=None, random_state=None):
        return np.abs(self._t.rvs(size=size, random_state=random_state))


@dataclass(frozen=True)
class Family:
    """One distribution family: its arguments, support, and PyMC and SciPy versions."""

    name: str
    arg_names: tuple[str, ...]
    support: str
    pymc_name: str | None
    scipy: Callable[..., Any] | None
    check: Callable[[Mapping[str, float]], str | None] = lambda a: None
    proper: bool = True

    @property
    def signature(self) -> str:
        return f"{self.name}({', '.join(self.arg_names)})"


def _positive(*names: str) -> Callable[[Mapping[str, float]], str | None]:
    def check(args: Mapping[str, float]) -> str | None:
        bad = [n for n in names if not args[n] > 0]
        if bad:
            return f"{', '.join(bad)} must be > 0"
        tiny = [n for n in names if args[n] < SMALLEST_POSITIVE]
        if tiny:
            return (f"{', '.join(tiny)} must be at least {SMALLEST_POSITIVE:g} (smaller "
                    "values are below what the sampler can resolve)")
        return None

    return check


def _check_uniform(args: Mapping[str, float]) -> str | None:
    return None if args["lower"] < args["upper"] else "lower must be < upper"


def _check_pareto(args: Mapping[str, float]) -> str | None:
    return _positive("alpha", "m")(args)


def _check_correlation_interval(args: Mapping[str, float]) -> str | None:
    return None if args["eta"] >= SMALLEST_POSITIVE else "eta must be > 0"


class _PointMass:
    """A prior that fixes a parameter at one value (``Fixed(v)``), with the SciPy
    methods the package uses."""

    def __init__(self, value: float):
        self.value = float(value)

    def logpdf(self, x):
        return np.where(np.asarray(x, dtype=float) == self.value, 0.0, -np.inf)

    def pdf(self, x):
        return np.exp(self.logpdf(x))

    def cdf(self, x):
        return np.where(np.asarray(x, dtype=float) >= self.value, 1.0, 0.0)

    def sf(self, x):
        return 1.0 - self.cdf(x)

    def ppf(self, q):
        return np.full(np.shape(q), self.value)

    def rvs(self, size=None, random_state=None):
        return np.full(() if size is None else size, self.value)

    def mean(self):
        return self.value

    def std(self):
        return 0.0


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in [
        Family("Beta", ("alpha", "beta"), "unit", "Beta",
               lambda alpha, beta: stats.beta(alpha, beta), _positive("alpha", "beta")),
        Family("Uniform", ("lower", "upper"), "interval", "Uniform",
               lambda lower, upper: stats.uniform(lower, upper - lower), _check_uniform),
        Family("Normal", ("mu", "sigma"), "real", "Normal",
               lambda mu, sigma: stats.norm(mu, sigma), _positive("sigma")),
        Family("StudentT", ("nu", "mu", "sigma"), "real", "StudentT",
               lambda nu, mu, sigma: stats.t(nu, mu, sigma), _positive("nu", "sigma")),
        Family("Cauchy", ("alpha", "beta"), "real", "Cauchy",
               lambda alpha, beta: stats.cauchy(alpha, beta), _positive("beta")),
        Family("Logistic", ("mu", "s"), "real", "Logistic",
               lambda mu, s: stats.logistic(mu, s), _positive("s")),
        Family("HalfNormal", ("sigma",), "positive", "HalfNormal",
               lambda sigma: stats.halfnorm(scale=sigma), _positive("sigma")),
        Family("HalfCauchy", ("beta",), "positive", "HalfCauchy",
               lambda beta: stats.halfcauchy(scale=beta), _positive("beta")),
        Family("HalfStudentT", ("nu", "sigma"), "positive", "HalfStudentT",
               _HalfStudentT, _positive("nu", "sigma")),
        Family("Exponential", ("lam",), "positive", "Exponential",
               lambda lam: stats.expon(scale=1.0 / lam), _positive("lam")),
        Family("Gamma", ("alpha", "beta"), "positive", "Gamma",
               lambda alpha, beta: stats.gamma(alpha, scale=1.0 / beta),
               _positive("alpha", "beta")),
        Family("LogNormal", ("mu", "sigma"), "positive", "LogNormal",
               lambda mu, sigma: stats.lognorm(s=sigma, scale=math.exp(mu)),
               _positive("sigma")),
        Family("InverseGamma", ("alpha", "beta"), "positive", "InverseGamma",
               lambda alpha, beta: stats.invgamma(alpha, scale=beta),
               _positive("alpha", "beta")),
        Family("Pareto", ("alpha", "m"), "above_m", "Pareto",
               lambda alpha, m: stats.pareto(alpha, scale=m), _check_pareto),
        # Gelman et al., BDA3 section 5.3: p(alpha, beta) ∝ (alpha + beta)^(-5/2), i.e. a
        # flat prior on m = alpha/(alpha+beta) and on phi = (alpha+beta)^(-1/2). As a prior
        # on phi alone it is flat on (0, inf): improper, so it is allowed only where a model
        # declares it, and the exact engine checks that the posterior is proper.
        Family("BDA3", (), "positive", "HalfFlat", None, proper=False),
        # LKJ(eta) on a 2 x 2 correlation matrix: (rho + 1) / 2 ~ Beta(eta, eta).
        # eta = 1 is uniform on (-1, 1); eta = 2 keeps 1.45% of its mass beyond +-0.9.
        Family("LKJ", ("eta",), "correlation", None,
               lambda eta: stats.beta(eta, eta, loc=-1.0, scale=2.0),
               _check_correlation_interval),
        # A parameter held at one value: not sampled, not integrated.
        Family("Fixed", ("value",), "point", None, _PointMass),
    ]
}


#: Parameter supports on which several prior families can share one compiled graph,
#: with the flat base variable that sets the sampler's transform (log for positive
#: parameters, none for real ones). A family whose support is narrower than its
#: parameter's (Uniform, Pareto) needs another transform and keeps a graph of its own.
SHARED_BASES = {"positive": "HalfFlat", "real": "Flat"}
#: Argument value of the families not selected in a shared graph (valid for all).
_NEUTRAL_ARG = 1.0


def can_share(family: str, support: str | None) -> bool:
    """Whether ``family`` can join a shared graph for a parameter with ``support``."""
    return support in SHARED_BASES and FAMILIES[family].support == support


def _format_number(x: float) -> str:
    return f"{x:g}"


@dataclass(frozen=True)
class Prior:
    """A prior distribution: a family and its arguments, by name.

    Parameters
    ----------
    family : str
        A key of :data:`FAMILIES`, e.g. ``"HalfNormal"``.
    args : dict of str to float
        The family's arguments by their PyMC names.
    """

    family: str
    args: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise SpecError(f"unknown distribution '{self.family}'; valid: "
                            f"{choices(FAMILIES)}")

    # ---- description -------------------------------------------------------------
    @property
    def spec(self) -> Family:
        return FAMILIES[self.family]

    @property
    def proper(self) -> bool:
        return self.spec.proper

    def __str__(self) -> str:
        inner = ", ".join(f"{k}={_format_number(v)}" for k, v in self.args.items())
        return f"{self.family}({inner})"

    @property
    def support_bounds(self) -> tuple[float, float]:
        kind = self.spec.support
        if kind == "interval":
            return (self.args["lower"], self.args["upper"])
        if kind == "unit":
            return (0.0, 1.0)
        if kind == "positive":
            return (0.0, math.inf)
        if kind == "above_m":  # Pareto: x >= m
            return (self.args["m"], math.inf)
        if kind == "correlation":
            return (-1.0, 1.0)
        if kind == "point":
            return (self.args["value"], self.args["value"])
        return (-math.inf, math.inf)

    @property
    def fixed_value(self) -> float | None:
        """The value of a ``Fixed(v)`` prior; None for every other prior."""
        return self.args["value"] if self.family == "Fixed" else None

    def fits_support(self, support: str) -> bool:
        """Whether every value this prior allows lies in a parameter's ``support``
        (a fixed value strictly inside it)."""
        lo, hi = self.support_bounds
        bounds = {"unit": (0.0, 1.0), "positive": (0.0, math.inf),
                  "real": (-math.inf, math.inf), "correlation": (-1.0, 1.0)}[support]
        if self.family == "Fixed":
            return bounds[0] < lo < bounds[1] or (lo == 0.0 and support == "correlation")
        return bounds[0] <= lo and hi <= bounds[1]

    # ---- SciPy side ----------------------------------------------------------------
    def frozen(self):
        """The SciPy distribution (``logpdf``, ``ppf``, ``rvs``); ``None`` if improper."""
        return _frozen(self.family, tuple(self.args.items()))

    def logpdf(self, x):
        """Log density at ``x`` (up to a constant for an improper prior)."""
        x = np.asarray(x, dtype=float)
        dist = self.frozen()
        if dist is None:
            return np.where(x > 0, 0.0, -np.inf)
        return dist.logpdf(x)

    def draw(self, rng: np.random.Generator, size) -> np.ndarray:
        """Draws from the prior; an improper prior has none."""
        dist = self.frozen()
        if dist is None:
            raise SpecError(f"{self} is improper: it has no prior draws")
        return np.asarray(dist.rvs(size=size, random_state=rng), dtype=float)

    # ---- PyMC side -------------------------------------------------------------------
    def data_names(self, parameter: str) -> dict[str, float]:
        """Names and values of the ``pm.Data`` containers holding this prior's arguments."""
        return {f"prior__{parameter}__{arg}": float(v) for arg, v in self.args.items()}

    def _shared(self, shared: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if not shared or len(shared) < 2:
            return None
        if self.family not in shared:
            raise SpecError(f"{self} is not one of the shared families {list(shared)}")
        return shared

    def data_values(self, parameter: str, shared: tuple[str, ...] | None = None) -> dict:
        """Values of the ``pm.Data`` containers :meth:`add_to_model` creates."""
        shared = self._shared(shared)
        if shared is None:
            return self.data_names(parameter)
        selector = np.array([float(f == self.family) for f in shared])
        args = np.array([self.args[a] if f == self.family else _NEUTRAL_ARG
                         for f in shared for a in FAMILIES[f].arg_names], dtype=float)
        return {f"prior__{parameter}__family": selector, f"prior__{parameter}__args": args}

    def add_to_model(self, parameter: str, *, shared: tuple[str, ...] | None = None,
                     **kwargs):
        """Add ``parameter ~ this prior`` to the PyMC model in context and return it.

        The arguments live in ``pm.Data`` so nutpie can swap them without recompiling.
        With ``shared``, several families (this one among them, all with the same
        support, see :func:`can_share`) go into one graph: the parameter is a flat
        variable on its support plus the log density of every family in ``shared``,
        one of which a one-hot ``pm.Data`` vector selects. A sweep over those families
        then compiles once; each posterior is the same as with its own graph.
        """
        import pymc as pm

        shared = self._shared(shared)
        if self.family == "Fixed":
            return self._fixed_to_model(parameter, **kwargs)
        if self.family == "LKJ":
            return self._lkj_to_model(parameter, **kwargs)
        if shared is None:
            dist = getattr(pm, self.spec.pymc_name)
            args = {name.rsplit("__", 1)[-1]: pm.Data(name, value)
                    for name, value in self.data_names(parameter).items()}
            return dist(parameter, **args, **kwargs)
        import pytensor.tensor as pt

        values = self.data_values(parameter, shared)
        selector = pm.Data(f"prior__{parameter}__family", values[f"prior__{parameter}__family"])
        args = pm.Data(f"prior__{parameter}__args", values[f"prior__{parameter}__args"])
        value = getattr(pm, SHARED_BASES[self.spec.support])(parameter, **kwargs)
        logps, start = [], 0
        for name in shared:
            family = FAMILIES[name]
            family_args = {a: args[start + i] for i, a in enumerate(family.arg_names)}
            start += len(family.arg_names)
            if family.pymc_name == "HalfFlat":
                logps.append(pt.zeros_like(value))
            else:
                dist = getattr(pm, family.pymc_name).dist(**family_args)
                logps.append(pm.logp(dist, value))
        # Unselected families are evaluated at neutral arguments (valid for every
        # family), so they are finite and contribute exactly zero, gradient included.
        selected = sum(pt.switch(selector[i] > 0.5, lp, 0.0) for i, lp in enumerate(logps))
        pm.Potential(f"prior__{parameter}", pt.sum(selected))
        return value


    def _fixed_to_model(self, parameter: str, dims=None, **kwargs):
        """A deterministic at the fixed value (in ``pm.Data``, so a compiled model takes
        another value without recompiling); it is in the draws like a sampled one."""
        import pymc as pm
        import pytensor.tensor as pt

        value = pm.Data(f"prior__{parameter}__value", self.args["value"])
        if dims is None:
            return pm.Deterministic(parameter, value)
        model = pm.modelcontext(None)
        names = (dims,) if isinstance(dims, str) else tuple(dims)
        shape = tuple(len(model.coords[d]) for d in names)
        return pm.Deterministic(parameter, value * pt.ones(shape), dims=dims)

    def _lkj_to_model(self, parameter: str, **kwargs):
        """LKJ(eta) on a correlation: uniform on (-1, 1), with the interval transform the
        sampler needs, plus the Beta(eta, eta) log density of (rho + 1) / 2."""
        import pymc as pm

        eta = pm.Data(f"prior__{parameter}__eta", self.args["eta"])
        value = pm.Uniform(parameter, -1.0, 1.0, **kwargs)
        half = (value + 1.0) / 2.0
        density = pm.logp(pm.Beta.dist(eta, eta), half)
        pm.Potential(f"prior__{parameter}", density.sum())
        return value


@functools.lru_cache(maxsize=256)
def _frozen(family: str, args: tuple[tuple[str, float], ...]):
    # Freezing a SciPy distribution checks its arguments (~1 ms); a sweep asks for the
    # same few priors thousands of times.
    make = FAMILIES[family].scipy
    return None if make is None else make(**dict(args))


def parse_prior(text: str, *, parameter: str | None = None) -> Prior:
    """Parse ``"HalfNormal(0.5)"``, ``"Beta(alpha=1, beta=1)"`` or ``"BDA3"`` safely.

    Parameters
    ----------
    text : str
        The prior as written by the user.
    parameter : str, optional
        The parameter it is for, named in error messages.

    Returns
    -------
    Prior

    Raises
    ------
    SpecError
        On anything but a known family called with numeric literals.
    """
    where = f" for '{parameter}'" if parameter else ""
    text = str(text).strip()
    if len(text) > MAX_PRIOR_TEXT:
        raise SpecError(f"prior{where} '{shorten(text)}' is {len(text):,} characters long; "
                        f"a prior is written as Family(arg, ...) in at most "
                        f"{MAX_PRIOR_TEXT} characters")
    try:
        node = ast.parse(text, mode="eval").body
    except (SyntaxError, ValueError, MemoryError, RecursionError):  # too deeply nested
        raise SpecError(f"cannot parse prior{where} '{shorten(text)}': write it as "
                        "Family(arg, ...), e.g. HalfNormal(0.5)") from None
    if isinstance(node, ast.Name):
        node = ast.Call(func=node, args=[], keywords=[])
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
        raise SpecError(f"cannot parse prior{where} '{shorten(text)}': write it as "
                        "Family(arg, ...), e.g. HalfNormal(0.5)")
    name = node.func.id
    if name not in FAMILIES:
        close = difflib.get_close_matches(name, FAMILIES, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise SpecError(f"unknown distribution '{name}' in prior{where}{hint}; valid: "
                        f"{choices(FAMILIES)}")
    family = FAMILIES[name]

    def number(arg: ast.expr) -> float:
        value = arg
        sign = 1.0
        while isinstance(value, ast.UnaryOp) and isinstance(value.op, ast.USub | ast.UAdd):
            sign *= -1.0 if isinstance(value.op, ast.USub) else 1.0
            value = value.operand
        if (isinstance(value, ast.Constant) and isinstance(value.value, int | float)
                and not isinstance(value.value, bool)):
            try:
                result = sign * float(value.value)
            except OverflowError:  # an integer literal of hundreds of digits
                result = math.inf
            if math.isfinite(result) and abs(result) <= ARGUMENT_LIMIT:
                return result
            segment = ast.get_source_segment(text, arg) or ast.unparse(arg)
            raise SpecError(f"prior{where} '{shorten(text)}': arguments must be finite numbers "
                            f"within +-{ARGUMENT_LIMIT:g}, not {shorten(segment, 24)}")
        raise SpecError(f"prior{where} '{shorten(text)}': arguments must be finite numbers")

    if len(node.args) > len(family.arg_names):
        raise SpecError(f"prior{where} '{shorten(text)}': {family.signature} takes "
                        f"{len(family.arg_names)} argument(s), got {len(node.args)}")
    args = dict(zip(family.arg_names, (number(a) for a in node.args), strict=False))
    for kw in node.keywords:
        if kw.arg is None:  # Family(**mapping)
            raise SpecError(f"cannot parse prior{where} '{shorten(text)}': write it as "
                            "Family(arg, ...), e.g. HalfNormal(0.5)")
        if kw.arg not in family.arg_names:
            raise SpecError(f"prior{where} '{shorten(text)}': {name} has no argument '{kw.arg}'; "
                            f"valid: {choices(family.arg_names)}")
        if kw.arg in args:
            raise SpecError(f"prior{where} '{shorten(text)}': argument '{kw.arg}' given twice")
        args[kw.arg] = number(kw.value)
    missing = [a for a in family.arg_names if a not in args]
    if missing:
        raise SpecError(f"prior{where} '{shorten(text)}': missing {', '.join(missing)}; "
                        f"write {family.signature}")
    ordered = {a: args[a] for a in family.arg_names}
    problem = family.check(ordered)
    if problem:
        raise SpecError(f"prior{where} '{shorten(text)}': {problem}")
    return Prior(name, ordered)


def parse_assignment(text: str) -> tuple[str, str]:
    """Split a command-line ``PARAM=DIST(ARGS)`` into its two sides."""
    param, sep, dist = str(text).partition("=")
    if not sep or not param.strip() or not dist.strip():
        raise SpecError(f"--prior '{shorten(text)}': write it as PARAM=DIST(ARGS), "
                        "e.g. tau=HalfNormal(0.5)")
    return param.strip(), dist.strip()
