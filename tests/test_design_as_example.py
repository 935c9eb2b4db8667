"""RBesT's ankylosing spondylitis (AS) example, end to end through the package:
``bayes-dress fit`` (logit-normal model, tau ~ HalfNormal(1), mu ~ Normal(0, 2), the
model of RBesT's ``gMAP(cbind(r, n - r) ~ 1 | study, tau.dist = "HalfNormal",
tau.prior = 1, beta.prior = 2)``) -> saved run -> ``bayes-dress design`` -> the design
directory, compared with the numbers RBesT publishes.

Reference numbers (Novartis/RBesT, rendered vignette ``articles/introduction.md``, read
from the repository's gh-pages history; the data from the same page and
``reference/AS.md``): two independent MCMC runs were published, by RBesT 1.9-0 (current)
and by RBesT 1.6-5 to 1.8-2 (same seed, other sampler RNG stream), each of 4000 stored
draws (4 chains x (6000 - 2000) / 4 thinned), which gives two replicates of every number.

How the tolerances are derived (RBesT's MAP comes from 4000 MCMC draws; ours is exact):

* RBesT's MCMC summary of the draws (``print(map_mcmc)``) against our exact MAP: the
  Monte Carlo standard error of a statistic of N = 4000 independent draws, from our exact
  density (mean: sd / sqrt(N); SD: sqrt(mu4 - sd^4) / (2 sd sqrt(N)); quantile q_p:
  sqrt(p (1 - p) / N) / f(q_p)); tolerance 4 standard errors plus half a unit of the last
  printed digit.
* Numbers RBesT computes from the mixture fitted to its draws (``summary(map)``, mixture
  ESS, robust ESS, the two-arm effect reaching 80 % power): RBesT's whole procedure is
  replayed on our exact MAP, B = 30 times: 4000 independent draws, ``automixfit`` (the
  package's EM on draws, AIC penalty 6), the statistic. Its spread is the Monte Carlo
  error of RBesT's number; its mean minus our number (mixture fitted to the exact MAP) is
  the procedure's bias. Tolerance: 4 bootstrap SDs + |bias| + half a unit of the printed
  digit (ESS is printed rounded to whole patients, effects to 0.001).

Treating RBesT's draws as independent assumes their effective sample size is about 4000:
RBesT thins NUTS by 4, and the predictive draw adds fresh normal noise to every
iteration. 4 standard deviations keep the chance of a false alarm below about 1e-3 over
the ~20 comparisons here, and the check of the other prior (HalfNormal(1/2), RBesT's
sensitivity run) shows the tolerances still catch a wrong model.
"""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from bayes_dress.cli import main
from bayes_dress.design import BetaMixture, Design2S, automixfit, ess_all, parse_rule
from bayes_dress.design.cli import design_command
from bayes_dress.design.map_prior import map_prior, summary_of
from bayes_dress.design.study import delta_for_power
from bayes_dress.rundir.design_read import load_design
from bayes_dress.rundir.read import load_run

#: RBesT's AS data set: placebo arms of 8 historical studies (n, r).
AS = (("Study 1", 107, 23), ("Study 2", 44, 12), ("Study 3", 51, 19), ("Study 4", 39, 9),
      ("Study 5", 139, 39), ("Study 6", 20, 6), ("Study 7", 78, 9), ("Study 8", 35, 10))
N_DRAWS = 4000
Z = 4.0
B = 30
#: summary(map): the mixture's mean, sd and quantiles (printed with 8 digits).
MIXTURE = {"1.9-0": (0.25545885, 0.08662045, 0.10730400, 0.24758768, 0.46276759),
           "1.8-2": (0.25857963, 0.08423297, 0.10808237, 0.25003652, 0.47028444)}
#: print(map_mcmc), "MAP Prior MCMC sample": mean, sd, 2.5 %, 50 %, 97.5 % of the draws
#: (3 significant digits).
DRAWS = {"1.9-0": (0.255, 0.0864, 0.106, 0.247, 0.461),
         "1.8-2": (0.258, 0.0842, 0.112, 0.251, 0.459)}
