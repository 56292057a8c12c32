"""`aerec recommend`: top-k items for a known user, a new user, or every stored user."""

from __future__ import annotations

import json
import re

import click

from aerec.cli.options import check_device_option
from aerec.errors import ConfigError, DataError


def _ids(text: str | None) -> list[str]:
    return [] if not text else [x.strip() for x in text.split(",") if x.strip()]


ITEMS_FILE_CAP = 16 * 1024 * 1024  # one new user's items: far above any real basket


def _read_text(path, label: str) -> str:
    """A small UTF-8 text file, behind the data layer's shared file guard: a FIFO, device or
    folder is refused before it is opened (no hang, no endless /dev/zero), and so is a file over
    the cap."""
    from aerec import data

    raw = data.read_bytes(path, max_bytes=ITEMS_FILE_CAP, label=label)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{label}: not UTF-8 text (byte {e.start})") from None


def items_sep(sep: str | None) -> str | None:
    """--items-sep as given; 'tab' or '\\t' for a tab."""
    if sep is None:
        return None
    if sep in ("\\t", "tab", "TAB"):
        return "\t"
    if sep == "":
        raise ConfigError("--items-sep is empty; give the separator between id and rating, such as ',' or tab")
    return sep


def read_items_file(path, sep: str | None = None) -> tuple[list[str], list[float] | None]:
    """One item id per line, the whole line exactly (commas, spaces and quotes kept; only the
    line break, \\n or \\r\\n, is removed); empty lines are skipped. With ``sep``, a line may end
    in SEP RATING: it is cut at its last SEP, so the id may itself hold SEP. Ratings must be given
    on every line or on none."""
    label = str(path)
    items, ratings = [], []
    for n, line in enumerate(_read_text(path, label).split("\n"), 1):
        line = line[:-1] if line.endswith("\r") else line
        if line == "":
            continue
        if sep is None or sep not in line:
            items.append(line)
            continue
        item, _, rating = line.rpartition(sep)
        if item == "":
            raise DataError(f"{label}:{n}: empty item id before the rating in {line!r}")
        try:
            ratings.append(float(rating.strip()))
        except ValueError:
            raise DataError(f"{label}:{n}: rating {rating.strip()!r} is not a number") from None
        items.append(item)
    if ratings and len(ratings) != len(items):
        raise DataError(f"{label}: ratings on some lines but not on others (--items-sep {sep!r})")
    return items, (ratings or None)


def _json_id(x, where: str):
    if isinstance(x, str):
        try:
            x.encode("utf-8")
        except UnicodeEncodeError:
            raise DataError(f"{where}: the id holds a lone surrogate, not valid text") from None
        return x
    if isinstance(x, int) and not isinstance(x, bool):
        return x
    raise DataError(f"{where}: an item id must be a string or an integer, got {json.dumps(x)[:40]}")


