"""`aerec bench`: every model on every data set under its proper protocol, resumable.

Rating models run rating k-fold CV; top-N models run strong generalization with k folds over
users. Results go to DIR: results.md/.csv/.json, run.json and PNG plots.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
import time
from pathlib import Path

from aerec import __version__, fsutil, ui
from aerec.bench import published, report
from aerec.bench.grid import Cell, load_cell, run_cell, save_cell
from aerec.bench.suites import suite_models
from aerec.errors import ConfigError

PROTOCOL_FOR_TASK = {"rating": "ratings-kfold", "ranking": "strong"}
RANKING_PROTOCOLS = ("strong", "weak")
# Models whose paper defines their own protocol run under it, whatever --ranking-protocol says.
# The cheap closed-form models (when chosen) run beside them on the same folds, as reference lines.
OWN_PROTOCOL = {"svae": ("temporal", {"mode": "user"})}
REFERENCE_LINES = ("pop", "ease")


def plan(chosen: list[str], task: str, ranking_protocol: str) -> dict[tuple, list[str]]:
    """(protocol name, options) -> the models that run under it, for one task."""
    from aerec import models as registry

    default = ranking_protocol if task == "ranking" else PROTOCOL_FOR_TASK[task]
    groups: dict[tuple, list[str]] = {}
    for m in chosen:
        if registry.get(m).task != task:
            continue
        name, opts = OWN_PROTOCOL.get(m, (default, {}))
        groups.setdefault((name, tuple(sorted(opts.items()))), []).append(m)
    if task == "ranking":
        for (name, _), names in groups.items():
            if name != default:
                names[:0] = [m for m in REFERENCE_LINES if m in chosen and m not in names]
    return groups


def versions() -> dict:
    import numpy
    import scipy
    import torch

    return {"aerec": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": numpy.__version__, "scipy": scipy.__version__}


def machine() -> dict:
    import torch

    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.is_available()}


def fingerprint(data) -> str:
    """SHA-256 over the loaded interaction arrays: identifies the exact data a run saw."""
    h = hashlib.sha256()
    for arr in (data.user, data.item, data.rating, data.timestamp):
        if arr is not None:
            h.update(arr.tobytes())
    return h.hexdigest()


def run_bench(out: str | Path, suite: str = "quick", datasets=("ml-100k",), models=None, folds: int = 5,
              seed: int = 0, jobs: int = 1, loader=None, overrides: dict | None = None,
              ranking_protocol: str = "strong", data_options: dict | None = None,
              protocol_options: dict | None = None, ks=None) -> dict:
    """Run (or resume) the grid and write every report file. `loader(name)` defaults to aerec.data.load.

    ranking_protocol: `strong` (k folds over users) or `weak` (RecBole's 8:1:1 recipe, one fold,
    @10 metrics added); rating models always run rating k-fold CV.
    data_options: the data section (columns, feedback, threshold; aerec.data.options) for every
    data set; protocol_options: options of the ranking protocol (e.g. valid_frac); ks: cutoffs.
    """
    from aerec import models as registry
    from aerec import protocols
    from aerec.data import feedback
    from aerec.data import options as dataopts

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    configs = suite_models(suite)
    chosen = list(models) if models else list(configs)
    for m in chosen:
        registry.get(m)  # unknown names fail before any work
    if ranking_protocol not in RANKING_PROTOCOLS:
        raise ConfigError(f"ranking protocol must be one of {', '.join(RANKING_PROTOCOLS)}")
    if loader is None:
        from aerec.data import load as loader
    started = time.time()
    cells_done, fingerprints = [], {}
    todo = []
    columns = dataopts.columns_only(data_options or {})
    skipped: list[str] = []
    for dataset in datasets:
        data = loader(dataset, **columns) if columns else loader(dataset)
        fingerprints[dataset] = fingerprint(data)
        fb = feedback.of(data, data_options)
        for task in ("rating", "ranking"):
            for (proto_name, opts), names in plan(chosen, task, ranking_protocol).items():
                if task == "rating" and fb.kind != "explicit":
                    ui.info(f"{dataset}: rating models ({', '.join(names)}) skipped: {fb.describe()}")
                    skipped.append(f"{', '.join(names)} on {dataset} ({fb.describe()})")
                    continue
                user_opts = dict(protocol_options or {}) if task == "ranking" and proto_name == ranking_protocol else {}
                proto = protocols.get(proto_name, folds=None if proto_name == "weak" else folds, seed=seed,
                                      **{**dict(opts), **user_opts})
                resolved, line = feedback.protocol_options(data, fb, proto_name, proto.options(),
                                                           set(user_opts) | set(dict(opts)))
                ui.info(line)
                changed = {k: v for k, v in resolved.items() if proto.options().get(k) != v}
                opts = tuple(sorted({**dict(opts), **user_opts, **changed}.items()))
                if changed:
                    proto = protocols.get(proto_name, folds=None if proto_name == "weak" else folds, seed=seed,
                                          **dict(opts))
                folds_list = None  # split lazily: a fully cached grid never splits
                for f in range(proto.n_folds):
                    for m in names:
                        cfg = {**configs.get(m, {}), **(overrides or {}).get(m, {})}
                        cell = Cell(m, dataset, proto_name, f, proto.n_folds, seed, cfg, dict(opts),
                                    tuple(ks) if ks else None)
                        cached = load_cell(cell, out)
                        if cached is not None:
                            cells_done.append(cached)
                            continue
                        if folds_list is None:
                            folds_list = proto.folds(data)
                        todo.append((cell, registry.get(m).prepare_fold(folds_list[f], data), task))
    if skipped and not todo and not cells_done:
        raise ConfigError(f"nothing to run: rating models need explicit ratings, skipped {'; '.join(skipped)}; "
                          "pass --feedback explicit if the values are ratings")
    ui.info(f"bench: {len(cells_done)} cells cached, {len(todo)} to run -> {out}")
    if jobs > 1 and len(todo) > 1:
        cells_done += _run_parallel(todo, out, jobs)
    else:
        for cell, fold, task in todo:
            result = run_cell(cell, fold, task)
            save_cell(cell, out, result)
            cells_done.append(result)
            _line(result)
    rows = report.aggregate(cells_done)
    report.mark_significance(rows, cells_done)
    header = f"# aerec bench: suite `{suite}`\n\nCommand: `{' '.join(_command())}`\n"
    footer = "\n".join(part for part in (report.base_comparisons(rows, cells_done), published.section(rows)) if part)
    report.write_tables(rows, out, header, footer=footer)
    pngs = report.plots(rows, cells_done, out)
    fsutil.write_json(out / "run.json", {
        "command": _command(), "suite": suite, "datasets": list(datasets), "models": chosen,
        "folds": folds, "seed": seed, "ranking_protocol": ranking_protocol,
        **({"data_options": data_options} if data_options else {}),
        **({"protocol_options": protocol_options} if protocol_options else {}),
        **({"ks": list(ks)} if ks else {}),
        "jobs": jobs, "versions": versions(), "machine": machine(),
        "data_sha256": fingerprints, "cells": len(cells_done), "seconds": time.time() - started,
        "plots": [Path(p).name for p in pngs],
    })
    return {"rows": rows, "plots": pngs, "out": str(out)}


def _command() -> list[str]:
    return ["aerec", *sys.argv[1:]] if Path(sys.argv[0]).name in ("aerec", "__main__.py") else sys.argv


def _line(result: dict) -> None:
    main = result["metrics"].get("ndcg@100", result["metrics"].get("rmse"))
    name = "ndcg@100" if "ndcg@100" in result["metrics"] else "rmse"
    ui.info(f"  done {result['model']} {result['dataset']} fold {result['fold'] + 1}: {name} {main:.4f}, "
            f"{result['epochs']} epochs, {result['train_seconds']:.1f}s")


def _worker(args):
    import torch

    cell, fold, task, threads = args
    torch.set_num_threads(threads)
    ui.set_quiet(True)
    return cell, run_cell(cell, fold, task)


def _run_parallel(todo, out: Path, jobs: int) -> list[dict]:
    from concurrent.futures import ProcessPoolExecutor, as_completed

    if jobs < 1:
        raise ConfigError("--jobs must be at least 1")
    threads = max(1, (os.cpu_count() or 1) // jobs)
    done = []
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(_worker, (cell, fold, task, threads)) for cell, fold, task in todo]
        for fut in as_completed(futures):
            cell, result = fut.result()
            save_cell(cell, out, result)
            done.append(result)
            _line(result)
    return done