#: RBesT's sensitivity run, tau ~ HalfNormal(0, 1/2) (1.9-0): a different model.
DRAWS_OTHER_PRIOR = (0.259, 0.0776, 0.129, 0.250, 0.442)
#: round(ess(map, method)): elir, moment, morita; round(ess(robustify(map, 0.2, 0.5))).
ESS = {"1.9-0": (38, 24, 95, 27), "1.8-2": (37, 26, 63, 27)}
#: The difference delta reaching 80 % power at the MAP mean (two-arm, 24:6, rule
#: P(theta_active - theta_control > 0) > 0.95, treatment prior Beta(0.5, 1)).
DELTA = {"1.9-0": {"MAP": 0.302, "robust MAP": 0.368, "uniform": 0.529,
                   "uniform, 24:24": 0.341},
         "1.8-2": {"MAP": 0.298, "robust MAP": 0.368, "uniform": 0.529,
                   "uniform, 24:24": 0.341}}
#: RBesT 1.9-0's mixture (print(map)): for the OC machinery alone.
RBEST_MAP = BetaMixture([0.4612914, 0.1917812, 0.1893896, 0.1575378],
                        [33.9513487, 19.4400089, 12.2692310, 2.2521243],
                        [103.0146367, 41.5205219, 55.9202833, 5.4812202])
STATS = ("mean", "sd", "q2.5", "q50", "q97.5")
CONFIG = """
outcome = "events"
[robust]
weight = 0.2
mean = 0.5
[trial]
n = 40
rule = "P(theta > 0.25) > 0.9"
null = 0.25
alternative = 0.45
[two_arm]
n_treatment = 24
n_control = 6
treatment_prior = "Beta(0.5, 1)"
rule = "P(theta1 - theta2 > 0) > 0.95"
power = 0.8
[sensitivity]
enabled = false
"""


