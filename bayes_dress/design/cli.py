"""``bayes-dress design RUN_DIR``: plan the next trial from a fitted run's MAP prior.

The command is thin, as the others: read the config and flags
(:mod:`bayes_dress.design.plan`), run the design (:mod:`bayes_dress.design.study`),
write the design directory (:mod:`bayes_dress.design.write`), print the headline and
where it went. It is registered on the ``bayes-dress`` group with
``main.add_command(design_command)``; everything heavy is imported inside the function,
and user errors end in one ``error:`` line and exit 2 (``bayes_dress.cli_support.user_errors``).
"""

from __future__ import annotations

from pathlib import Path

import click

from bayes_dress.cli_support import Progress, one_line, user_errors

#: Largest --n (as the config's trial.n).
MAX_N = 10_000


@click.command("design")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="A TOML design config; flags override it [the bundled default design].")
@click.option("--outcome", help="Outcome whose MAP prior is the trial's prior; a hyphen "
                                "may stand for an underscore [the config's; with the "
                                "bundled config, success, or the run's only outcome].")
@click.option("--n", "n", type=click.IntRange(min=1, max=MAX_N),
              help="Patients in the single-arm trial [40].")
@click.option("--rule", help="Success rule, e.g. 'P(theta > 0.3) > 0.95' (quote it for the "
                             "shell) [the config's].")
@click.option("--robust-weight", type=click.FloatRange(0, 1, max_open=True),
              help="Weight of the robust component of the prior; 0: the MAP as it is "
                   "[0.2].")
@click.option("--sensitivity/--no-sensitivity", "sensitivity", default=None,
              help="Redo the design under every scenario of the sensitivity sweep "
                   "[the config's: on].")
@click.option("--jobs", type=click.IntRange(min=1, max=256),
              help="Worker processes for the sensitivity scenarios [one per core]; 1 "
                   "computes in this process.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Design directory [results/design-TIMESTAMP].")
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
@click.option("--quiet", "-q", is_flag=True, help="No progress messages.")
@user_errors
def design_command(run_dir, config_path, outcome, n, rule, robust_weight, sensitivity, jobs,
                   out, overwrite, quiet):
    """Design the next trial from RUN_DIR's MAP prior (the rate in a new study).

    Writes a design directory: the MAP prior with its mixture approximation and an honest
    ESS verdict, a single-arm trial's decision boundary, operating characteristics and
    sample size, the robust-weight map, the two-endpoint (efficacy AND safety) rule, and
    the design across sensitivity scenarios, with plots and a manifest tying it to the run.
    """
    progress = Progress(quiet)
    progress("reading the design config and the run")
    from bayes_dress.design.plan import load_plan
    from bayes_dress.design.study import run_design
    from bayes_dress.design.write import write_design
    from bayes_dress.rundir.atomic import check_destination
    from bayes_dress.rundir.read import load_run
    from bayes_dress.rundir.write import default_run_dir

    # --outcome is not laid over the config here but matched to the run's outcomes by
    # run_design: so 'severe-ae' is 'severe_ae', and the bundled config's 'success'
    # gives way to the only outcome of a run without it, unless the flag asks for it.
    plan = load_plan(config_path).with_flags(n=n, rule=rule, robust_weight=robust_weight,
                                             sensitivity=sensitivity)
    run = load_run(run_dir)
    out = out or default_run_dir("design")
    check_destination(out, overwrite=overwrite)
    result = run_design(run, plan, outcome=outcome, progress=progress, jobs=jobs)
    write_design(result, out, overwrite=overwrite, progress=progress)
    for line in result.headline():
        click.echo(one_line(line))
    for note in result.notes:
        click.echo(f"note: {one_line(note)}", err=True)
    if result.scenarios is not None:
        for note in result.scenarios.notes:
            click.echo(f"note: {one_line(note)}", err=True)
    click.echo(f"\nDesign written to {out}/")
