"""The README's library example from a DataFrame runs as written, and prints what it says."""

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_dataframe_example_runs():
    text = README.read_text(encoding="utf-8")
    marker = text.index("readme-dataframe-example")
    block = re.search(r"```python\n(.*?)```", text[marker:], re.S).group(1)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block, "README.md", "exec"), {})
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("implicit feedback (guessed")
    assert lines[1] == "['C-3']"
    assert "C-3" not in lines[2]


def _own_data_files(folder: Path) -> None:
    """A retail export and a header-less plays log shaped like the README's walkthrough."""
    import json
    import random

    rng = random.Random(0)
    skus = [f"SKU-{i:03d}" for i in range(60)]
    lines = ["customer,sku,quantity,order_date"]
    for c in range(200):
        for sku in rng.sample(skus[: 20 + c % 40], 8):
            lines.append(f"C-{c:05d},{sku},{rng.randint(1, 20)},2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}")
    lines.append("C-00042,SKU-001,3,2024-12-31")
    (folder / "orders.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    artists = ["Crosby, Stills, Nash & Young", '"Weird Al" Yankovic', "Sigur Rós", "AC/DC", "Mötley Crüe"]
    artists += [f"Artist {i}" for i in range(45)]
    rows = [f"{u}\t{a}\t{int(rng.paretovariate(1.2))}" for u in range(300) for a in rng.sample(artists[: 10 + u % 40], 10)]
    (folder / "plays.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (folder / "basket.txt").write_text("SKU-001\nSKU-007\nSKU-012\n", encoding="utf-8")
    (folder / "liked.json").write_text(json.dumps(["Crosby, Stills, Nash & Young", "Sigur Rós"]), encoding="utf-8")


def test_readme_own_data_walkthrough_runs(tmp_path):
    import os
    import subprocess
    import sys

    text = README.read_text(encoding="utf-8")
    marker = text.index("readme-own-data-walkthrough")
    block = re.search(r"```bash\n(.*?)```", text[marker:], re.S).group(1)
    _own_data_files(tmp_path)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", AEREC_QUIET="1")
    done = subprocess.run(["bash", "-e", "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "values: counts" in out
    assert "top 5 for user C-00042" in out and "top 5 for a new user with 3 item(s)" in out
    assert "top 5 for a new user with 2 item(s) (wmf" in out
    # the liked artists are folded in, so never recommended back
    assert "Crosby, Stills, Nash & Young" not in out.split("(wmf")[-1]
