"""`aerec data fetch|list|info|synth`: thin wrappers over aerec.data."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from aerec.cli.options import data_mapping, data_options, warnings_as_lines
from aerec.errors import DataError

_warnings_as_lines = warnings_as_lines


def _emit(obj, as_json: bool, text: str) -> None:
    click.echo(json.dumps(obj, indent=2, default=str) if as_json else text)


def _summary_text(s: dict) -> str:
    lines = [
        f"{s['name']}: {s['users']:,} users, {s['items']:,} items, {s['interactions']:,} interactions, "
        f"density {s['density']:.4%}",
        f"  {_values_words(s)}, timestamps: {'yes' if s['has_timestamps'] else 'no'}, "
        f"titles: {'yes' if s['has_titles'] else 'no'}",
    ]
    if "rating_histogram" in s:
        hist = s["rating_histogram"]
        total = sum(hist.values()) or 1
        what = "value" if s.get("values") == "counts" else "rating"
        lines.append(f"  {what} histogram{' (log bins)' if s.get('histogram_bins') == 'log' else ''}:")
        for k, v in hist.items():
            lines.append(f"    {k:>9}  {v:>10,}  {v / total:6.1%}")
    if "feedback" in s:
        fb = s["feedback"]
        how = "guessed" if fb["guessed"] else "declared"
        kept = "every row kept" if fb["threshold"] is None else f"top-N models learn from value > {fb['threshold']:g}"
        lines.append(f"  feedback: {fb['feedback']} ({how}: {fb['reason']}); {kept}")
    if "binarized" in s:
        b = s["binarized"]
        lines.append(f"  binarized (rating {b['threshold']}): {b['interactions']:,} interactions, "
                     f"{b['users']:,} users, {b['items']:,} items")
    if s.get("source"):
        lines.append(f"  source: {s['source']}")
    if s.get("ids"):
        lines.append(f"  ids: {s['ids']}")
    return "\n".join(lines)


def _values_words(s: dict) -> str:
    if s.get("values") == "counts":
        return "values: counts"
    return f"ratings: {'yes' if s['has_ratings'] else 'no'}"


def _summary(inter) -> dict:
    s = inter.summary()
    for key in ("source", "ids", "duplicates_dropped", "duplicates", "unused_columns"):
        if key in inter.meta:
            s[key] = inter.meta[key]
    if "values" in inter.meta:  # a format's note on its value column (MSD drops play counts)
        s["values_note"] = inter.meta["values"]
    return s


@click.group("data")
def data_group() -> None:
    """Fetch, list, inspect and synthesize data sets."""


@data_group.command("fetch")
@click.argument("name")
@click.option("--path", type=click.Path(path_type=Path), help="Your copy: the official zip, its folder, or the ratings file.")
@click.option("--force", is_flag=True, help="Rebuild the cache entry even if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output on stdout.")
def fetch_cmd(name: str, path: Path | None, force: bool, as_json: bool) -> None:
    """Download (or read from --path) a registered data set into the cache."""
    from aerec import data
    from aerec.data import cache

    t = time.perf_counter()
    with _warnings_as_lines():
        inter = data.fetch(name, path=path, force=force)
    s = _summary(inter)
    s["seconds"] = round(time.perf_counter() - t, 3)
    s["cache"] = str(cache.paths(inter.name)[0])
    _emit(s, as_json, f"{_summary_text(s)}\n  cached at {s['cache']} ({s['seconds']:.1f} s)")


@data_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output on stdout.")
def list_cmd(as_json: bool) -> None:
    """Every registered data set and whether it is cached."""
    from aerec import data

    rows = data.list_datasets()
    lines = [f"{'name':<8}  {'status':<8}  {'interactions':>12}  description"]
    for r in rows:
        n = f"{r['interactions']:,}" if r["interactions"] else "-"
        lines.append(f"{r['name']:<8}  {r['status']:<8}  {n:>12}  {r['description']}")
    lines.append(f"cache: {data.home()}")
    _emit(rows, as_json, "\n".join(lines))


@data_group.command("info")
@click.argument("name_or_path", required=False)
@click.option("--dataset", "-d", help="Data set name or file (or give it as the first argument).")
@data_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output on stdout.")
def info_cmd(name_or_path, dataset, as_json, **data_params) -> None:
    """Users, items, interactions, density, rating histogram and what the values mean."""
    from aerec import data

    if name_or_path and dataset and name_or_path != dataset:
        raise DataError(f"two data sets given ({name_or_path} and --dataset {dataset}); give one")
    target = dataset or name_or_path
    if not target:
        raise DataError("NAME_OR_PATH is required (as the first argument or with -d/--dataset)")
    with _warnings_as_lines():
        inter = data.load(target, **data_mapping(data_params))
    s = _summary(inter)
    _emit(s, as_json, _summary_text(s))


@data_group.command("synth")
@click.option("--users", type=click.IntRange(1), required=True)
@click.option("--items", type=click.IntRange(1), required=True)
@click.option("--interactions", type=click.IntRange(1), required=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--rank", type=click.IntRange(1), default=16, show_default=True, help="Rank of the user/item factors.")
@click.option("--out", type=click.Path(path_type=Path),
              help="Write the data: .npz (aerec's cache format), .parquet, .csv or .tsv.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output on stdout.")
def synth_cmd(users, items, interactions, seed, rank, out, as_json) -> None:
    """Synthetic ratings with low-rank signal and power-law item popularity."""
    from aerec import data

    t = time.perf_counter()
    inter = data.synth(users, items, interactions, seed=seed, rank=rank)
    s = _summary(inter)
    s["seconds"] = round(time.perf_counter() - t, 3)
    if out is not None:
        write(inter, out)
        s["out"] = str(out)
    text = _summary_text(s) + f"\n  built in {s['seconds']:.1f} s" + (f", written to {out}" if out else "")
    _emit(s, as_json, text)


def write(inter, out: Path) -> None:
    """Write interactions by extension; text and Parquet carry original ids."""
    import pandas as pd

    from aerec import fsutil
    from aerec.data import cache

    ext = out.suffix.lower()
    if out.is_dir():
        raise DataError(f"{out}: is a folder; give a file name")
    if ext == ".npz":
        cache.write_npz(inter, out)
        return
    if ext not in (".parquet", ".pq", ".csv", ".tsv"):
        raise DataError(f"{out}: unknown output format (use .npz, .parquet, .csv or .tsv)")
    cols = {"user": inter.user_ids[inter.user], "item": inter.item_ids[inter.item]}
    if inter.rating is not None:
        cols["rating"] = inter.rating
    if inter.timestamp is not None:
        cols["timestamp"] = inter.timestamp
    df = pd.DataFrame(cols)
    with fsutil.atomic_path(out) as tmp:
        if ext in (".parquet", ".pq"):
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, sep="\t" if ext == ".tsv" else ",", index=False)


commands = [data_group]
