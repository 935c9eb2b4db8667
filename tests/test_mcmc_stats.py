"""The batched MCMC diagnostics against arviz-stats' own array functions.

bayes_dress.posterior.mcmc_stats reimplements arviz-stats' ESS, R-hat and MCSE for many columns at
once; here every function is compared with arviz-stats on draws that reach its corner
cases, and the tables built from them (summary, tail probabilities, the exact-engine
comparison with a reference engine) with the same tables from arviz-stats' numbers.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from arviz_stats.base import array_stats
from scipy import stats

from bayes_dress.checks.crosscheck import compare
from bayes_dress.engines.exact.integrators import GRID_TOLERANCE
from bayes_dress.fitting.summaries import summarize, tail_probabilities
from bayes_dress.posterior import mcmc_stats
from bayes_dress.posterior.draws import DrawsPosterior
from bayes_dress.posterior.marginals import Marginal, MarginalsPosterior

#: The same estimators, so only floating-point summation order differs (FFT padding,
#: chain-averaged spectra, pairwise sums): observed differences are below 1e-14
#: relative. NaN must be NaN in both.
RTOL = 1e-12
AXES = {"chain_axis": 0, "draw_axis": 1}
PROBS = (0.025, 0.5, 0.975)
COLUMNS = ("normal", "ar1_0.95", "student_t1.5", "shifted_chain", "constant", "indicator",
           "repeated_draws", "antithetic")


def _ar1(rng: np.random.Generator, chains: int, draws: int, phi: float) -> np.ndarray:
    x = np.empty((chains, draws))
    x[:, 0] = rng.normal(size=chains) / np.sqrt(1 - phi**2)
    for t in range(1, draws):
        x[:, t] = phi * x[:, t - 1] + rng.normal(size=chains)
    return x


def _draw_set(chains: int, draws: int, seed: int = 0) -> np.ndarray:
    """(chain, draw, k) draws, one column per entry of COLUMNS."""
    rng = np.random.default_rng(seed)
    shape = (chains, draws)
    shifted = rng.normal(size=shape)
    shifted[-1] += 3.0  # one chain stuck elsewhere: R-hat far above 1
    columns = [
        rng.normal(size=shape),
        _ar1(rng, chains, draws, 0.95),
        rng.standard_t(1.5, size=shape),
        shifted,
        np.zeros(shape),  # a common-effect model's SD of rates
        (rng.normal(size=shape) > 0.8).astype(float),
        # NUTS can return the same point again: ties in the rank normalisation
        np.repeat(rng.normal(size=(chains, draws // 3 + 1)), 3, axis=1)[:, :draws],
        _ar1(rng, chains, draws, -0.7),  # negative autocorrelation: ESS above the draws
    ]
    return np.stack(columns, axis=-1)


def _arviz(draws: np.ndarray) -> dict[str, np.ndarray]:
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = {"ess_bulk": array_stats.ess(draws, method="bulk", **AXES),
               "ess_tail": array_stats.ess(draws, method="tail", prob=(0.05, 0.95), **AXES),
               "ess_mean": array_stats.ess(draws, method="mean", **AXES),
               "rhat": array_stats.rhat(draws, **AXES),
               "mcse_mean": array_stats.mcse(draws, method="mean", **AXES),
               "ess_quantile": np.stack([array_stats.ess(draws, method="quantile", prob=p,
                                                         **AXES) for p in PROBS]),
               "mcse_quantile": np.stack([array_stats.mcse(draws, method="quantile",
                                                           prob=p, **AXES) for p in PROBS])}
    return out


def _batched(draws: np.ndarray) -> dict[str, np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # constant columns must not leak 0/0 warnings
        ess_bulk, rhat = mcmc_stats.ess_bulk_and_rhat(draws)
        ess_quantile = mcmc_stats.ess_quantile(draws, PROBS)
        out = {"ess_bulk": mcmc_stats.ess_bulk(draws), "ess_tail": mcmc_stats.ess_tail(draws),
               "ess_mean": mcmc_stats.ess_mean(draws), "rhat": mcmc_stats.rhat(draws),
               "mcse_mean": mcmc_stats.mcse_mean(draws), "ess_quantile": ess_quantile,
               "mcse_quantile": mcmc_stats.mcse_quantile(draws, PROBS),
               "mcse_quantile_given_ess": mcmc_stats.mcse_quantile(draws, PROBS,
                                                                   ess=ess_quantile),
               "ess_bulk_with_rhat": ess_bulk, "rhat_with_ess_bulk": rhat}
    return out


SAME_AS = {"mcse_quantile_given_ess": "mcse_quantile", "ess_bulk_with_rhat": "ess_bulk",
           "rhat_with_ess_bulk": "rhat"}


@pytest.mark.parametrize(("chains", "draws"), [
    (4, 2000),  # a fit's shape
    (4, 1001),  # odd: split chains drop the middle draw
    (1, 500),  # one chain: ESS yes, R-hat NaN
    (2, 4),  # the fewest draws arviz-stats accepts
    (2, 3),  # too few: NaN everywhere
])
def test_every_estimator_matches_arviz_stats(chains, draws):
    x = _draw_set(chains, draws, seed=chains * 10_000 + draws)
    expected, actual = _arviz(x), _batched(x)
    for name, values in actual.items():
        reference = expected[SAME_AS.get(name, name)]
        assert values.shape == reference.shape, name
        np.testing.assert_allclose(values, reference, rtol=RTOL, atol=0, equal_nan=True,
                                   err_msg=name)


@pytest.mark.parametrize(("chains", "draws"), [(4, 2000), (4, 1001), (1, 500), (2, 3)])
def test_indicator_bulk_ess_is_its_mean_ess(chains, draws):
    """tail_probabilities takes the bulk ESS of indicators as ess_mean: their rank scores
    are a shifted, scaled copy of the indicator, and ESS ignores shift and scale."""
    x = _draw_set(chains, draws, seed=chains + draws)
    # Every column above a low, a middle and an impossible threshold: rare, common and
    # constant indicators, from mixed, autocorrelated, tied and stuck draws.
    indicators = np.concatenate([(x > t).astype(float) for t in (-1.5, 0.4, np.inf)],
                                axis=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        actual = mcmc_stats.ess_mean(indicators)
    expected = _arviz(indicators)["ess_bulk"]
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=0, equal_nan=True)


def test_corner_cases_are_arviz_stats_answers():
    """Spelled out for the columns a fit meets: a constant has ESS = its draw count
    and no R-hat; indicators and stuck chains give finite values; a NaN spoils only
    its own column."""
    x = _draw_set(4, 1000)
    constant, indicator = COLUMNS.index("constant"), COLUMNS.index("indicator")
    assert mcmc_stats.ess_bulk(x)[constant] == 4000
    assert mcmc_stats.ess_mean(x)[constant] == 4000
    assert mcmc_stats.mcse_mean(x)[constant] == 0.0
    assert np.isnan(mcmc_stats.rhat(x)[constant])
    assert np.isfinite(mcmc_stats.rhat(x)[indicator])
    assert mcmc_stats.rhat(x)[COLUMNS.index("shifted_chain")] > 1.1
    x[0, 10, 0] = np.nan
    ess = mcmc_stats.ess_bulk(x)
    assert np.isnan(ess[0]) and np.isfinite(ess[1:]).all()
    np.testing.assert_allclose(ess, array_stats.ess(x, method="bulk", **AXES), rtol=RTOL,
                               equal_nan=True)


def test_a_single_probability_gives_one_row_per_column():
    x = _draw_set(4, 400)
    ess = mcmc_stats.ess_quantile(x, 0.3)
    assert ess.shape == (x.shape[-1],)
    np.testing.assert_allclose(ess, array_stats.ess(x, method="quantile", prob=0.3, **AXES),
                               rtol=RTOL)
    np.testing.assert_allclose(mcmc_stats.mcse_quantile(x, 0.3, ess=ess),
                               array_stats.mcse(x, method="quantile", prob=0.3, **AXES),
                               rtol=RTOL)
    np.testing.assert_allclose(mcmc_stats.ess_tail(x, 0.1),
                               array_stats.ess(x, method="tail", prob=0.1, **AXES), rtol=RTOL)


# The tables: a synthetic fit with the shapes and quirks of a real one.

STUDIES = ("A2019", "B2020", "C2021")


def _tree() -> xr.DataTree:
    x = _draw_set(4, 1000, seed=5)
    rng = np.random.default_rng(6)
    rate = 0.3 + 0.05 * x[:, :, COLUMNS.index("ar1_0.95")] / 3
    theta = np.stack([0.2 + 0.05 * x[:, :, COLUMNS.index(c)] / 3
                      for c in ("normal", "repeated_draws", "antithetic")], axis=-1)
    posterior = xr.Dataset(
        {"mean_rate": (("chain", "draw"), rate),
         "theta_new": (("chain", "draw"), rate + 0.1 * rng.normal(size=rate.shape)),
         "sd_rates": (("chain", "draw"), x[:, :, COLUMNS.index("constant")]),
         "phi": (("chain", "draw"), np.exp(x[:, :, COLUMNS.index("student_t1.5")] / 4)),
         "theta": (("chain", "draw", "study"), theta)},
        coords={"chain": np.arange(4), "draw": np.arange(1000), "study": list(STUDIES)})
    prior = xr.Dataset({"mean_rate": (("chain", "draw"), rng.uniform(size=(1, 4000))),
                        "theta_new": (("chain", "draw"), rng.uniform(size=(1, 4000)))},
                       coords={"chain": [0], "draw": np.arange(4000)})
    return xr.DataTree.from_dict({"posterior": posterior, "prior": prior})


def _posterior(tree: xr.DataTree, group: str = "posterior") -> DrawsPosterior:
    return DrawsPosterior(tree[group].to_dataset(), outcomes=("success",))


def _summary(tree: xr.DataTree):
    return summarize(_posterior(tree), analysis="success", prior=_posterior(tree, "prior"))


def _exact(quantities: dict, studies: dict) -> MarginalsPosterior:
    marginals = {(name, "success", ""): m for name, m in quantities.items()}
    marginals.update({("theta", "success", s): m for s, m in studies.items()})
    return MarginalsPosterior(marginals, tolerance=GRID_TOLERANCE)


def _draws(tree: xr.DataTree, parameter: str, study: str = "") -> np.ndarray:
    da = tree["posterior"][parameter]
    return (da.sel(study=study) if study else da).values[:, :, None]


def _hdi(values: np.ndarray, prob: float = 0.95) -> tuple[float, float]:
    """The shortest interval holding floor(prob n) + 1 of the sorted draws."""
    ordered = np.sort(values.ravel())
    inside = int(np.floor(prob * ordered.size))
    widths = ordered[inside:] - ordered[:ordered.size - inside]
    start = int(np.argmin(widths))
    return ordered[start], ordered[start + inside]


def test_summary_table_is_the_arviz_stats_table():
    """Every column rebuilt independently: NumPy for the moments, quantiles and HDI, the
    prior columns from the prior draws, arviz-stats for the Monte Carlo diagnostics."""
    tree = _tree()
    table = _summary(tree)
    rows = []
    for _, row in table.iterrows():
        draws = _draws(tree, row["parameter"], row["study"])
        values = draws.ravel()
        reference = _arviz(draws)
        q = np.quantile(values, [0.025, 0.5, 0.975])
        expected = {"analysis": "success", "outcome": "success",
                    "parameter": row["parameter"],
                    "study": row["study"], "mean": values.mean(),
                    "sd": values.std(ddof=1), "q2.5": q[0], "median": q[1], "q97.5": q[2],
                    "mcse_mean": reference["mcse_mean"][0],
                    "ess_bulk": reference["ess_bulk"][0],
                    "ess_tail": reference["ess_tail"][0], "r_hat": reference["rhat"][0]}
        expected["hdi95_lower"], expected["hdi95_upper"] = _hdi(values)
        if row["parameter"] in tree["prior"]:
            prior = tree["prior"][row["parameter"]].values.ravel()
            mass = np.mean((prior >= q[0]) & (prior <= q[2]))
            expected.update({"prior_q2.5": np.quantile(prior, 0.025),
                             "prior_q97.5": np.quantile(prior, 0.975),
                             "prior_mass_in_ci95": mass, "prior_dominated": mass >= 0.75})
        else:
            expected.update({"prior_q2.5": np.nan, "prior_q97.5": np.nan,
                             "prior_mass_in_ci95": np.nan, "prior_dominated": pd.NA})
        rows.append(expected)
    expected = pd.DataFrame(rows, columns=table.columns)
    expected["prior_dominated"] = expected["prior_dominated"].astype("boolean")
    assert len(table) == 4 + len(STUDIES)
    assert np.isnan(table.loc[table["parameter"] == "sd_rates", "r_hat"]).all()
    pd.testing.assert_frame_equal(table, expected, check_exact=False, rtol=RTOL)


def test_tail_probability_table_is_the_arviz_stats_table():
    tree = _tree()
    thresholds = (0.25, 0.3, 0.9)  # 0.9: never exceeded, so p = 0 and MCSE 0
    table = tail_probabilities(_posterior(tree), analysis="success", thresholds=thresholds)
    expected = table.copy()
    for i, row in table.iterrows():
        indicator = (_draws(tree, row["quantity"]) > row["threshold"]).astype(float)
        p = indicator.mean()
        ess = array_stats.ess(indicator, method="bulk", **AXES)[0]
        expected.loc[i, ["probability", "mcse"]] = [
            p, np.sqrt(p * (1 - p) / ess) if 0 < p < 1 else 0.0]
    assert (table["mcse"] == 0).sum() == 2
    pd.testing.assert_frame_equal(table, expected, check_exact=False, rtol=RTOL)


def test_exact_comparison_table_is_the_arviz_stats_table():
    tree = _tree()
    norm = Marginal.closed_form
    quantities = {"mean_rate": norm(stats.norm(0.3, 0.05 * 3.2 / 3)),
                  "theta_new": norm(stats.norm(0.3, 0.11)), "sd_rates": Marginal.point(0.0)}
    studies = {s: norm(stats.norm(0.2, 0.05 / 3)) for s in STUDIES}
    table = compare(_posterior(tree), _exact(quantities, studies), _summary(tree),
                    analysis="success")
    rows = []
    for name, study, marginal in [(n, "", quantities[n]) for n in ("mean_rate",
                                                                   "theta_new")] + \
            [("theta", s, m) for s, m in studies.items()]:
        draws = _draws(tree, name, study)
        estimate = draws.mean()
        mcse = array_stats.mcse(draws, method="mean", **AXES)[0]
        rows.append([name, study, "mean", estimate, marginal.mean, mcse,
                     (estimate - marginal.mean) / np.hypot(mcse, GRID_TOLERANCE)])
        for statistic, prob in (("q2.5", 0.025), ("median", 0.5), ("q97.5", 0.975)):
            estimate = np.quantile(draws.ravel(), prob)
            mcse = array_stats.mcse(draws, method="quantile", prob=prob, **AXES)[0]
            ess = array_stats.ess(draws, method="quantile", prob=prob, **AXES)[0]
            below, at, above = marginal.cdf_at(estimate + np.array([-1, 0, 1])
                                               * GRID_TOLERANCE)
            tolerance = max((above - below) / 2, GRID_TOLERANCE)
            z = (at - prob) / np.hypot(np.sqrt(prob * (1 - prob) / ess), tolerance)
            rows.append([name, study, statistic, estimate, float(marginal.quantile(prob)),
                         mcse, z])
    expected = pd.DataFrame(rows, columns=["parameter", "study", "statistic", "test",
                                           "reference", "error", "z"])
    expected.insert(0, "outcome", "success")
    expected.insert(0, "analysis", "success")
    assert (table["parameter"] != "sd_rates").all()  # constant: not compared
    pd.testing.assert_frame_equal(table, expected, check_exact=False, rtol=RTOL)


def test_exact_comparison_z_is_standard_normal_when_nuts_is_right():
    """Independent draws from a known marginal: every z (mean and quantiles, on the
    probability scale) is then ~N(0, 1). 300 quantities x 4 statistics give 1200 z's,
    correlated within a quantity; their SD would be 1.00 +- ~0.05 (2 SE), so the band
    0.85-1.15 fails a denominator off by 15% either way, and a mean beyond +-0.15 a bias
    of that size, while chance alone (P < 1e-6) does not."""
    rng = np.random.default_rng(11)
    studies = [f"S{i:03d}" for i in range(300)]
    theta = rng.beta(3.0, 7.0, size=(4, 1000, len(studies)))
    tree = xr.DataTree.from_dict({"posterior": xr.Dataset(
        {"theta": (("chain", "draw", "study"), theta)},
        coords={"chain": np.arange(4), "draw": np.arange(1000), "study": studies})})
    truth = Marginal.closed_form(stats.beta(3.0, 7.0))
    posterior = _posterior(tree)
    z = compare(posterior, _exact({}, dict.fromkeys(studies, truth)),
                summarize(posterior, analysis="success"), analysis="success")["z"]
    assert len(z) == 4 * len(studies)
    assert 0.85 < z.std() < 1.15
    assert abs(z.mean()) < 0.15
