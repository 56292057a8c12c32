"""`aerec bench`: every model on every data set under its proper protocol, resumable.

Rating models run rating k-fold CV; top-N models run strong generalization with k folds over
users. Results go to DIR: results.md/.csv/.json, run.json and PNG plots.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import sys
import time
from pathlib import Path

from aerec import __version__, fsutil, ui
from aerec.bench import published, report, suites
from aerec.bench.grid import Cell, cancel_on_failure, load_cell, run_cell, save_cell
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
              ranking_protocol: str = "strong", overwrite: bool = False, smoke: bool = False,
              data_options: dict | None = None, protocol_options: dict | None = None, ks=None,
              report_only: bool = False, where: dict | None = None) -> dict:
    """Run (or resume) the grid and write every report file. `loader(name)` defaults to aerec.data.load.

    ranking_protocol: `strong` (k folds over users) or `weak` (RecBole's 8:1:1 recipe, one fold,
    @10 metrics added); rating models always run rating k-fold CV.
    Finished cells are cached under out, so a rerun resumes; ``overwrite`` starts afresh in a
    folder beside out that replaces it only once the new run is complete.
    smoke: every chosen model on `suites.SMOKE_FOLDS` folds with a token budget (an installation
    check; the numbers mean nothing).
    data_options: the data section (columns, feedback, threshold; aerec.data.options) for every
    data set; protocol_options: options of the ranking protocol (e.g. valid_frac); ks: cutoffs.
    report_only: run nothing; write the report from the cells finished so far (another process
    may still be running the same command) and name the unfinished ones.
    where: the device, GPU and precision the cells ran with (``devices.record``), for run.json.
    """
    from aerec import deps, protocols
    from aerec import models as registry
    from aerec.data import feedback
    from aerec.data import options as dataopts

    final = Path(out)
    precision = (where or {}).get("precision", "fp32")  # part of the cells' keys when not fp32
    configs = suite_models(suite)
    chosen = list(models) if models is not None else list(configs)
    datasets = list(datasets or [])
    if not chosen or not datasets:
        raise ConfigError(f"bench needs at least one {'model' if not chosen else 'data set'}")
    # unknown names and missing optional libraries fail before any work
    deps.check(*(registry.get(m) for m in chosen))
    if where:
        from aerec import devices

        ui.info(devices.describe(where["device"], where["precision"]))
    if ranking_protocol not in RANKING_PROTOCOLS:
        raise ConfigError(f"ranking protocol must be one of {', '.join(RANKING_PROTOCOLS)}")
    if smoke:
        folds = suites.SMOKE_FOLDS
    if report_only and overwrite:
        raise ConfigError("--report-only reads the cells in OUT; it cannot be combined with --overwrite")
    protocols.get(PROTOCOL_FOR_TASK["rating"], folds=folds, seed=seed)  # folds and seed, checked up front
    if final.exists() and not fsutil.is_empty_dir(final) and not ((final / "run.json").exists() or (final / "cells").is_dir()):
        raise ConfigError(f"{final}: folder is not empty and holds no bench run; choose another --out")
    out = fsutil.fresh_partial(final) if overwrite else final  # cells and reports are each written atomically
    try:
        if loader is None:
            from aerec.data import load as loader
        started, cpu_started, load_started = time.time(), _cpu_seconds(), _load()
        cells_done, fingerprints = [], {}
        todo = []
        columns = dataopts.columns_only(data_options or {})
        skipped: list[str] = []
        unfinished: list[str] = []
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
                            if smoke:
                                cfg = suites.smoke_config(m, cfg)
                            cell = Cell(m, dataset, proto_name, f, proto.n_folds, seed, cfg, dict(opts),
                                        ks=tuple(ks) if ks else None, precision=precision)
                            cached = load_cell(cell, out)
                            if cached is not None:
                                cells_done.append(cached)
                                continue
                            if report_only:
                                unfinished.append(cell.label())
                                continue
                            if folds_list is None:
                                folds_list = proto.folds(data)
                            cell.weight = suites.expected_seconds(m, cfg, len(data))
                            todo.append((cell, registry.get(m).prepare_fold(folds_list[f], data), task))
        if report_only and not cells_done:
            raise ConfigError(f"--report-only: {final} holds no finished cell of this command yet")
        if skipped and not todo and not cells_done:
            raise ConfigError(f"nothing to run: rating models need explicit ratings, skipped {'; '.join(skipped)}; "
                              "pass --feedback explicit if the values are ratings")
        progress = Progress([c.weight for c, _, _ in todo], jobs)
        ui.info(f"bench: {len(cells_done)} cells cached, {len(todo)} to run -> {out}"
                + (f"; first estimate {_clock(progress.estimate())} (ETA updates as cells finish)" if todo else ""))
        if jobs > 1 and len(todo) > 1:
            cells_done += _run_parallel(todo, out, jobs, progress)
        else:
            for cell, fold, task in todo:
                result = run_cell(cell, fold, task)
                save_cell(cell, out, result)
                cells_done.append(result)
                progress.done(cell, result)
        rows = report.aggregate(cells_done)
        report.mark_significance(rows, cells_done)
        timing = {"seconds": time.time() - started, "cpu_seconds": _cpu_seconds() - cpu_started,
                  "load_average": {"start": load_started, "end": _load()}}
        if report_only:  # the cells' cost was paid by the run that made them: keep its figures
            timing = {k: _previous(out / "run.json").get(k) for k in timing}
        header = f"# aerec bench: suite `{suite}`{' (smoke)' if smoke else ''}\n\nCommand: `{' '.join(_command())}`\n"
        if unfinished:
            header += (f"\n**Partial:** {len(unfinished)} cells have not finished, and each row averages only the "
                       f"folds it has: {', '.join(unfinished)}. Rerunning the command completes them.\n")
        footer = "\n".join(part for part in (report.base_comparisons(rows, cells_done), published.section(rows)) if part)
        report.write_tables(rows, out, header, footer=footer)
        pngs = report.plots(rows, cells_done, out)
        fsutil.write_json(out / "run.json", {
            "command": _command(), "suite": suite, "datasets": list(datasets), "models": chosen,
            "folds": folds, "seed": seed, "ranking_protocol": ranking_protocol,
            **({"data_options": data_options} if data_options else {}),
            **({"protocol_options": protocol_options} if protocol_options else {}),
            **({"ks": list(ks)} if ks else {}),
            "jobs": jobs, "versions": versions(), "machine": machine(), **(where or _where()),
            "data_sha256": fingerprints, "cells": len(cells_done), **timing,
            **({"unfinished_cells": unfinished} if report_only else {}),
            "plots": [Path(p).name for p in pngs], **({"smoke": True} if smoke else {}),
        })
        if out != final:
            fsutil.replace_dir(out, final)
            pngs = [str(final / Path(p).name) for p in pngs]
        return {"rows": rows, "plots": pngs, "out": str(final)}
    except BaseException:  # an --overwrite build that failed is of no use to a rerun (it starts afresh)
        if out != final:
            shutil.rmtree(out, ignore_errors=True)
        raise


def _where() -> dict:
    from aerec import devices

    return devices.record("cpu")


def _previous(path: Path) -> dict:
    """The run.json a report-only pass replaces ({} when there is none or it is unreadable)."""
    import json

    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return old if isinstance(old, dict) else {}


def _command() -> list[str]:
    from aerec.storage import safe_argv

    # the command that makes (or completes) the run, its storage password masked
    return safe_argv([a for a in _argv() if a != "--report-only"])


def _argv() -> list[str]:
    return ["aerec", *sys.argv[1:]] if Path(sys.argv[0]).name in ("aerec", "__main__.py") else sys.argv


def _cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (the --jobs workers)."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _load() -> list[float] | None:
    """1, 5 and 15-minute load averages: a wall time means little without them on a shared box."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}:{seconds % 60:02d}"


