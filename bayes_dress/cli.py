"""The ``bayes-dress`` command line: parse, call the library, write, say where.

Every user mistake ends in one line on stderr (``error: ...``) and exit status 2; a
fit whose diagnostics fail exits 1 under ``--strict``; Ctrl-C ends a run with exit 130
and SIGTERM with 143, each with one line, no traceback and nothing half-written.
Commands that only read or list (``--help``, ``models``, ``data``, ``plot``,
``report``) import neither PyMC, PyTensor, nutpie nor numba.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from bayes_dress.calibration.cli import calibrate_command
from bayes_dress.cli_support import (
    EXIT_DIAGNOSTICS,
    EXIT_INTERRUPTED,
    EXIT_USER_ERROR,
    Progress,
    one_line,
    user_errors,
)
from bayes_dress.design.cli import design_command
from bayes_dress.errors import SpecError, choices
from bayes_dress.spec.config import ENGINES, SAMPLERS, RunConfig, load_config


def _pairs(values: tuple[str, ...], flag: str) -> dict[str, str]:
    from bayes_dress.spec.priors import parse_assignment

    pairs = {}
    for value in values:
        if flag == "--prior":
            key, rhs = parse_assignment(value)
        else:
            key, sep, rhs = (part.strip() for part in value.partition("="))
            if not sep or not key or not rhs:
                example = ("OURS=THEIRS, e.g. events=Responders" if flag == "--columns"
                           else "OUTCOME=NAME, e.g. success=evaluable")
                raise SpecError(f"{flag} '{one_line(value)[:80]}': write it as {example}")
        pairs[key] = rhs
    return pairs


class OneLineErrors(click.Group):
    """A command group whose usage errors (an unknown flag, a value out of range) are one
    ``error:`` line, as every other error, instead of click's usage block."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True,
             **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except click.UsageError as err:
            command = f" {err.ctx.info_name}" if err.ctx and err.ctx.parent else ""
            click.echo(f"error: {one_line(err.format_message())} (bayes-dress{command} "
                       "--help lists the options)", err=True)
            sys.exit(EXIT_USER_ERROR)
        except click.ClickException as err:
            click.echo(f"error: {one_line(err.format_message())}", err=True)
            sys.exit(err.exit_code)
        except click.Abort:
            click.echo("interrupted: nothing was written", err=True)
            sys.exit(EXIT_INTERRUPTED)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="bayes-dress")
def main():
    """Bayesian meta-analysis of study-level event counts.

    The bundled data are the two studies of intravenous immunoglobulin (IVIG) for DRESS
    syndrome (Joly 2012, Sim 2022); --data points any command at your own CSV.
    """


def data_options(command):
    command = click.option("--columns", "columns", multiple=True, metavar="OURS=THEIRS",
                           help="Map a column of your file to study, events, total, "
                                "outcome, definition, primary or reported, e.g. "
                                "events=Responders (repeatable). Names are matched "
                                "without regard to case, with common aliases (r, n).")(
        command)
    command = click.option("--exclude", "exclude", multiple=True, metavar="STUDY",
                           help="Leave a study out (repeatable).")(command)
    command = click.option("--definition", "definitions", multiple=True,
                           metavar="OUTCOME=NAME",
                           help="Use an alternative outcome definition, e.g. "
                                "success=evaluable (repeatable).")(command)
    command = click.option("--outcome", "outcomes", multiple=True, metavar="NAME",
                           help="Outcome to analyse (repeatable). Default: success and "
                                "severe_ae when the data have them, else every outcome.")(
        command)
    # Not click.Path(dir_okay=False): the data loader refuses anything but a regular
    # file with a one-line reason (a directory, a pipe, a device).
    command = click.option("--data", "data", type=click.Path(allow_dash=True,
                                                              path_type=Path),
                           help="A CSV with at least study,events,total ('-' reads standard "
                                "input). Default: the bundled DRESS/IVIG table.")(command)
    return command


