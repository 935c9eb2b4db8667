"""The exact engine's integrators: each model's posterior by deterministic numerical
integration, as one :class:`~bayes_dress.posterior.marginals.Marginal` per quantity.

Once the study rates are integrated out, every model here has at most two
hyperparameters, so the posterior can be tabulated on a grid and integrated with an
error we control, instead of sampled:

* ``common_effect`` and ``independent``: conjugate Beta posteriors in closed form (any
  other prior on the unit interval: one-dimensional quadrature).
* ``beta_binomial``: the closed-form beta-binomial marginal likelihood on a 2-D grid over
  (logit m, log(phi + 0.1)).
* ``logit_normal``: a 2-D grid over (mu, log(tau + 0.1)); each study's likelihood
  ``∫ Binomial(y | n, invlogit(eta)) Normal(eta | mu, tau) d eta`` by adaptive
  Gauss-Hermite quadrature (centred on each integrand's mode and scaled by its curvature).

Grid: Simpson's rule on an odd number of points per axis. Its bounds are set from a
coarse pass over a wide box (where the log density is within ``EDGE_DROP`` of its
maximum), and the fine grid is checked: log density at every edge (but the support
edge of zero heterogeneity) must be at least ``EDGE_DROP - 5`` below the maximum, else
the box is widened or, if the mass does not vanish however wide, the posterior is
reported improper.

Quantities that are functions of the hyperparameters (mean rate, SD of rates, phi,
kappa, mu, tau) get their CDFs by integrating along the axis in which they are monotone
(a cumulative Simpson integral, interpolated with cubic Hermite segments whose slopes
are the density), then across the other axis. Study rates and the new-study rate are
mixtures over the grid of known conditional distributions (Beta, or logit-normal), whose
densities are integrated on a fine logit-scale grid with exact tail masses at its ends.

The grid error is measured, not assumed: with ``check=True`` (as ``fit --engine exact``
runs) a fit is repeated on a grid with twice the resolution and the largest change of
any reported quantile is returned as ``grid_error`` (a diagnostic fails above
``GRID_TOLERANCE``). The check's verdicts for the bundled data and default priors are
pinned in tests/test_exact.py, so the unchecked fit that every NUTS run uses as its
reference is covered too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache, cached_property

import numpy as np
from scipy import integrate, signal, special, stats
from scipy.interpolate import CubicSpline

from bayes_dress.data.selection import OutcomeData
from bayes_dress.engines.exact.agq import log_likelihood as agq_log_likelihood
from bayes_dress.errors import ImproperPosteriorError
from bayes_dress.models.logit_normal import logit_normal_moments
from bayes_dress.posterior.marginals import Marginal
from bayes_dress.spec.priors import Prior

#: Log-density drop at which the grid is cut: exp(-20) ~ 2e-9 of the peak.
EDGE_DROP = 20.0
#: Largest change of any reported quantile when the grid resolution doubles.
GRID_TOLERANCE = 1e-4
#: Points per axis of the 2-D grid (odd, for Simpson's rule), and of the check grid.
GRID_POINTS = 65
#: How many times the coarse box may double before the posterior is declared not to
#: vanish at the edge (2^8 times the initial width: logit rates beyond +-3000).
WIDENINGS = 9
#: Points per axis of the coarse pass that bounds the grid.
COARSE_POINTS = 65
#: Gauss-Hermite nodes for the logit-normal study likelihoods.
AGQ_NODES = 32
#: Logit-scale half-width of the grid on which rate mixtures are integrated; what lies
#: beyond (rates below 1e-13 or above 1 - 1e-13) enters as exact tail mass.
LOGIT_LIMIT = 30.0
PROBS = (0.025, 0.5, 0.975)
#: Heterogeneity h (phi or tau) is gridded as b = log(h + HETEROGENEITY_OFFSET): linear
#: near h = 0, where the density is finite and most of the mass of few studies lies, and
#: logarithmic in the long upper tail. The grid starts at h = HETEROGENEITY_FLOOR.
HETEROGENEITY_OFFSET = 0.1
HETEROGENEITY_FLOOR = 1e-10


def _to_heterogeneity(b):
    return np.exp(b) - HETEROGENEITY_OFFSET


def _from_heterogeneity(h):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(h + HETEROGENEITY_OFFSET)


_B_FLOOR = float(np.log(HETEROGENEITY_FLOOR + HETEROGENEITY_OFFSET))


# ----------------------------------------------------------------------------------------
# One-dimensional posteriors, as tabulated CDFs


def _simpson_weights(n: int, step: float) -> np.ndarray:
    weights = np.ones(n)
    weights[1:-1:2], weights[2:-1:2] = 4.0, 2.0
    return weights * step / 3.0


def _hermite_cumulative(b: np.ndarray, cumulative: np.ndarray, density: np.ndarray,
                        at: np.ndarray) -> np.ndarray:
    """Row-wise cubic Hermite interpolation of ``cumulative`` (slope ``density``) at ``at``.

    ``cumulative`` and ``density`` are (rows, len(b)); ``at`` is (rows, k).
    """
    step = b[1] - b[0]
    position = np.clip((at - b[0]) / step, 0.0, len(b) - 1 - 1e-12)
    j = np.floor(position).astype(int)
    t = position - j
    rows = np.arange(cumulative.shape[0])[:, None]
    c0, c1 = cumulative[rows, j], cumulative[rows, j + 1]
    d0, d1 = density[rows, j] * step, density[rows, j + 1] * step
    t2, t3 = t * t, t * t * t
    value = ((2 * t3 - 3 * t2 + 1) * c0 + (t3 - 2 * t2 + t) * d0 + (-2 * t3 + 3 * t2) * c1
             + (t3 - t2) * d1)
    value = np.where(at <= b[0], 0.0, value)
    return np.where(at >= b[-1], cumulative[:, -1:], value)


# ----------------------------------------------------------------------------------------
# Two-dimensional grids


@dataclass(frozen=True)
class Axis:
    """A grid axis mapped as coordinate = centre + scale * sinh(s), s evenly spaced.

    Near the centre the spacing is even (scale * ds); in the tails it grows
    geometrically, so a posterior with long tails is covered without spending most
    points on them. Quadrature is Simpson's rule in s with the Jacobian scale * cosh(s).
    """

    s: np.ndarray
    centre: float
    scale: float

    @classmethod
    def spanning(cls, lo: float, hi: float, centre: float, scale: float, points: int
                 ) -> Axis:
        return cls(np.linspace(np.arcsinh((lo - centre) / scale),
                               np.arcsinh((hi - centre) / scale), points), centre, scale)

    @property
    def values(self) -> np.ndarray:
        return self.centre + self.scale * np.sinh(self.s)

    @property
    def jacobian(self) -> np.ndarray:
        return self.scale * np.cosh(self.s)

    @property
    def step(self) -> float:
        return float(self.s[1] - self.s[0])

    @property
    def weights(self) -> np.ndarray:
        return _simpson_weights(len(self.s), self.step) * self.jacobian

    def to_s(self, x):
        return np.arcsinh((np.asarray(x, dtype=float) - self.centre) / self.scale)

    def refined(self, factor: int) -> Axis:
        n = (len(self.s) - 1) * factor + 1
        return Axis(np.linspace(self.s[0], self.s[-1], n), self.centre, self.scale)


@dataclass
class Grid:
    """A posterior tabulated on a rectangular grid in transformed coordinates (a, b)."""

    axes: tuple[Axis, Axis]
    density: np.ndarray  # per unit of (a, b); the weights below integrate it to 1

    def subsampled(self) -> Grid:
        """Every other point on each axis (Simpson's rule still applies: odd counts)."""
        axes = tuple(Axis(axis.s[::2], axis.centre, axis.scale) for axis in self.axes)
        density = self.density[::2, ::2]
        return Grid(axes, density / (axes[0].weights @ density @ axes[1].weights))

    @property
    def a(self) -> np.ndarray:
        return self.axes[0].values

    @property
    def b(self) -> np.ndarray:
        return self.axes[1].values

    @cached_property
    def weights(self) -> np.ndarray:
        """Quadrature weight of each grid point, summing to 1."""
        return self.axes[0].weights[:, None] * self.axes[1].weights[None, :] * self.density

    def marginal_of(self, values: np.ndarray, inverse: Callable[[np.ndarray, np.ndarray],
                                                                np.ndarray],
                    *, axis: int, support: tuple[float, float], n_x: int = 401,
                    coordinate: Callable[[np.ndarray], np.ndarray] | None = None) -> Marginal:
        """Posterior of a quantity monotone increasing along ``axis`` of the grid.

        ``inverse(other, x)`` returns, for coordinates ``other`` of the remaining axis
        (shape (rows, 1)) and quantity values ``x`` (shape (1, k)), the coordinate along
        ``axis`` at which the quantity equals ``x`` (+-inf outside its range).
        ``coordinate``, for a quantity that is a function of the grid coordinate alone,
        maps that coordinate to the quantity: the CDF is then tabulated at points evenly
        spaced in the grid's own s, so a long tail (phi under BDA3) is resolved too.
        """
        along, other = self.axes[axis], self.axes[1 - axis]
        density = self.density if axis == 1 else self.density.T
        # Integrate along s: the density per unit s is density * jacobian.
        per_s = density * along.jacobian[None, :]
        cumulative = integrate.cumulative_simpson(per_s, dx=along.step, axis=1, initial=0.0)
        weights = self.weights
        if coordinate is not None:
            xs = coordinate(along.refined(max(1, n_x // len(along.s))).values)
        else:
            lo, hi = self._range(values, weights, support)
            xs = np.linspace(lo, hi, n_x)
        at = along.to_s(inverse(other.values[:, None], xs[None, :]))
        cdf = other.weights @ _hermite_cumulative(along.s, cumulative, per_s, at)
        mean = float(np.sum(weights * values))
        var = float(np.sum(weights * values**2)) - mean**2
        return Marginal(xs, cdf / cdf[-1] if cdf[-1] > 0 else cdf, mean,
                        float(np.sqrt(max(var, 0.0))))

    @staticmethod
    def _range(values, weights, support):
        significant = weights > weights.max() * np.exp(-EDGE_DROP)
        lo, hi = values[significant].min(), values[significant].max()
        lo, hi = max(lo, support[0]), min(hi, support[1])
        return lo, hi if hi > lo else lo + 1e-12


def _normalised(logp: np.ndarray, axes: tuple[Axis, Axis]) -> np.ndarray:
    density = np.exp(logp - np.max(logp))
    return density / (axes[0].weights @ density @ axes[1].weights)


def build_grid(log_posterior: Callable[..., np.ndarray],
               box: tuple[tuple[float, float], tuple[float, float]], *, points: int,
               what: str) -> Grid:
    """Tabulate a 2-D log posterior on an adaptively bounded, sinh-mapped grid.

    A coarse pass over ``box`` finds where the log density is within ``EDGE_DROP`` of its
    maximum, and the posterior mean and SD along each axis; the fine grid covers that
    region, each axis mapped around its mean with its SD as scale (:class:`Axis`). The
    lower end of the second axis is the edge of the support (heterogeneity 0, where the
    density is finite) and stays put. If the region reaches another edge of ``box``, the
    box is widened (up to four times); if it still reaches it, the posterior mass does
    not vanish there and the posterior is improper (or the box is too small).
    """
    (a_lo, a_hi), (b_lo, b_hi) = box
    for _ in range(WIDENINGS):
        a = np.linspace(a_lo, a_hi, COARSE_POINTS)
        b = np.linspace(b_lo, b_hi, COARSE_POINTS)
        logp = log_posterior(a[:, None], b[None, :], coarse=True)
        logp = np.where(np.isfinite(logp), logp, -np.inf)
        if not np.isfinite(np.max(logp)):
            raise ImproperPosteriorError(f"{what}: the log posterior is -inf everywhere on "
                                         "the grid; a prior puts (nearly) all its mass "
                                         "outside the parameter range")
        keep = logp > np.max(logp) - EDGE_DROP
        rows, cols = np.nonzero(keep)
        touches = [rows.min() == 0, rows.max() == len(a) - 1, False,
                   cols.max() == len(b) - 1]
        if not any(touches):
            break
        width_a, width_b = a_hi - a_lo, b_hi - b_lo
        a_lo -= width_a * touches[0]
        a_hi += width_a * touches[1]
        b_lo -= width_b * touches[2]
        b_hi += width_b * touches[3]
    else:
        raise ImproperPosteriorError(
            f"{what}: the posterior does not vanish at the edge of the parameter space "
            f"(log density within {EDGE_DROP:g} of its peak at {_edge_name(touches)}), so "
            "it is improper or too flat to integrate on a grid; use a proper, more "
            "informative prior")
    coarse = np.exp(logp - np.max(logp))
    coarse /= coarse.sum()
    axes = []
    at_support_edge = False
    for values, margin, lo_limit, index in ((a, coarse.sum(axis=1), -np.inf, rows),
                                            (b, coarse.sum(axis=0), b_lo, cols)):
        step = values[1] - values[0]
        mean = float(margin @ values)
        sd = float(np.sqrt(max(margin @ (values - mean) ** 2, step**2)))
        # One coarse cell of margin on each side of the region.
        lo = max(lo_limit, values[index.min()] - step)
        at_support_edge = lo == lo_limit
        hi = values[index.max()] + step
        axes.append(Axis.spanning(lo, hi, mean, sd, points))
    axes = tuple(axes)
    fa, fb = axes[0].values, axes[1].values
    logp = log_posterior(fa[:, None], fb[None, :])
    logp = np.where(np.isfinite(logp), logp, -np.inf)
    edges = np.concatenate([logp[0], logp[-1], logp[:, -1]] + (
        [] if at_support_edge else [logp[:, 0]]))
    if np.max(edges) > np.max(logp) - EDGE_DROP + 5.0:
        raise ImproperPosteriorError(f"{what}: posterior mass at the edge of the integration "
                                     "grid is not negligible; the posterior may be improper")
    return Grid(axes, _normalised(logp, axes))


def _edge_name(touches) -> str:
    names = ["the lower end of the first axis", "the upper end of the first axis",
             "the lower end of the second axis", "the upper end of the second axis"]
    return ", ".join(n for n, t in zip(names, touches, strict=True) if t)


# ----------------------------------------------------------------------------------------
# Mixtures of rate distributions


#: Logit-scale step on which wide rate components are integrated: a third of the spread
#: below which 1% of the mass lies, within these bounds. Components narrower than
#: NARROW_STEPS steps enter through their CDFs instead (see _rate_mixture).
MIXTURE_STEP_BOUNDS = (0.01, 0.08)
#: Smallest phi of a beta-binomial mixture component (see _beta_binomial).
PHI_FLOOR = 1e-8
#: Grid points per block when summing mixture densities (see _beta_mixture).
MIXTURE_BLOCK = 256
NARROW_STEPS = 3.0


def _rate_mixture(weights: np.ndarray, log_density: Callable, tail_cdf: Callable,
                  spread: np.ndarray, centre: np.ndarray, conditional_means: np.ndarray,
                  conditional_second: np.ndarray, *, cell: float | np.ndarray) -> Marginal:
    """Posterior of a rate that is, given grid point g, a known distribution.

    Wide components (logit-scale SD ``spread`` >= NARROW_STEPS steps) are summed
    as densities on a uniform logit grid, integrated by Simpson's rule, with their exact
    tail masses beyond the grid from ``tail_cdf``. Narrow components (large kappa: the
    rate is nearly fixed given the grid point, and nearly normal on the logit scale) are
    too narrow for any affordable grid; their CDFs are added directly, as normal CDFs
    with their own centre and spread, evaluated at the grid points within 8 SD of the
    centre (beyond that they are 0 or 1). A narrow component stands for the
    hyperparameter cell around its grid point, across which its centre moves by
    ``cell`` (logit scale): its spread is widened by the SD of a hat of that
    half-width, sqrt(cell^2 / 6), so that neighbouring components join into a
    piecewise-linear whole instead of a staircase of near-point masses.

    ``log_density(eta, keep, w)``: the ``w``-weighted sum of the logit-scale densities
    of the components selected by ``keep`` at the points ``eta``. ``tail_cdf(eta0)``: every
    component's exact CDF at logit ``eta0``.
    """
    w_all = weights.reshape(-1)
    # Leave out the lightest components, together holding < 1e-12 of the mass.
    order = np.argsort(w_all)
    keep = np.ones(w_all.shape, dtype=bool)
    keep[order[np.cumsum(w_all[order]) < 1e-12]] = False
    by_spread = np.argsort(spread)
    typical = spread[by_spread][np.searchsorted(np.cumsum(w_all[by_spread]), 0.01)]
    step = float(np.clip(typical / 3.0, *MIXTURE_STEP_BOUNDS))
    narrow = keep & (spread < NARROW_STEPS * step)
    wide = keep & ~narrow
    # A component with an infinite spread and centre (a Beta parameter underflowed to 0,
    # far out on a flat tail) has no finite bounds: it spans the whole logit range.
    with np.errstate(invalid="ignore"):
        lo = max(-LOGIT_LIMIT, float(np.nanmin(np.concatenate([
            (centre - 12 * spread)[wide], (centre - 9 * spread)[narrow], [np.inf]]))))
        hi = min(LOGIT_LIMIT, float(np.nanmax(np.concatenate([
            (centre + 12 * spread)[wide], (centre + 9 * spread)[narrow], [-np.inf]]))))
    n = max(int(np.ceil((hi - lo) / step)), 2) // 2 * 2 + 1
    eta = np.linspace(lo, hi, n)
    cdf = np.zeros(n)
    if wide.any():
        w = w_all[wide]
        dens = log_density(eta, wide, w)
        below = float(w @ tail_cdf(lo)[wide])
        above = float(w.sum()) - float(w @ tail_cdf(hi)[wide])
        inner = integrate.cumulative_simpson(dens, x=eta, initial=0.0)
        # Any quadrature shortfall is spread over the interior in proportion.
        interior = float(w.sum()) - below - above
        cdf += below + (inner * (interior / inner[-1]) if inner[-1] > 0 else inner)
    if narrow.any():
        w, c = w_all[narrow], centre[narrow]
        cells = np.broadcast_to(np.asarray(cell, dtype=float), w_all.shape)[narrow]
        sd = np.sqrt(spread[narrow] ** 2 + cells**2 / 6.0)
        step = eta[1] - eta[0]
        first = np.floor((c - 8 * sd - lo) / step).astype(int)
        window = np.arange(int(np.ceil(16 * sd.max() / step)) + 2)
        index = np.clip(first[:, None] + window[None, :], 0, n - 1)
        values = w[:, None] * special.ndtr((eta[index] - c[:, None]) / sd[:, None])
        # Increments of each component's weighted CDF along the grid: the steps within
        # its window, then the rest of its weight just after it; one cumulative sum.
        increments = np.zeros(n + 1)
        steps = np.diff(values, axis=1, prepend=0.0)
        np.add.at(increments, index, steps)
        np.add.at(increments, np.minimum(index[:, -1] + 1, n), w - values[:, -1])
        cdf += np.cumsum(increments[:-1])
    total = float(w_all[keep].sum())
    x = np.concatenate([[0.0], special.expit(eta), [1.0]])
    cdf = np.concatenate([[0.0], cdf / total, [1.0]])
    mean = float(w_all[keep] @ conditional_means.reshape(-1)[keep]) / total
    second = float(w_all[keep] @ conditional_second.reshape(-1)[keep]) / total
    return Marginal(x, cdf, mean, float(np.sqrt(max(second - mean**2, 0.0))))


def _beta_mixture(weights, alpha, beta, *, cell) -> Marginal:
    alpha, beta = alpha.reshape(-1), beta.reshape(-1)
    log_norm = special.betaln(alpha, beta)
    total = alpha + beta
    mean = alpha / total
    var = alpha * beta / (total**2 * (total + 1))
    # Logit-scale location and spread of a Beta: digamma and trigamma differences.
    centre = special.digamma(alpha) - special.digamma(beta)
    spread = np.sqrt(special.polygamma(1, alpha) + special.polygamma(1, beta))

    def log_density(eta, keep, w):
        # Beta density on the logit scale, x^a (1 - x)^b / B(a, b), summed over components,
        # a block of points at a time: the (components x points) temporaries then stay
        # in cache (whole, they run to hundreds of MB for a single study's wide mixture).
        # The exponents a log x + b log(1 - x) - log B are one (components x 3) @ (3 x
        # points) product: a third of the time of three broadcast passes.
        coefficients = np.stack([alpha[keep], beta[keep], -log_norm[keep]], axis=1)
        logs = np.stack([special.log_expit(eta), special.log_expit(-eta),
                         np.ones(eta.shape)])
        out = np.empty(eta.shape)
        for start in range(0, eta.size, MIXTURE_BLOCK):
            exponent = coefficients @ logs[:, start:start + MIXTURE_BLOCK]
            out[start:start + MIXTURE_BLOCK] = w @ np.exp(exponent, out=exponent)
        return out

    def tail_cdf(eta0):
        return special.betainc(alpha, beta, special.expit(eta0))

    return _rate_mixture(weights, log_density, tail_cdf, spread, centre, mean,
                         var + mean**2, cell=cell)


# ----------------------------------------------------------------------------------------
# Model by model


@dataclass
class ExactFit:
    """The exact posterior of one outcome: a Marginal per reported quantity."""

    outcome: str
    model: str
    quantities: dict[str, Marginal]
    studies: dict[str, Marginal]
    grid_points: int
    grid: Grid | None = None
    seconds: float = 0.0
    grid_error: float = 0.0
    notes: list[str] = field(default_factory=list)


def _beta_prior(prior: Prior) -> tuple[float, float] | None:
    if prior.family == "Beta":
        return prior.args["alpha"], prior.args["beta"]
    if prior.family == "Uniform" and prior.args["lower"] == 0 and prior.args["upper"] == 1:
        return 1.0, 1.0
    return None


def _unit_posterior(prior: Prior, events: int, total: int) -> Marginal:
    """Posterior of a rate with a single binomial likelihood: conjugate or quadrature."""
    ab = _beta_prior(prior)
    if ab is not None:
        return Marginal.closed_form(stats.beta(ab[0] + events, ab[1] + total - events))
    # Any other prior on (0, 1): quadrature on the logit scale, over the prior's support
    # (a density that jumps at its ends, like Uniform(0.1, 0.9), is smooth inside it).
    lo, hi = prior.support_bounds
    with np.errstate(divide="ignore"):
        eta = np.linspace(max(-LOGIT_LIMIT, special.logit(lo)),
                          min(LOGIT_LIMIT, special.logit(hi)), 20001)
    x = special.expit(eta)
    logp = (prior.logpdf(x) + np.log(x) + np.log1p(-x) + events * np.log(x)
            + (total - events) * np.log1p(-x))
    dens = np.exp(logp - np.max(logp[np.isfinite(logp)]))
    dens = np.where(np.isfinite(dens), dens, 0.0)
    cdf = integrate.cumulative_simpson(dens, x=eta, initial=0.0)
    mean = integrate.simpson(dens * x, x=eta) / cdf[-1]
    second = integrate.simpson(dens * x**2, x=eta) / cdf[-1]
    return Marginal(x, cdf / cdf[-1], float(mean), float(np.sqrt(max(second - mean**2, 0))))


def _common_effect(data, priors, points):
    theta = _unit_posterior(priors["theta"], int(data.events.sum()), int(data.totals.sum()))
    quantities = {"mean_rate": theta, "theta_new": theta, "sd_rates": Marginal.point(0.0),
                  "theta": theta}
    return quantities, {s: theta for s in data.studies}, None, []


def _independent(data, priors, points):
    studies = {s: _unit_posterior(priors["theta"], int(e), int(n))
               for s, e, n in zip(data.studies, data.events, data.totals, strict=True)}
    theta_new = Marginal.closed_form(priors["theta"].frozen())
    # The mean of independent rates: the convolution of their distributions, each
    # discretised into 2^14 cells of [0, 1] with its mass at the cell centre (a quantile
    # error below one cell, 6e-5).
    cells = 2**14
    edges = np.linspace(0.0, 1.0, cells + 1)
    masses = None
    for marginal in studies.values():
        cell = np.diff(marginal.cdf_at(edges))
        masses = cell if masses is None else np.maximum(signal.fftconvolve(masses, cell), 0.0)
    k = len(studies)
    values = (np.arange(len(masses)) + 0.5 * k) / (cells * k)
    cdf = np.cumsum(masses)
    mean = float(np.mean([m.mean for m in studies.values()]))
    sd = float(np.sqrt(np.sum([m.sd**2 for m in studies.values()])) / k)
    quantities = {"mean_rate": Marginal(values, cdf / cdf[-1], mean, sd),
                  "theta_new": theta_new}
    notes = ["sd_rates is not computed by the exact engine for the independent model"]
    return quantities, studies, None, notes


def log_rising(a: np.ndarray, k: int) -> np.ndarray:
    """log of the rising factorial a (a + 1) ... (a + k - 1) = log Gamma(a + k) - log Gamma(a).

    The difference of log-gammas loses all precision once a is ~1e12 or more (kappa ->
    infinity, a common rate); there the sum of log(1 + j / a) is expanded in powers of
    k / a < 1e-4, whose fifth term is below double precision.
    """
    a = np.asarray(a, dtype=float)
    if k == 0:
        return np.zeros_like(a)
    # Sums of j^p for j = 0..k-1 (Faulhaber), without materialising the range.
    m = float(k - 1)
    power_sums = [m * (m + 1) / 2, m * (m + 1) * (2 * m + 1) / 6, (m * (m + 1) / 2) ** 2,
                  m * (m + 1) * (2 * m + 1) * (3 * m * m + 3 * m - 1) / 30,
                  m * m * (m + 1) ** 2 * (2 * m * m + 2 * m - 1) / 12]
    large = a > 1e4 * k
    safe = np.where(large, 1.0, a)
    direct = special.gammaln(safe + k) - special.gammaln(safe)
    big = np.where(large, a, 1.0)
    series = k * np.log(big) + sum((-1) ** (p + 1) * power_sums[p - 1] / (p * big**p)
                                   for p in range(1, 6))
    return np.where(large, series, direct)


def _beta_binomial(data, priors, points):
    y, n = data.events.astype(float), data.totals.astype(float)
    prior_m, prior_phi = priors["m"], priors["phi"]
    if prior_phi.family == "BDA3" and not np.any((data.events > 0)
                                                 & (data.events < data.totals)):
        raise ImproperPosteriorError(
            f"outcome '{data.outcome}': phi=BDA3 (flat on phi) with no study whose events "
            "lie strictly between 0 and its total: the beta-binomial likelihood stays "
            "bounded away from zero as phi grows, so the posterior does not integrate; use "
            "a proper prior on phi")
    log_choose = special.gammaln(n + 1) - special.gammaln(y + 1) - special.gammaln(n - y + 1)

    def log_post(u, v, coarse=False):
        m, phi = special.expit(u), _to_heterogeneity(v)
        kappa = phi**-2.0
        alpha, beta = m * kappa, (1 - m) * kappa
        loglik = np.zeros(np.broadcast_shapes(u.shape, v.shape))
        for yi, ni, ci in zip(data.events, data.totals, log_choose, strict=True):
            loglik = loglik + ci + (log_rising(alpha, int(yi)) + log_rising(beta, int(ni - yi))
                                    - log_rising(alpha + beta, int(ni)))
        # Priors on m and phi, with the Jacobians of u = logit m and v = log(phi + c).
        log_prior = (prior_m.logpdf(m) + special.log_expit(u) + special.log_expit(-u)
                     + prior_phi.logpdf(phi) + v)
        return loglik + log_prior

    grid = build_grid(log_post, ((-12.0, 12.0), (_B_FLOOR, 5.0)), points=points,
                      what=f"beta_binomial, outcome '{data.outcome}'")
    u, v = grid.a[:, None], grid.b[None, :]
    m, phi = special.expit(u) + 0 * v, _to_heterogeneity(v) + 0 * u
    kappa = phi**-2
    sd_rates = np.sqrt(m * (1 - m)) * phi / np.sqrt(1 + phi**2)

    def sd_inverse(u_rows, x):
        r = x / np.sqrt(special.expit(u_rows) * special.expit(-u_rows))
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(r < 1, _from_heterogeneity(r / np.sqrt(1 - r**2)), np.inf)

    mean_rate = grid.marginal_of(m, lambda other, x: special.logit(x) + 0 * other, axis=0,
                                 support=(0, 1), coordinate=special.expit)
    phi_marginal = grid.marginal_of(phi, lambda other, x: _from_heterogeneity(x) + 0 * other,
                                    axis=1, support=(0, np.inf),
                                    coordinate=_to_heterogeneity)
    # kappa = phi^-2 is decreasing in phi: P(kappa <= x) = P(phi >= x^-1/2).
    kappa_marginal = Marginal(phi_marginal.x[::-1] ** -2.0, 1.0 - phi_marginal.cdf[::-1],
                              _mean_or_inf(grid, kappa), np.nan)
    _unless_mean_exists(phi_marginal, grid, phi)
    # Study and new-study rates: mixtures over (m, phi). Their conditional CDFs are smooth
    # in (m, phi), so every other grid point suffices (within 1e-5 of a 257-point grid on
    # the bundled data), refined along logit m where components are narrower than its
    # spacing; each mixture costs a quarter as much.
    coarse = grid.subsampled()
    # Far out in logit m (a flat tail, e.g. 18 of 18 under a Jeffreys prior) m rounds to
    # exactly 0 or 1, and the grid's edge at phi = 0 is a point mass: there a component's
    # Beta parameters vanish or are infinite. Such components are kept a hair inside
    # (m in (0, 1), phi >= PHI_FLOOR: kappa <= 1e16, a rate fixed to ~1e-8), which
    # changes their CDFs by less than anything reported.
    edge = np.finfo(float).eps
    mix_weights, mix_m, mix_phi, cell = _refine_for_mixtures(
        coarse, np.clip(m[::2, ::2], edge, 1 - edge), np.maximum(phi[::2, ::2], PHI_FLOOR))
    mix_m = np.clip(mix_m, edge, 1 - edge)  # refined m is expit again; phi is copied
    mix_kappa = mix_phi**-2
    mix_alpha, mix_beta = mix_m * mix_kappa, (1 - mix_m) * mix_kappa

    def centre_shift(a, b):
        # How far a component's logit centre, digamma(a) - digamma(b), moves per unit of
        # logit m: kappa m (1 - m) (trigamma(a) + trigamma(b)). About 1 for a new study;
        # near 0 for a large study, whose rate its own data pin down whatever m is.
        return cell * mix_kappa * mix_m * (1 - mix_m) * (special.polygamma(1, a)
                                                         + special.polygamma(1, b))

    quantities = {
        "mean_rate": mean_rate,
        "theta_new": _beta_mixture(mix_weights, mix_alpha, mix_beta,
                                   cell=centre_shift(mix_alpha, mix_beta)),
        "sd_rates": grid.marginal_of(sd_rates, sd_inverse, axis=1, support=(0, 0.5)),
        "m": mean_rate,
        "phi": phi_marginal,
        "kappa": kappa_marginal,
    }
    studies = {s: _beta_mixture(mix_weights, mix_alpha + yi, mix_beta + ni - yi,
                                cell=centre_shift(mix_alpha + yi, mix_beta + ni - yi))
               for s, yi, ni in zip(data.studies, y, n, strict=True)}
    return quantities, studies, grid, []


#: Largest refinement of logit m for the rate mixtures of one row of the grid.
MAX_ROW_REFINEMENT = 16


def _refine_for_mixtures(grid: Grid, m: np.ndarray, phi: np.ndarray):
    """Quadrature points and weights for mixtures over (logit m, phi).

    Given (m, phi), a rate's logit-scale spread is about phi / sqrt(m (1 - m)) (large
    kappa) and its centre moves one-for-one with logit m. Where the spread is below ~0.7
    grid steps, a sum over the grid's m values is a comb of bumps, not a smooth
    integral; such rows get a finer logit-m grid (log density by cubic interpolation in
    the axis's s, Simpson weights), up to MAX_ROW_REFINEMENT times. Returns flat weights,
    m, phi, and each point's logit-m spacing (the smear for components still narrower).
    """
    axis_u = grid.axes[0]
    spacing = axis_u.step * axis_u.jacobian
    v_weights = grid.axes[1].weights
    spread = phi / np.sqrt(m * (1 - m))
    significant = grid.weights > grid.weights.max() * 1e-12
    log_density = np.log(np.maximum(grid.density, 1e-300))
    weights, ms, phis, cells = [], [], [], []
    for k in range(len(grid.b)):
        rows = significant[:, k]
        need = np.max(0.75 * spacing[rows] / spread[rows, k]) if rows.any() else 1.0
        refine = int(min(max(np.ceil(need), 1), MAX_ROW_REFINEMENT))
        fine = axis_u.refined(refine)
        dens = (grid.density[:, k] if refine == 1
                else np.exp(CubicSpline(axis_u.s, log_density[:, k])(fine.s)))
        weights.append(fine.weights * dens * v_weights[k])
        ms.append(special.expit(fine.values))
        phis.append(np.full(len(fine.s), phi[0, k]))
        cells.append(fine.step * fine.jacobian)
    weights = np.concatenate(weights)
    return (weights / weights.sum(), np.concatenate(ms), np.concatenate(phis),
            np.concatenate(cells))


def _unless_mean_exists(marginal: Marginal, grid: Grid, values: np.ndarray) -> None:
    """Set an unbounded quantity's mean and SD to inf when they do not exist (a tail
    like 1/phi^2 under BDA3): then the grid's upper edge carries a visible share."""
    if not np.isfinite(_mean_or_inf(grid, values)):
        marginal.mean, marginal.sd = float("inf"), float("inf")


def _mean_or_inf(grid: Grid, values: np.ndarray) -> float:
    """Posterior mean of a positive quantity, or inf when the tabulated mean is dominated
    by the grid's edge (the mean does not exist)."""
    w = grid.weights
    edge = np.sum(w[:, 0] * values[:, 0]) + np.sum(w[:, -1] * values[:, -1])
    total = np.sum(w * values)
    return float(total) if edge < 1e-6 * total else float("inf")


# -- logit-normal ------------------------------------------------------------------------


def _agq(mu, tau, y, n, nodes: int = AGQ_NODES) -> np.ndarray:
    """log ∫ Binomial(y | n, invlogit(eta)) Normal(eta | mu, tau) d eta, by adaptive
    Gauss-Hermite quadrature (see :mod:`bayes_dress.engines.exact.agq`)."""
    mu, tau = np.broadcast_arrays(np.asarray(mu, float), np.asarray(tau, float))
    x, w = _hermite_rule(nodes)
    log_choose = float(special.gammaln(n + 1) - special.gammaln(y + 1)
                       - special.gammaln(n - y + 1))
    flat = agq_log_likelihood(np.ascontiguousarray(mu).reshape(-1),
                              np.ascontiguousarray(tau).reshape(-1), float(y), float(n),
                              x, np.log(w) + x**2, log_choose)
    return flat.reshape(mu.shape)


@cache
def _hermite_rule(nodes: int) -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.hermite.hermgauss(nodes)


def _logit_normal(data, priors, points):
    y, n = data.events.astype(float), data.totals.astype(float)
    prior_mu, prior_tau = priors["mu"], priors["tau"]

    study_loglik = []

    def log_post(mu, w, coarse=False):
        # The coarse pass only bounds the grid: 8 quadrature nodes are plenty for that.
        nodes = 8 if coarse else AGQ_NODES
        tau = _to_heterogeneity(w)
        terms = [_agq(mu, tau, yi, ni, nodes) for yi, ni in zip(y, n, strict=True)]
        if not coarse:
            study_loglik[:] = terms  # the fine grid's, reused for the study rates
        loglik = sum(terms)
        return loglik + prior_mu.logpdf(mu) + prior_tau.logpdf(tau) + w

    grid = build_grid(log_post, ((-12.0, 12.0), (_B_FLOOR, 3.0)), points=points,
                      what=f"logit_normal, outcome '{data.outcome}'")
    mu, w = grid.a[:, None] + 0 * grid.b[None, :], grid.b[None, :] + 0 * grid.a[:, None]
    tau = _to_heterogeneity(w)
    mean, sd = logit_normal_moments(mu, tau)
    quantities = {
        "mean_rate": grid.marginal_of(mean, _monotone_inverse(grid.a, mean, axis=0), axis=0,
                                      support=(0, 1)),
        "sd_rates": grid.marginal_of(sd, _monotone_inverse(grid.b, sd, axis=1), axis=1,
                                     support=(0, 0.5)),
        "mu": grid.marginal_of(mu, lambda other, x: x + 0 * other, axis=0,
                               support=(-np.inf, np.inf), coordinate=lambda a: a),
        "tau": grid.marginal_of(tau, lambda other, x: _from_heterogeneity(x) + 0 * other,
                                axis=1, support=(0, np.inf), coordinate=_to_heterogeneity),
    }
    _unless_mean_exists(quantities["tau"], grid, tau)
    kernels: dict = {}
    # The density underflows to 0 far out on the grid; log(0) = -inf is meant there.
    with np.errstate(divide="ignore"):
        log_density = np.log(grid.density)
    quantities["theta_new"] = _logit_normal_rate(grid, log_density, None, kernels)
    studies = {}
    for study, yi, ni, log_lik in zip(data.studies, y, n, study_loglik, strict=True):
        studies[study] = _logit_normal_rate(grid, log_density - log_lik, (yi, ni),
                                            kernels)
    return quantities, studies, grid, []


def _monotone_inverse(axis_values: np.ndarray, values: np.ndarray, *, axis: int):
    """Inverse of a quantity monotone along ``axis``, row by row: a cubic spline of the
    quantity along the axis, evaluated 8 times more finely, then inverted linearly
    (O(h^2 / 64)); +-inf outside each row's range."""
    rows = values if axis == 1 else values.T
    fine = np.linspace(axis_values[0], axis_values[-1], 8 * (len(axis_values) - 1) + 1)
    fine_rows = CubicSpline(axis_values, rows, axis=1)(fine)
    fine_rows = np.maximum.accumulate(fine_rows, axis=1)

    def inverse(other, x):
        out = np.empty((rows.shape[0], x.shape[1]))
        for i, row in enumerate(fine_rows):
            out[i] = np.interp(x[0], row, fine, left=-np.inf, right=np.inf)
        return out

    return inverse


def _hat_kernels(sigma: np.ndarray, half_width: int) -> np.ndarray:
    """E[hat(d - X)], X ~ Normal(0, sigma^2), for d = -half_width..half_width, one row
    per sigma (in grid steps).

    Convolving values at grid points with this kernel integrates their piecewise-linear
    interpolant against a normal density of SD ``sigma`` grid steps exactly; as sigma -> 0
    it tends to the identity, so narrow normals (tau -> 0) are not under-resolved.
    """
    d = np.arange(-half_width, half_width + 1, dtype=float)[None, :]
    sigma = np.maximum(np.asarray(sigma, dtype=float)[:, None], 1e-12)

    def ramp(mu):  # E[(Y)_+], Y ~ Normal(mu, sigma^2)
        z = mu / sigma
        return sigma * np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi) + mu * special.ndtr(z)

    return ramp(d + 1) - 2 * ramp(d) + ramp(d - 1)


def _logit_normal_rate(grid: Grid, log_q: np.ndarray, counts: tuple[float, float] | None,
                       kernels: dict) -> Marginal:
    """Posterior of a rate whose logit is eta ~ Normal(mu, tau) given the grid point,
    tilted by a binomial likelihood ``counts`` = (y, n) if given.

    f(eta) = B(eta) ∫∫ q(mu, w) Normal(eta | mu, tau) dmu dw, with q = p(mu, w | data)
    for a new study and q = p(mu, w | data) / L_i(mu, w) for study i (its own likelihood
    is divided out and multiplied back as B). The mu integral is a convolution, done
    exactly for q interpolated linearly on a refined mu grid; w is integrated by Simpson.
    """
    mu, w = grid.a, grid.b
    y, n = counts if counts is not None else (0.0, 0.0)
    # An even mu grid for the convolution, fine enough for q and for the binomial factor
    # (width ~ 1 / sqrt(n p (1 - p))).
    target = min(0.1, 0.25 / np.sqrt(max(n, 1.0) / 4.0), float(np.min(np.diff(mu))))
    fine_mu = np.linspace(mu[0], mu[-1], int(np.ceil((mu[-1] - mu[0]) / target)) + 1)
    fine_step = fine_mu[1] - fine_mu[0]
    finite = np.where(np.isfinite(log_q), log_q, np.min(log_q[np.isfinite(log_q)]) - 50)
    log_q_fine = CubicSpline(mu, finite, axis=0)(fine_mu)
    q = np.exp(log_q_fine - np.max(log_q_fine))
    w_weights = grid.axes[1].weights
    tau = _to_heterogeneity(w)
    significant = w_weights * q.max(axis=0) > 1e-16 * np.max(w_weights * q.max(axis=0))
    half = int(np.ceil(9.0 * tau[significant].max() / fine_step)) + 1
    half = min(half, int(2 * LOGIT_LIMIT / fine_step))
    length = len(fine_mu) + 2 * half
    eta = fine_mu[0] - half * fine_step + fine_step * np.arange(length)
    rows = np.nonzero(significant)[0]
    # The new-study rate and every study share these kernels when their grids match.
    key = (fine_step, half, rows.tobytes())
    if key not in kernels:
        kernels[key] = _hat_kernels(tau[rows] / fine_step, half)
    g = w_weights[rows] @ signal.fftconvolve(q[:, rows].T, kernels[key], mode="full",
                                             axes=1)
    g = np.maximum(g, 0.0)
    inside = (eta >= -LOGIT_LIMIT) & (eta <= LOGIT_LIMIT)
    eta, g = eta[inside], g[inside]
    if counts is not None:
        log_b = y * special.log_expit(eta) + (n - y) * special.log_expit(-eta)
        density = g * np.exp(log_b - np.max(log_b))
    else:
        density = g
    cdf = integrate.cumulative_simpson(density, x=eta, initial=0.0)
    total = cdf[-1]
    x = special.expit(eta)
    mean = integrate.simpson(density * x, x=eta) / total
    second = integrate.simpson(density * x**2, x=eta) / total
    return Marginal(x, cdf / total, float(mean), float(np.sqrt(max(second - mean**2, 0.0))))


INTEGRATORS = {"beta_binomial": _beta_binomial, "logit_normal": _logit_normal,
            "common_effect": _common_effect, "independent": _independent}


def _compute(model: str, data: OutcomeData, priors: Mapping[str, Prior], points: int):
    """(quantities, study rates, grid or None, notes) for one model."""
    return INTEGRATORS[model](data, priors, points)


def _reported_quantiles(quantities, studies) -> np.ndarray:
    values = [m.quantile(np.array(PROBS)) for m in quantities.values()]
    values += [m.quantile(np.array(PROBS)) for m in studies.values()]
    return np.concatenate(values)


def exact_fit(data: OutcomeData, *, model: str, priors: Mapping[str, Prior],
              points: int = GRID_POINTS, check: bool = True) -> ExactFit:
    """The posterior of one outcome's counts by numerical integration.

    Parameters
    ----------
    data : OutcomeData
    model : str
    priors : mapping of str to Prior
    points : int
        Grid points per axis (odd).
    check : bool
        Repeat on a grid of ``2 * points - 1`` points and report the largest change of any
        reported quantile as ``grid_error``; the finer result is returned.

    Raises
    ------
    ImproperPosteriorError
        When the posterior does not integrate.
    """
    start = time.perf_counter()
    quantities, studies, grid, notes = _compute(model, data, priors, points)
    grid_error = 0.0
    if check and grid is not None:
        fine = _compute(model, data, priors, 2 * points - 1)
        before = _reported_quantiles(quantities, studies)
        after = _reported_quantiles(fine[0], fine[1])
        finite = np.isfinite(before) & np.isfinite(after)
        # Quantiles of unbounded quantities (kappa) are compared relative to their size.
        change = np.abs(after - before)[finite] / np.maximum(1.0, np.abs(after[finite]))
        grid_error = float(np.max(change)) if change.size else 0.0
        quantities, studies, grid, notes = fine
        points = 2 * points - 1
    return ExactFit(outcome=data.outcome, model=model, quantities=quantities,
                    studies=studies, grid_points=points, grid=grid,
                    seconds=time.perf_counter() - start, grid_error=grid_error, notes=notes)