@pytest.fixture(scope="module")
def as_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("as")
    csv = root / "AS.csv"
    csv.write_text("study,n,r\n" + "".join(f"{s},{n},{r}\n" for s, n, r in AS))
    run = root / "run"
    result = CliRunner().invoke(main, ["fit", "--data", str(csv), "--model", "logit_normal",
                                       "--prior", "mu=Normal(0, 2)", "--prior",
                                       "tau=HalfNormal(1)", "--engine", "exact", "--out",
                                       str(run), "-q"])
    assert result.exit_code == 0, result.output
    config = root / "as_design.toml"
    config.write_text(CONFIG)
    out = root / "design"
    result = CliRunner().invoke(design_command, [str(run), "--config", str(config),
                                                 "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    return run, load_design(out), result.stdout


@pytest.fixture(scope="module")
def exact_map(as_run):
    run, _, _ = as_run
    return map_prior(load_run(run).analysis_of("events")).exact


def _statistics(mix: BetaMixture) -> dict[str, float]:
    """What RBesT reports from a MAP mixture."""
    s = summary_of(mix, probs=(0.025, 0.5, 0.975))
    e = ess_all(mix).values()
    robust = mix.robustify(0.2, mean=0.5)
    rule = parse_rule("P(theta1 - theta2 > 0) > 0.95")
    treat = BetaMixture.beta(0.5, 1)
    mean = float(mix.mean())
    return {**{k: s[k] for k in STATS}, "elir": e["elir"], "moment": e["moment"],
            "morita": e["morita"], "elir_robust": ess_all(robust).values()["elir"],
            "delta_MAP": delta_for_power(Design2S(treat, mix, 24, 6, rule), mean, 0.8),
            "delta_robust MAP": delta_for_power(Design2S(treat, robust, 24, 6, rule), mean,
                                                0.8)}


@pytest.fixture(scope="module")
def bootstrap(exact_map):
    """RBesT's procedure (4000 draws -> automixfit -> statistic) replayed B times on our
    exact MAP: per statistic, (mean, sd) over the replicates."""
    rng = np.random.default_rng(20260101)
    with np.errstate(all="ignore"):
        rows = [_statistics(automixfit(exact_map.sample(N_DRAWS, rng)).mixture)
                for _ in range(B)]
    return {k: (float(np.mean([r[k] for r in rows])), float(np.std([r[k] for r in rows],
                                                                   ddof=1)))
            for k in rows[0]}


def _tolerance(bootstrap, key: str, ours: float, half_unit: float) -> float:
    mean, sd = bootstrap[key]
    return Z * sd + abs(mean - ours) + half_unit


def _draw_se(exact) -> dict[str, float]:
    """Monte Carlo standard errors of the draws' summaries, N independent draws."""
    theta, w = exact.quadrature()
    w = w / w.sum()
    m, sd = exact.mean(), exact.sd()
    mu4 = float(np.dot(w, (theta - m) ** 4))
    out = {"mean": sd / np.sqrt(N_DRAWS), "sd": np.sqrt(mu4 - sd**4) / (2 * sd
                                                                      * np.sqrt(N_DRAWS))}
    for p, name in ((0.025, "q2.5"), (0.5, "q50"), (0.975, "q97.5")):
        out[name] = np.sqrt(p * (1 - p) / N_DRAWS) / float(exact.pdf(exact.quantile(p)))
    return out


def test_the_run_is_rbest_s_model_and_data(as_run):
    run, design, _ = as_run
    saved = load_run(run)
    used = saved.data_used
    assert [(r.study, int(r.total), int(r.events)) for r in used.itertuples()] == list(AS)
    assert saved.manifest["priors"] == {"mu": "Normal(mu=0, sigma=2)",
                                        "tau": "HalfNormal(sigma=1)"}
    assert saved.manifest["model"]["name"] == "logit_normal"
    assert design.run_matches(run)
    assert design.summary["verdicts"][0]["map_source"] == "exact"


def test_map_matches_rbest_mcmc_sample(as_run, exact_map):
    """Our exact MAP against the summaries of RBesT's 4000 draws (both publications)."""
    _, design, _ = as_run
    table = design.table("map_summary.csv").set_index("prior")
    ours = {k: float(table.loc["exact", k]) for k in STATS}
    assert ours["mean"] == pytest.approx(exact_map.mean(), abs=1e-12)
    se = _draw_se(exact_map)
    for version, values in DRAWS.items():
        for key, published in zip(STATS, values, strict=True):
            half_unit = 0.5 * 10.0 ** (np.floor(np.log10(abs(published))) - 2)
            tol = Z * se[key] + half_unit
            assert abs(published - ours[key]) <= tol, (version, key, published, ours[key],
                                                        tol)
    # Teeth: RBesT's run under tau ~ HalfNormal(1/2) is another MAP; its SD is far
    # outside our tolerance.
    assert abs(DRAWS_OTHER_PRIOR[1] - ours["sd"]) > Z * se["sd"] + 5e-5


def test_mixture_summary_matches_rbest(as_run, bootstrap):
    """summary(map): mean 0.2555, sd 0.0866, quantiles 0.107 / 0.248 / 0.463 (1.9-0)."""
    _, design, _ = as_run
    table = design.table("map_summary.csv").set_index("prior")
    ours = {k: float(table.loc["mixture", k]) for k in STATS}
    for version, values in MIXTURE.items():
        for key, published in zip(STATS, values, strict=True):
            tol = _tolerance(bootstrap, key, ours[key], 5e-9 + 1.2e-4 * (key != "mean"
                                                                          and key != "sd"))
            assert abs(published - ours[key]) <= tol, (version, key, published, ours[key],
                                                        tol)
    # The tolerances are Monte Carlo sized (thousandths), not wide enough to pass anything.
    assert _tolerance(bootstrap, "mean", ours["mean"], 0) < 0.01
    assert _tolerance(bootstrap, "q97.5", ours["q97.5"], 0) < 0.05


def test_mixture_ess_matches_rbest(as_run, bootstrap):
    _, design, stdout = as_run
    ess = design.table("ess.csv")
    mixture = ess[ess["prior"] == "mixture"].set_index("method")["value"]
    robust = ess[ess["prior"] == "robust"].set_index("method")["value"]
    ours = {"elir": mixture["elir"], "moment": mixture["moment"],
            "morita": mixture["morita"], "elir_robust": robust["elir"]}
    for version, values in ESS.items():
        for key, published in zip(("elir", "moment", "morita", "elir_robust"), values,
                                  strict=True):
            tol = _tolerance(bootstrap, key, ours[key], 0.5)
            assert abs(published - ours[key]) <= tol, (version, key, published, ours[key],
                                                        tol)
    assert _tolerance(bootstrap, "elir", ours["elir"], 0) < 12
    # Informative MAP: the verdict says so, with the ESS beside it.
    assert design.summary["verdicts"][0]["level"] == "informative"
    assert "ESS verdict (informative): The prior is informative" in stdout


def test_two_arm_operating_characteristics_match_rbest(as_run, bootstrap):
    _, design, _ = as_run
    rows = design.table("two_arm.csv").set_index("design")
    found = rows["delta_for_power"]
    for version, values in DELTA.items():
        for label, published in values.items():
            if label.startswith("uniform"):
                # No MAP involved: only the control mean moves it (ours 0.258, RBesT's
                # 0.2555); exact to RBesT's rounding and its uniroot tolerance.
                tol = 0.0005 + 1.2e-4 + 0.002
            else:
                tol = _tolerance(bootstrap, f"delta_{label}", found[label], 0.0005)
            assert abs(published - found[label]) <= tol, (version, label, published,
                                                          found[label], tol)
    assert rows.loc["MAP", "n_control"] == 6 and rows.loc["uniform, 24:24", "n_control"] == 24


def test_oc_machinery_reproduces_rbest_with_its_own_mixture():
    """Given RBesT's published mixture, the effects reaching 80 % power are RBesT's to
    the printed digit (no Monte Carlo error left)."""
    rule = parse_rule("P(theta1 - theta2 > 0) > 0.95")
    treat, uniform = BetaMixture.beta(0.5, 1), BetaMixture.beta(1, 1)
    mean = 0.25545885  # summary(map)["mean"]
    designs = {"MAP": Design2S(treat, RBEST_MAP, 24, 6, rule),
               "robust MAP": Design2S(treat, RBEST_MAP.robustify(0.2, mean=0.5), 24, 6, rule),
               "uniform": Design2S(uniform, uniform, 24, 6, rule),
               "uniform, 24:24": Design2S(uniform, uniform, 24, 24, rule)}
    for label, design in designs.items():
        assert round(delta_for_power(design, mean, 0.8), 3) == DELTA["1.9-0"][label], label
    assert summary_of(RBEST_MAP, probs=(0.025, 0.5, 0.975))["q97.5"] == pytest.approx(
        MIXTURE["1.9-0"][4], abs=2e-4)


@pytest.mark.slow
def test_nuts_run_gives_the_same_map(exact_map, tmp_path):
    """The same analysis sampled with NUTS: its draws agree with the exact MAP within
    Monte Carlo error, and the design refits it exactly (the same MAP as the exact run)."""
    from tests.conftest import FAST

    csv = tmp_path / "AS.csv"
    csv.write_text("study,n,r\n" + "".join(f"{s},{n},{r}\n" for s, n, r in AS))
    nuts = tmp_path / "nuts"
    result = CliRunner().invoke(main, ["fit", "--data", str(csv), "--model", "logit_normal",
                                       "--prior", "mu=Normal(0, 2)", "--prior",
                                       "tau=HalfNormal(1)", "--draws", str(FAST.draws),
                                       "--tune", str(FAST.tune), "--chains",
                                       str(FAST.chains), "--seed", str(FAST.seed), "--out",
                                       str(nuts), "-q"])
    assert result.exit_code == 0, result.output
    mp = map_prior(load_run(nuts).analysis_of("events"))
    assert mp.exact_origin == "refit" and mp.agreement.agree, mp.agreement.describe()
    grid = np.linspace(0.01, 0.99, 99)
    np.testing.assert_allclose(mp.exact.cdf(grid), exact_map.cdf(grid), atol=2e-4)
