"""`aerec split`: export a protocol's folds as plain CSV files (see aerec.protocols.export)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from aerec import config as cfgmod
from aerec import protocols, ui


@click.command("split")
@click.argument("dataset")
@click.option("--protocol", "-p", "protocol_name", required=True, type=click.Choice(protocols.names()),
              help="Evaluation protocol.")
@click.option("--folds", type=int, default=None, help="Folds (repeats for ratings-holdout); default per protocol.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--n-heldout", type=int, default=None,
              help="Strong/temporal-user: N validation and N test users instead of folds.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Other protocol options.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--overwrite", is_flag=True, help="Replace an earlier export of another split in --out.")
@click.option("--json", "as_json", is_flag=True, help="Print split.json to standard output.")
def split(dataset, protocol_name, folds, seed, n_heldout, sets, out_dir, overwrite, as_json):
    """Split DATASET (a name or a file) with a protocol and write DIR/fold-<f>/*.csv.

    The export is built beside DIR and swapped in when complete: a failed or interrupted split
    leaves an earlier export as it was. Rerunning the same split replaces it; another split
    needs --overwrite.
    """
    from aerec.data import load  # lazy: the data layer is heavy and optional for other commands

    options = cfgmod.parse_set(list(sets))
    options.setdefault("seed", seed)
    if n_heldout is not None:
        options.setdefault("n_heldout", n_heldout)
    protocol = protocols.get(protocol_name, folds=folds, **options)
    protocols.export.check_target(Path(out_dir), protocol, None)  # before the data is read
    data = load(dataset)
    ui.info(f"splitting {data.name} ({len(data)} interactions) with {protocol!r}")
    record = protocols.export.export_split(protocol, data, out_dir, overwrite=overwrite)
    if as_json:
        click.echo(json.dumps(record, indent=2, default=str))
    else:
        for f in record["folds"]:
            parts = {k: v for k, v in f.items() if k != "fold"}
            click.echo(f"fold-{f['fold']}: {json.dumps(parts)}")
        click.echo(f"wrote {record['n_folds']} fold(s) to {out_dir}")


commands = [split]
