"""Interpreter specs (``python="3.12"``): checked, named in test ids, and found on the machine.

Finding is python-discovery's, the package virtualenv, tox 4 and nox build on: ``PATH``
(pyenv, mise and asdf shims resolved), uv-managed installs, with its disk cache of interpreter
facts (about 1 ms per spec when warm). Nothing is ever downloaded. pyenv's installed versions
are looked at too, even those pyenv was not told to activate, to spare users a
``pyenv global 3.11.7 3.12.1 ...``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ._errors import IsoenvError

if TYPE_CHECKING:
    from python_discovery import PyInfoCache

#: The oldest Python an env can be built on: uv installs into nothing older.
MINIMUM = (3, 8)
#: The parameter a ``python=`` list (or a comma list in isoenv_python) parametrizes a test with.
PARAMETER = "_isoenv_python"

_IMPLEMENTATIONS = ("cpython", "pypy", "graalpy", "python", "py")
_VERSION = r"[0-9]+(?:\.[0-9]+){0,2}t?"
_SPEC = re.compile(rf"(?P<impl>{'|'.join(_IMPLEMENTATIONS)})?-?(?P<version>{_VERSION})", re.I)
_SPECIFIER = re.compile(r"(?:(?:[<>!=~]=?|===?)\s*[0-9][0-9.*]*\s*,?\s*)+")


def check_spec(spec: object) -> str:
    """``spec`` if it is an interpreter spec, else ``ValueError`` saying what one looks like."""
    if isinstance(spec, str):
        text = spec.strip()
        if text and (_SPEC.fullmatch(text) or _SPECIFIER.fullmatch(text) or _is_path(text)):
            return text
    raise ValueError(
        f"{spec!r} is not an interpreter spec: give a version ('3.12'), an implementation "
        "and version ('cpython3.11', 'pypy3.10'), a specifier ('>=3.10') or a path"
    )


def _is_path(text: str) -> bool:
    return os.sep in text or (os.altsep is not None and os.altsep in text) or text[0] in "~."


def spec_id(spec: str) -> str:
    """How ``spec`` shows in a test id: ``3.12`` and ``python3.12`` as ``py3.12``."""
    found = _SPEC.fullmatch(spec)
    if found is None:
        return spec
    impl = (found["impl"] or "py").lower()
    return f"{'py' if impl in ('py', 'python') else impl}{found['version']}"


def find(spec: str, rootdir: Path, cache_dir: Path | None) -> Path | None:
    """The executable of an installed interpreter matching ``spec``, or None.

    Raise ``IsoenvError`` for an interpreter that is found but cannot be served (too old,
    broken). A relative path is relative to ``rootdir``.
    """
    from python_discovery import DiskCache  # noqa: PLC0415 - only for tests naming one

    if _is_path(spec):
        path = Path(os.path.expanduser(spec))
        spec = str(path if path.is_absolute() else rootdir / path)
    cache = DiskCache(cache_dir) if cache_dir is not None else None
    # It logs each interpreter it looks at, and those it cannot query: not the test's
    # business (its captured log), nor the terminal's.
    # Its modules log through child loggers: stopped at theirs, and not by Python's
    # last-resort handler either.
    logger = logging.getLogger("python_discovery")
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())
    propagate, logger.propagate = logger.propagate, False
    try:
        return _find(spec, cache)
    finally:
        logger.propagate = propagate


def _find(spec: str, cache: PyInfoCache | None) -> Path | None:
    from python_discovery import PythonInfo, PythonSpec, get_interpreter  # noqa: PLC0415

    try:
        info = get_interpreter(spec, cache=cache, env=_with_pyenv_versions(os.environ))
    except Exception as error:
        raise IsoenvError(f"python={spec!r} cannot be used: {error}") from None
    if info is None and not _is_path(spec):
        wanted = PythonSpec.from_string_spec(spec)
        problem = None
        for exe, named in _pyenv_pythons(spec):  # one by one: a Python 2 there is no error
            try:
                candidate = PythonInfo.from_exe(str(exe), cache)
            except Exception as error:
                if named and problem is None:
                    problem = (
                        f"python={spec!r} is {exe}, which pytest-isoenv cannot build an env "
                        f"on: it needs Python {'.'.join(map(str, MINIMUM))} or newer, and "
                        f"this one could not even be asked its version ({error})"
                    )
                continue
            if candidate is not None and candidate.satisfies(wanted, impl_must_match=True):
                info = candidate
                break
        if info is None and problem is not None:
            raise IsoenvError(problem)
    if info is None:
        return None
    version = tuple(info.version_info[:2])
    executable = info.system_executable or info.executable
    if version < MINIMUM:
        raise IsoenvError(
            f"python={spec!r} is {info.implementation} "
            f"{'.'.join(map(str, info.version_info[:3]))} ({executable}), which pytest-isoenv "
            f"cannot build an env on: it needs Python {'.'.join(map(str, MINIMUM))} or newer"
        )
    return Path(str(executable))


def pyenv_root(environ: Mapping[str, str]) -> Path:
    """pyenv's root: ``PYENV_ROOT``, else the one whose shims are on ``PATH``, else
    ``~/.pyenv`` (tox, for one, passes ``PATH`` on but not ``PYENV_ROOT``)."""
    if environ.get("PYENV_ROOT"):
        return Path(environ["PYENV_ROOT"])
    for entry in environ.get("PATH", "").split(os.pathsep):
        shims = Path(entry)
        if shims.name == "shims" and (shims.parent / "versions").is_dir():
            return shims.parent
    return Path.home() / ".pyenv"


def _with_pyenv_versions(environ: Mapping[str, str]) -> Mapping[str, str]:
    """``environ`` with every installed pyenv version activated after the active ones.

    pyenv's shims only run the versions pyenv was told of (``pyenv global``,
    ``PYENV_VERSION``, ``.python-version``); python-discovery resolves shims the same way, and
    runs a shim it cannot resolve (a failing process, about 0.2 s). Naming them all, the
    user's choice first, finds any installed version and runs no shim.
    """
    root = pyenv_root(environ)
    if str(root / "shims") not in environ.get("PATH", "").split(os.pathsep):
        return environ
    try:
        installed = sorted(entry.name for entry in (root / "versions").iterdir())
    except OSError:
        return environ
    active = environ.get("PYENV_VERSION", "").split(":")
    if not any(active):
        active = _version_file(Path.cwd()) or _version_file(root, parents=False)
    versions = [v for v in active if v] + [v for v in installed if v not in active]
    return {**environ, "PYENV_ROOT": str(root), "PYENV_VERSION": ":".join(versions)}


def _version_file(start: Path, *, parents: bool = True) -> list[str]:
    """The versions a ``.python-version`` (or pyenv's global ``version``) file names."""
    for directory in [start, *start.parents] if parents else [start]:
        name = ".python-version" if parents else "version"
        with contextlib.suppress(OSError, UnicodeDecodeError):
            text = (directory / name).read_text(encoding="utf-8")
            return [v for v in text.split() if not v.startswith("#")]
    return []


def _pyenv_pythons(spec: str) -> list[tuple[Path, bool]]:
    """pyenv's installed interpreters that could match ``spec``; True: their name does."""
    root = pyenv_root(os.environ) / "versions"
    found = _SPEC.fullmatch(spec)
    try:
        names = sorted(entry.name for entry in root.iterdir())
    except OSError:
        return []
    pythons = []
    for name in names:
        if found is not None:
            impl = (found["impl"] or "").lower()
            prefix = impl if impl in ("pypy", "graalpy") else ""
            version = found["version"].rstrip("t")
            if not re.match(rf"{prefix}{re.escape(version)}(?:[.\-t]|$)", name):
                continue
        for exe in ("python3", "python", "pypy3"):
            path = root / name / "bin" / exe
            if path.is_file():
                pythons.append((path, found is not None))
                break
    return pythons
