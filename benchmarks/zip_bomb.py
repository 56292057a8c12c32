"""Compression bombs are refused before parsing (issue 22 #10/#11): a 1.6 MB zip (and gzip)
expanding to 1.6 GB of "1,1" lines, given to `aerec data info`. The goal: exit 2 in under 2 s
and under 300 MB of memory.

Each bomb is built in a temporary folder and run `--repeats` times in a fresh process; the
child's wall time, CPU time (user + system) and peak RSS come from os.wait4. As a baseline the
same process runs `aerec data list`, which reads no data: its figures are the cost of starting
Python and importing the CLI. Writes benchmarks/results/zip_bomb.json with the command, the
machine and its load.

    python benchmarks/zip_bomb.py --repeats 3
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

OUT = Path(__file__).parent / "results" / "zip_bomb.json"
LINES = 400_000_000  # 1.6 GB of "1,1\n"


def build(folder: Path) -> list[Path]:
    block = b"1,1\n" * 1_000_000
    z = folder / "bomb.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as archive, \
            archive.open("r.csv", "w", force_zip64=True) as f:
        for _ in range(LINES // 1_000_000):
            f.write(block)
    g = folder / "bomb.csv.gz"
    with gzip.open(g, "wb") as f:
        for _ in range(LINES // 1_000_000):
            f.write(block)
    return [z, g]


def run(args: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "aerec", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace").strip().splitlines()
    proc.stderr.close()
    return {"exit": os.waitstatus_to_exitcode(status), "wall_s": round(wall, 3),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 3), "max_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "message": err[-1] if err else ""}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bombs = build(Path(tmp))
        load_before = list(os.getloadavg())
        rows = [{"case": "aerec data list (baseline: no data read)", "runs": [run(["data", "list"])
                                                                               for _ in range(a.repeats)]}]
        for bomb in bombs:
            rows.append({"case": f"aerec data info {bomb.name} ({bomb.stat().st_size:,} bytes, {LINES * 4:,} inflated)",
                         "runs": [run(["data", "info", str(bomb)]) for _ in range(a.repeats)]})
    result = {"command": "python benchmarks/zip_bomb.py " + " ".join(sys.argv[1:]),
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
              "load_avg_1_5_15": {"before": load_before, "after": list(os.getloadavg())}, "goal": "exit 2, under 2 s, under 300 MB", "cases": rows}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    for row in rows:
        runs = row["runs"]
        print(f"{row['case']}: exit {runs[0]['exit']}, wall {min(r['wall_s'] for r in runs):.2f}-"
              f"{max(r['wall_s'] for r in runs):.2f} s, cpu {min(r['cpu_s'] for r in runs):.2f}-"
              f"{max(r['cpu_s'] for r in runs):.2f} s, peak {max(r['max_rss_mb'] for r in runs):.0f} MB")


if __name__ == "__main__":
    main()
