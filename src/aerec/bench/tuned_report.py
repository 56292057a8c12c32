"""The tuned suite's report: reference, default (untuned) and tuned side by side with paired
tests, the chosen setting per fold with its validation -> test gap, and the trial plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from aerec import fsutil
from aerec.bench import _command, report
from aerec.bench.stats import paired_pvalue


def _reference_rows(ref_dir: Path | None) -> dict:
    """(dataset, model, protocol) -> {metric: per-fold values} from a finished paper run."""
    if ref_dir is None or not (ref_dir / "results.json").exists():
        return {}
    rows = json.loads((ref_dir / "results.json").read_text())
    return {(r["dataset"], r["model"], r["protocol"]): {k: v["per_fold"] for k, v in r["metrics"].items()}
            for r in rows}


def _paired(a: dict, b: dict, metric: str) -> dict | None:
    """Two variants' cells ({fold: cell}) over the folds both have: means, difference and the
    two-sided paired t-test (across users for top-N metrics, across folds for RMSE)."""
    folds = sorted(set(a) & set(b))
    if not folds:
        return None
    if metric != "rmse":
        x = np.concatenate([np.asarray(a[f]["per_user"][metric]) for f in folds])
        y = np.concatenate([np.asarray(b[f]["per_user"][metric]) for f in folds])
        pairing = "users"
    else:
        x, y = (np.array([c[f]["metrics"][metric] for f in folds]) for c in (a, b))
        pairing = "folds"
    return {"first": float(x.mean()), "second": float(y.mean()), "difference": float(x.mean() - y.mean()),
            "p": paired_pvalue(x, y) if len(x) > 1 else None, "pairing": pairing, "n_pairs": int(len(x)),
            "folds": folds}


def comparison(cells: list[dict], ref_rows: dict) -> list[dict]:
    """Per (dataset, protocol, model): reference and tuned means over the folds both have, and
    the paired t-test (across users when both sides kept per-user values, else across folds).
    With default cells (the study's starting setting, untuned), the gain splits in two: default
    vs reference (the schedule and early-stopping change) and tuned vs default (the search)."""
    by = {}
    for c in cells:
        by.setdefault((c["dataset"], c["protocol"], c["model"], c.get("variant", "reference")), {})[c["fold"]] = c
    out = []
    for dataset, protocol, model in sorted({k[:3] for k in by}):
        tuned = by.get((dataset, protocol, model, "tuned"), {})
        ref = by.get((dataset, protocol, model, "reference"), {})
        metric = "rmse" if any("rmse" in c["metrics"] for c in (*tuned.values(), *ref.values())) else "ndcg@100"
        row = {"dataset": dataset, "protocol": protocol, "model": model, "metric": metric,
               "tuned_folds": sorted(tuned), "reference_folds": sorted(ref)}
        external = ref_rows.get((dataset, model, protocol), {}).get(metric)
        folds = sorted(set(tuned) & (set(ref) if ref else set(range(len(external or [])))))
        row["folds"] = folds
        if tuned:
            row["tuned"] = float(np.mean([tuned[f]["metrics"][metric] for f in tuned]))
            t = [c["tuning"] for c in tuned.values()]
            row["trials"] = float(np.mean([x["trials"] for x in t]))
            row["pruned"] = float(np.mean([x["pruned"] for x in t]))
            row["tuning_seconds"] = float(np.mean([x["seconds"] for x in t]))
            row["best_params"] = {f: tuned[f]["tuning"]["params"] for f in sorted(tuned)}
            # validation (the chosen trial's score on the tuning users) -> test, per fold, averaged
            row["validation"] = float(np.mean([tuned[f]["tuning"]["best_value"] for f in tuned]))
            row["valid_test_gap"] = row["tuned"] - row["validation"]
            sel = [tuned[f]["tuning"].get("selection") or {} for f in sorted(tuned)]
            row["kept_start"] = sum(bool(s.get("kept_start")) for s in sel)
        if ref:
            row["reference"] = float(np.mean([ref[f]["metrics"][metric] for f in ref]))
            row["reference_source"] = "cells"
        elif external:
            row["reference"] = float(np.mean(external))
            row["reference_source"] = "results.json"
        if tuned and folds and (ref or external):
            if ref and metric != "rmse":
                a = np.concatenate([np.asarray(tuned[f]["per_user"][metric]) for f in folds])
                b = np.concatenate([np.asarray(ref[f]["per_user"][metric]) for f in folds])
                row["pairing"] = "users"
            else:
                a = np.array([tuned[f]["metrics"][metric] for f in folds])
                b = np.array([ref[f]["metrics"][metric] if ref else external[f] for f in folds])
                row["pairing"] = "folds"
            row["paired_tuned"], row["paired_reference"] = float(a.mean()), float(b.mean())
            row["difference"] = float(a.mean() - b.mean())
            row["p"] = paired_pvalue(a, b) if len(a) > 1 else None  # one pair: no test
            row["n_pairs"] = int(len(a))
        default = by.get((dataset, protocol, model, "default"), {})
        if default:
            row["default"] = float(np.mean([default[f]["metrics"][metric] for f in default]))
            row["default_folds"] = sorted(default)
            for key, (x, y) in (("default_vs_reference", (default, ref)), ("tuned_vs_default", (tuned, default))):
                pair = _paired(x, y, metric)
                if pair:
                    row[key] = pair
        elif tuned and ref:  # no separate default cell: the reference setting is the study's start
            row["default_same_as_reference"] = True
        out.append(row)
    return out


def _f(v, fmt=".4f"):
    return "—" if v is None else format(v, fmt)


def _gain(diff, p) -> str:
    return "—" if diff is None else f"{diff:+.4f} ({_f(p, '.3g')})"


def comparison_markdown(rows: list[dict], searched=()) -> str:
    """searched: the models that have a search space (a missing tuned row is then unfinished)."""
    lines = []
    for dataset, protocol in sorted({(r["dataset"], r["protocol"]) for r in rows}):
        members = [r for r in rows if r["dataset"] == dataset and r["protocol"] == protocol]
        metric = members[0]["metric"]
        title = report.PROTOCOL_TITLES.get(protocol, protocol)
        lines += [f"### {dataset}, {title}: reference settings vs tuned ({metric.upper() if metric == 'rmse' else metric})\n",
                  "| model | reference | default (untuned) | tuned | folds paired | default − reference (p) | "
                  "tuned − default (p) | difference | p | paired over | trials/fold (pruned) | "
                  "tuning wall s/fold | validation → test | start kept |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|---:|"]
        lower = metric == "rmse"
        for r in sorted(members, key=lambda r: r.get("tuned", r.get("reference", 0)), reverse=not lower):
            folds = f"{len(r['folds'])}" if "n_pairs" in r else (f"{len(r['tuned_folds'])} tuned" if r.get("tuned_folds") else "—")
            trials = (f"{r['trials']:.1f} ({r['pruned']:.1f})" if "trials" in r
                      else "not run yet" if r["model"] in searched else "no space")
            paired = "n_pairs" in r  # both columns over the same folds when a pairing exists
            ref = r["paired_reference"] if paired else r.get("reference")
            tuned = r["paired_tuned"] if paired else r.get("tuned")
            if r.get("default_same_as_reference"):
                dflt, step1, step2 = "= reference", "0 (same setting)", _gain(r.get("difference"), r.get("p"))
            else:
                dv, td = r.get("default_vs_reference"), r.get("tuned_vs_default")
                dflt = _f(r.get("default"))
                step1 = _gain(dv["difference"], dv["p"]) if dv else "—"
                step2 = _gain(td["difference"], td["p"]) if td else "—"
            lines.append(f"| {r['model']} | {_f(ref)} | {dflt} | {_f(tuned)} | {folds} | {step1} | {step2} | "
                         f"{_f(r.get('difference'), '+.4f')} | {_f(r.get('p'), '.3g')} | {r.get('pairing', '—')} | "
                         f"{trials} | {_f(r.get('tuning_seconds'), '.0f')} | "
                         + (f"{r['validation']:.4f} → {r['tuned']:.4f} ({r['valid_test_gap']:+.4f})" if "validation" in r else "—")
                         + f" | {r['kept_start'] if 'kept_start' in r else '—'}/{len(r.get('tuned_folds', []))} |")
        lines.append("")
    lines.append("Reference: each model's reference settings (the paper suite; `schedule = reference` where a model "
                 "has one). Default (untuned): the study's starting setting, trained once without search: the model's "
                 "defaults (`schedule = scaled` where it has one) with the trials' early stopping; \"= reference\" where "
                 "that is the reference setting itself. Default − reference is the gain of that change alone, tuned − "
                 "default the gain of the search alone, each with its two-sided paired t-test; \"—\" where the default "
                 "cells have not run. Tuned: the chosen setting of the fold's own "
                 "study, tested on that fold's test users. Both columns are means over the folds both sides have "
                 "(each side's own folds where there is no pair); difference and p (two-sided paired t-test), paired across users when both sides kept "
                 "per-user values, else across folds. Validation → test: the chosen setting's validation score (on the "
                 "users tuning scored) against its test score, mean over the tuned folds; a large drop is selection "
                 "noise. Start kept: folds whose study kept the starting setting because no trial beat it by a "
                 "one-sided paired t-test across validation users at p < 0.05 (docs/tuning.md).\n")
    return "\n".join(lines)


def write_report(out: Path, cells: list[dict], specs: dict, ref_dir, trials: int, timeout, clock: str = "wall",
                 missing: int = 0, share: float | None = None) -> dict:
    from aerec.bench.tuned import PATIENCE, _trial_patience
    from aerec.models import space as spacemod

    rows = comparison(cells, _reference_rows(ref_dir))
    tuned = [c for c in cells if c.get("variant") == "tuned"]
    agg = report.aggregate(tuned)
    report.mark_significance(agg, tuned)
    other = {m: p if p is not None else "none" for m, p in _trial_patience(specs).items() if p != PATIENCE}
    where = (f"per model, one study on the tuning-only users ({share:.0%} of the users, set aside with the seed and in "
             "no fold)" if share is not None else "per fold")
    reads = ("Tuning reads only the tuning users; every fold, made of the other users, trains the chosen setting on "
             "its training users (early stopping on its validation users) and tests it on its test users, and the "
             "reference rows run on the same folds; `tuning-users.json` records the tuning users' count and SHA-256 "
             "digest beside each fold's.\n" if share is not None else
             "Tuning reads only each fold's training users (fitting) and validation users (scoring); "
             "`tuning-users.json` records their counts and SHA-256 digests beside the test users'.\n")
    budget = (f"**Budget, the same for every model:** {where}, {trials} finished trials"
              + (f" or {timeout:g} {'CPU seconds (this process)' if clock == 'cpu' else 's'} of trial time, whichever comes first (a trial running at the cap stops "
                 "after that epoch and keeps its best epoch)" if timeout else "")
              + (". The best setting is then trained again to its own end (its epochs and early stopping) when the cap "
                 "cut its trial short (`--tune-final full`; that fit is outside the budget)"
                 if any(s.get("final") == "full" for s in specs.values()) else
                 "" if share is not None else ". The tuned row tests the best trial's own model")
              + f". Neural trials stop early after {PATIENCE} epochs without a better validation score"
              + (f" ({', '.join(f'{m}: {p}' for m, p in sorted(other.items()))}: each model's `tune_patience`)" if other else "")
              + ". Each study's "
              "first trial is the model's starting setting (its defaults), which a later trial replaces only if it beats it "
              "by a one-sided paired t-test across the validation users at p < 0.05; a MedianPruner stops trials below "
              "the median at the same epoch. " + reads)
    spaces = ["### Search spaces\n"]
    for m, s in sorted(specs.items()):
        if s["space"]:
            spaces.append(f"- **{m}** (fixed: {json.dumps(s['base']) if s['base'] else 'reference defaults'}): "
                          + "; ".join(spacemod.describe(s["space"])))
    partial = (f"**Unfinished:** {missing} cells (model, fold, reference or tuned) have not run yet; rows "
               "below cover the folds finished so far. Rerun the command without --report-only to complete "
               "them (finished cells and trials are kept).\n\n") if missing else ""
    header = (f"# aerec bench: suite `tuned`\n\nCommand: `{' '.join(_command())}`\n\n{partial}{budget}\n"
              + comparison_markdown(rows, {m for m, sp in specs.items() if sp['space']}) + "\n## Tuned results in full\n")
    footer = "\n".join(spaces) + "\n\n" + _best_settings(tuned)
    report.write_tables(agg, out, header, footer=footer)
    fsutil.write_json(out / "comparison.json", rows)
    fsutil.write_json(out / "tuning-users.json", [
        {"dataset": c["dataset"], "model": c["model"], "protocol": c["protocol"], **c["tuning"]["users"]}
        for c in sorted(tuned, key=lambda c: (c["dataset"], c["model"], c["protocol"], c["fold"]))])
    fsutil.write_json(out / "trials.json", [
        {"dataset": c["dataset"], "model": c["model"], "protocol": c["protocol"], "fold": c["fold"],
         "study": c["tuning"]["study"], "best_trial": c["tuning"]["best_trial"], "log": c["tuning"]["log"]}
        for c in sorted(tuned, key=lambda c: (c["dataset"], c["model"], c["protocol"], c["fold"]))])
    pngs = trial_plots(tuned, out)
    return {"rows": agg, "comparison": rows, "plots": [Path(p).name for p in pngs], "out": str(out)}


def _best_settings(tuned: list[dict]) -> str:
    if not tuned:
        return ""
    lines = ["### Chosen setting per fold\n", "| data | model | fold | validation | test | gap | chosen | setting |",
             "|---|---|---:|---:|---:|---:|---|---|"]
    for c in sorted(tuned, key=lambda c: (c["dataset"], c["protocol"], c["model"], c["fold"])):
        metric = "rmse" if "rmse" in c["metrics"] else "ndcg@100"
        params = ", ".join(f"{k}={json.dumps(v) if isinstance(v, list) else (f'{v:.4g}' if isinstance(v, float) else v)}"
                           for k, v in c["tuning"]["params"].items())
        sel = c["tuning"].get("selection") or {}
        chosen = ("best trial (old rule)" if not sel or sel.get("rule") == "best" else
                  f"start kept (p = {sel['p']:.3g})" if sel.get("kept_start") and sel.get("p") is not None else
                  "start (also the best)" if sel.get("kept_start") else f"trial {sel['chosen_trial'] + 1} (p = {sel['p']:.3g})")
        test = c["metrics"][metric]
        lines.append(f"| {c['dataset']} | {c['model']} | {c['fold'] + 1} | {c['tuning']['best_value']:.4f} | "
                     f"{test:.4f} | {test - c['tuning']['best_value']:+.4f} | {chosen} | {params} |")
    return "\n".join(lines) + "\n"


def trial_plots(tuned: list[dict], out: Path) -> list[str]:
    """Validation score against trial number, one panel per model, one colour per fold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for dataset, protocol in sorted({(c["dataset"], c["protocol"]) for c in tuned}):
        members = [c for c in tuned if c["dataset"] == dataset and c["protocol"] == protocol]
        names = sorted({c["model"] for c in members})
        cols = min(4, len(names))
        rows = (len(names) + cols - 1) // cols
        fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False)
        for ax, name in zip(axes.flat, names):
            for c in sorted((c for c in members if c["model"] == name), key=lambda c: c["fold"]):
                log = [t for t in c["tuning"]["log"] if t["value"] is not None]
                x = np.array([t["number"] + 1 for t in log])
                y = np.array([t["value"] for t in log])
                if not len(x):
                    continue
                done = np.array([t["state"] == "complete" for t in log])
                line = ax.plot(x[done], y[done], "o", ms=4, label=f"fold {c['fold'] + 1}")[0]
                ax.plot(x[~done], y[~done], "x", ms=4, color=line.get_color())
                if done.any():
                    best = np.maximum.accumulate(y[done]) if c["tuning"]["metric"] != "rmse" else np.minimum.accumulate(y[done])
                    ax.plot(x[done], best, "-", lw=1, color=line.get_color())
            ax.set_title(name, fontsize=9)
            ax.set_xlabel("trial", fontsize=8)
            ax.set_ylabel(f"validation {members[0]['tuning']['metric']}", fontsize=8)
            ax.tick_params(labelsize=7)
        for ax in list(axes.flat)[len(names):]:
            ax.axis("off")
        axes.flat[0].legend(fontsize=6)
        fig.suptitle(f"{dataset} ({protocol}): validation score per trial (o finished, x pruned; line: best so far)",
                     fontsize=9)
        tag = f"{dataset}-{protocol}" if protocol in report.PROTOCOL_TITLES else dataset
        written.append(report._save(fig, out / f"trials-{tag}.png"))
        plt.close(fig)
    return written
