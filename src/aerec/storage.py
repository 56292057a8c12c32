"""Optuna storage URLs (`aerec tune --storage`, `aerec bench --suite tuned --storage`).

``check`` parses a URL and opens it (SQLite) or imports its driver (server databases) before any
data is read, so a mistake is one line and exit 2 rather than a failure after the split. ``safe``
masks passwords (``user:pass@`` and query-string secrets) wherever a URL or command is recorded.
"""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path

from aerec.errors import ConfigError

SQLITE_MAGIC = b"SQLite format 3\x00"
# where a study file can never live: kernel and device trees
_SYSTEM = ("/proc", "/sys", "/dev")
_SECRET = re.compile(r"(pass(word|wd)?|secret|token|key|pwd)", re.I)
HELP = "give a database URL such as sqlite:///study.db, postgresql://HOST/DB or mysql+pymysql://HOST/DB"


def _parse(url: str):
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url)
    except (ArgumentError, ValueError) as e:
        raise ConfigError(f"--storage {safe(url)!r}: not a database URL ({str(e).splitlines()[0]}); {HELP}") from None


def check(url: str | None, *, allow_memory: bool = False) -> str | None:
    """The URL back when Optuna can use it; else a ConfigError naming the problem (password masked)."""
    if url is None or (allow_memory and url == "memory"):
        return url
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(f"--storage is empty; {HELP}")
    parsed = _parse(url.strip())
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        try:
            _check_sqlite(parsed.database, url)
        except (OSError, ValueError) as e:  # a name too long, a NUL byte
            raise ConfigError(f"--storage {safe(url)[:200]!r}: not a usable SQLite path ({type(e).__name__}: "
                              f"{(str(e).splitlines() or [''])[0][:200]})") from None
        return url
    try:
        dialect = parsed.get_dialect()
    except Exception:  # NoSuchModuleError and plugin errors: an unknown scheme
        raise ConfigError(f"--storage {safe(url)!r}: '{parsed.drivername}' is not a database Optuna can store a "
                          f"study in; {HELP}") from None
    try:
        dialect.import_dbapi()
    except ImportError as e:
        raise ConfigError(f"--storage {safe(url)!r}: the {parsed.drivername} driver is not installed "
                          f"(Python module {getattr(e, 'name', None) or e}); install it or use sqlite:///study.db") from None
    return url


def _check_sqlite(database: str | None, url: str) -> None:
    if not database or database == ":memory:":
        return  # an in-memory study: nothing to open
    path = Path(database)  # as SQLite will open it (no ~ expansion)
    where = f"--storage {safe(url)!r}"
    resolved = path.resolve()
    if any(str(resolved) == s or str(resolved).startswith(s + "/") for s in _SYSTEM):
        raise ConfigError(f"{where}: {resolved} is a system folder, not a place for a study database")
    if not resolved.parent.is_dir():
        raise ConfigError(f"{where}: the folder {resolved.parent} does not exist")
    if path.exists():
        if not path.is_file():
            raise ConfigError(f"{where}: {path} is not a regular file")
        try:
            with open(path, "rb") as f:
                head = f.read(len(SQLITE_MAGIC))
        except OSError as e:
            raise ConfigError(f"{where}: cannot read {path} ({e.strerror or e})") from None
        if head and head != SQLITE_MAGIC:
            raise ConfigError(f"{where}: {path} is not an SQLite database")
    if not path.exists():
        if not os.access(resolved.parent, os.W_OK):
            raise ConfigError(f"{where}: the folder {resolved.parent} is not writable")
        return  # Optuna creates it
    try:  # open it as Optuna will
        con = sqlite3.connect(f"file:{resolved}?mode=rw", uri=True, timeout=5)
        try:
            tables = con.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error as e:
        raise ConfigError(f"{where}: cannot open {path} as an SQLite database ({e})") from None
    if tables:  # an existing database: Optuna must be able to use its tables
        _open_with_optuna(url, where, path)


def _open_with_optuna(url: str, where: str, path: Path) -> None:
    try:
        import optuna
    except ImportError:  # the command says Optuna is missing itself
        return
    try:
        store = optuna.storages.RDBStorage(url)
    except Exception as e:  # a foreign schema, an incompatible Optuna version
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise ConfigError(f"{where}: {path} is an SQLite database Optuna cannot use ({first}); give a new file "
                          "or a study database of this Optuna version") from None
    store.engine.dispose()


def safe(url: str | None) -> str | None:
    """The URL with its password and query-string secrets replaced by ***."""
    if url is None or not isinstance(url, str):
        return url
    out = re.sub(r"(://[^/@?#]*?:)[^/@?#]*@", r"\1***@", url)  # user:pass@ -> user:***@
    return re.sub(r"([?&;])([^=&;#]+)=([^&;#]*)",
                  lambda m: f"{m.group(1)}{m.group(2)}={'***' if _SECRET.search(m.group(2)) else m.group(3)}", out)


def safe_argv(argv: list[str]) -> list[str]:
    """A command line with the value of every --storage masked."""
    out, mask_next = [], False
    for a in argv:
        if mask_next:
            out.append(safe(a))
            mask_next = False
        elif a == "--storage":
            out.append(a)
            mask_next = True
        elif a.startswith("--storage="):
            out.append("--storage=" + (safe(a.split("=", 1)[1]) or ""))
        else:
            out.append(a)
    return out