class Progress:
    """One line per finished cell, with the elapsed time and an ETA.

    Each cell carries an expected cost (`suites.expected_seconds`); the ETA scales the cost still
    to run by the seconds the finished cells actually took per unit of expected cost, so it
    adapts to the machine and its load.
    """

    def __init__(self, weights: list[float], jobs: int = 1):
        self.total = float(sum(weights))
        self.n = len(weights)
        self.jobs = max(1, min(jobs, self.n or 1))
        self.finished = 0
        self.done_weight = 0.0
        self.t0 = time.perf_counter()

    def estimate(self) -> float:
        """Seconds still to run: the prior estimate until a cell has finished, then calibrated."""
        left = self.total - self.done_weight
        if self.done_weight <= 0:
            return left / self.jobs
        return (time.perf_counter() - self.t0) * left / self.done_weight

    def done(self, cell, result: dict) -> str:
        self.finished += 1
        self.done_weight += getattr(cell, "weight", 0.0) or 0.0
        metrics = result["metrics"]
        name = "ndcg@100" if "ndcg@100" in metrics else "rmse"
        eta = self.estimate() if self.finished < self.n else 0.0
        width = len(str(self.n))
        line = (f"[{self.finished:>{width}}/{self.n}] {result['model']} {result['dataset']} fold "
                f"{result['fold'] + 1}/{cell.n_folds}: {name} {metrics.get(name, float('nan')):.4f}, "
                f"{result['epochs']} epochs, {result['train_seconds']:.1f}s train | "
                f"elapsed {_clock(time.perf_counter() - self.t0)}, ETA {_clock(eta)}")
        ui.info(line)
        return line


def _worker(args):
    import torch

    cell, fold, task, threads = args
    torch.set_num_threads(threads)
    ui.set_quiet(True)
    return cell, run_cell(cell, fold, task)


def _run_parallel(todo, out: Path, jobs: int, progress: Progress) -> list[dict]:
    from concurrent.futures import ProcessPoolExecutor, as_completed

    if jobs < 1:
        raise ConfigError("--jobs must be at least 1")
    threads = max(1, (os.cpu_count() or 1) // jobs)
    # longest cells first: the pool takes them in order, so the last cells to start are short ones
    todo = sorted(todo, key=lambda t: -t[0].weight)
    done = []
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(_worker, (cell, fold, task, threads)): cell for cell, fold, task in todo}
        with cancel_on_failure(pool):
            for fut in as_completed(futures):
                cell, result = fut.result()
                save_cell(cell, out, result)
                done.append(result)
                progress.done(futures[fut], result)
    return done
