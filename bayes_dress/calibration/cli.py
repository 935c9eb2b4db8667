"""``bayes-dress calibrate``: simulation-based calibration of a model, priors and engine.

Thin, as the other commands: flags to a plan (:func:`~bayes_dress.calibration.plan.
plan_calibration`), the replications through an executor (:func:`~bayes_dress.
calibration.run.run_calibration`), the directory written (:func:`~bayes_dress.
calibration.write.write_calibration`), one line per quantity's verdict and where it
went. Registered on the ``bayes-dress`` group with ``main.add_command(
calibrate_command)``. Everything heavy is imported inside the function.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from bayes_dress import cli_support as helpers

#: Largest --replications.
MAX_REPLICATIONS = 100_000


def _p(value: float) -> str:
    return "< 0.001" if value < 0.001 else f"= {value:.3f}"


def _assignments(values: tuple[str, ...]) -> dict[str, str]:
    from bayes_dress.spec.priors import parse_assignment

    return dict(parse_assignment(v) for v in values)


def _pairs(values: tuple[str, ...], flag: str, example: str) -> dict[str, str]:
    from bayes_dress.errors import SpecError

    pairs = {}
    for value in values:
        key, sep, rhs = (part.strip() for part in value.partition("="))
        if not sep or not key or not rhs:
            raise SpecError(f"{flag} '{helpers.one_line(value)[:80]}': write it as "
                            f"{example}")
        pairs[key] = rhs
    return pairs


@click.command("calibrate")
@click.option("--model", help="beta_binomial (default), logit_normal, common_effect, "
                              "independent or joint_logit_normal.")
@click.option("--prior", "priors", multiple=True, metavar="PARAM=DIST(ARGS)",
              help="The prior fitted (and simulated from), e.g. 'phi=HalfNormal(1)' "
                   "(repeatable). Must be proper: SBC draws from it.")
@click.option("--simulate-prior", "simulate_priors", multiple=True,
              metavar="PARAM=DIST(ARGS)",
              help="Simulate PARAM from this prior instead of the fitted one "
                   "(repeatable): a deliberate mismatch the verdicts should flag.")
@click.option("--data", "data", type=click.Path(allow_dash=True, path_type=Path),
              help="A CSV whose studies and study sizes the simulated tables copy "
                   "[the bundled DRESS/IVIG table].")
@click.option("--outcome", "outcomes", multiple=True, metavar="NAME",
              help="Outcome whose study sizes are simulated (repeatable) [success and "
                   "severe_ae when present; outcomes with the same study sizes are "
                   "calibrated once].")
@click.option("--definition", "definitions", multiple=True, metavar="OUTCOME=NAME",
              help="Use an alternative outcome definition's study sizes (repeatable).")
@click.option("--exclude", "exclude", multiple=True, metavar="STUDY",
              help="Leave a study out (repeatable).")
@click.option("--columns", "columns", multiple=True, metavar="OURS=THEIRS",
              help="Map a column of your file to study, events, total, outcome, ... "
                   "(repeatable).")
@click.option("--engine", type=click.Choice(("nuts", "exact")), default="nuts",
              show_default=True, help="The engine calibrated.")
@click.option("--replications", type=click.IntRange(min=2, max=MAX_REPLICATIONS),
              default=200, show_default=True,
              help="Simulated tables (each one fit) per analysis.")
@click.option("--draws", type=click.IntRange(min=1, max=1_000_000),
              help="Draws per chain [1000: fewer than fit's 2000, as each replication is "
                   "a whole fit].")
@click.option("--tune", type=click.IntRange(min=1, max=1_000_000),
              help="Tuning steps per chain [500].")
@click.option("--chains", type=click.IntRange(min=1, max=64), help="Chains [2].")
@click.option("--target-accept", type=click.FloatRange(0.5, 1.0, max_open=True),
              help="NUTS target acceptance rate [0.99].")
@click.option("--seed", type=click.IntRange(min=0, max=2**32 - 1),
              help="Random seed of the whole calibration [20260101].")
@click.option("--level", type=click.FloatRange(0.5, 1.0, max_open=True), default=0.95,
              show_default=True,
              help="Probability that a calibrated engine is called calibrated on every "
                   "quantity at once.")
@click.option("--scheduler", help="Where to fit: 'local' (a Dask cluster on this "
                                  "machine) or a Dask scheduler's address tcp://HOST:PORT "
                                  "[$BAYES_DRESS_SCHEDULER, else worker processes here].")
@click.option("--jobs", type=click.IntRange(min=1, max=256),
              help="Worker processes on this machine [one per core]; 1 fits in this "
                   "process.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Calibration directory [results/calibration-TIMESTAMP].")
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
@click.option("--strict", is_flag=True, help="Exit 1 if any quantity is miscalibrated.")
@click.option("--quiet", "-q", is_flag=True, help="No progress messages.")
@helpers.user_errors
def calibrate_command(model, priors, simulate_priors, data, outcomes, definitions, exclude,
                      columns, engine, replications, draws, tune, chains, target_accept,
                      seed, level, scheduler, jobs, out, overwrite, strict, quiet):
    """Simulation-based calibration: simulate tables shaped like yours from the prior,
    fit each, and test whether the true values' ranks are uniform.

    Writes ranks.csv, verdicts.csv, replications.csv, diagnostics.json, manifest.json
    and plots/ (ECDF differences with simultaneous bands, rank histograms).
    """
    one_line = helpers.one_line
    progress = helpers.Progress(quiet)
    progress("simulating the replications")
    from bayes_dress.calibration.plan import default_settings, plan_calibration
    from bayes_dress.calibration.run import run_calibration
    from bayes_dress.calibration.write import write_calibration
    from bayes_dress.executors import resolve_scheduler
    from bayes_dress.rundir.atomic import check_destination
    from bayes_dress.rundir.write import default_run_dir
    from bayes_dress.spec.config import RunConfig

    settings = default_settings()
    changes = {"draws": draws, "tune": tune, "chains": chains, "seed": seed,
               "target_accept": target_accept}
    import dataclasses

    settings = dataclasses.replace(settings, **{k: v for k, v in changes.items()
                                                if v is not None})
    config = RunConfig(
        model=model or "beta_binomial", data=data, outcomes=tuple(outcomes) or None,
        priors=_assignments(priors),
        definitions=_pairs(definitions, "--definition", "OUTCOME=NAME, e.g. "
                                                        "success=evaluable"),
        exclude=tuple(exclude), engine=engine, sampler=settings,
        columns=_pairs(columns, "--columns", "OURS=THEIRS, e.g. events=Responders"))
    plan = plan_calibration(config, replications=replications,
                            simulate_priors=_assignments(simulate_priors), level=level)
    out = out or default_run_dir("calibration")
    check_destination(out, overwrite=overwrite)
    scheduler = resolve_scheduler(scheduler)
    for note in plan.notes:
        click.echo(f"note: {one_line(note)}", err=True)
    if engine == "exact" and any(v is not None for v in (draws, tune, chains,
                                                          target_accept)):
        click.echo("note: --engine exact does not sample: --draws, --tune, --chains and "
                   "--target-accept only set its prior draws", err=True)
    sampler = ("" if engine != "nuts" else
               f", {settings.chains} chains x {settings.draws} draws after "
               f"{settings.tune} tuning steps")
    click.echo(f"{replications} replications x {len(plan.analyses)} analysis shape(s) = "
               f"{len(plan.tasks)} fits of {plan.model.name} ({engine}{sampler}), "
               f"{plan.n_quantities} quantities", err=True)
    if quiet:
        result = run_calibration(plan, scheduler=scheduler, jobs=jobs)
    else:
        with click.progressbar(length=len(plan.tasks), label="fits", show_eta=True,
                               show_pos=True, file=sys.stderr,
                               item_show_func=lambda r: r and f"#{r.index} {r.status}"
                               ) as bar:
            result = run_calibration(plan, scheduler=scheduler, jobs=jobs,
                                     progress=lambda r, done, total: bar.update(1, r))
    progress("writing tables and plots")
    write_calibration(result, out, overwrite=overwrite)
    many = len(plan.analyses) > 1
    for row in result.verdicts.itertuples(index=False):
        label = f"{row.analysis}: {row.label}" if many else row.label
        detail = (f"band p {_p(row.band_p_value)}, tails p {_p(row.tail_p_value)}"
                  if row.verdict != "not assessed" else "")
        line = f"{one_line(label)}: {row.verdict} ({detail})" if detail else \
            f"{one_line(label)}: {row.verdict}"
        if row.verdict == "calibrated":
            click.echo(line)
        else:
            click.secho(f"{line}: {one_line(str(row.note))}", fg="red", bold=True)
    failed = result.count("diagnostics failed")
    not_fitted = result.count("not fitted")
    click.echo(f"\n{len(result.results)} fits in {result.wall_time:.1f} s "
               f"({result.fits_per_second:.1f} fits/s, {result.executor}); "
               f"{failed} failed a diagnostic (included in the verdicts)"
               + (f", {not_fitted} not fitted (left out)" if not_fitted else ""))
    verdict = ("every quantity calibrated" if result.calibrated else
               f"{len(result.miscalibrated)} of {len(result.verdicts)} quantities "
               "miscalibrated")
    click.echo(f"{verdict}; results written to {out}/")
    if strict and not result.calibrated:
        click.echo(f"error: {len(result.miscalibrated)} quantity(ies) miscalibrated "
                   "(--strict)", err=True)
        sys.exit(1)


if __name__ == "__main__":  # python -m bayes_dress.calibration.cli (before registration)
    calibrate_command(prog_name="bayes-dress calibrate")