def run_options(command):
    """The flags shared by ``fit`` and ``sensitivity`` (applied to every scenario)."""
    options = [
        click.option("--model", help="beta_binomial (default), logit_normal, "
                                     "common_effect, independent or joint_logit_normal "
                                     "(bayes-dress models lists them)."),
        click.option("--prior", "priors", multiple=True, metavar="PARAM=DIST(ARGS)",
                     help="Override a prior, e.g. 'phi=HalfNormal(1)' or phi=BDA3 "
                          "(repeatable; quote it for the shell)."),
        click.option("--draws", type=click.IntRange(min=1, max=1_000_000),
                     help="Draws per chain [2000]."),
        click.option("--tune", type=click.IntRange(min=1, max=1_000_000),
                     help="Tuning steps per chain [1000]."),
        click.option("--chains", type=click.IntRange(min=1, max=64), help="Chains [4]."),
        click.option("--seed", type=click.IntRange(min=0, max=2**32 - 1),
                     help="Random seed [20260101]."),
        click.option("--target-accept", type=click.FloatRange(0.5, 1.0, max_open=True),
                     help="NUTS target acceptance rate [0.99]."),
        click.option("--sampler", type=click.Choice(SAMPLERS), help="MCMC backend [nutpie]."),
        click.option("--engine", type=click.Choice(ENGINES),
                     help="nuts (sample, checked against a reference engine) or exact "
                          "(numerical integration, no sampling) [nuts]."),
        click.option("--threshold", "thresholds", multiple=True,
                     type=click.FloatRange(0, 1, min_open=True, max_open=True),
                     help="Rate for tail probabilities (repeatable) [0.1 0.25 0.5 0.75]."),
        click.option("--out", type=click.Path(file_okay=False, path_type=Path),
                     help="Run directory [results/NAME-TIMESTAMP]."),
        click.option("--overwrite", is_flag=True, help="Replace --out if it exists."),
        click.option("--strict", is_flag=True, help="Exit 1 if any diagnostic fails."),
        click.option("--quiet", "-q", is_flag=True, help="No progress messages."),
    ]
    for option in reversed(options):
        command = option(command)
    return data_options(command)


def apply_flags(config: RunConfig, *, data, outcomes, definitions, exclude, model, priors,
                draws, tune, chains, seed, target_accept, sampler, engine, thresholds,
                columns=()) -> RunConfig:
    """``config`` with the command-line flags laid over it, key by key."""
    changes = {"model": model, "data": data, "outcomes": outcomes or None,
               "exclude": exclude or None, "thresholds": thresholds or None,
               "sampler_draws": draws, "sampler_tune": tune, "sampler_chains": chains,
               "sampler_seed": seed, "sampler_target_accept": target_accept,
               "sampler_name": sampler, "engine": engine}
    config = config.replace(**{k: v for k, v in changes.items() if v is not None})
    return config.replace(priors={**config.priors, **_pairs(priors, "--prior")},
                          definitions={**config.definitions,
                                       **_pairs(definitions, "--definition")},
                          columns={**config.columns, **_pairs(columns, "--columns")})


