"""`aerec split`: export a protocol's folds as plain CSV files (see aerec.protocols.export)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from aerec import config as cfgmod
from aerec import protocols, ui
from aerec.cli.options import data_mapping, data_options, warnings_as_lines
from aerec.errors import ConfigError


@click.command("split")
@click.argument("dataset_arg", metavar="[DATASET]", required=False)
@click.option("--dataset", "-d", help="Data set name or file (or give it as the first argument).")
@click.option("--protocol", "-p", "protocol_name", required=True, type=click.Choice(protocols.names()),
              help="Evaluation protocol.")
@click.option("--folds", type=int, default=None, help="Folds (repeats for ratings-holdout); default per protocol.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--n-heldout", type=int, default=None,
              help="Strong/temporal-user: N validation and N test users instead of folds.")
@click.option("--protocol-set", "--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Protocol option, e.g. valid_frac=0.1; repeatable (--set is the older spelling).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="TOML with a [data] and/or [protocol] section (a run's config.toml works).")
@data_options
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--overwrite", is_flag=True, help="Replace an earlier export of another split in --out.")
@click.option("--json", "as_json", is_flag=True, help="Print split.json to standard output.")
def split(dataset_arg, dataset, protocol_name, folds, seed, n_heldout, sets, config_file, out_dir, overwrite, as_json,
          **data_params):
    """Split DATASET (a name or a file) with a protocol and write DIR/fold-<f>/*.csv.

    The export is built beside DIR and swapped in when complete: a failed or interrupted split
    leaves an earlier export as it was. Rerunning the same split replaces it; another split
    needs --overwrite.
    """
    from aerec.data import feedback, load  # lazy: the data layer is heavy and optional for other commands
    from aerec.data import options as options_mod

    if dataset_arg and dataset and dataset_arg != dataset:
        raise ConfigError(f"two data sets given ({dataset_arg} and --dataset {dataset}); give one")
    dataset = dataset or dataset_arg
    if not dataset:
        raise ConfigError("DATASET is required (as the first argument or with -d/--dataset)")
    file = cfgmod.load_toml(config_file) if config_file else {}
    options = {**file.get("protocol", {}), **cfgmod.parse_set(list(sets))}
    given = set(options)
    options.setdefault("seed", seed)
    if n_heldout is not None:
        options.setdefault("n_heldout", n_heldout)
    protocol = protocols.get(protocol_name, folds=folds, **options)
    protocols.export.check_target(Path(out_dir), protocol, None)  # before the data is read
    mapping = data_mapping(data_params, file.get("data"))
    with warnings_as_lines():
        data = load(dataset, **options_mod.columns_only(mapping))
    resolved, line = feedback.protocol_options(data, feedback.of(data, mapping), protocol_name, protocol.options(),
                                               given)
    ui.info(line)
    if resolved != protocol.options():
        protocol = protocols.get(protocol_name, **resolved)
    ui.info(f"splitting {data.name} ({len(data):,} interactions) with {protocol_name}")
    record = protocols.export.export_split(protocol, data, out_dir, overwrite=overwrite)
    if as_json:
        click.echo(json.dumps(record, indent=2, default=str))
    else:
        click.echo(_summary(record, out_dir))


def _summary(record: dict, out_dir) -> str:
    """A few human lines: the protocol, then per fold the users and interactions of each part."""
    lines = [f"{record.get('protocol', '')} split, {record['n_folds']} fold(s), written to {out_dir}"]
    for f in record["folds"]:
        parts = []
        for key, v in f.items():
            if key == "fold":
                continue
            if isinstance(v, dict):
                inner = ", ".join(f"{k.replace('_', ' ')} {x:,}" for k, x in v.items() if isinstance(x, int))
                parts.append(f"{key} ({inner})")
            elif isinstance(v, int):
                parts.append(f"{key.replace('_', ' ')} {v:,}")
        lines.append(f"  fold-{f['fold']}: " + "; ".join(parts))
    return "\n".join(lines)


commands = [split]
