"""Tables (Markdown, CSV, JSON) and plots for a finished benchmark grid."""

from __future__ import annotations

import csv
import io

import numpy as np

from aerec import fsutil
from aerec.bench.grid import file_tag
from aerec.bench.stats import paired_pvalue, significance

RANKING_COLUMNS = ["recall@20", "recall@50", "recall@100", "ndcg@100", "precision@100"]
WEAK_COLUMNS = ["recall_plain@10", "ndcg@10", "mrr@10", "hitrate@10", "precision@10"]  # RecBole's @10 table
RATING_COLUMNS = ["rmse", "mae"]
LOWER_IS_BETTER = {"rmse", "mae"}
PROTOCOL_TITLES = {"temporal": "temporal: held-out users, latest 20% of each history as target"}


def aggregate(cells: list[dict]) -> list[dict]:
    """One row per (data set, model, protocol): mean ± std over folds (sample std, ddof=1)."""
    groups: dict[tuple, list[dict]] = {}
    for c in cells:
        groups.setdefault((c["dataset"], c["model"], c["protocol"]), []).append(c)
    rows = []
    for (dataset, model, protocol), cs in sorted(groups.items()):
        cs = sorted(cs, key=lambda c: c["fold"])
        names = sorted(cs[0]["metrics"])
        row = {"dataset": dataset, "model": model, "protocol": protocol, "folds": len(cs),
               "epochs": float(np.mean([c["epochs"] for c in cs])),
               "best_epoch": float(np.mean([c["best_epoch"] for c in cs])),
               "train_seconds": float(np.mean([c["train_seconds"] for c in cs])),
               "metrics": {}}
        for n in names:
            vals = np.array([c["metrics"][n] for c in cs], dtype=np.float64)
            row["metrics"][n] = {"mean": float(vals.mean()),
                                 "std": float(vals.std(ddof=1)) if len(vals) > 1 else 0.0,
                                 "per_fold": vals.tolist()}
        rows.append(row)
    return rows


def mark_significance(rows: list[dict], cells: list[dict], alpha: float = 0.05) -> None:
    """Adds row["sig"][metric] = {"best", "p", "tie"} comparing each model with the best one."""
    by_key = _by_key(cells)
    for dataset, protocol in {(r["dataset"], r["protocol"]) for r in rows}:
        for task_cols in (RANKING_COLUMNS, RATING_COLUMNS, WEAK_COLUMNS):
            members = [r for r in rows if r["dataset"] == dataset and r["protocol"] == protocol
                       and task_cols[0] in r["metrics"]]
            for metric in task_cols:
                samples = {}
                for r in members:
                    samples[r["model"]] = _paired_sample(by_key[(dataset, r["model"], protocol)], metric)
                lengths = {len(v) for v in samples.values()}
                if len(lengths) > 1:  # different fold counts: no valid pairing
                    continue
                for model, s in significance(samples, metric not in LOWER_IS_BETTER, alpha).items():
                    next(r for r in members if r["model"] == model).setdefault("sig", {})[metric] = s


# Models that start from, or share the architecture of, another one: each is compared with it.
BUILDS_ON = {"ract": "multvae", "warp": "multvae", "lambdanet": "multvae", "macridvae": "multvae", "hvamp": "multvae",
             "edlae": "ease", "sansa": "ease"}


def base_comparisons(rows: list[dict], cells: list[dict], metric: str = "ndcg@100") -> str:
    """Markdown: each model beside the model it builds on, with a paired test across users."""
    by_key = _by_key(cells)
    lines = []
    for r in sorted(rows, key=lambda r: (r["dataset"], r["protocol"], r["model"])):
        base = BUILDS_ON.get(r["model"])
        key = (r["dataset"], base, r["protocol"])
        if base is None or key not in by_key or metric not in r["metrics"]:
            continue
        a = _paired_sample(by_key[(r["dataset"], r["model"], r["protocol"])], metric)
        b = _paired_sample(by_key[key], metric)
        if a.shape != b.shape:
            continue
        lines.append(f"| {r['dataset']} | {r['model']} | {base} | {a.mean():.4f} | {b.mean():.4f} | "
                     f"{a.mean() - b.mean():+.4f} | {paired_pvalue(a, b):.3g} |")
    if not lines:
        return ""
    return (f"### Each model beside the one it builds on ({metric}, paired t-test across users)\n\n"
            f"| data | model | builds on | {metric} | base {metric} | difference | p |\n"
            "|---|---|---|---:|---:|---:|---:|\n" + "\n".join(lines) + "\n")


def _by_key(cells: list[dict]) -> dict[tuple, list[dict]]:
    """(data set, model, protocol) -> its cells in fold order, so samples pair user by user."""
    out: dict[tuple, list[dict]] = {}
    for c in sorted(cells, key=lambda c: c["fold"]):
        out.setdefault((c["dataset"], c["model"], c["protocol"]), []).append(c)
    return out


def _paired_sample(cells: list[dict], metric: str) -> np.ndarray:
    if metric in LOWER_IS_BETTER:  # across folds
        return np.array([c["metrics"][metric] for c in cells])
    return np.concatenate([np.asarray(c["per_user"][metric]) for c in cells])  # across users


def _fmt(row: dict, metric: str) -> str:
    m = row["metrics"].get(metric)
    if m is None:
        return "—"
    text = f"{m['mean']:.4f} ± {m['std']:.4f}"
    s = row.get("sig", {}).get(metric)
    if s and s["best"]:
        text = f"**{text}**"
    elif s and s["tie"]:
        text += " †"
    return text


