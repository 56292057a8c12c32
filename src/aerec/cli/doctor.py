"""`aerec doctor`: versions, thread settings, BLAS, GPU and the data cache, for bug reports."""

from __future__ import annotations

import json
import os
import platform
import sys
from importlib import metadata

import click

_PACKAGES = ("numpy", "scipy", "pandas", "pyarrow", "torch", "click", "tqdm", "safetensors")
# the optional extras of pyproject.toml and the distributions each brings
EXTRAS = {
    "serve": ("fastapi", "uvicorn"),
    "tune": ("optuna",),
    "peers": ("scikit-surprise", "implicit", "scikit-learn"),
    "onnx": ("onnx", "onnxruntime", "onnxscript"),
}
_EXTRA_USE = {"serve": "aerec serve (HTTP service)", "tune": "aerec tune (Optuna search)",
              "peers": "wmf model and peer baselines", "onnx": "aerec export --format onnx"}
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


def report() -> dict:
    from aerec import __version__
    from aerec.data import cache

    out = {
        "aerec": __version__,
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "packages": {p: _version(p) for p in _PACKAGES},
        "extras": {name: {"installed": all(_version(p) for p in pkgs), "packages": {p: _version(p) for p in pkgs},
                          "for": _EXTRA_USE[name]} for name, pkgs in EXTRAS.items()},
        "numpy_blas": _numpy_blas(),
        "env": {v: os.environ.get(v) for v in _THREAD_VARS if os.environ.get(v) is not None},
    }
    try:
        import torch

        gpu = {"cuda_available": torch.cuda.is_available(), "cuda_version": torch.version.cuda,
               "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
               if torch.cuda.is_available() else [],
               "mps_available": bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())}
        out["torch"] = {"threads": torch.get_num_threads(), "interop_threads": torch.get_num_interop_threads(),
                        "mkl": torch.backends.mkl.is_available(), "openmp": torch.backends.openmp.is_available(),
                        **gpu}
    except ImportError:
        out["torch"] = None
    out["cache"] = cache.contents()
    return out


def _text(r: dict) -> str:
    lines = [f"aerec {r['aerec']}  python {r['python']}  ({r['platform']}, {r['cpus']} CPUs)"]
    lines.append("packages: " + ", ".join(f"{k} {v or 'missing'}" for k, v in r["packages"].items()))
    lines.append("optional extras (pip install 'aerec[NAME]'):")
    for name, e in r["extras"].items():
        state = "installed" if e["installed"] else "missing " + ", ".join(p for p, v in e["packages"].items() if not v)
        lines.append(f"  {name:<6} {state:<28} {e['for']}")
    if r["numpy_blas"]:
        lines.append(f"numpy BLAS: {r['numpy_blas']}")
    t = r["torch"]
    if t is None:
        lines.append("torch: not installed")
    else:
        lines.append(f"torch threads: {t['threads']} (interop {t['interop_threads']}), MKL {t['mkl']}, OpenMP {t['openmp']}")
        gpu = ", ".join(t["devices"]) if t["devices"] else "none"
        lines.append(f"GPU: CUDA available {t['cuda_available']} ({gpu}); MPS {t['mps_available']}")
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
