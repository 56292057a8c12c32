"""`aerec recommend`: top-k items for a known user, a new user, or every stored user."""

from __future__ import annotations

import json
from pathlib import Path

import click

from aerec.errors import ConfigError, DataError


def _ids(text: str | None) -> list[str]:
    return [] if not text else [x.strip() for x in text.split(",") if x.strip()]


def read_items_file(path: str) -> tuple[list[str], list[float] | None]:
    """One item per line, optionally followed by a rating (comma, tab or space); blank lines and
    lines starting with # are skipped. Ratings must be given on every line or on none."""
    items, ratings = [], []
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot be read ({e})") from None
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.replace(",", " ").split()
        if len(parts) > 2:
            raise DataError(f"{path}:{n}: expected 'ITEM' or 'ITEM RATING', got {line!r}")
        items.append(parts[0])
        if len(parts) == 2:
            try:
                ratings.append(float(parts[1]))
            except ValueError:
                raise DataError(f"{path}:{n}: rating {parts[1]!r} is not a number") from None
    if ratings and len(ratings) != len(items):
        raise DataError(f"{path}: ratings on some lines but not on others")
    return items, (ratings or None)


@click.command("recommend")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--user", "user_id", help="A known user: recommend from its stored history.")
@click.option("--items", "items_text", metavar="ID,ID,...", help="A new user's items (folded in, no retraining).")
@click.option("--items-file", type=click.Path(exists=True, dir_okay=False),
              help="A new user's items, one per line, optionally 'ITEM RATING'.")
@click.option("--ratings", "ratings_text", metavar="R,R,...",
              help="Ratings for --items, in order (rating models; default: the top rating).")
@click.option("--all-users", is_flag=True, help="Every stored user, written to --out as Parquet.")
@click.option("--out", type=click.Path(dir_okay=False), help="Parquet file for --all-users (user, rank, item, score).")
@click.option("-k", "k", type=click.IntRange(1, None), default=10, show_default=True, help="Items per user.")
@click.option("--exclude", "exclude_text", metavar="ID,ID,...", help="Item ids never to recommend.")
@click.option("--include-seen", is_flag=True, help="Allow items already in a stored user's history "
              "(repeat purchases); by default every item the user interacted with is excluded, whatever its rating.")
@click.option("--block", type=click.IntRange(1, None), default=1024, show_default=True,
              help="--all-users: users scored at once (memory is about block x items x 8 bytes).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def recommend(model_dir, user_id, items_text, items_file, ratings_text, all_users, out, k, exclude_text, include_seen,
              block, as_json):
    """Recommend from MODEL_DIR: a model directory, or a run directory (its full model, else fold 0's).

    Known items are excluded: the user's stored history, or the new user's given items. Unknown
    item ids are reported and the rest are used; a new user with no known item gets the most
    popular items, and the output says so. Rating models rank by predicted rating.
    """
    from aerec import serve

    sources = [name for name, given in (("--user", user_id is not None), ("--items", items_text is not None),
                                        ("--items-file", items_file is not None), ("--all-users", all_users)) if given]
    if len(sources) != 1:
        raise ConfigError("give exactly one of --user, --items, --items-file or --all-users"
                          + (f" (got {', '.join(sources)})" if sources else ""))
    if all_users and not out:
        raise ConfigError("--all-users writes a Parquet file: give --out FILE.parquet")
    if out and not all_users:
        raise ConfigError("--out is for --all-users; the other modes print to standard output")
    if ratings_text is not None and items_text is None:
        raise ConfigError("--ratings goes with --items (an --items-file carries its ratings on each line)")
    exclude = _ids(exclude_text)
    model = serve.load_model(model_dir)
    from aerec.serve.engine import Engine

    engine = Engine(model)
    if all_users:
        return _all_users(engine, out, k, exclude, block, not include_seen)
    if user_id is not None:
        from aerec.io import UnknownUserError

        try:
            rec = engine.recommend_user(user_id, k, exclude, exclude_seen=not include_seen)
        except UnknownUserError as e:
            if e.below_threshold:
                e.hint = "fold in with --items ITEM,ITEM,..."
            raise
        who = f"user {user_id}"
    else:
        if items_file:
            items, ratings = read_items_file(items_file)
        else:
            items, ratings = _ids(items_text), None
            if ratings_text is not None:
                try:
                    ratings = [float(r) for r in _ids(ratings_text)]
                except ValueError:
                    raise ConfigError(f"--ratings must be numbers, got {ratings_text!r}") from None
        rec, who = engine.recommend_items(items, k, exclude, ratings), f"a new user with {len(items)} item(s)"
    if as_json:
        click.echo(json.dumps(rec.to_dict(), indent=2, ensure_ascii=False))
    else:
        _table(rec, who, model)


