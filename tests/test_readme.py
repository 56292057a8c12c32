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
