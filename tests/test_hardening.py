"""Second hostile round (issue 24): extreme values, refused refits, storage URLs, model headers.

Each test here failed on the code before its fix. Anything that could hang runs in a subprocess
with a timeout, so a regression fails the test instead of freezing the suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")


def _python(code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_the_warning_bridge_ends_on_a_foreign_warning():
    # It used to re-issue such warnings inside its own recorder, walking a list it kept growing.
    out = _python("""
        import warnings
        from aerec.cli.options import warnings_as_lines
        with warnings_as_lines():
            warnings.warn("not ours", RuntimeWarning)
        print("ended")
    """, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "ended" in out.stdout
    assert "not ours" in out.stderr
