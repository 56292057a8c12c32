"""`aerec tune`: hyperparameter search on validation folds (Optuna, optional extra)."""

from __future__ import annotations

import click

from aerec.cli.options import data_mapping, data_options, warnings_as_lines


@click.command("tune")
@click.argument("model")
@click.option("--dataset", "-d", required=True, help="Registry name or file path.")
@click.option("--protocol", "-p", default=None, help="Default: strong for top-N models, ratings-kfold for rating models.")
@click.option("--trials", type=click.IntRange(1, 10_000), default=20, show_default=True)
@click.option("--folds", type=click.IntRange(2, 20), default=5, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Fixed model settings (e.g. epochs=50).")
@click.option("--protocol-set", "protocol_sets", multiple=True, metavar="KEY=VALUE",
              help="Protocol option, e.g. valid_frac=0.1; repeatable (as in train and split).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML with a [data] section.")
@data_options
@click.option("--timeout", type=float, default=None, help="Stop after this many seconds.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="TOML file for the best config.")
@click.option("--json", "as_json", is_flag=True)
def tune(model, dataset, protocol, trials, folds, seed, sets, protocol_sets, config_file, timeout, out, as_json,
         **data_params):
    """Search MODEL's hyperparameters on fold 0's validation part (never test data)."""
    import json

    from aerec import config as cfgmod
    from aerec import data, models, protocols, ui
    from aerec.data import feedback
    from aerec.data import options as dataopts
    from aerec.tune import tune as run_tune
    from aerec.tune import write_toml

    cls = models.get(model)
    protocol = protocol or ("ratings-kfold" if cls.task == "rating" else "strong")
    file = cfgmod.load_toml(config_file) if config_file else {}
    mapping = data_mapping(data_params, file.get("data"))
    given = {**file.get("protocol", {}), **cfgmod.parse_set(list(protocol_sets))}
    base = protocols.get(protocol, folds=folds, **{"seed": seed, **given}).options()
    with warnings_as_lines():
        inter = data.load(dataset, **dataopts.columns_only(mapping))
    opts, line = feedback.protocol_options(inter, feedback.of(inter, mapping), protocol, base, set(given))
    ui.info(line)
    opts = {k: v for k, v in opts.items() if k not in ("n_folds", "repeats", "seed")}
    result = run_tune(model, inter, protocol, trials, seed=seed, folds=folds,
                      fixed=cfgmod.parse_set(list(sets)), timeout=timeout, protocol_options=opts)
    out = out or f"{model}-tuned.toml"
    write_toml(result, out, dataset, protocol)
    if mapping:  # so that `aerec train --config OUT` reads the data the same way
        from pathlib import Path

        from aerec import fsutil

        fsutil.write_text(out, Path(out).read_text() + "\n" + cfgmod.dumps_toml({"data": mapping}))
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        click.echo(f"best validation score {result['best_value']:.5f} after {result['trials']} trials; "
                   f"config written to {out} (use: aerec train {model} --config {out})")


commands = [tune]
