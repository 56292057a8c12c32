"""Run folders: a training run is built in the hidden sibling ``.NAME.partial`` and swapped in
whole when its last fold is done (split out of aerec.runner)."""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

from aerec import distributed, fsutil, ui
from aerec.errors import AerecError, ConfigError

#
# A run is built in the hidden sibling ``.NAME.partial`` (folds finish there one by one, each with
# its metrics.json written last) and swapped in whole when the last fold is done: a failed or
# killed run never damages a finished one, and --resume continues the partial folder.


def _read_identity(marker: Path):
    try:
        old = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    return old if isinstance(old, dict) else None


def _differs(old: dict | None, identity: dict) -> list[str]:
    return list(identity) if old is None else sorted(k for k in identity if old.get(k) != identity[k])


def _finished_folds(work: Path) -> list[str]:
    return sorted(p.name for p in work.glob("fold-*") if (p / "metrics.json").exists())


def check_run(out: Path, identity: dict, marker: str, *, resume: bool = False, overwrite: bool = False) -> str:
    """What to do with the run folder ``out``, checked before any training; raises what would mix
    or lose runs. ``marker`` is the file a finished run has (metrics.json; info.json for 'full').

    Returns "reuse" (a finished run and --resume with its settings), "continue" (the unfinished
    run in .NAME.partial, --resume), "adopt" (an unfinished run an older aerec left in ``out``,
    --resume) or "fresh" (a new partial folder; an unfinished one without a finished fold, or any
    with --overwrite, is discarded).
    """
    out = Path(out)
    partial = fsutil.partial_dir(out)
    if resume and overwrite:
        raise ConfigError("--resume continues a run and --overwrite replaces it; choose one")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder; choose another --out")
    if out.is_dir() and not fsutil.is_empty_dir(out):
        if not (out / "config.json").exists():
            raise ConfigError(f"{out}: folder is not empty and holds no run; choose another --out")
        finished = (out / marker).exists()
        if resume and not overwrite:
            diff = _differs(_read_identity(out / "config.json"), identity)
            if diff:
                raise ConfigError(f"{out} was run with other settings ({', '.join(diff)} differ); drop --resume, "
                                  "or pass --overwrite to replace it")
            if finished:
                return "reuse"
            if not partial.exists():
                return "adopt"
        elif not overwrite:
            if finished:
                raise ConfigError(f"{out} already holds a finished run; pass --overwrite to replace it, --resume to "
                                  "reuse it, or choose another --out")
            if not _finished_folds(out):  # a failed run of an older aerec, nothing finished: replaced
                return "fresh"
            raise ConfigError(f"{out} holds an unfinished run; pass --resume to continue it or --overwrite to "
                              "start afresh")
    if overwrite or not partial.exists():
        return "fresh"
    fsutil.check_busy(partial)
    done = _finished_folds(partial)
    diff = _differs(_read_identity(partial / "config.json"), identity)
    if resume and not diff:
        return "continue"
    if not done:
        return "fresh"
    if resume:
        raise ConfigError(f"the unfinished run for {out} used other settings ({', '.join(diff)} differ); "
                          "pass --overwrite to start afresh")
    raise ConfigError(f"{out}: an unfinished run has {len(done)} finished fold(s) in {partial}; pass --resume to "
                      "continue it or --overwrite to start afresh")


def _open_run(out: Path, action: str) -> Path:
    partial = fsutil.partial_dir(out)
    if action == "reuse":
        return out
    if action == "adopt":
        partial.parent.mkdir(parents=True, exist_ok=True)
        out.rename(partial)
        return partial
    if action == "continue":
        return partial
    if partial.exists():
        ui.info(f"discarding the unfinished run in {partial}")
    return fsutil.fresh_partial(out)


@contextlib.contextmanager
def run_folder(out: Path, identity: dict, marker: str, *, resume: bool, overwrite: bool):
    """Yield (folder to build the run in, whether it is a finished run reused as it is); swap the
    build in place of ``out`` when the block succeeds. Under torchrun rank 0 decides and writes."""
    ctx, writer = distributed.current(), distributed.is_writer()
    reuse = False
    made = [p for p in (out.parent, *out.parent.parents) if not p.exists()]  # folders a failure must not leave
    with contextlib.ExitStack() as stack:
        if writer:
            action = check_run(out, identity, marker, resume=resume, overwrite=overwrite)
            reuse = action == "reuse"
            stack.enter_context(fsutil.locked_dir(_open_run(out, action)))
        if ctx is not None:
            reuse = ctx.agree(reuse)  # also the barrier: rank 0 has prepared the folder
        work = out if reuse else fsutil.partial_dir(out)
        try:
            yield work, reuse
        except AerecError:
            # a run that fails on its input before finishing a fold leaves nothing behind
            if writer and not reuse and not _finished_folds(work):
                shutil.rmtree(work, ignore_errors=True)
                for p in made:  # innermost first; a folder something else wrote into stays
                    with contextlib.suppress(OSError):
                        p.rmdir()
            raise
        except KeyboardInterrupt:
            if writer and not reuse:
                ui.info(f"the unfinished run is kept in {work}; the same command with --resume continues it")
            raise
        if writer and not reuse:
            fsutil.replace_dir(work, out)
