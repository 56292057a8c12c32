"""`aerec tune`: hyperparameter search on validation folds (Optuna, optional extra)."""

from __future__ import annotations

import click


@click.command("tune")
@click.argument("model")
@click.option("--dataset", required=True, help="Registry name or file path.")
@click.option("--protocol", default=None, help="Default: strong for top-N models, ratings-kfold for rating models.")
@click.option("--trials", type=click.IntRange(1, 10_000), default=20, show_default=True)
@click.option("--folds", type=click.IntRange(2, 20), default=5, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Fixed model settings (e.g. epochs=50).")
@click.option("--timeout", type=float, default=None, help="Stop after this many seconds.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="TOML file for the best config.")
@click.option("--json", "as_json", is_flag=True)
def tune(model, dataset, protocol, trials, folds, seed, sets, timeout, out, as_json):
    """Search MODEL's hyperparameters on fold 0's validation part (never test data)."""
    import json

    from aerec import config as cfgmod
    from aerec import data, deps, models
    from aerec.tune import tune as run_tune
    from aerec.tune import write_toml

    cls = models.get(model)
    deps.check(cls)  # before the data set loads; aerec.tune checks for Optuna itself
    protocol = protocol or ("ratings-kfold" if cls.task == "rating" else "strong")
    result = run_tune(model, data.load(dataset), protocol, trials, seed=seed, folds=folds,
                      fixed=cfgmod.parse_set(list(sets)), timeout=timeout)
    out = out or f"{model}-tuned.toml"
    write_toml(result, out, dataset, protocol)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        click.echo(f"best validation score {result['best_value']:.5f} after {result['trials']} trials; "
                   f"config written to {out} (use: aerec train {model} --config {out})")


commands = [tune]