def benefit_risk_options(command):
    """The benefit-risk settings (both outcomes analysed: a joint table and plots)."""
    options = [
        click.option("--benefit-threshold", type=click.FloatRange(0, 1, min_open=True,
                                                                  max_open=True),
                     help="Benefit-risk: a success rate above this is a benefit [0.5]."),
        click.option("--risk-threshold", type=click.FloatRange(0, 1, min_open=True,
                                                               max_open=True),
                     help="Benefit-risk: a severe-AE rate below this is acceptable [0.2]."),
        click.option("--harm-weight", "harm_weights", multiple=True,
                     type=click.FloatRange(0, 1000),
                     help="Benefit-risk: weight w of harm in the net benefit p_success - "
                          "w p_harm (repeatable) [0 0.25 0.5 ... 5]."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def apply_benefit_risk(config: RunConfig, benefit_threshold, risk_threshold,
                       harm_weights) -> RunConfig:
    import dataclasses

    changes = {k: v for k, v in (("benefit_threshold", benefit_threshold),
                                 ("risk_threshold", risk_threshold),
                                 ("weights", tuple(harm_weights) or None)) if v is not None}
    if not changes:
        return config
    return config.replace(benefit_risk=dataclasses.replace(config.benefit_risk, **changes))


@main.command()
@run_options
@benefit_risk_options
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="A TOML run spec; flags override it.")
@click.option("--report", "report", is_flag=True,
              help="Also write RUN_DIR/report.html (as bayes-dress report RUN_DIR).")
@user_errors
def fit(config_path, out, overwrite, strict, report, quiet, benefit_threshold,
        risk_threshold, harm_weights, **flags):
    """Fit a model to each outcome and write a run directory."""
    from bayes_dress.plots.workers import PlotWorkers

    # Started first, while this process has no threads; they import the plotting
    # libraries while the fit runs.
    with PlotWorkers.start() as plot_workers:
        _fit(config_path, out, overwrite, strict, report, quiet, benefit_threshold,
             risk_threshold, harm_weights, plot_workers, flags)


def _fit(config_path, out, overwrite, strict, report, quiet, benefit_threshold,
         risk_threshold, harm_weights, plot_workers, flags):
    progress = Progress(quiet)
    progress("loading the data and the sampler")
    from bayes_dress.fitting.fit import prepare, run_fit
    from bayes_dress.fitting.headline import format_headline
    from bayes_dress.rundir.atomic import check_destination
    from bayes_dress.rundir.write import default_run_dir
    from bayes_dress.workflow import write_run

    config = load_config(config_path) if config_path else RunConfig()
    config = apply_benefit_risk(apply_flags(config, **flags), benefit_threshold,
                                risk_threshold, harm_weights)
    prepared = prepare(config)  # every input error surfaces before any fitting
    out = out or default_run_dir(prepared.model.name)
    check_destination(out, overwrite=overwrite)
    for note in config.ignored_by_engine():
        click.echo(f"note: {note}", err=True)
    result = run_fit(config, prepared=prepared, progress=progress)
    write_run(result, out, overwrite=overwrite, progress=progress, plot_workers=plot_workers)
    click.echo(format_headline(result))
    for check in result.failures:
        click.secho(f"WARNING: {one_line(check.message())}", err=True, fg="red", bold=True)
    click.echo(f"\nResults written to {out}/")
    if report:
        from bayes_dress.report import write_report

        progress("writing the report")
        click.echo(f"Report written to {write_report(out)}")
    if strict and result.failures:
        click.echo(f"error: {len(result.failures)} diagnostic check(s) failed (--strict)",
                   err=True)
        sys.exit(EXIT_DIAGNOSTICS)


@main.command()
@run_options
@click.option("--config", "spec_path", type=click.Path(dir_okay=False, path_type=Path),
              help="A TOML sweep spec [the bundled default sweep].")
@click.option("--jobs", type=click.IntRange(min=1, max=256),
              help="Worker processes [one per core]; 1 fits in this process.")
@click.option("--combine", type=click.Choice(("one_at_a_time", "cross")),
              help="Vary one dimension at a time around the primary analysis, or cross "
                   "them all [the spec's].")
@click.option("--scheduler", metavar="ADDRESS",
              help="Run the fits on Dask: 'local' (a LocalCluster sized to this machine) "
                   "or a scheduler's address, e.g. tcp://10.0.0.5:8786 [the spec's "
                   "'scheduler' key, else $BAYES_DRESS_SCHEDULER, else this machine's "
                   "processes].")
@user_errors
def sensitivity(spec_path, jobs, combine, scheduler, out, overwrite, strict, quiet, **flags):
    """Refit under every scenario of a sweep spec and judge whether conclusions hold.

    Fit flags (--prior, --definition, --exclude, --draws, --engine, ...) change the
    primary analysis and so every scenario built around it; --threshold replaces the
    spec's headline probabilities with P(mean rate > t) and P(new-study rate > t).
    """
    progress = Progress(quiet)
    progress("loading the data and the sampler")
    from bayes_dress.labels import quantity_label
    from bayes_dress.rundir.atomic import check_destination
    from bayes_dress.rundir.write import default_run_dir
    from bayes_dress.sensitivity.spec import load_sweep_spec
    from bayes_dress.sensitivity.sweep import plan_sweep, run_sweep
    from bayes_dress.sensitivity.write import write_sweep

    spec = load_sweep_spec(spec_path)
    if combine:
        import dataclasses

        spec = dataclasses.replace(spec, combine=combine)
    config = apply_flags(spec.primary, **flags)
    plan = plan_sweep(spec, config=config, thresholds=flags["thresholds"] or None)
    out = out or default_run_dir("sensitivity")
    check_destination(out, overwrite=overwrite)
    for note in config.ignored_by_engine():
        click.echo(f"note: {note}", err=True)
    progress(f"{len(plan.scenarios)} scenarios, {len(plan.tasks)} fits "
             f"({plan.spec.combine}), from {plan.spec.where}")
    new_structures = plan.structures_to_compile()
    if new_structures:
        progress(f"{len(new_structures)} compiled model(s) are built for this machine "
                 f"first ({', '.join(new_structures)}: 10-60 s each, once; later sweeps "
                 "load them in well under a second)")
    from bayes_dress.executors import resolve_scheduler

    scheduler = resolve_scheduler(scheduler, spec.scheduler)
    if scheduler:
        progress(f"fits run on Dask ({scheduler})")
    if progress.enabled:
        with click.progressbar(length=len(plan.tasks), label="fits", show_eta=True,
                               show_pos=True, file=sys.stderr,
                               item_show_func=lambda r: r and f"{r.scenario.id} {r.outcome}"
                               ) as bar:
            result = run_sweep(plan, jobs=jobs, scheduler=scheduler,
                               progress=lambda r: bar.update(1, r))
    else:
        result = run_sweep(plan, jobs=jobs, scheduler=scheduler)
    progress("writing tables and plots")
    write_sweep(result, out, overwrite=overwrite)
    for row in result.robustness.itertuples():
        click.echo(f"{one_line(row.outcome)}: {one_line(row.verdict)}")
    psense = result.psense
    flagged = psense[psense["diagnosis"].fillna("").str.startswith("potential")]
    for row in flagged.itertuples():
        click.echo(f"{one_line(row.outcome)}: prior sensitivity of "
                   f"{quantity_label(row.variable, short=True)} "
                   f"(power-scaling, primary fit): prior {row.prior:.3f}, likelihood "
                   f"{row.likelihood:.3f}: {row.diagnosis}")
    for flagged in result.flagged:
        click.secho(f"WARNING: {flagged.scenario.id} {one_line(flagged.scenario.label)} "
                    f"[{one_line(flagged.outcome)}] {flagged.status}: "
                    f"{one_line(' | '.join(flagged.problems))}", err=True, fg="red",
                    bold=True)
    click.echo(f"\n{len(plan.tasks)} fits in {result.wall_time:.1f} s; results written to "
               f"{out}/")
    if strict and result.flagged:
        click.echo(f"error: {len(result.flagged)} fit(s) flagged (--strict)", err=True)
        sys.exit(EXIT_DIAGNOSTICS)


@main.command("data")
@data_options
@user_errors
def data_command(data, outcomes, definitions, exclude, columns):
    """Validate a study table and show its counts and provenance."""
    from bayes_dress.data import check_definitions, check_exclusions, load_table, select_outcome
    from bayes_dress.errors import DataError, canonical_name
    from bayes_dress.labels import terminal_safe as safe

    table = load_table(data, columns=_pairs(columns, "--columns"))
    check_exclusions(table, exclude)
    defs = _pairs(definitions, "--definition")
    shown = tuple(dict.fromkeys(
        canonical_name(o, table.outcomes, what="outcome", where=f" in {table.path}",
                       listed="available", error=DataError) for o in outcomes)
    ) or table.outcomes
    defs = check_definitions(defs, shown)
    # Select every outcome before printing anything, so that an error is not preceded
    # by a table already declared valid.
    selections = {outcome: select_outcome(table, outcome, definition=defs.get(outcome),
                                          exclude=exclude) for outcome in shown}
    click.echo(f"{safe(table.path)}: {len(table.rows)} rows, {len(table.studies)} studies, "
               f"outcomes {', '.join(map(safe, table.outcomes))}  [valid]")
    for study in table.studies:
        info = table.study_info.get(study, {})
        if info:
            click.echo(f"  {safe(study)}: {safe(info.get('design', ''))}; n = "
                       f"{safe(info.get('n_enrolled', '?'))}")
    for outcome, selected in selections.items():
        click.echo(f"\n{safe(outcome)} (definitions: "
                   f"{', '.join(map(safe, table.definitions(outcome)))})")
        used_rows = {id(r) for r in selected.rows}
        for row in table.rows:
            if row.outcome != outcome:
                continue
            used = "*" if id(row) in used_rows else " "
            count = f"{row.events}/{row.total}" if row.reported else "not reported"
            click.echo(f" {used} {safe(row.study):<12} {safe(row.definition):<22} "
                       f"{count:<13}{'primary' if row.primary else ''}")
            quote = row.extra.get("quote", "")
            if quote:
                click.echo(f"      \"{safe(quote)}\" ({safe(row.extra.get('location', ''))})")
        for note in selected.notes:
            click.echo(f"    note: {safe(note)}")
    click.echo("\n* = the count an analysis uses with these options")


@main.command("report")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.argument("sens_dir", required=False, type=click.Path(path_type=Path))
@click.option("--design", "design_dir", type=click.Path(path_type=Path),
              help="A design directory (bayes-dress design) to add as a section.")
@click.option("--calibration", "calibration_dir", type=click.Path(path_type=Path),
              help="A calibration directory (bayes-dress calibrate) to add as a section.")
@click.option("--quiet", "-q", is_flag=True, help="No progress messages.")
@user_errors
def report_command(run_dir, sens_dir, design_dir, calibration_dir, quiet):
    """Write RUN_DIR/report.html: a self-contained HTML report of a run.

    SENS_DIR, a sensitivity-sweep directory, adds its scenarios and robustness checks;
    --design adds the design of the next trial, --calibration a simulation-based
    calibration of the engine.
    """
    Progress(quiet)(f"reading {run_dir}" + (f" and {sens_dir}" if sens_dir else "")
                    + " and writing the report")
    from bayes_dress.report import write_report

    out = write_report(run_dir, sens_dir, design_dir=design_dir,
                       calibration_dir=calibration_dir)
    click.echo(f"Report written to {out}")


@main.command("models")
@user_errors
def models_command():
    """List the models, their equations and default priors with rationale."""
    from bayes_dress.spec.models import model_specs
    from bayes_dress.spec.priors import FAMILIES

    for spec in model_specs().values():
        outcomes = "" if spec.outcomes == 1 else f"  [{spec.outcomes} outcomes together]"
        click.echo(f"{spec.name}: {spec.title}{outcomes}")
        for equation in spec.equations:
            click.echo(f"    {equation}")
        for param in spec.parameters.values():
            click.echo(f"  {param.name} ~ {param.default}   ({param.description})")
            click.echo(click.wrap_text(param.rationale, initial_indent="      ",
                                       subsequent_indent="      ", width=88))
        click.echo("")
    click.echo(f"Prior families: {choices(FAMILIES)}")


@main.command("plot")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--benefit-threshold",
              type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help="Benefit-risk plot: success rate above this is a benefit [the run's].")
