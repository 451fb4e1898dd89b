"""Settings: every option with its ini twin, resolved once (CLI > env var > ini > default)."""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ._requirements import RequirementLine

REQUIRES_HELP = (
    "Requirements of the base env: PEP 508 strings, local paths, '-e PATH', '-r FILE' "
    "(paths relative to the rootdir)."
)
BASE_HELP = (
    "Where the base env comes from: 'session' (built fresh for this run, the default), 'cache' "
    "(reused from the persistent cache when its key matches) or the PATH of an existing venv "
    "(used read-only)."
)
CACHE_DIR_HELP = "Where --isoenv-base=cache keeps envs (default: a per-user cache dir)."
NO_INDEX_HELP = "Ignore the package index: install only from --find-links / UV_FIND_LINKS."
REFRESH_HELP = (
    "Ask the index again instead of answering from uv's cache first (new releases), and "
    "re-resolve cached layers."
)
REBUILD_HELP = (
    "Build the base and every layer this session uses again, even when a cached one matches "
    "(after a change the cache key cannot see)."
)
PRUNE_AFTER_HELP = (
    "With --isoenv-base=cache: at the end of a session, at most once a day, remove the cached "
    "envs and distributions no session used for this many days (0: never)."
)

PYTHON_HELP = (
    "The interpreter of every env test without its own python=: a spec ('3.12', "
    "'cpython3.11', 'pypy3.10', a path); a comma list runs each such test once per "
    "interpreter. Default: the interpreter running pytest."
)
PYTHON_MISSING_HELP = (
    "What a test whose interpreter is not installed gets: 'skip' (the default) or 'error'."
)

KEEP_HELP = (
    "Keep the derived envs of failed tests ('failed') or of every test ('all') after the "
    "session, under the cache dir's kept/, to debug in; default 'none'."
)

SESSION, CACHE = "session", "cache"
KEEP_NONE, KEEP_FAILED, KEEP_ALL = "none", "failed", "all"
_KEEP_MODES = (KEEP_NONE, KEEP_FAILED, KEEP_ALL)
SKIP, ERROR = "skip", "error"


@dataclass(frozen=True)
class Settings:
    """The resolved configuration of pytest-isoenv for one session."""

    requires: tuple[RequirementLine, ...]
    base: str  # SESSION, CACHE, or the path of an existing venv
    cache_dir: Path
    no_index: bool
    refresh: bool
    rootdir: Path
    rebuild: bool = False
    keep: str = KEEP_NONE  # KEEP_NONE, KEEP_FAILED or KEEP_ALL
    #: Days after which unused cached envs are pruned at the end of a session (0: never).
    prune_after: float = 30.0
    #: The interpreter specs of env tests without ``python=`` (empty: pytest's own).
    python: tuple[str, ...] = ()
    #: SKIP or ERROR: what a test whose interpreter is not installed gets.
    python_missing: str = SKIP


SETTINGS_KEY = pytest.StashKey[Settings]()


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("isoenv", "isolated Python environments (pytest-isoenv)")
    group.addoption(
        "--isoenv-base", dest="isoenv_base", metavar="session|cache|PATH", help=BASE_HELP
    )
    group.addoption(
        "--isoenv-cache-dir", dest="isoenv_cache_dir", metavar="DIR", help=CACHE_DIR_HELP
    )
    group.addoption(
        "--isoenv-no-index",
        dest="isoenv_no_index",
        action="store_true",
        default=None,
        help=NO_INDEX_HELP,
    )
    group.addoption(
        "--isoenv-refresh",
        dest="isoenv_refresh",
        action="store_true",
        default=None,
        help=REFRESH_HELP,
    )
    group.addoption(
        "--isoenv-rebuild",
        dest="isoenv_rebuild",
        action="store_true",
        default=None,
        help=REBUILD_HELP,
    )
    group.addoption("--isoenv-keep", dest="isoenv_keep", metavar="none|failed|all", help=KEEP_HELP)
    group.addoption(
        "--isoenv-python", dest="isoenv_python", metavar="SPEC[,SPEC...]", help=PYTHON_HELP
    )
    group.addoption(
        "--isoenv-python-missing",
        dest="isoenv_python_missing",
        metavar="skip|error",
        help=PYTHON_MISSING_HELP,
    )
    parser.addini("isoenv_requires", REQUIRES_HELP, type="linelist", default=[])
    parser.addini("isoenv_base", BASE_HELP, default=SESSION)
    parser.addini("isoenv_cache_dir", CACHE_DIR_HELP, default="")
    parser.addini("isoenv_no_index", NO_INDEX_HELP, type="bool", default=False)
    parser.addini("isoenv_refresh", REFRESH_HELP, type="bool", default=False)
    parser.addini("isoenv_rebuild", REBUILD_HELP, type="bool", default=False)
    parser.addini("isoenv_keep", KEEP_HELP, default=KEEP_NONE)
    parser.addini("isoenv_prune_after", PRUNE_AFTER_HELP, default="30")
    # "args": a TOML list, a line per spec, or one line (commas or spaces between specs)
    parser.addini("isoenv_python", PYTHON_HELP, type="args", default=[])
    parser.addini("isoenv_python_missing", PYTHON_MISSING_HELP, default=SKIP)


def default_cache_dir() -> Path:
    """The per-user cache directory, following each platform's convention."""
    if sys.platform == "win32":
        root = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        root = Path.home() / "Library" / "Caches"
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "pytest-isoenv"


def _flag(config: pytest.Config, name: str, env_var: str) -> bool:
    cli = config.getoption(name)
    if cli is not None:
        return bool(cli)
    if os.environ.get(env_var):
        return os.environ[env_var].lower() in ("1", "true", "yes", "on")
    return bool(config.getini(name))