def _table(rec, who: str, model) -> None:
    click.echo(f"top {len(rec.item_ids)} for {who} ({model.name}, {model.n_items} items)")
    if rec.unknown_items:
        shown = ", ".join(map(str, rec.unknown_items[:20])) + (" ..." if len(rec.unknown_items) > 20 else "")
        click.echo(f"note: {len(rec.unknown_items)} unknown item id(s) ignored: {shown}")
    if rec.fallback == "popularity":
        click.echo("note: no known item to fold in; these are the most popular items (popularity fallback)")
    score_label = "rating" if model.task == "rating" else "score"
    width = max([len(str(i)) for i in rec.item_ids] + [4])
    click.echo(f"{'rank':>4}  {'item':<{width}}  {score_label:>10}  title")
    for r, (item, score) in enumerate(zip(rec.item_ids, rec.scores), 1):
        title = rec.titles[r - 1] if rec.titles else ""
        click.echo(f"{r:>4}  {item!s:<{width}}  {score:>10.4f}  {title or ''}")


def _all_users(engine, out: str, k: int, exclude: list, block: int, exclude_seen: bool = True) -> None:
    """Score stored users block by block (bounded memory) and stream the rows into Parquet."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from aerec import fsutil, ui

    if engine.histories is None:
        raise DataError(f"{engine.model.name} was saved without user histories; --all-users has no users to score")
    n_users = engine.histories.shape[0]
    excl = sorted({engine.item_index[str(x)] for x in exclude if str(x) in engine.item_index})
    empty = int((np.diff(engine.histories.indptr) == 0).sum())
    rows = 0
    with fsutil.atomic_path(out) as tmp:
        writer = None
        try:
            with ui.progress(total=n_users, desc="scoring users", unit="user") as bar:
                for s in range(0, n_users, block):
                    users = np.arange(s, min(s + block, n_users))
                    cols, scores, valid = engine.top_stored(users, k, excl, exclude_seen)
                    r, c = np.nonzero(valid)
                    table = pa.table({"user": pa.array(engine.user_ids[users][r].tolist()),
                                      "rank": pa.array((c + 1).astype(np.int32)),
                                      "item": pa.array(engine.item_ids[cols[r, c]].tolist()),
                                      "score": pa.array(scores[r, c], type=pa.float32())})
                    if writer is None:
                        writer = pq.ParquetWriter(tmp, table.schema)
                    writer.write_table(table)
                    rows += table.num_rows
                    bar.update(len(users))
        finally:
            if writer is not None:
                writer.close()
        if writer is None:  # no stored users: still a valid, empty file
            pq.write_table(pa.table({"user": pa.array([], pa.string()), "rank": pa.array([], pa.int32()),
                                     "item": pa.array([], pa.string()), "score": pa.array([], pa.float32())}), tmp)
    ui.info(f"wrote {rows} rows for {n_users} users to {out}"
            + (f" ({empty} user(s) with an empty history got the popularity fallback)" if empty else ""))


commands = [recommend]