@click.option("--risk-threshold",
              type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help="Benefit-risk plot: severe-AE rate below this is acceptable [the run's].")
@click.option("--quiet", "-q", is_flag=True, help="No progress messages.")
@user_errors
def plot_command(run_dir, benefit_threshold, risk_threshold, quiet):
    """Redraw RUN_DIR/plots from the run's saved files (no refit)."""
    from bayes_dress.plots.workers import PlotWorkers

    progress = Progress(quiet)
    with PlotWorkers.start() as plot_workers:
        progress(f"reading {run_dir}")
        from bayes_dress.plots.make import plot_run, stale_report_note
        from bayes_dress.rundir.layout import PLOT_INDEX, PLOTS_DIR

        index = plot_run(run_dir, benefit_threshold=benefit_threshold,
                         risk_threshold=risk_threshold, workers=plot_workers,
                         progress=progress)
    click.echo(f"{len(index)} plots (PNG and SVG) written to {run_dir / PLOTS_DIR}/; "
               f"list: {run_dir / PLOTS_DIR / PLOT_INDEX}")
    note = stale_report_note(run_dir)
    if note:
        click.echo(note)


main.add_command(design_command)
main.add_command(calibrate_command)


def entry_point() -> None:
    """The ``bayes-dress`` executable: :func:`main`, then the process ends at once.

    By the time a command returns, everything it writes is on disk and its workers are
    stopped; what is left of a normal exit is tearing down the scientific stack's modules
    one by one, which takes half a second and achieves nothing. Output is flushed first;
    the exit status is the command's.
    """
    try:
        main()
    except SystemExit as done:
        code = done.code
    else:
        code = 0
    if not isinstance(code, int):
        if code is not None:
            print(code, file=sys.stderr)
        code = 0 if code is None else 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry_point()
