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
              ranking_protocol: str = "strong", overwrite: bool = False) -> dict:
    """Run (or resume) the grid and write every report file. `loader(name)` defaults to aerec.data.load.

    ranking_protocol: `strong` (k folds over users) or `weak` (RecBole's 8:1:1 recipe, one fold,
    @10 metrics added); rating models always run rating k-fold CV.
    Finished cells are cached under out, so a rerun resumes; ``overwrite`` starts afresh in a
    folder beside out that replaces it only once the new run is complete.
    """
    from aerec import models as registry
    from aerec import protocols

    final = Path(out)
    configs = suite_models(suite)
    chosen = list(models) if models is not None else list(configs)
    datasets = list(datasets or [])
    if not chosen or not datasets:
        raise ConfigError(f"bench needs at least one {'model' if not chosen else 'data set'}")
    for m in chosen:
        registry.get(m)  # unknown names fail before any work
    if ranking_protocol not in RANKING_PROTOCOLS:
        raise ConfigError(f"ranking protocol must be one of {', '.join(RANKING_PROTOCOLS)}")
    protocols.get(PROTOCOL_FOR_TASK["rating"], folds=folds, seed=seed)  # folds and seed, checked up front
    if final.exists() and not fsutil.is_empty_dir(final) and not ((final / "run.json").exists() or (final / "cells").is_dir()):
        raise ConfigError(f"{final}: folder is not empty and holds no bench run; choose another --out")
    out = fsutil.fresh_partial(final) if overwrite else final  # cells and reports are each written atomically
    if loader is None:
        from aerec.data import load as loader
    started = time.time()
    cells_done, fingerprints = [], {}
    todo = []
    for dataset in datasets:
        data = loader(dataset)
        fingerprints[dataset] = fingerprint(data)
        for task in ("rating", "ranking"):
            for (proto_name, opts), names in plan(chosen, task, ranking_protocol).items():
                proto = protocols.get(proto_name, folds=None if proto_name == "weak" else folds, seed=seed,
                                      **dict(opts))
                folds_list = None  # split lazily: a fully cached grid never splits
                for f in range(proto.n_folds):
                    for m in names:
                        cfg = {**configs.get(m, {}), **(overrides or {}).get(m, {})}
                        cell = Cell(m, dataset, proto_name, f, proto.n_folds, seed, cfg, dict(opts))
                        cached = load_cell(cell, out)
                        if cached is not None:
                            cells_done.append(cached)
                            continue
                        if folds_list is None:
                            folds_list = proto.folds(data)
                        todo.append((cell, registry.get(m).prepare_fold(folds_list[f], data), task))
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
        "folds": folds, "seed": seed, "ranking_protocol": ranking_protocol, "jobs": jobs, "versions": versions(), "machine": machine(),
        "data_sha256": fingerprints, "cells": len(cells_done), "seconds": time.time() - started,
        "plots": [Path(p).name for p in pngs],
    })
    if out != final:
        fsutil.replace_dir(out, final)
        pngs = [str(final / Path(p).name) for p in pngs]
    return {"rows": rows, "plots": pngs, "out": str(final)}


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
