"""Published numbers to print beside ours, each with its source and protocol.

They come from other data sets or protocols than most of our runs, so tables label them as
such and never mix them into our own columns.
"""

from __future__ import annotations

# REFERENCE §5: strong generalization on ML-20M (Recall@20, Recall@50, NDCG@100).
ML20M_STRONG = {
    "warp": (0.314, 0.466, 0.341),
    "lambdanet": (0.395, 0.534, 0.427),
    "wmf": (0.360, 0.498, 0.386),
    "slim": (0.370, 0.495, 0.401),
    "cdae": (0.391, 0.523, 0.418),
    "multdae": (0.387, 0.524, 0.419),
    "multvae": (0.395, 0.537, 0.426),
    "ract": (0.403, 0.543, 0.434),
    "ease": (0.391, 0.521, 0.420),
    "recvae": (0.414, 0.553, 0.442),
    "hvamp": (0.413, 0.551, 0.445),  # Kim & Suh 2019, H+Vamp (Gated)
}

# RecBole's published ml-1m table (weak generalization: ratings >= 3, 10-core, 8:1:1), NDCG@10.
RECBOLE_ML1M_NDCG10 = {"recvae": 0.2795, "multvae": 0.2523, "multdae": 0.2425, "cdae": 0.2500, "ease": 0.2865}

# Rating prediction (RMSE): the seed report's table (k-fold CV on MovieLens, 500 epochs), the
# AutoRec paper (ML-1M, random 90/10) and Surprise's published 5-fold results.
RATING = {
    "report": {"autorec": 0.9139, "deeprec": 0.8615},
    "autorec_paper_ml1m_9010": {"autorec": 0.831, "autorec-user": 0.874},
    "surprise_ml100k_5fold": {"svd": 0.934, "svdpp": 0.919},
    "surprise_ml1m_5fold": {"svd": 0.873, "svdpp": 0.862},
}


def strong_table(rows: list[dict], dataset: str) -> str:
    """Our strong-generalization numbers beside the ML-20M ones (labelled as other data)."""
    ours = {r["model"]: r for r in rows if r["dataset"] == dataset and r["protocol"] == "strong"}
    lines = [f"| model | ours {dataset}: Recall@20 | Recall@50 | NDCG@100 | published ML-20M (other data): R@20 / R@50 / NDCG@100 |",
             "|---|---:|---:|---:|---|"]
    for model in sorted(ours, key=lambda m: -ours[m]["metrics"]["ndcg@100"]["mean"]):
        m = ours[model]["metrics"]
        pub = ML20M_STRONG.get(model)
        lines.append(f"| {model} | {m['recall@20']['mean']:.3f} | {m['recall@50']['mean']:.3f} | "
                     f"{m['ndcg@100']['mean']:.3f} | {' / '.join(f'{v:.3f}' for v in pub) if pub else '—'} |")
    return "\n".join(lines)


def weak_table(rows: list[dict], dataset: str = "ml-1m") -> str:
    ours = {r["model"]: r for r in rows if r["dataset"] == dataset and r["protocol"] == "weak"}
    lines = ["| model | ours NDCG@10 | RecBole NDCG@10 | ours ≥ RecBole |", "|---|---:|---:|---|"]
    for model in sorted(ours, key=lambda m: -ours[m]["metrics"]["ndcg@10"]["mean"]):
        v = ours[model]["metrics"]["ndcg@10"]["mean"]
        pub = RECBOLE_ML1M_NDCG10.get(model)
        verdict = "—" if pub is None else ("yes" if v >= pub else "no")
        lines.append(f"| {model} | {v:.4f} | {pub if pub is not None else '—'} | {verdict} |")
    return "\n".join(lines)


def section(rows: list[dict]) -> str:
    """A 'published numbers' section for results.md, covering what the rows hold."""
    parts = []
    for dataset in sorted({r["dataset"] for r in rows}):
        if any(r["dataset"] == dataset and r["protocol"] == "strong" for r in rows):
            parts.append(f"### {dataset} beside published strong-generalization numbers\n\n"
                         "Published: REFERENCE §5, ML-20M (another, larger data set: compare the ordering, not the values).\n\n"
                         + strong_table(rows, dataset) + "\n")
        if any(r["dataset"] == dataset and r["protocol"] == "weak" for r in rows):
            parts.append(f"### {dataset} beside RecBole's ml-1m table (weak generalization)\n\n"
                         + weak_table(rows, dataset) + "\n")
        rating = [r for r in rows if r["dataset"] == dataset and "rmse" in r["metrics"]]
        if rating:
            lines = ["| source | model | RMSE | protocol |", "|---|---|---:|---|"]
            lines += [f"| ours | {r['model']} | {r['metrics']['rmse']['mean']:.4f} | {r['protocol']}, {r['folds']} folds |"
                      for r in sorted(rating, key=lambda r: r["metrics"]["rmse"]["mean"])]
            lines += ["| seed report | autorec | 0.9139 | k-fold CV on MovieLens, 500 epochs |",
                      "| seed report | deeprec | 0.8615 | k-fold CV on MovieLens, 500 epochs |",
                      "| AutoRec paper | I-AutoRec | 0.831 | ML-1M, random 90/10 |",
                      "| Surprise | SVD / SVD++ | 0.934 / 0.919 | ML-100K, 5-fold |",
                      "| Surprise | SVD / SVD++ | 0.873 / 0.862 | ML-1M, 5-fold |"]
            parts.append(f"### {dataset} beside published rating results\n\n" + "\n".join(lines) + "\n")
    return "\n".join(parts)
