"""`aerec bench`: the comparison tables in one command."""

from __future__ import annotations

import click

from aerec.cli.options import data_mapping, data_options, ks_option, warnings_as_lines


def _split(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


@click.command("bench")
@click.option("--suite", type=click.Choice(["quick", "paper"]), default="quick", show_default=True,
              help="quick: cut budgets (minutes); paper: reference hyperparameters and full epochs.")
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
@click.option("--json", "as_json", is_flag=True, help="Print results.json to stdout.")
def bench(suite, datasets, models, folds, seed, jobs, ranking_protocol, protocol_sets, config_file, ks, out, as_json,
          **data_params):
    """Run every model on every data set with its proper protocol and write tables and plots.

    Finished (model, data set, fold) cells are cached under OUT, so a rerun resumes.
    """
    import json

    from aerec import config as cfgmod
    from aerec.bench import run_bench
    from aerec.bench.report import markdown

    file = cfgmod.load_toml(config_file) if config_file else {}
    with warnings_as_lines():
        result = run_bench(out, suite=suite, datasets=_split(datasets), models=_split(models), folds=folds,
                           seed=seed, jobs=jobs, ranking_protocol=ranking_protocol,
                           data_options=data_mapping(data_params, file.get("data")) or None,
                           protocol_options={**file.get("protocol", {}), **cfgmod.parse_set(list(protocol_sets))}
                           or None, ks=ks)
    if as_json:
        click.echo(json.dumps(result["rows"], indent=2))
        return
    click.echo(markdown(result["rows"]))
    click.echo(f"report: {out}/results.md (also results.csv, results.json, run.json)")
    if result["plots"]:
        click.echo(f"plots: {', '.join(result['plots'])}")


commands = [bench]