def read_items_json(path) -> tuple[list, list[float] | None]:
    """A JSON list of item ids (strings or integers), or of [id, rating] pairs."""
    label = str(path)

    def no_constant(name):
        raise DataError(f"{label}: {name} is not valid JSON")

    try:
        data = json.loads(_read_text(path, label), parse_constant=no_constant)
    except json.JSONDecodeError as e:
        raise DataError(f"{label}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    except (ValueError, RecursionError) as e:
        raise DataError(f"{label}: not valid JSON ({type(e).__name__})") from None
    shape = "a JSON list of item ids, or of [id, rating] pairs"
    if not isinstance(data, list):
        raise DataError(f"{label}: expected {shape}, got a JSON {type(data).__name__}")
    pairs = [isinstance(x, list) for x in data]
    if any(pairs) and not all(pairs):
        raise DataError(f"{label}: expected {shape}, not a mix of both")
    if not any(pairs):
        return [_json_id(x, f"{label}: entry {i}") for i, x in enumerate(data)], None
    items, ratings = [], []
    for i, x in enumerate(data):
        rating = x[1] if len(x) == 2 else None
        if len(x) != 2 or isinstance(rating, bool) or not isinstance(rating, int | float):
            raise DataError(f"{label}: entry {i}: expected [id, rating] with a numeric rating, got {json.dumps(x)[:60]}")
        items.append(_json_id(x[0], f"{label}: entry {i}"))
        ratings.append(float(rating))
    return items, ratings


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


_RATED_LINE = re.compile(r"(.+?)[ \t,]+([-+0-9.eE]+)")


def _rated_lines_hint(engine, unknown) -> str | None:
    """A hint when unknown ids read as 'KNOWN-ID RATING' (the old --items-file layout)."""
    found = [u for u in unknown if isinstance(u, str) and (m := _RATED_LINE.fullmatch(u)) is not None
             and m.group(1) in engine.item_index and _is_number(m.group(2))]
    if not found:
        return None
    return (f"note: {len(found)} line(s) such as {found[0]!r} look like 'ITEM RATING', but --items-file reads each "
            "whole line as one id; add --items-sep ' ' (or ',' or tab) to read a rating after the id")


@click.command("recommend")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--user", "user_id", help="A known user: recommend from its stored history.")
@click.option("--items", "items_text", metavar="ID,ID,...", help="A new user's items (folded in, no retraining).")
@click.option("--items-file", type=click.Path(exists=True, dir_okay=False),
              help="A new user's items, one id per line: the whole line, commas, spaces and quotes included.")
@click.option("--items-sep", "items_sep_text", metavar="SEP",
              help="--items-file: lines are 'ITEM<SEP>RATING', cut at the last SEP ('tab' for a tab).")
@click.option("--items-json", type=click.Path(exists=True, dir_okay=False),
              help="A new user's items as a JSON list of ids, or of [id, rating] pairs.")
@click.option("--ratings", "ratings_text", metavar="R,R,...",
              help="Ratings for --items, in order (rating models; default: the top rating).")
@click.option("--all-users", is_flag=True, help="Every stored user, written to --out as Parquet.")
@click.option("--out", type=click.Path(dir_okay=False), help="Parquet file for --all-users (user, rank, item, score).")
@click.option("-k", "k", type=click.IntRange(1, None), default=10, show_default=True, help="Items per user.")
@click.option("--exclude", "exclude_text", metavar="ID,ID,...", help="Item ids never to recommend.")
@click.option("--include-seen", is_flag=True, help="Allow items already in a stored user's history "
              "(repeat purchases); by default every item the user interacted with is excluded, whatever its rating.")
@click.option("--block", type=click.IntRange(1, None), default=1024, show_default=True,
              help="--all-users: users scored at once (memory is about block x items x 4 bytes, where the model scores).")
@click.option("--device", default=None, callback=check_device_option, metavar="cpu|cuda|cuda:N|auto",
              help="Where the model scores (default auto: the GPU when there is one).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def recommend(model_dir, user_id, items_text, items_file, items_sep_text, items_json, ratings_text, all_users, out, k,
              exclude_text, include_seen, block, device, as_json):
    """Recommend from MODEL_DIR: a model directory, or a run directory (its full model, else fold 0's).

    Known items are excluded: the user's stored history, or the new user's given items. Unknown
    item ids are reported and the rest are used; a new user with no known item gets the most
    popular items, and the output says so. Rating models rank by predicted rating.
    """
    from aerec import serve

    sources = [name for name, given in (("--user", user_id is not None), ("--items", items_text is not None),
                                        ("--items-file", items_file is not None), ("--items-json", items_json is not None),
                                        ("--all-users", all_users)) if given]
    if len(sources) != 1:
        raise ConfigError("give exactly one of --user, --items, --items-file, --items-json or --all-users"
                          + (f" (got {', '.join(sources)})" if sources else ""))
    if all_users and not out:
        raise ConfigError("--all-users writes a Parquet file: give --out FILE.parquet")
    if out and not all_users:
        raise ConfigError("--out is for --all-users; the other modes print to standard output")
    if ratings_text is not None and items_text is None:
        raise ConfigError("--ratings goes with --items (--items-file and --items-json carry their own ratings)")
    if items_sep_text is not None and items_file is None:
        raise ConfigError("--items-sep goes with --items-file")
    sep = items_sep(items_sep_text)
    exclude = _ids(exclude_text)
    model = serve.load_model(model_dir, device=device)
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
            items, ratings = read_items_file(items_file, sep)
        elif items_json:
            items, ratings = read_items_json(items_json)
        else:
            items, ratings = _ids(items_text), None
            if ratings_text is not None:
                try:
                    ratings = [float(r) for r in _ids(ratings_text)]
                except ValueError:
                    raise ConfigError(f"--ratings must be numbers, got {ratings_text!r}") from None
        rec, who = engine.recommend_items(items, k, exclude, ratings), f"a new user with {len(items)} item(s)"
        hint = _rated_lines_hint(engine, rec.unknown_items) if items_file and sep is None else None
        if hint:
            click.echo(hint, err=True)
    if as_json:
        click.echo(json.dumps(rec.to_dict(), indent=2, ensure_ascii=False))
    else:
        _table(rec, who, model)


def _table(rec, who: str, model) -> None:
    from aerec.serve import scoring_device

    click.echo(f"top {len(rec.item_ids)} for {who} ({model.name}, {model.n_items} items, scored on {scoring_device(model)})")
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
