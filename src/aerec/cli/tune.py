"""`aerec tune`: hyperparameter search inside one fold (Optuna, optional extra), resumable."""

from __future__ import annotations

from pathlib import Path

import click

from aerec.cli.options import data_mapping, data_options, device_options, seconds_option, warnings_as_lines


def space_file_overrides(path, cls, model: str) -> dict:
    """[space] (for MODEL) or [space.MODEL] tables of a TOML file -> overrides."""
    from aerec import config as cfgmod
    from aerec.errors import ConfigError
    from aerec.models import space as spacemod

    table = cfgmod.load_toml(path).get("space")
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: no [space] table")
    nested = table.get(model)
    if isinstance(nested, dict) and not {"type"} & set(nested):
        table = nested
    else:
        table = {k: v for k, v in table.items() if not (isinstance(v, dict) and "type" not in v)}
    return spacemod.table_overrides(table, cls)


@click.command("tune")
@click.argument("model")
@click.option("--dataset", "-d", required=True, help="Registry name or file path.")
@click.option("--protocol", "-p", default=None, help="Default: strong for top-N models, ratings-kfold for rating models.")
@click.option("--trials", type=click.IntRange(1, 10_000), default=20, show_default=True,
              help="Finished trials the study should hold; trials of an earlier run count (resume).")
@click.option("--folds", type=click.IntRange(2, 20), default=5, show_default=True)
@click.option("--fold", type=click.IntRange(0, 19), default=0, show_default=True,
              help="The fold whose training and validation parts are searched (0-based); its test part is never read.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Fixed model settings (e.g. epochs=50).")
@click.option("--space", "space_items", multiple=True, metavar="KEY=SPEC",
              help="Override the model's search space: lr=1e-4:1e-2:log, latent=32:400, hidden=[600]|[300], dropout=off.")
@click.option("--space-file", type=click.Path(dir_okay=False), default=None,
              help="TOML with a [space] table (or [space.MODEL]) of such specs or spec tables.")
@click.option("--protocol-set", "protocol_sets", multiple=True, metavar="KEY=VALUE",
              help="Protocol option, e.g. valid_frac=0.1; repeatable (as in train and split).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML with a [data] section.")
@data_options
@seconds_option("--timeout", default=None, help="Seconds of trial time in total (over resumed runs).")
@click.option("--storage", default=None, help="Optuna storage URL for a shared study (default: SQLite in --dir).")
@click.option("--dir", "directory", type=click.Path(file_okay=False), default=None,
              help="Study directory (study.db, tuning.json). Default: runs/tune-MODEL-DATASET-PROTOCOL-foldF-seedS.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="TOML file for the best config.")
@click.option("--select", type=click.Choice(["paired", "best"]), default="paired", show_default=True,
              help="paired: keep the starting (default) setting unless the best trial beats it by a one-sided "
                   "paired t-test across validation users at p < 0.05; best: the best validation mean.")
@device_options
@click.option("--trial-jobs", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Trials run at once, as processes sharing the study's storage (seeds stay per trial number).")
@click.option("--json", "as_json", is_flag=True)
def tune(model, dataset, protocol, trials, folds, fold, seed, sets, space_items, space_file, protocol_sets, config_file,
         timeout, storage, directory, out, select, device, precision, trial_jobs, as_json, **data_params):
    """Search MODEL's own space on one fold's training + validation parts (never its test part).

    Rerunning the same command resumes the study from its storage until it holds --trials.
    """
    import json

    from aerec import config as cfgmod
    from aerec import data, deps, devices, models, protocols, ui
    from aerec import storage as storagemod
    from aerec.data import feedback
    from aerec.data import options as dataopts
    from aerec.models import space as spacemod
    from aerec.tune import tune as run_tune
    from aerec.tune import write_toml

    cls = models.get(model)
    deps.check(cls)  # before the data set loads; aerec.tune checks for Optuna itself
    storage = storagemod.check(storage)  # a bad URL fails here, before any data is read
    # the device is a fixed setting of every trial (left out when it is the model's default, so a
    # CPU study keeps its name); models without a device setting run on the CPU
    on_device, where = devices.model_settings(device, precision, [cls])
    protocol = protocol or ("ratings-kfold" if cls.task == "rating" else "strong")
    overrides = space_file_overrides(space_file, cls, model) if space_file else {}
    overrides.update(spacemod.parse_overrides(space_items, cls))
    spacemod.apply_overrides(spacemod.model_space(cls), overrides, cls)  # a bad space fails before the data loads
    label = Path(dataset).stem if ("/" in dataset or "." in dataset) else dataset
    directory = directory or str(Path("runs") / f"tune-{model}-{label}-{protocol}-fold{fold}-seed{seed}")
    file = cfgmod.load_toml(config_file) if config_file else {}
    mapping = data_mapping(data_params, file.get("data"))
    given = {**file.get("protocol", {}), **cfgmod.parse_set(list(protocol_sets))}
    from aerec.tune import refuse_leaky

    refuse_leaky(protocols.get(protocol, **{"seed": seed, **given}))  # before --folds, which weak has no use for
    base = protocols.get(protocol, folds=folds, **{"seed": seed, **given}).options()
    with warnings_as_lines():
        inter = data.load(dataset, **dataopts.columns_only(mapping))
    opts, line = feedback.protocol_options(inter, feedback.of(inter, mapping), protocol, base, set(given))
    ui.info(line)
    opts = {k: v for k, v in opts.items() if k not in ("n_folds", "repeats", "seed")}
    ui.info(devices.describe(where["device"], where["precision"]))
    result = run_tune(model, inter, protocol, trials, seed=seed, folds=folds,
                      fixed={**on_device[cls.name], **cfgmod.parse_set(list(sets))}, timeout=timeout, fold=fold,
                      space_overrides=overrides, storage=storage, directory=directory, dataset_label=label,
                      protocol_options=opts, select=select, where=where, trial_jobs=trial_jobs)
    out = out or f"{model}-tuned.toml"
    write_toml(result, out, dataset, protocol)
    if mapping:  # so that `aerec train --config OUT` reads the data the same way
        from aerec import fsutil

        fsutil.write_text(out, Path(out).read_text() + "\n" + cfgmod.dumps_toml({"data": mapping}))
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        click.echo(f"best validation {result['metric']} {result['best_value']:.5f} after {result['trials']} trials "
                   f"({result['pruned']} pruned) on fold {fold}; config written to {out} "
                   f"(use: aerec train {model} --config {out}); study in {directory}")


commands = [tune]
