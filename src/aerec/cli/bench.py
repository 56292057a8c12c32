"""`aerec bench`: the comparison tables in one command."""

from __future__ import annotations

import click


def _split(text: str | None) -> list[str] | None:
    """None when the option is absent; a list (maybe empty, which run_bench refuses) when given."""
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]


@click.command("bench")
@click.option("--suite", type=click.Choice(["quick", "paper"]), default="quick", show_default=True,
              help="quick: cut budgets (minutes); paper: reference hyperparameters and full epochs.")
@click.option("--datasets", default="ml-100k", show_default=True, help="Comma-separated data set names or paths.")
@click.option("--models", default=None, help="Comma-separated model names (default: every model of the suite).")
@click.option("--folds", type=click.IntRange(2, 20), default=5, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--jobs", type=click.IntRange(1, 64), default=1, show_default=True, help="Cells run in parallel processes.")
@click.option("--ranking-protocol", type=click.Choice(["strong", "weak"]), default="strong", show_default=True,
              help="Protocol for the top-N models: strong generalization, or RecBole's weak 8:1:1 recipe.")
@click.option("--out", "out", type=click.Path(file_okay=False), required=True, help="Output directory (resumable).")
@click.option("--overwrite", is_flag=True, help="Start afresh: the new run replaces OUT once it is complete.")
@click.option("--smoke", is_flag=True, help="Installation check: every model of the suite on 3 folds with "
              "1-3 epochs each (replaces --folds); the numbers mean nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print results.json to stdout.")
def bench(suite, datasets, models, folds, seed, jobs, ranking_protocol, out, overwrite, smoke, as_json):
    """Run every model on every data set with its proper protocol and write tables and plots.

    Finished (model, data set, fold) cells are cached under OUT, so a rerun resumes.
    """
    import json

    from aerec.bench import run_bench
    from aerec.bench.report import markdown

    result = run_bench(out, suite=suite, datasets=_split(datasets), models=_split(models), folds=folds,
                       seed=seed, jobs=jobs, ranking_protocol=ranking_protocol, overwrite=overwrite, smoke=smoke)
    if as_json:
        click.echo(json.dumps(result["rows"], indent=2))
        return
    click.echo(markdown(result["rows"]))
    click.echo(f"report: {out}/results.md (also results.csv, results.json, run.json)")
    if result["plots"]:
        click.echo(f"plots: {', '.join(result['plots'])}")


commands = [bench]
