"""An exact distribution of a response rate known only as a table: the holder for the
exact MAP prior (the predictive of a new study's rate computed by numerical integration
elsewhere in the package), so that it can be fitted, summarised and used as a prior
without a mixture approximation.

Representation. The table gives P(theta <= x_i) at increasing x_i in [0, 1]. Between its
interior nodes (0 < x_i < 1) the CDF is interpolated on the logit scale eta = logit(theta),
where MAP densities are smooth and their tails are resolved, by a monotone cubic Hermite
spline: slopes (the logit-scale density) from the given log density where known, else from
a cubic spline through the table, then limited as Hyman (1983) so that the interpolant
never decreases. Where the CDF is smooth and strictly increasing the limiter is inactive
and the interpolant keeps the cubic spline's fourth-order accuracy (PCHIP would be second
order: 0.4 % density errors on a 0.05-logit grid, against ~1e-5 here).
The mass the table puts at or below its first interior node x_1, and above its last one
x_m, is held as two point masses *at* x_1 and x_m ("edge masses"): the table says nothing
about its shape there. For the exact engine's tables these nodes lie at theta ~ 1e-13 and
1 - 1e-13, so for a binomial likelihood they act as theta = 0 and theta = 1; a prior with
noticeable edge mass piles up at a bound, and the ESS functions say so.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
from scipy import integrate, special
from scipy.interpolate import BSpline, CubicHermiteSpline, CubicSpline, make_interp_spline

from bayes_dress.design._numerics import gauss_legendre
from bayes_dress.errors import SpecError

#: Default quadrature: largest logit-scale width of one piece, and Gauss-Legendre order.
#: 4 nodes per 0.02 logit units integrate a binomial likelihood of n = 1000 (logit SD
#: >= 0.063) against the piecewise-quadratic PCHIP density to ~1e-10.
H_MAX = 0.02
ORDER = 4
#: Without a log density, curvature is taken only where the CDF is resolved in double
#: precision: between this probability and 1 minus it.
CDF_RESOLVED = 1e-8


class TabulatedDensity:
    """A distribution on [0, 1] given by a tabulated, monotone CDF.

    Parameters
    ----------
    x : array_like
        Increasing nodes in [0, 1] (at least two strictly inside (0, 1)).
    cdf : array_like
        P(theta <= x) at the nodes: non-decreasing, within [0, 1]. If the last node is 1
        the table is rescaled so that its last value is exactly 1 (it must be within 1e-6
        of 1); if the last node is below 1, 1 - cdf[-1] is the mass above it.
    logpdf : array_like, optional
        The log density (theta scale) at the nodes, where known. Only the ELIR uses it
        (its curvature); without it the ELIR is computed from the CDF table, which needs
        two more derivatives and is less accurate (see :func:`bayes_dress.design.ess`).
    name : str
        A label for reports.
    """

    def __init__(self, x, cdf, *, logpdf=None, name: str = "exact") -> None:
        x = np.asarray(x, dtype=float).ravel()
        cdf = np.asarray(cdf, dtype=float).ravel()
        if x.size != cdf.size:
            raise SpecError(f"tabulated density: {x.size} nodes but {cdf.size} CDF values")
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(cdf))):
            raise SpecError("tabulated density: nodes and CDF values must be finite")
        if np.any(np.diff(x) < 0) or (x.size and (x[0] < 0 or x[-1] > 1)):
            raise SpecError("tabulated density: nodes must increase within [0, 1]")
        if np.any(np.diff(cdf) < -1e-9) or (cdf.size and (cdf[0] < -1e-9 or cdf[-1] > 1 + 1e-6)):
            raise SpecError("tabulated density: CDF values must be non-decreasing in [0, 1]")
        if x.size and x[-1] == 1.0:
            if abs(cdf[-1] - 1.0) > 1e-6:
                raise SpecError(f"tabulated density: CDF at x = 1 is {cdf[-1]:.9g}, not 1")
            cdf = cdf / cdf[-1]
        cdf = np.clip(np.maximum.accumulate(cdf), 0.0, 1.0)
        inside = (x > 0) & (x < 1)
        xi, fi = x[inside], cdf[inside]
        if xi.size < 2:
            raise SpecError("tabulated density: need at least two nodes strictly inside (0, 1)")
        # Duplicate nodes: keep the last (largest) CDF value.
        keep = np.concatenate([xi[1:] != xi[:-1], [True]])
        xi, fi = xi[keep], fi[keep]
        if xi.size < 2:
            raise SpecError("tabulated density: need at least two nodes strictly inside (0, 1)")
        self.name = str(name)
        self.normalising_constant = 1.0
        self._x = xi
        self._F = fi
        self._eta = special.logit(xi)
        if np.any(np.diff(self._eta) <= 0):
            raise SpecError("tabulated density: nodes too close to resolve on the logit scale")
        self._logpdf = None
        if logpdf is not None:
            lp = np.asarray(logpdf, dtype=float).ravel()
            if lp.size != x.size:
                raise SpecError("tabulated density: logpdf needs one value per node")
            self._logpdf = lp[inside][keep]
        slopes = None
        if self._logpdf is not None:
            with np.errstate(over="ignore"):
                slopes = np.exp(self._logpdf) * xi * (1 - xi)
            slopes = np.nan_to_num(slopes, nan=0.0, posinf=0.0)
        self._pchip = _monotone_hermite(self._eta, fi, slopes)
        self._dpchip = self._pchip.derivative()
        for arr in (self._x, self._F, self._eta):
            arr.setflags(write=False)

    @classmethod
    def from_pdf(cls, x, pdf, *, name: str = "exact") -> TabulatedDensity:
        """Build from a density tabulated at increasing nodes strictly inside (0, 1).

        The CDF is the cumulative Simpson integral of the logit-scale density
        pdf(x) x (1 - x) over the nodes, normalised to 1: mass outside [x_1, x_m] is
        taken to be 0 (tabulate far enough into the tails). The normalising constant
        found is kept as ``normalising_constant`` (1 for a normalised input).
        """
        x = np.asarray(x, dtype=float).ravel()
        pdf = np.asarray(pdf, dtype=float).ravel()
        if x.size != pdf.size or x.size < 3:
            raise SpecError("tabulated density: need at least 3 nodes and one pdf value each")
        if np.any(x <= 0) or np.any(x >= 1) or np.any(np.diff(x) <= 0):
            raise SpecError("tabulated density: pdf nodes must increase strictly inside (0, 1)")
        if np.any(pdf < 0) or not np.all(np.isfinite(pdf)):
            raise SpecError("tabulated density: pdf values must be finite and >= 0")
        eta = special.logit(x)
        f = pdf * x * (1 - x)
        cum = integrate.cumulative_simpson(f, x=eta, initial=0.0)
        cum = np.maximum.accumulate(np.maximum(cum, 0.0))
        total = float(cum[-1])
        if not total > 0:
            raise SpecError("tabulated density: the pdf integrates to 0")
        with np.errstate(divide="ignore"):
            logpdf = np.log(pdf) - np.log(total)
        out = cls(x, cum / total, logpdf=logpdf, name=name)
        out.normalising_constant = total
        return out

    # ------------------------------------------------------------------ attributes
    @property
    def x(self) -> np.ndarray:
        """Interior nodes (0 < x < 1)."""
        return self._x

    @property
    def cdf_values(self) -> np.ndarray:
        """The CDF at the interior nodes."""
        return self._F

    @property
    def eta(self) -> np.ndarray:
        """Interior nodes on the logit scale."""
        return self._eta

    @property
    def edge_masses(self) -> tuple[float, float]:
        """Mass at or below the first interior node, and above the last one."""
        return float(self._F[0]), float(1.0 - self._F[-1])

    @property
    def support(self) -> tuple[float, float]:
        """First and last interior node (where the edge masses sit)."""
        return float(self._x[0]), float(self._x[-1])

    @property
    def has_logpdf(self) -> bool:
        return self._logpdf is not None

    def __repr__(self) -> str:
        lo, hi = self.edge_masses
        return (f"TabulatedDensity(name={self.name!r}, nodes={self._x.size}, "
                f"support=[{self._x[0]:.3g}, {self._x[-1]:.3g}], edge_masses=({lo:.3g}, "
                f"{hi:.3g}))")

    # ------------------------------------------------------------------ distribution
    def cdf(self, x) -> np.ndarray:
        """P(theta <= x), edge masses included as jumps."""
        x = np.asarray(x, dtype=float)
        out = np.where(x >= self._x[-1], 1.0, 0.0)
        mid = (x >= self._x[0]) & (x < self._x[-1])
        if np.any(mid):
            out = np.array(out, dtype=float)
            out[mid] = np.clip(self._pchip(special.logit(x[mid])), 0.0, 1.0)
        return out if out.ndim else float(out)

    def sf(self, x) -> np.ndarray:
        """P(theta > x)."""
        return 1.0 - self.cdf(x)

    def density_logit(self, eta) -> np.ndarray:
        """Density of the continuous part on the logit scale (0 outside the table)."""
        eta = np.asarray(eta, dtype=float)
        inside = (eta >= self._eta[0]) & (eta <= self._eta[-1])
        out = np.zeros(eta.shape)
        if np.any(inside):
            out[inside] = np.maximum(self._dpchip(eta[inside]), 0.0)
        return out

    def pdf(self, x) -> np.ndarray:
        """Density of the continuous part on the theta scale (edge masses excluded)."""
        x = np.asarray(x, dtype=float)
        inside = (x > 0) & (x < 1)
        out = np.zeros(x.shape)
        if np.any(inside):
            xi = x[inside]
            out[inside] = self.density_logit(special.logit(xi)) / (xi * (1 - xi))
        return out

    def logpdf(self, x) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(self.pdf(x))

    def quantile(self, p) -> np.ndarray:
        """Smallest theta with P(theta <= theta) >= p (bisection on the interpolant)."""
        p = np.asarray(p, dtype=float)
        flat = np.atleast_1d(p).ravel()
        if np.any((flat < 0) | (flat > 1)) or np.any(np.isnan(flat)):
            raise SpecError("probabilities for quantiles must lie in [0, 1]")
        out = np.empty(flat.shape)
        low = flat <= self._F[0]
        high = flat > self._F[-1]
        out[low] = self._x[0]
        out[high] = self._x[-1]
        mid = ~(low | high)
        if np.any(mid):
            target = flat[mid]
            # Bracket within table intervals, then bisect on the cubic to machine precision.
            j = np.clip(np.searchsorted(self._F, target, side="left"), 1, self._F.size - 1)
            lo, hi = self._eta[j - 1].copy(), self._eta[j].copy()
            for _ in range(64):
                m = 0.5 * (lo + hi)
                below = self._pchip(m) < target
                lo = np.where(below, m, lo)
                hi = np.where(below, hi, m)
            out[mid] = special.expit(hi)
        return out.reshape(p.shape) if p.ndim else float(out[0])

    ppf = quantile

    def sample(self, size: int, rng: np.random.Generator) -> np.ndarray:
        """``size`` draws by inversion of uniforms from ``rng``."""
        return self.quantile(rng.random(size))

    # ------------------------------------------------------------------ quadrature
    def quadrature(self, *, breaks=(), h_max: float = H_MAX, order: int = ORDER,
                   edges: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Nodes and probability weights that integrate against this distribution.

        Each table interval is cut into logit-scale pieces no wider than ``h_max`` (and
        at every theta in ``breaks``, so that indicator functions such as
        ``theta <= q`` are integrated exactly), and each piece gets ``order``
        Gauss-Legendre nodes weighted by the interpolated density: the rule reproduces
        the interpolated CDF exactly. The edge masses are appended as nodes at the first
        and last interior node (``edges=True``).

        Returns
        -------
        theta, weights : ndarray
            Nodes in (0, 1), increasing, and weights summing to 1 (to rounding).
        """
        cuts = [self._eta]
        widths = np.diff(self._eta)
        pieces = np.maximum(np.ceil(widths / h_max).astype(int), 1)
        if np.any(pieces > 1):
            frac = [np.arange(1, m) / m for m in np.unique(pieces[pieces > 1])]
            by_m = {m: f for m, f in zip(np.unique(pieces[pieces > 1]), frac, strict=True)}
            for m, f in by_m.items():
                sel = np.flatnonzero(pieces == m)
                cuts.append((self._eta[sel, None] + widths[sel, None] * f[None, :]).ravel())
        br = np.asarray(breaks, dtype=float).ravel()
        br = br[(br > self._x[0]) & (br < self._x[-1])]
        if br.size:
            cuts.append(special.logit(br))
        grid = np.unique(np.concatenate(cuts))
        left, right = grid[:-1], grid[1:]
        mass = np.diff(self._pchip(grid))
        use = mass > 0
        left, right = left[use], right[use]
        nodes, gl_w = gauss_legendre(order)
        half = 0.5 * (right - left)
        eta = (0.5 * (right + left))[:, None] + half[:, None] * nodes[None, :]
        w = (half[:, None] * gl_w[None, :]) * np.maximum(self._dpchip(eta), 0.0)
        theta = special.expit(eta).ravel()
        w = w.ravel()
        if edges:
            lo, hi = self.edge_masses
            theta = np.concatenate([[self._x[0]], theta, [self._x[-1]]])
            w = np.concatenate([[lo], w, [hi]])
        keep = w > 0
        return theta[keep], w[keep]

    @cached_property
    def _moments(self) -> tuple[float, float]:
        theta, w = self.quadrature()
        total = w.sum()
        m = float(np.dot(w, theta) / total)
        v = float(np.dot(w, (theta - m) ** 2) / total)
        return m, v

    def mean(self) -> float:
        """Mean (quadrature on the interpolant, edge masses at their nodes)."""
        return self._moments[0]

    def var(self) -> float:
        return self._moments[1]

    def sd(self) -> float:
        return float(np.sqrt(self._moments[1]))

    def summary(self, probs=(0.025, 0.5, 0.975)) -> dict[str, float]:
        out = {"mean": self.mean(), "sd": self.sd()}
        for p, q in zip(probs, np.atleast_1d(self.quantile(list(probs))), strict=True):
            out[f"{100 * p:g}%"] = float(q)
        return out

    def predictive_pmf(self, n: int) -> np.ndarray:
        """P(Y = y), y = 0..n, for Y ~ Binomial(n, theta) with theta from this density."""
        from bayes_dress.design._numerics import log_binom_pmf, logsumexp

        theta, w = self.quadrature()
        y = np.arange(n + 1)[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            logp = log_binom_pmf(y, n, theta[None, :]) + np.log(w)[None, :]
        pmf = np.exp(logsumexp(logp, axis=1))
        return pmf / pmf.sum()

    # ------------------------------------------------------------------ smooth log density
    def log_density_logit_spline(self) -> tuple[BSpline, str]:
        """A smooth spline of the log density on the logit scale, for curvature (ELIR).

        From ``logpdf`` when given (``L = logpdf + log theta(1 - theta)``). Otherwise from
        the CDF table, in log space so that the tails keep their relative accuracy: below
        the median the density is F (log F)', above it (1 - F)(-log(1 - F))', each
        derivative from a quintic spline of log F or log(1 - F). A CDF stored in double
        precision resolves neither tail beyond ~1e-8 of 0 or 1 (1 - F loses its digits), so
        in that case the spline covers only the nodes with CDF_RESOLVED <= F <= 1 -
        CDF_RESOLVED. Returns a quintic spline of L(eta) (its knots ``t`` span its domain)
        and a word saying which source was used (``"logpdf"`` or ``"cdf"``).
        """
        eta = self._eta
        if self._logpdf is not None:
            log_s = special.log_expit(eta) + special.log_expit(-eta)
            L = self._logpdf + log_s
            ok = np.isfinite(L)
            return make_interp_spline(eta[ok], L[ok], k=_order(ok.sum())), "logpdf"
        F = self._F
        resolved = (F >= CDF_RESOLVED) & (F <= 1.0 - CDF_RESOLVED)
        if resolved.sum() < 4:
            resolved = (F > 0) & (F < 1)
        eta, F = eta[resolved], F[resolved]
        L = np.full(eta.shape, -np.inf)
        with np.errstate(divide="ignore"):
            logF = np.log(F)
            logG = np.log1p(-F)
        lower = F <= 0.5
        for part, logc, sign in ((lower, logF, 1.0), (~lower, logG, -1.0)):
            # Fit on the part plus a few neighbours so the derivative is smooth at the seam.
            idx = np.flatnonzero(part)
            if idx.size == 0:
                continue
            lo, hi = max(idx[0] - 3, 0), min(idx[-1] + 4, eta.size)
            sel = np.arange(lo, hi)
            sel = sel[np.isfinite(logc[sel])]
            if sel.size < 2:
                continue
            spl = make_interp_spline(eta[sel], logc[sel], k=_order(sel.size))
            slope = sign * spl.derivative()(eta[idx])
            with np.errstate(divide="ignore", invalid="ignore"):
                L[idx] = logc[idx] + np.log(slope)
        ok = np.isfinite(L)
        return make_interp_spline(eta[ok], L[ok], k=_order(ok.sum())), "cdf"


def _order(n: int) -> int:
    return int(min(5, max(1, n - 1)) // 2 * 2 + 1)


def _monotone_hermite(x: np.ndarray, y: np.ndarray, slopes: np.ndarray | None):
    """Cubic Hermite interpolant of non-decreasing data that never decreases.

    Slopes default to those of a not-a-knot cubic spline; they are then limited to
    [0, 3 min(neighbouring secants)] (Hyman 1983), the Fritsch-Carlson sufficient condition
    for monotonicity. Zero slopes on flat intervals keep them flat.
    """
    secant = np.diff(y) / np.diff(x)
    if slopes is None:
        if x.size >= 4:
            slopes = CubicSpline(x, y).derivative()(x)
        else:
            slopes = np.interp(x, 0.5 * (x[1:] + x[:-1]), secant) if x.size > 2 else (
                np.full(x.shape, secant[0]))
    d = np.asarray(slopes, dtype=float).copy()
    left = np.concatenate([[secant[0]], secant])
    right = np.concatenate([secant, [secant[-1]]])
    limit = 3.0 * np.minimum(left, right)
    d = np.clip(d, 0.0, np.maximum(limit, 0.0))
    return CubicHermiteSpline(x, y, d, extrapolate=False)