def keep_mode(config: pytest.Config) -> str:
    """``--isoenv-keep``: which derived envs outlive the session; ``pytest.UsageError`` if bad.

    Cheap (nothing imported), so it is checked when the session starts, env tests or not.
    """
    return _choice(
        [
            ("--isoenv-keep=", config.getoption("isoenv_keep")),
            ("PYTEST_ISOENV_KEEP=", os.environ.get("PYTEST_ISOENV_KEEP")),
            ("isoenv_keep = ", config.getini("isoenv_keep")),
        ],
        _KEEP_MODES,
    )


def _choice(sources: list[tuple[str, object]], choices: tuple[str, ...]) -> str:
    """The first value set among ``sources`` (case-insensitive), else the first choice;
    ``pytest.UsageError`` naming where a value that is none of ``choices`` came from."""
    for source, value in sources:
        if value:
            mode = str(value).strip().lower()
            if mode not in choices:
                raise pytest.UsageError(f"{source}{value}: not one of {', '.join(choices)}")
            return mode
    return choices[0]


def default_pythons(config: pytest.Config) -> tuple[str, ...]:
    """``--isoenv-python`` (or ``PYTEST_ISOENV_PYTHON``, ``isoenv_python``) as a tuple of
    specs; ``pytest.UsageError`` for one that is not a spec. Cheap: read at collection."""
    from ._discovery import check_spec, spec_id  # noqa: PLC0415 - no third-party import in it

    ini = [str(item) for item in config.getini("isoenv_python")]
    for source, value, items in (
        ("--isoenv-python=", config.getoption("isoenv_python"), None),
        ("PYTEST_ISOENV_PYTHON=", os.environ.get("PYTEST_ISOENV_PYTHON"), None),
        ("isoenv_python = ", " ".join(ini), ini),
    ):
        if not value or not str(value).strip():
            continue
        # "3.9,3.13", "3.9, 3.13" or "3.9 3.13"; in the ini file also a list, or a line each
        # (quoted there: a path with spaces).
        # (a path with spaces is quoted, as in a shell)
        parts = items if items is not None else _split(str(value))
        specs = [spec.strip() for part in parts for spec in part.split(",") if spec.strip()]
        try:
            checked = tuple(check_spec(spec) for spec in specs or [str(value)])
        except ValueError as error:
            raise pytest.UsageError(f"{source}{value}: {error}") from None
        if len({spec_id(spec) for spec in checked}) != len(checked):
            raise pytest.UsageError(f"{source}{value}: an interpreter is named twice")
        return checked
    return ()


def _split(value: str) -> list[str]:
    try:
        return shlex.split(value)
    except ValueError:  # an unmatched quote: the spec check says what is wrong
        return value.split()


def python_missing(config: pytest.Config) -> str:
    """``--isoenv-python-missing``: SKIP or ERROR; ``pytest.UsageError`` if neither."""
    return _choice(
        [
            ("--isoenv-python-missing=", config.getoption("isoenv_python_missing")),
            ("isoenv_python_missing = ", config.getini("isoenv_python_missing")),
        ],
        (SKIP, ERROR),
    )


def resolve(config: pytest.Config) -> Settings:
    """Read every source once; raise ``pytest.UsageError`` on a static mistake.

    Called when a test first needs an env: parsing requirements imports ``packaging``, which
    a session without env tests should not pay for.
    """
    from ._errors import MarkerError  # noqa: PLC0415
    from ._requirements import parse_lines  # noqa: PLC0415

    rootdir = Path(config.rootpath)
    try:
        requires = parse_lines(config.getini("isoenv_requires"), rootdir)
    except MarkerError as error:
        raise pytest.UsageError(f"isoenv_requires: {error}") from None
    base = (
        config.getoption("isoenv_base")
        or os.environ.get("PYTEST_ISOENV_BASE")
        or config.getini("isoenv_base")
        or SESSION
    ).strip()
    if base not in (SESSION, CACHE):
        path = Path(os.path.expanduser(base))
        path = path if path.is_absolute() else Path(config.invocation_params.dir) / path
        if not (path / "pyvenv.cfg").is_file():
            raise pytest.UsageError(
                f"--isoenv-base={base}: not 'session', 'cache' or a venv ({path} has no pyvenv.cfg)"
            )
        base = str(path)
    cache_dir_text = (
        config.getoption("isoenv_cache_dir")
        or os.environ.get("PYTEST_ISOENV_CACHE_DIR")
        or config.getini("isoenv_cache_dir")
    )
    if cache_dir_text:
        cache_dir = Path(os.path.expanduser(cache_dir_text))
        if not cache_dir.is_absolute():
            cache_dir = rootdir / cache_dir
    else:
        cache_dir = default_cache_dir()
    return Settings(
        requires=requires,
        base=base,
        cache_dir=cache_dir,
        no_index=_flag(config, "isoenv_no_index", "PYTEST_ISOENV_NO_INDEX"),
        refresh=_flag(config, "isoenv_refresh", "PYTEST_ISOENV_REFRESH"),
        rootdir=rootdir,
        rebuild=_flag(config, "isoenv_rebuild", "PYTEST_ISOENV_REBUILD"),
        keep=keep_mode(config),
        prune_after=_prune_after(config),
        python=default_pythons(config),
        python_missing=python_missing(config),
    )


def _prune_after(config: pytest.Config) -> float:
    text = str(config.getini("isoenv_prune_after")).strip()
    try:
        days = float(text or "30")
    except ValueError:
        days = -1.0
    if not days >= 0:  # also NaN
        raise pytest.UsageError(
            f"isoenv_prune_after: {text!r} is not a number of days (0 or more; 0 never prunes)"
        )
    return days
