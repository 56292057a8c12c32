"""Summarize reference-vs-scaled runs made by run.sh: copy the small files and print a table.

    python benchmarks/results/schedules/summarize.py RUNROOT [RUNROOT ...] DEST

RUNROOT holds MODEL-reference/ and MODEL-scaled/ run directories (possibly cut short: only the
finished folds' fold-*/metrics.json count). DEST gets their config.toml and per-fold metrics.json
(no model files) and table.md: per model, the folds both schedules finished, the means,
the paired difference with a paired t-test, and the epochs each fold ran / selected / could run.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
from scipy import stats


def folds(run: Path) -> dict[int, dict]:
    out = {}
    for f in sorted(run.glob("fold-*/metrics.json")):
        rec = json.loads(f.read_text())
        out[int(rec["fold"])] = rec
    return out


def main(roots: list[Path], dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    rows = ["| model | metric | folds | reference | scaled | scaled − reference | paired t p | epochs run/best (ref → scaled) |",
            "|---|---|---|---|---|---|---|---|"]
    pairs = sorted({(root, p.name.rsplit("-", 1)[0]) for root in roots for p in root.iterdir() if p.is_dir()})
    for root, m in pairs:
        runs = {s: root / f"{m}-{s}" for s in ("reference", "scaled")}
        if not all(r.is_dir() for r in runs.values()):
            continue
        recs = {s: folds(r) for s, r in runs.items()}
        for s, r in runs.items():
            d = dest / (f"{m}-{s}" if root == roots[0] else f"{m}-{root.name}-{s}")
            d.mkdir(exist_ok=True)
            for name in ("config.toml", "metrics.json"):
                if (r / name).exists():
                    shutil.copy(r / name, d / name)
            for k, rec in recs[s].items():
                (d / f"fold-{k}-metrics.json").write_text(json.dumps(rec, indent=1) + "\n")
        common = sorted(set(recs["reference"]) & set(recs["scaled"]))
        if not common:
            continue
        metric = "rmse" if "rmse" in recs["reference"][common[0]]["metrics"] else "ndcg@100"
        a = np.array([recs["reference"][k]["metrics"][metric] for k in common])
        b = np.array([recs["scaled"][k]["metrics"][metric] for k in common])
        p = f"{stats.ttest_rel(b, a).pvalue:.3f}" if len(common) > 1 and np.any(a != b) else "–"
        ep = "; ".join(f"{recs['reference'][k]['epochs']['run']}/{recs['reference'][k]['epochs']['best']} → "
                       f"{recs['scaled'][k]['epochs']['run']}/{recs['scaled'][k]['epochs']['best']}"
                       f" (≤{recs['scaled'][k]['epochs'].get('ceiling', '?')})" for k in common)
        label = m if root == roots[0] else f"{m} ({root.name})"
        rows.append(f"| {label} | {metric} | {','.join(map(str, common))} | {a.mean():.4f} | {b.mean():.4f} | "
                    f"{(b - a).mean():+.4f} | {p} | {ep} |")
    table = "\n".join(rows) + "\n"
    (dest / "table.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main([Path(a) for a in sys.argv[1:-1]], Path(sys.argv[-1]))