def groups(rows: list[dict], metric: str):
    """(dataset, protocol, rows) for each table holding `metric`, own-protocol tables last."""
    keys = sorted({(r["dataset"], r["protocol"]) for r in rows if metric in r["metrics"]},
                  key=lambda k: (k[0], k[1] in PROTOCOL_TITLES, k[1]))
    for dataset, protocol in keys:
        yield dataset, protocol, [r for r in rows if r["dataset"] == dataset and r["protocol"] == protocol
                                  and metric in r["metrics"]]


def markdown(rows: list[dict], header: str = "") -> str:
    out = [header] if header else []
    for dataset in sorted({r["dataset"] for r in rows}):
        for title, cols in (("Rating prediction", RATING_COLUMNS), ("Top-N ranking", RANKING_COLUMNS),
                            ("Top-N ranking @10", WEAK_COLUMNS)):
            for _, proto, members in groups([r for r in rows if r["dataset"] == dataset], cols[0]):
                out.append(f"### {dataset}: {title} ({PROTOCOL_TITLES.get(proto, proto)}, {members[0]['folds']} folds)\n")
                out.append("| model | epochs | " + " | ".join(c.upper() if c in LOWER_IS_BETTER else c
                                                          for c in cols) + " | train s/fold |")
                out.append("|---|---:|" + "---:|" * len(cols) + "---:|")
                for r in sorted(members, key=lambda r: r["metrics"][cols[0]]["mean"], reverse=cols[0] not in LOWER_IS_BETTER):
                    out.append(f"| {r['model']} | {r['epochs']:.0f} | " + " | ".join(_fmt(r, c) for c in cols)
                               + f" | {r['train_seconds']:.1f} |")
                out.append("")
    out.append("Mean ± sample std over folds. **Bold**: best; †: not significantly different from the best "
               "(paired t-test, p ≥ 0.05; across users for top-N metrics, across folds for RMSE/MAE). "
               "Epochs: epochs run per fold (mean).\n")
    return "\n".join(out)


def write_tables(rows: list[dict], out_dir, header: str = "", footer: str = "") -> None:
    fsutil.write_text(out_dir / "results.md", markdown(rows, header) + ("\n" + footer if footer else ""))
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["dataset", "model", "protocol", "folds", "epochs", "train_seconds", "metric", "mean", "std", "per_fold"])
    for r in rows:
        for n, m in sorted(r["metrics"].items()):
            w.writerow([r["dataset"], r["model"], r["protocol"], r["folds"], f"{r['epochs']:.1f}",
                        f"{r['train_seconds']:.3f}", n, f"{m['mean']:.6f}", f"{m['std']:.6f}",
                        ";".join(f"{v:.6f}" for v in m["per_fold"])])
    fsutil.write_text(out_dir / "results.csv", buf.getvalue())
    fsutil.write_json(out_dir / "results.json", rows)


def plots(rows: list[dict], cells: list[dict], out_dir) -> list[str]:
    """Learning curves, bars with error bars, and quality against training time (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for metric, key in (("ndcg@100", "valid_ndcg@100"), ("rmse", "valid_rmse")):
        for dataset, protocol, members in groups(rows, metric):
            # own-protocol tables get their own files; the main ones keep their plain names
            name = file_tag(dataset)
            tag = f"{name}-{protocol}" if protocol in PROTOCOL_TITLES else name
            # learning curves: validation metric per epoch, mean over folds
            fig, ax = plt.subplots(figsize=(6, 4))
            drew = False
            for r in members:
                curves = [[h[key] for h in c["history"] if key in h] for c in cells
                          if c["dataset"] == dataset and c["model"] == r["model"] and c["protocol"] == protocol]
                curves = [c for c in curves if c]
                if not curves:
                    continue
                n = min(len(c) for c in curves)
                ax.plot(np.arange(1, n + 1), np.mean([c[:n] for c in curves], axis=0), label=r["model"])
                drew = True
            if drew:
                ax.set(xlabel="epoch", ylabel=f"validation {metric}", title=f"{tag}: learning curves")
                ax.legend()
                written.append(_save(fig, out_dir / f"curves-{tag}-{metric.replace('@', '')}.png"))
            plt.close(fig)
            # bars with error bars
            cols = RANKING_COLUMNS if metric == "ndcg@100" else RATING_COLUMNS
            fig, ax = plt.subplots(figsize=(7, 4))
            width = 0.8 / len(members)
            for i, r in enumerate(members):
                means = [r["metrics"][c]["mean"] for c in cols]
                stds = [r["metrics"][c]["std"] for c in cols]
                ax.bar(np.arange(len(cols)) + i * width, means, width, yerr=stds, capsize=2, label=r["model"])
            ax.set_xticks(np.arange(len(cols)) + 0.4 - width / 2, cols)
            ax.set(title=f"{tag}: mean ± std over folds")
            ax.legend(fontsize=7)
            written.append(_save(fig, out_dir / f"bars-{tag}-{'topn' if metric == 'ndcg@100' else 'rating'}.png"))
            plt.close(fig)
            # quality against training time
            fig, ax = plt.subplots(figsize=(6, 4))
            for r in members:
                ax.scatter(max(r["train_seconds"], 1e-3), r["metrics"][metric]["mean"])
                ax.annotate(r["model"], (max(r["train_seconds"], 1e-3), r["metrics"][metric]["mean"]), fontsize=8)
            ax.set(xscale="log", xlabel="training seconds per fold", ylabel=metric, title=f"{tag}: quality vs time")
            written.append(_save(fig, out_dir / f"time-{tag}-{metric.replace('@', '')}.png"))
            plt.close(fig)
    return written


def _save(fig, path) -> str:
    fig.tight_layout()
    with fsutil.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    return str(path)
