"""The bivariate study likelihood by adaptive quadrature (engines/importance/_agq2.py)
against brute force: a plain fine grid in the eigen-coordinates of the Hessian at the
mode (found by scipy), scipy's dblquad, and one-dimensional scipy quad where the problem
is one-dimensional (a missing outcome, rho = ±1)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, optimize, special

from bayes_dress.engines.importance._agq2 import (
    StudyData,
    log_joint_latent,
    study_log_likelihood,
)


def _log_choose(y, n):
    return special.gammaln(n + 1) - special.gammaln(y + 1) - special.gammaln(n - y + 1)


def _log_f(z1, z2, case):
    """log of the integrand without binomial coefficients and without 1/(2 pi)."""
    mu1, mu2, t1, t2, rho, y1, n1, y2, n2, use1, use2 = case
    s = np.sqrt(max((1 - rho) * (1 + rho), 0.0))
    v = -0.5 * (z1 * z1 + z2 * z2)
    if use1:
        e = mu1 + t1 * z1
        v = v + y1 * e - n1 * np.logaddexp(0, e)
    if use2:
        e = mu2 + t2 * (rho * z1 + s * z2)
        v = v + y2 * e - n2 * np.logaddexp(0, e)
    return v


def _log_coefficients(case):
    _, _, _, _, _, y1, n1, y2, n2, use1, use2 = case
    return (use1 * _log_choose(y1, n1) + use2 * _log_choose(y2, n2)) - np.log(2 * np.pi)


def _mode(case):
    res = optimize.minimize(lambda z: -_log_f(z[0], z[1], case), np.zeros(2),
                            method="Nelder-Mead",
                            options={"xatol": 1e-12, "fatol": 1e-15, "maxiter": 40000})
    return res.x, -res.fun


def brute_force(case, fine=0.06, drop=42.0):
    """Trapezoid sum on a fine grid in the Hessian's eigen-coordinates v (z = z* + T v),
    steps ~0.06 / |d eta / d v| (a sixth of the engine's), the box found by walking each
    axis out to exp(-42) of the peak, plus half as much again."""
    mu1, mu2, t1, t2, rho, _, n1, _, n2, use1, use2 = case
    s = np.sqrt(max((1 - rho) * (1 + rho), 0.0))
    a = np.array([[t1, 0.0], [t2 * rho, t2 * s]])
    zs, fmax = _mode(case)
    p = special.expit(np.array([mu1, mu2]) + a @ zs)
    d = np.diag([use1 * n1 * p[0] * (1 - p[0]), use2 * n2 * p[1] * (1 - p[1])])
    lam, q = np.linalg.eigh(np.eye(2) + a.T @ d @ a)
    t = q / np.sqrt(lam)
    at = a @ t
    at[0] *= use1
    at[1] *= use2
    grids, steps = [], []
    for k in range(2):
        rate = np.abs(at[:, k]).max()
        h = min(0.25, fine / rate) if rate > 0 else 0.25
        reach = []
        for sign in (1, -1):
            x = 0.0
            while _log_f(*(zs + t[:, k] * sign * x), case) - fmax > -drop and x < 1e5:
                x += 0.25
            reach.append(1.5 * x + 1.0)
        grids.append(np.arange(-int(np.ceil(reach[1] / h)), int(np.ceil(reach[0] / h)) + 1)
                     * h)
        steps.append(h)
    total = 0.0
    for start in range(0, grids[0].size, 256):
        v1 = grids[0][start:start + 256, None]
        v2 = grids[1][None, :]
        z1 = zs[0] + t[0, 0] * v1 + t[0, 1] * v2
        z2 = zs[1] + t[1, 0] * v1 + t[1, 1] * v2
        total += np.exp(_log_f(z1, z2, case) - fmax).sum()
    return (fmax + np.log(total * steps[0] * steps[1] * abs(np.linalg.det(t)))
            + _log_coefficients(case))


def random_cases(seed, count, big=False):
    """Random hyperparameters and counts, weighted towards the hard corners: zero and
    full counts, tau from 1e-4 to 8, rho at ±0.999 and ±1, a missing outcome."""
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(count):
        n1, n2 = rng.integers(40, 1000, 2) if big else rng.integers(1, 40, 2)
        y1 = int(rng.choice([0, n1, rng.integers(0, n1 + 1), min(n1, rng.integers(0, 3))]))
        y2 = int(rng.choice([0, n2, rng.integers(0, n2 + 1), max(0, n2 - rng.integers(0, 3))]))
        mu1, mu2 = rng.normal(0, 2.5, 2)
        t1, t2 = np.exp(rng.uniform(np.log(1e-4), np.log(8), 2))
        rho = float(rng.choice([0.999, -0.999, rng.uniform(-1, 1), 0.0, 1.0, -1.0]))
        cases.append((mu1, mu2, t1, t2, rho, y1, int(n1), y2, int(n2), True,
                      bool(rng.random() > 0.1)))
    return cases


def engine(case, **kwargs):
    mu1, mu2, t1, t2, rho, y1, n1, y2, n2, use1, use2 = case
    data = StudyData([[y1], [y2]], [[n1], [n2]], [[use1], [use2]])
    return study_log_likelihood(mu1, mu2, t1, t2, rho, data, **kwargs)


def _relative_errors(cases):
    return np.array([abs(np.expm1(engine(c)[0][0, 0] - brute_force(c))) for c in cases])


def test_random_cases_match_brute_force():
    """Relative error below 1e-8 (typically 1e-12) with the default settings."""
    errors = _relative_errors(random_cases(21, 60))
    print(f"\nAGQ vs brute force, 60 random cases: max relative error {errors.max():.1e}, "
          f"median {np.median(errors):.1e}")
    assert errors.max() < 1e-8


@pytest.mark.slow
def test_many_random_cases_match_brute_force():
    """The same on 150 small-count and 80 large-count (40 to 1000) cases."""
    small = _relative_errors(random_cases(22, 150))
    big = _relative_errors(random_cases(23, 80, big=True))
    print(f"\nAGQ vs brute force: small counts max {small.max():.1e}, large counts max "
          f"{big.max():.1e}")
    assert small.max() < 1e-8
    assert big.max() < 1e-8


@pytest.mark.parametrize("case", [
    (0.3, -1.0, 0.8, 1.2, -0.6, 1, 6, 5, 6, True, True),
    (1.5, -2.5, 1.5, 0.7, 0.9, 16, 18, 0, 18, True, True),
    (-0.2, 0.4, 0.05, 2.0, 0.3, 3, 10, 10, 10, True, True),
    (0.0, 0.0, 2.5, 2.5, -0.95, 0, 25, 25, 25, True, True),
])
def test_dblquad(case):
    zs, fmax = _mode(case)
    value, _ = integrate.dblquad(lambda z2, z1: np.exp(_log_f(z1, z2, case) - fmax),
                                 zs[0] - 10, zs[0] + 10, zs[1] - 10, zs[1] + 10,
                                 epsabs=0, epsrel=1e-11)
    reference = fmax + np.log(value) + _log_coefficients(case)
    assert engine(case)[0][0, 0] == pytest.approx(reference, abs=1e-8)


def _quad_1d(log_integrand):
    """log ∫ exp(g(x)) N(x; 0, 1) dx by scipy quad around the integrand's peak."""
    res = optimize.minimize_scalar(lambda x: -(log_integrand(x) - 0.5 * x * x))
    peak, top = res.x, -res.fun
    value, _ = integrate.quad(lambda x: np.exp(log_integrand(x) - 0.5 * x * x - top),
                              peak - 40, peak + 40, points=[peak], epsabs=0, epsrel=1e-12,
                              limit=500)
    return top + np.log(value) - 0.5 * np.log(2 * np.pi)


def _log_binom(y, n, eta):
    return _log_choose(y, n) + y * eta - n * np.logaddexp(0, eta)


@pytest.mark.parametrize("tau", [1e-3, 0.7, 3.0, 8.0])
@pytest.mark.parametrize("counts", [(0, 18), (18, 18), (5, 6)])
def test_missing_outcome_is_univariate(tau, counts):
    y, n = counts
    for reported in ([True, False], [False, True]):
        mu1, mu2 = 0.4, -1.1
        data = StudyData([[y], [y]], [[n], [n]], [[reported[0]], [reported[1]]])
        ll = study_log_likelihood(mu1, mu2, tau, 0.5 * tau, 0.7, data)[0][0, 0]
        mu, t = (mu1, tau) if reported[0] else (mu2, 0.5 * tau)
        assert ll == pytest.approx(_quad_1d(lambda x, mu=mu, t=t: _log_binom(y, n, mu + t * x)),
                                   abs=1e-9)


@pytest.mark.parametrize("rho", [1.0, -1.0])
def test_rho_at_the_boundary_is_one_dimensional(rho):
    """rho = ±1: eta2 = mu2 ± tau2 z1, one latent dimension."""
    mu1, mu2, t1, t2 = -0.3, 1.0, 1.4, 2.2
    y1, n1, y2, n2 = 2, 15, 14, 15
    data = StudyData([[y1], [y2]], [[n1], [n2]], [[True], [True]])
    ll = study_log_likelihood(mu1, mu2, t1, t2, rho, data)[0][0, 0]
    ref = _quad_1d(lambda x: _log_binom(y1, n1, mu1 + t1 * x)
                   + _log_binom(y2, n2, mu2 + rho * t2 * x))
    assert ll == pytest.approx(ref, abs=1e-9)


def test_tau_zero_is_the_binomial():
    data = StudyData([[3, 0], [7, 12]], [[10, 12], [9, 12]], np.ones((2, 2), bool))
    ll = study_log_likelihood(0.2, 1.5, 0.0, 0.0, 0.3, data)[0][0]
    eta = np.array([0.2, 1.5])
    ref = [_log_binom(3, 10, eta[0]) + _log_binom(7, 9, eta[1]),
           _log_binom(0, 12, eta[0]) + _log_binom(12, 12, eta[1])]
    np.testing.assert_allclose(ll, ref, rtol=0, atol=1e-10)


def test_nothing_reported_is_one():
    data = StudyData([[np.nan, 0], [np.nan, 0]], [[np.nan, 0], [np.nan, 0]],
                     [[False, True], [False, True]])
    ll, mode, factor, _ = study_log_likelihood([0.0, 3.0], [1.0, -2.0], [1.0, 5.0],
                                               [2.0, 0.1], [0.5, -0.999], data)
    np.testing.assert_allclose(ll, 0.0, atol=1e-10)  # trapezoid of a Gaussian: 5e-12
    np.testing.assert_allclose(mode, 0.0, atol=1e-12)
    np.testing.assert_allclose(factor, np.broadcast_to([1.0, 0.0, 1.0], factor.shape),
                               atol=1e-12)


def test_laplace_approximation():
    """The returned mode is the integrand's maximum and M M' its inverse negative
    Hessian (finite differences)."""
    case = (0.8, -1.9, 1.3, 0.9, -0.7, 16, 18, 1, 18, True, True)
    _, mode, factor, _ = engine(case)
    z = mode[0, 0]
    m11, m21, m22 = factor[0, 0]
    m = np.array([[m11, 0.0], [m21, m22]])
    h = 1e-4
    hess = np.empty((2, 2))
    f = lambda v: _log_f(v[0], v[1], case)  # noqa: E731
    for i in range(2):
        for j in range(2):
            ei, ej = np.eye(2)[i] * h, np.eye(2)[j] * h
            hess[i, j] = (f(z + ei + ej) - f(z + ei - ej) - f(z - ei + ej) + f(z - ei - ej)
                          ) / (4 * h * h)
    grad = [(f(z + np.eye(2)[i] * h) - f(z - np.eye(2)[i] * h)) / (2 * h) for i in range(2)]
    np.testing.assert_allclose(grad, 0.0, atol=1e-6)
    np.testing.assert_allclose(m @ m.T, np.linalg.inv(-hess), rtol=1e-5)


def test_latent_joint_density_integrates_to_the_likelihood():
    """∫ p(y_i, z_i | hyper) dz_i = L_i: log_joint_latent and study_log_likelihood agree."""
    data = StudyData([[1, 16], [5, 0]], [[6, 18], [6, 18]], np.ones((2, 2), bool))
    hyper = (0.3, -0.8, 1.1, 1.6, -0.5)
    ll = study_log_likelihood(*hyper, data)[0][0]
    g = np.arange(-9, 9.0001, 0.02)
    z = np.stack(np.meshgrid(g, g, indexing="ij"), axis=-1).reshape(-1, 1, 2)
    z = np.broadcast_to(z, (z.shape[0], 2, 2))
    lj = log_joint_latent(z, *(np.full(z.shape[0], v) for v in hyper), data)
    integral = special.logsumexp(lj, axis=0) + 2 * np.log(0.02)
    np.testing.assert_allclose(integral, ll, atol=1e-9)


@pytest.mark.parametrize("tau", [20.0, 100.0, 1e3, 1e5])
@pytest.mark.parametrize("rho", [0.0, 0.999, -1.0])
def test_absurd_hyperparameters_stay_sane(tau, rho):
    """At absurd tau the work is capped: values stay finite, <= 0 (a probability), and
    near their limit (rho = 0, y = 0/18 and 18/18: P(z1 < 0, z2 > 0) = 1/4)."""
    data = StudyData([[0], [18]], [[18], [18]], [[True], [True]])
    ll, mode, factor, evals = study_log_likelihood(0.5, -0.3, tau, tau, rho, data)
    assert np.isfinite(ll).all() and ll[0, 0] <= 0.0
    assert np.isfinite(mode).all() and np.isfinite(factor).all()
    assert evals[0, 0] < 3e6
    if rho == 0.0 and tau >= 1e3:
        assert ll[0, 0] == pytest.approx(np.log(0.25), abs=0.05)
    if rho == -1.0 and tau >= 1e3:
        assert ll[0, 0] == pytest.approx(np.log(0.5), abs=0.05)


def test_vectorised_over_points_and_studies():
    data = StudyData([[1, 16, 3], [5, 1, 0]], [[6, 18, 9], [6, 18, 9]],
                     [[True, True, True], [True, True, False]])
    rng = np.random.default_rng(3)
    hyper = [rng.normal(size=7), rng.normal(size=7), np.abs(rng.normal(size=7)),
             np.abs(rng.normal(size=7)), rng.uniform(-1, 1, 7)]
    ll, mode, factor, _ = study_log_likelihood(*hyper, data)
    assert ll.shape == (7, 3) and mode.shape == (7, 3, 2) and factor.shape == (7, 3, 3)
    for p in range(7):
        for i in range(3):
            one = StudyData(data.events[:, [i]], data.totals[:, [i]], data.reported[:, [i]])
            assert ll[p, i] == study_log_likelihood(*(h[p] for h in hyper), one)[0][0, 0]


@pytest.mark.parametrize("events, totals, reported", [
    ([[3], [2]], [[2], [5]], None),
    ([[-1], [2]], [[4], [5]], None),
    ([[1.5], [2]], [[4], [5]], None),
    ([[1, 2]], [[4, 4]], None),
    ([[1], [2]], [[4], [5], [6]], None),
    ([[1], [np.nan]], [[4], [5]], None),
])
def test_bad_counts_are_refused(events, totals, reported):
    reported = np.ones(np.shape(events), bool) if reported is None else reported
    with pytest.raises(ValueError):
        StudyData(events, totals, reported)


def test_unreported_cells_may_hold_anything():
    data = StudyData([[1], [np.nan]], [[4], [np.nan]], [[True], [False]])
    assert data.reported.tolist() == [[True], [False]]
