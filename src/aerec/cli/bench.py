"""`aerec bench`: the comparison tables in one command."""

from __future__ import annotations

import click

from aerec.cli.options import (
    data_mapping,
    data_options,
    device_options,
    ks_option,
    seconds_option,
    warnings_as_lines,
)


def _split(text: str | None) -> list[str] | None:
    """None when the option is absent; a list (maybe empty, which run_bench refuses) when given."""
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]


@click.command("bench")
@click.option("--suite", type=click.Choice(["quick", "paper", "tuned"]), default="quick", show_default=True,
              help="quick: cut budgets (minutes); paper: reference hyperparameters and full epochs; "
                   "tuned: each model searched inside every fold with the same budget, beside its paper row.")
@click.option("--datasets", "--dataset", "-d", "datasets", default="ml-100k", show_default=True,
              help="Comma-separated data set names or paths.")
@click.option("--models", default=None, help="Comma-separated model names (default: every model of the suite).")
@click.option("--folds", type=click.IntRange(2, 20), default=5, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--jobs", type=click.IntRange(1, 64), default=1, show_default=True, help="Cells run in parallel processes.")
@click.option("--ranking-protocol", "--protocol", "-p", "ranking_protocol", type=click.Choice(["strong", "weak"]),
              default="strong", show_default=True,
              help="Protocol for the top-N models: strong generalization, or RecBole's weak 8:1:1 recipe.")
@click.option("--protocol-set", "protocol_sets", multiple=True, metavar="KEY=VALUE",
              help="Option of the top-N protocol, e.g. valid_frac=0.1; repeatable (as in train and split).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML with a [data] section.")
@data_options
@ks_option
@click.option("--out", "out", type=click.Path(file_okay=False), required=True, help="Output directory (resumable).")
@click.option("--overwrite", is_flag=True, help="Start afresh: the new run replaces OUT once it is complete.")
@click.option("--smoke", is_flag=True, help="Installation check: every model of the suite on 3 folds with "
              "1-3 epochs each (replaces --folds); the numbers mean nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print results.json to stdout.")
@click.option("--trials", type=click.IntRange(1, 10_000), default=8, show_default=True,
              help="tuned: finished trials per fold and model (earlier runs count: resume).")
@seconds_option("--tune-timeout", default=None,
              help="tuned: seconds of trial time per fold and model; a running trial stops at the cap.")
@click.option("--tune-clock", type=click.Choice(["wall", "cpu"]), default="wall", show_default=True,
              help="tuned: measure --tune-timeout on the wall clock or in CPU seconds (fair on a shared machine).")
@click.option("--reference", default="run", show_default=True,
              help="tuned: where the reference rows come from: run (paper-suite cells, run here if absent), "
                   "none, or a finished --suite paper directory.")
@click.option("--storage", default=None, help="tuned: Optuna storage URL shared by all studies (default: SQLite "
                                              "files under OUT/studies).")
@click.option("--tune-final", type=click.Choice(["best-trial", "full"]), default="best-trial", show_default=True,
              help="tuned: test the best trial's model as the time cap left it, or (full) first train that "
                   "setting to its own end when the cap cut it short.")
@click.option("--tune-on", type=click.Choice(["fold", "tuning-users"]), default="fold", show_default=True,
              help="tuned: one study per model on tuning-only users (--tune-share of the users, in no fold; the "
                   "folds are of the rest), or one study per fold on its training and validation users.")
@click.option("--tune-share", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.15,
              show_default=True, help="tuned, --tune-on tuning-users: the share of users set aside for tuning.")
@click.option("--report-only", is_flag=True,
              help="Run nothing; write the report from the cells finished so far and name the unfinished ones.")
@click.option("--space-file", type=click.Path(dir_okay=False), default=None,
              help="tuned: TOML with [space.MODEL] tables overriding the models' search spaces.")
@device_options
@click.option("--trial-jobs", type=click.IntRange(1, 256), default=1, show_default=True,
              help="tuned: trials of a study run at once, as processes sharing its storage.")
def bench(suite, datasets, models, folds, seed, jobs, ranking_protocol, protocol_sets, config_file, ks, out, overwrite,
          smoke, as_json, trials, tune_timeout, tune_clock, tune_final, tune_on, tune_share, reference, storage,
          report_only, space_file, device, precision, trial_jobs, **data_params):
    """Run every model on every data set with its proper protocol and write tables and plots.

    Finished (model, data set, fold) cells are cached under OUT, so a rerun resumes.
    """
    import json

    from aerec import config as cfgmod
    from aerec import devices
    from aerec import models as registry
    from aerec.bench import run_bench
    from aerec.bench.report import markdown

    if trial_jobs > 1 and suite != "tuned":
        from aerec.errors import ConfigError

        raise ConfigError("--trial-jobs runs a study's trials at once; it is for --suite tuned")
    # every model on the chosen device (models without a device setting stay on the CPU)
    on_device, where = devices.model_settings(device, precision, [registry.get(m) for m in registry.names()])
    if suite == "tuned":
        from aerec import storage as storagemod
        from aerec.bench.tuned import run_tuned, space_file_overrides

        storage = storagemod.check(storage, allow_memory=True)  # before any data is read

        result = run_tuned(out, datasets=_split(datasets), models=_split(models), folds=folds, seed=seed, jobs=jobs,
                           trials=trials, timeout=tune_timeout, clock=tune_clock, reference=reference, report_only=report_only, storage=storage, final=tune_final,
                           tune_on=tune_on, tune_share=tune_share,
                           space_overrides=space_file_overrides(space_file) if space_file else None,
                           overrides={m: o for m, o in on_device.items() if o} or None, where=where,
                           trial_jobs=trial_jobs)
        if as_json:
            click.echo(json.dumps(result["comparison"], indent=2))
        else:
            click.echo(f"report: {out}/results.md (also comparison.json, tuning-users.json, trials.json, run.json)")
        return
    file = cfgmod.load_toml(config_file) if config_file else {}
    with warnings_as_lines():
        result = run_bench(out, suite=suite, datasets=_split(datasets), models=_split(models), folds=folds,
                           seed=seed, jobs=jobs, ranking_protocol=ranking_protocol,
                           data_options=data_mapping(data_params, file.get("data")) or None,
                           protocol_options={**file.get("protocol", {}), **cfgmod.parse_set(list(protocol_sets))}
                           or None, ks=ks, overwrite=overwrite, smoke=smoke, report_only=report_only,
                           overrides={m: o for m, o in on_device.items() if o} or None, where=where)
    if as_json:
        click.echo(json.dumps(result["rows"], indent=2))
        return
    click.echo(markdown(result["rows"]))
    click.echo(f"report: {out}/results.md (also results.csv, results.json, run.json)")
    if result["plots"]:
        click.echo(f"plots: {', '.join(result['plots'])}")


commands = [bench]
