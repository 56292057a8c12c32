"""`aerec doctor`: versions, thread settings, BLAS, GPU and the data cache, for bug reports."""

from __future__ import annotations

import json
import os
import platform
import sys
from importlib import metadata

import click

_PACKAGES = ("numpy", "scipy", "pandas", "pyarrow", "torch", "click", "tqdm", "safetensors")
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "AEREC_HOME", "CUDA_VISIBLE_DEVICES")


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def _numpy_blas() -> str | None:
    import numpy as np

    try:  # numpy >= 1.26 can describe its build as a dict
        cfg = np.show_config(mode="dicts")
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        return " ".join(str(blas.get(k)) for k in ("name", "version") if blas.get(k)) or None
    except Exception:  # older numpy or an unusual build: not worth failing the report for
        return None


def optional() -> list[dict]:
    """What each optional part needs, from aerec.deps: every model's ``requires`` and the
    commands' FEATURES (the same table the up-front checks use)."""
    from aerec import deps, model_registry

    return deps.table([model_registry.get(name) for name in model_registry.names()])


def _extras(rows: list[dict]) -> dict:
    """The same table by extra: what it installs (that aerec uses) and what it is for."""
    out: dict = {}
    for row in rows:
        for extra in row["extras"]:
            e = out.setdefault(extra, {"installed": True, "packages": {}, "for": []})
            e["packages"].update(row["packages"])
            e["installed"] = e["installed"] and row["installed"]
            e["for"].append(row["for"])
    return {name: {**e, "for": ", ".join(e["for"])} for name, e in out.items()}


def report() -> dict:
    from aerec import __version__
    from aerec.data import cache

    rows = optional()
    out = {
        "aerec": __version__,
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "packages": {p: _version(p) for p in _PACKAGES},
        "extras": _extras(rows),
        "optional": rows,
        "numpy_blas": _numpy_blas(),
        "env": {v: os.environ.get(v) for v in _THREAD_VARS if os.environ.get(v) is not None},
    }
    try:
        import torch

        cuda = torch.cuda.is_available()
        gpu = {"cuda_available": cuda, "cuda_version": torch.version.cuda,
               "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
               "gpus": [_gpu(torch, i) for i in range(torch.cuda.device_count())] if cuda else [],
               "auto_device": "cuda" if cuda else "cpu",
               "mps_available": bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())}
        out["torch"] = {"threads": torch.get_num_threads(), "interop_threads": torch.get_num_interop_threads(),
                        "mkl": torch.backends.mkl.is_available(), "openmp": torch.backends.openmp.is_available(),
                        **gpu}
    except ImportError:
        out["torch"] = None
    out["cache"] = cache.contents()
    return out


def _gpu(torch, i: int) -> dict:
    p = torch.cuda.get_device_properties(i)
    major, minor = torch.cuda.get_device_capability(i)
    return {"index": i, "name": p.name, "memory_gib": p.total_memory / 2**30, "capability": f"{major}.{minor}",
            "bf16": major >= 8}


def _text(r: dict) -> str:
    lines = [f"aerec {r['aerec']}  python {r['python']}  ({r['platform']}, {r['cpus']} CPUs)"]
    lines.append("packages: " + ", ".join(f"{k} {v or 'missing'}" for k, v in r["packages"].items()))
    lines.append("optional parts (pip install 'aerec[EXTRA]'):")
    width = max([len(row["for"]) for row in r["optional"]] + [10])
    for row in r["optional"]:
        pkgs = ", ".join(f"{p} {v}" if v else f"{p} (missing)" for p, v in row["packages"].items())
        state = "ready" if row["installed"] else "to add: pip install " + " ".join(f"'aerec[{e}]'" for e in row["extras"])
        lines.append(f"  {row['for']:<{width}}  {pkgs}; {state}")
    if r["numpy_blas"]:
        lines.append(f"numpy BLAS: {r['numpy_blas']}")
    t = r["torch"]
    if t is None:
        lines.append("torch: not installed")
    else:
        lines.append(f"torch threads: {t['threads']} (interop {t['interop_threads']}), MKL {t['mkl']}, OpenMP {t['openmp']}")
        gpu = ", ".join(t["devices"]) if t["devices"] else "none"
        lines.append(f"GPU: CUDA available {t['cuda_available']} ({gpu}); MPS {t['mps_available']}")
        for g in t.get("gpus", []):
            lines.append(f"  cuda:{g['index']}: {g['name']}, {g['memory_gib']:.1f} GiB, compute capability "
                         f"{g['capability']}, bf16 {g['bf16']}")
        lines.append(f"--device auto chooses: {t.get('auto_device', 'cpu')}")
    for k, v in r["env"].items():
        lines.append(f"{k}={v}")
    c = r["cache"]
    lines.append(f"AEREC_HOME: {c['home']}")
    if c["datasets"]:
        for name, d in c["datasets"].items():
            n = f"{d['interactions']:,}" if d.get("interactions") else "?"
            lines.append(f"  {name}: {d['status']}, {n} interactions, {(d.get('bytes') or 0) / 2**20:.1f} MiB")
    else:
        lines.append("  no cached data sets")
    for f, size in c["downloads"].items():
        lines.append(f"  downloads/{f}: {size / 2**20:.1f} MiB")
    return "\n".join(lines)


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output on stdout.")
def doctor(as_json: bool) -> None:
    """Print versions, thread settings, BLAS, whether a GPU is present, and the cache contents."""
    r = report()
    click.echo(json.dumps(r, indent=2, default=str) if as_json else _text(r))


commands = [doctor]
