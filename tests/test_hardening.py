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


def _aerec(*argv, cwd=None, timeout: float = 120, home=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SRC}
    if home is not None:
        env["AEREC_HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "aerec", *map(str, argv)], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=cwd)


def _one_line_exit_2(out: subprocess.CompletedProcess, *words: str) -> str:
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


# --- values beyond float32's range ----------------------------------------------------------

def test_a_rating_beyond_float32_is_refused_naming_file_line_and_value(tmp_path):
    f = tmp_path / "r.csv"
    f.write_text("user_id,item_id,rating\n1,1,4\n1,2,1e39\n2,1,5\n")
    _one_line_exit_2(_aerec("data", "info", f), "r.csv", "line 3", "1e+39")


def test_data_fetch_never_caches_a_value_beyond_float32(tmp_path):
    f = tmp_path / "u.data"
    f.write_text("1\t1\t-1e39\t881250949\n1\t2\t4\t881250950\n2\t1\t5\t881250951\n")
    home = tmp_path / "home"
    _one_line_exit_2(_aerec("data", "fetch", "ml-100k", "--path", f, home=home), "u.data", "line 1")
    assert not list(home.glob("datasets/*"))


def test_a_threshold_beyond_float32_is_refused(tmp_path):
    f = tmp_path / "r.csv"
    f.write_text("user_id,item_id,rating\n1,1,4\n1,2,3\n2,1,5\n")
    _one_line_exit_2(_aerec("data", "info", f, "--threshold", "1e308"), "threshold", "1e+308")


def test_interactions_refuse_ratings_that_are_infinite_in_float32():
    import numpy as np
    import pytest

    from aerec.data.interactions import Interactions
    from aerec.errors import DataError

    with pytest.raises(DataError, match="32-bit float"):
        Interactions(user=np.array([0, 1], np.int32), item=np.array([0, 1], np.int32), user_ids=np.array([1, 2]),
                     item_ids=np.array([3, 4]), rating=np.array([4.0, 1e39]))


def test_a_setting_beyond_float32_is_refused():
    import pytest

    from aerec.errors import ConfigError
    from aerec.models.edlae import EDLAE

    with pytest.raises(ConfigError, match="l2"):
        EDLAE(l2=1e300)
