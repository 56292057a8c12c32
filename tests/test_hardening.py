"""Second hostile round (issue 24): extreme values, refused refits, storage URLs, model headers.

Each test here failed on the code before its fix. Anything that could hang runs in a subprocess
with a timeout, so a regression fails the test instead of freezing the suite.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import textwrap

import pytest

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

    from aerec.data.interactions import Interactions
    from aerec.errors import DataError

    with pytest.raises(DataError, match="32-bit float"):
        Interactions(user=np.array([0, 1], np.int32), item=np.array([0, 1], np.int32), user_ids=np.array([1, 2]),
                     item_ids=np.array([3, 4]), rating=np.array([4.0, 1e39]))


def test_a_setting_beyond_float32_is_refused():
    from aerec.errors import ConfigError
    from aerec.models.edlae import EDLAE

    with pytest.raises(ConfigError, match="l2"):
        EDLAE(l2=1e300)


# --- a refused refit leaves the fitted model as it was --------------------------------------

def _state(model):
    import numpy as np

    arrays = model.state_arrays() if hasattr(model, "state_arrays") else {
        k: v.detach().cpu().numpy().copy() for k, v in model.state_tensors().items()}
    return {"item_ids": np.array(model.item_ids).tolist(), "user_ids": np.array(model.user_ids).tolist(),
            "histories": model.histories.toarray().tolist(), "shape": (model.n_users, model.n_items),
            "history": list(model.history), **{k: np.array(v).tolist() for k, v in arrays.items()}}


def _refuse_refits(name, block_data, tmp_path):
    import dataclasses

    import numpy as np
    import scipy.sparse as sp

    from aerec.model_registry import get

    cls = get(name)
    model = cls(**cls.test_overrides).fit(block_data, **({"progress": False} if name != "ease" else {}))
    before = _state(model)
    user = model.user_ids[0]
    recs = model.recommend_user(user, k=5)
    other = dataclasses.replace(block_data, item_ids=np.arange(900, 900 + block_data.n_items),
                                user_ids=np.array([f"x{i}" for i in range(block_data.n_users)]))
    bad_valid = (sp.csr_matrix((2, 3), dtype=np.float32), sp.csr_matrix((2, 3), dtype=np.float32))
    with pytest.raises(Exception, match="item columns|shape"):
        model.fit(other, valid=bad_valid)
    assert _state(model) == before
    assert model.recommend_user(user, k=5) == recs
    return model, before, user, recs


def _reloads(model, tmp_path, user, recs):
    from aerec import io

    model.save(tmp_path / "m")
    assert io.load(tmp_path / "m").recommend_user(user, k=5) == recs


def test_a_refused_refit_leaves_a_closed_form_model_as_it_was(block_data, tmp_path):
    model, before, user, recs = _refuse_refits("ease", block_data, tmp_path)
    _reloads(model, tmp_path, user, recs)


def test_a_refit_refused_during_training_leaves_a_neural_model_as_it_was(block_data, tmp_path):
    import dataclasses

    import numpy as np

    model, before, user, recs = _refuse_refits("multdae", block_data, tmp_path)
    other = dataclasses.replace(block_data, item_ids=np.arange(900, 900 + block_data.n_items))

    def stop(record):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        model.fit(other, progress=False, on_epoch_end=stop)
    assert _state(model) == before
    _reloads(model, tmp_path, user, recs)


# --- settings that overflow the maths --------------------------------------------------------

def test_a_learning_rate_that_cannot_give_a_finite_step_is_refused():
    from aerec.errors import ConfigError
    from aerec.model_registry import get

    for name in ("hvamp", "multvae", "ract", "cdae"):
        with pytest.raises(ConfigError, match="'lr' must be at most"):
            get(name)(lr=1e30)


def test_a_training_with_non_finite_weights_is_refused_naming_the_setting(block_data):
    from aerec.errors import ConfigError
    from aerec.models.macridvae import MacridVAE

    model = MacridVAE(**{**MacridVAE.test_overrides, "epochs": 2, "tau": 1e-30})
    with pytest.raises(ConfigError, match="non-finite weights.*tau=1e-30"):
        model.fit(block_data, progress=False)
    assert not model.fitted


def test_train_full_with_non_finite_weights_exits_2_and_saves_nothing(tmp_path):
    f = tmp_path / "d.csv"
    rng = random.Random(0)
    f.write_text("user,item\n" + "".join(f"{u},{i}\n" for u in range(30) for i in range(12) if rng.random() < 0.5))
    out = tmp_path / "run"
    res = _aerec("-q", "train", "macridvae", "-d", f, "-p", "full", "--epochs", "2", "--set", "tau=1e-30",
                 "--set", "hidden=8", "--set", "latent=4", "--set", "kfac=2", "--out", out, home=tmp_path / "h")
    _one_line_exit_2(res, "non-finite weights", "tau=1e-30")
    assert not out.exists()  # not even an empty folder (the full run is built in OUT/.full.partial)


# --- the memory estimate covers what a step allocates ---------------------------------------

def test_macridvae_prototypes_count_in_the_memory_estimate(block_data, monkeypatch):
    from aerec.errors import ResourceError
    from aerec.models import neural
    from aerec.models.macridvae import MacridVAE

    monkeypatch.setattr(neural, "available_memory", lambda device: 4 * 2**30)  # 4 GiB free

    def allocated(self):
        raise AssertionError("the network was allocated before the estimate refused it")

    model = MacridVAE(**{**MacridVAE.test_overrides, "kfac": 1_000_000})
    monkeypatch.setattr(MacridVAE, "init_network", allocated)
    with pytest.raises(ResourceError, match="GiB"):
        model.fit(block_data, progress=False)
    monkeypatch.undo()
    monkeypatch.setattr(neural, "available_memory", lambda device: 4 * 2**30)
    MacridVAE(**{**MacridVAE.test_overrides, "epochs": 1}).fit(block_data, progress=False)  # the usual size trains


# --- storage URLs ------------------------------------------------------------------------------

STORAGE_REFUSED = [
    ("", "empty"), ("not a url", "not a database URL"), ("sqlite:////etc/passwd", "not an SQLite database"),
    ("sqlite:////no/such/folder/s.db", "does not exist"), ("sqlite:////proc/s.db", "system folder"),
    ("postgresql://bob:hunter2@db.example/x", "driver"), ("mysql+pymysql://bob:hunter2@db.example/x", "driver"),
    ("redis://localhost:6379", "not a database"), ("http://example.com/x", "not a database"),
    ("file:///tmp/s.db", "not a database"),
]


@pytest.mark.parametrize("url, words", STORAGE_REFUSED)
def test_bad_storage_urls_are_refused_before_the_data_is_read(url, words, tmp_path):
    import importlib.util

    if "driver" in words and importlib.util.find_spec("psycopg" if "postgres" in url else "pymysql"):
        pytest.skip("the driver is installed here")
    # the data file does not exist: the storage must be refused first
    res = _aerec("-q", "tune", "ease", "-d", tmp_path / "missing.csv", "--storage", url, "--trials", "1",
                 "--dir", tmp_path / "t", home=tmp_path / "h", timeout=60)
    line = _one_line_exit_2(res, "--storage", words)
    assert "hunter2" not in res.stderr and "missing.csv" not in line


def test_a_csv_or_an_impossible_path_given_as_sqlite_storage_is_refused(tmp_path):
    f = tmp_path / "r.csv"
    f.write_text("user,item\n1,2\n")
    from aerec import storage
    from aerec.errors import ConfigError

    with pytest.raises(ConfigError, match="not an SQLite database"):
        storage.check(f"sqlite:///{f}")
    for url in ("sqlite:///" + "a" * 5000, "sqlite:///\x00.db"):
        with pytest.raises(ConfigError, match="not a usable SQLite path"):
            storage.check(url)
    with pytest.raises(ConfigError, match="a regular file"):
        storage.check(f"sqlite:///{tmp_path}")


def test_storage_passwords_are_masked_wherever_recorded(tmp_path, monkeypatch):
    import json

    from aerec import bench, storage

    assert storage.safe("postgresql://bob:hunter2@h/db?sslmode=require&password=hunter2") == \
        "postgresql://bob:***@h/db?sslmode=require&password=***"
    monkeypatch.setattr(sys, "argv", ["aerec", "bench", "--storage", "mysql://u:hunter2@h/d",
                                      "--storage=sqlite:///x.db?password=hunter2"])
    assert "hunter2" not in " ".join(bench._command())
    f = tmp_path / "d.csv"
    rng = random.Random(0)
    f.write_text("user,item\n" + "".join(f"{u},{i}\n" for u in range(30) for i in range(12) if rng.random() < 0.5))
    url = f"sqlite:///{tmp_path / 'study.db'}?password=hunter2"
    res = _aerec("-q", "tune", "ease", "-d", f, "--storage", url, "--trials", "1", "--dir", tmp_path / "t",
                 "--out", tmp_path / "e.toml", home=tmp_path / "h")
    assert res.returncode == 0, res.stderr
    recorded = (tmp_path / "t" / "tuning.json").read_text()
    assert "hunter2" not in recorded and "password=***" in json.loads(recorded)["storage"]


# --- failed trials -----------------------------------------------------------------------------

def test_failed_trials_are_one_line_each_and_their_tracebacks_go_to_the_study_log(tmp_path):
    f = tmp_path / "d.csv"
    rng = random.Random(0)
    f.write_text("user,item\n" + "".join(f"{u},{i}\n" for u in range(30) for i in range(12) if rng.random() < 0.5))
    study = tmp_path / "study"
    res = _aerec("tune", "ease", "-d", f, "--set", "max_memory_gb=1e-9", "--trials", "2", "--dir", study,
                 "--out", tmp_path / "e.toml", home=tmp_path / "h")
    _one_line_exit_2(res, "no trial finished", str(study / "trials.log"))
    assert "Traceback" not in res.stderr
    fails = [ln for ln in res.stderr.splitlines() if re.search(r"trial \d+: fail", ln)]
    assert len(fails) == 2 and all("ResourceError" in ln for ln in fails)
    log = (study / "trials.log").read_text()
    assert log.count("Traceback") == 2 and "ResourceError" in log


# --- others ------------------------------------------------------------------------------------

def test_wmf_on_enormous_counts_says_what_to_change():
    import numpy as np
    import scipy.sparse as sp

    from aerec.errors import ConfigError
    from aerec.models.wmf import WMF

    x = sp.random(60, 40, density=0.3, format="csr", random_state=0, dtype=np.float32)
    x.data[:] = 1
    x.data[::7] = 1e30
    with pytest.raises(ConfigError, match="regularization.*alpha|alpha.*regularization"):
        WMF(factors=8, iterations=2).fit(x)
    x.data[::7] = 3e38  # 1 + alpha * value is infinite in float32
    with pytest.raises(ConfigError, match="overflow"):
        WMF(factors=8, iterations=2).fit(x)


@pytest.mark.parametrize("user", [[0, 2], [0, -1]])
def test_interactions_with_codes_outside_the_vocabularies_are_refused(user):
    import numpy as np

    from aerec.data.interactions import Interactions
    from aerec.errors import DataError

    with pytest.raises(DataError, match="user code .* outside 0..1"):
        Interactions(user=np.array(user, np.int32), item=np.array([0, 1], np.int32), user_ids=np.array([7, 8]),
                     item_ids=np.array([3, 4]))


def test_evaluate_on_a_full_data_run_says_why_it_cannot(tmp_path):
    rng = random.Random(0)
    f = tmp_path / "d.csv"
    f.write_text("user,item\n" + "".join(f"{u},{i}\n" for u in range(30) for i in range(12) if rng.random() < 0.5))
    run = tmp_path / "run"
    res = _aerec("-q", "train", "pop", "-d", f, "-p", "full", "--out", run, home=tmp_path / "h")
    assert res.returncode == 0, res.stderr
    for target in (run, run / "full"):
        _one_line_exit_2(_aerec("evaluate", target, home=tmp_path / "h"), "full-data run", "nothing is held out")
    _one_line_exit_2(_aerec("evaluate", run / "full" / "model", home=tmp_path / "h"), "model directory, not a run")


@pytest.mark.parametrize("argv", [
    ["tune", "ease", "-d", "x.csv", "--timeout", "nan"], ["tune", "ease", "-d", "x.csv", "--timeout", "inf"],
    ["bench", "--suite", "tuned", "--tune-timeout", "nan"], ["serve", ".", "--read-timeout", "nan"],
    ["serve", ".", "--batch-wait-ms", "nan"],
])
def test_nonsense_numbers_are_refused(argv, capsys):
    from aerec.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"Invalid value for '{argv[-2]}'" in err and "not a finite number" in err, err


def test_library_timeouts_must_be_finite(block_case):
    from aerec.errors import ConfigError
    from aerec.model_registry import get
    from aerec.tune import run_study

    class Fold:
        train, valid_in, valid_out, index = block_case.train, block_case.valid[0], block_case.valid[1], 0

    with pytest.raises(ConfigError, match="timeout"):
        run_study(get("ease"), Fold(), trials=1, timeout=float("nan"), keep_model=False)


def test_ids_that_are_not_strings_or_integers_are_refused(block_data):
    from aerec.errors import DataError
    from aerec.models.pop import Popularity as Pop

    model = Pop().fit(block_data)
    item = block_data.item_ids[0].item()
    for bad in ([(item, 1)], [None], [[item]], [1.5]):
        with pytest.raises(DataError, match="not an id"):
            model.recommend_items(bad)
    with pytest.raises(DataError, match="list of ids"):
        model.recommend_items(str(item))
    with pytest.raises(DataError, match="not an id"):
        model.recommend_user(("u0",))
    assert model.recommend_items([item], k=3).item_ids  # plain ids still work
    assert model.recommend_user("u0", k=3).item_ids


def test_wmf_factors_too_large_for_memory_are_refused_before_implicit_allocates(monkeypatch):
    import numpy as np
    import scipy.sparse as sp

    from aerec.errors import ResourceError
    from aerec.models import ease, wmf

    x = sp.random(60, 40, density=0.3, format="csr", random_state=0, dtype=np.float32)
    x.data[:] = 1
    monkeypatch.setattr(ease, "available_memory", lambda: 2**30)  # 1 GiB free
    monkeypatch.setattr(wmf, "_implicit_als", lambda: pytest.fail("implicit was started"))
    with pytest.raises(ResourceError, match="fewer factors"):
        wmf.WMF(factors=10_000_000, iterations=1).fit(x)


def test_ease_with_a_vanishing_l2_names_the_setting(block_data):
    from aerec.errors import ConfigError
    from aerec.models.ease import EASE

    with pytest.raises(ConfigError, match="raise 'l2'"):
        EASE(l2=1e-30).fit(block_data)


def test_a_closed_form_fit_with_non_finite_weights_is_refused_and_leaves_the_model(block_data, monkeypatch):
    import numpy as np

    from aerec.errors import ConfigError
    from aerec.models import ease

    model = ease.EASE(l2=10.0).fit(block_data)
    before = model.B.copy()
    monkeypatch.setattr(ease, "ease_weights", lambda X, *a, **k: np.full((X.shape[1],) * 2, np.nan, np.float32))
    with pytest.raises(ConfigError, match="non-finite weights \\('B'\\).*l2=10.0") as err:
        model.fit(block_data)
    assert "lr" not in str(err.value)
    assert np.array_equal(model.B, before) and model.fitted


def test_an_sqlite_database_optuna_cannot_use_is_refused_before_the_data_is_read(tmp_path):
    import sqlite3

    db = tmp_path / "other.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE alembic_version (v TEXT)")  # Optuna's version table, another schema
    con.commit()
    con.close()
    res = _aerec("-q", "tune", "ease", "-d", tmp_path / "missing.csv", "--storage", f"sqlite:///{db}",
                 "--trials", "1", "--dir", tmp_path / "t", home=tmp_path / "h", timeout=60)
    _one_line_exit_2(res, "--storage", "Optuna cannot use")


def test_a_search_space_beyond_a_settings_bounds_is_refused():
    from aerec.errors import ConfigError
    from aerec.model_registry import get
    from aerec.models import space as spacemod
    from aerec.tune import search_space

    cls = get("multdae")
    with pytest.raises(ConfigError, match="'lr' must be at most"):
        search_space(cls, spacemod.parse_overrides(["lr=1e-4:1e30:log"], cls))
    for name in ("multdae", "cdae", "hvamp", "ract", "macridvae"):  # the declared spaces keep to the bounds
        search_space(get(name))


def test_macridvae_with_a_small_temperature_trains_to_finite_weights(block_data):
    # a concept whose weights all underflow to 0 gave sqrt(0) in the row norms, whose slope is infinite
    from aerec.models.macridvae import MacridVAE

    model = MacridVAE(**{**MacridVAE.test_overrides, "tau": 1e-3, "epochs": 5}).fit(block_data, progress=False)
    assert model.fitted and all(bool(t.isfinite().all()) for t in model.state_tensors().values())


def test_sansa_density_beyond_memory_is_refused_before_the_package_runs(monkeypatch):
    import numpy as np
    import scipy.sparse as sp

    from aerec.errors import ResourceError
    from aerec.models import ease, sansa

    x = sp.random(50, 40_000, density=0.001, format="csr", random_state=0, dtype=np.float32)
    monkeypatch.setattr(ease, "available_memory", lambda: 2**30)  # 1 GiB free
    cfg = sansa.SANSAConfig(density=1.0)  # 40k x 40k entries, four times over: ~70 GiB
    with pytest.raises(ResourceError, match="lower 'density'"):
        sansa.check_memory(x, cfg)
    sansa.check_memory(x, sansa.SANSAConfig(density=0.001))  # a sparse one fits


def test_a_config_file_is_read_under_a_size_cap(tmp_path):
    from aerec import config
    from aerec.errors import ConfigError

    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * config.MAX_TOML_BYTES + "\n")
    with pytest.raises(ConfigError, match="limit"):
        config.load_toml(big)
    with pytest.raises(ConfigError, match="folder"):
        config.load_toml(tmp_path)
    with pytest.raises(ConfigError, match="no such file"):
        config.load_toml(tmp_path / "absent.toml")
    ok = tmp_path / "ok.toml"
    ok.write_text("[model]\nlr = 0.001\n")
    assert config.load_toml(ok) == {"model": {"lr": 0.001}}


def test_train_with_an_oversized_config_exits_2_in_one_line(tmp_path):
    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * (5 << 20) + "\n")
    out = subprocess.run([sys.executable, "-m", "aerec", "train", "ease", "--config", str(big),
                          "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": SRC})
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and "limit" in out.stderr
    assert not (tmp_path / "run").exists()
