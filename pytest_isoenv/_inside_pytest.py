"""pytest for the children of ``inside=True``: stored once, like pip, linked after the env.

A child needs pytest (and pluggy, iniconfig, packaging, pygments, and exceptiongroup/tomli
before Python 3.11), but must not see the host's other packages. So these distributions go
into the store of distributions, one entry each, and the child adds their ``site`` dirs to
``sys.path`` *after* its env's own packages: an env that holds its own pytest (or packaging)
keeps it. They come from the host's own installed copies when the host's pytest and its
dependencies are pure Python and declare support for the env's interpreter (the same
version as the host's, and no download); otherwise uv installs the host's pytest version
for that interpreter (or, when that version does not support it, the newest that does).
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import shutil
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from ._dists import Entry
from ._errors import InstallError
from ._installer import Installer
from ._interpreter import Interpreter
from ._requirements import digest, parse_lines

_IMPLEMENTATIONS = {"cpython": "CPython", "pypy": "PyPy"}


def pytest_entries(installer: Installer, interpreter: Interpreter) -> list[Entry]:
    """The stored distributions that make pytest importable on ``interpreter``."""
    dists = _host_closure(interpreter)
    if dists is not None:
        return _copied(installer, interpreter, dists)
    version = importlib.metadata.version("pytest")
    problems = []
    # The host's pytest, else (it does not support that interpreter) the newest that does.
    for wanted in (f"pytest=={version}", "pytest>=7"):
        lines = parse_lines([wanted], Path.cwd())
        key = digest(["inside-pytest", installer.settings_digest(interpreter), wanted])
        try:
            # A plan kept in the store: the next session links what is stored, asks uv
            # nothing, and works offline.
            changes, fresh = installer.planned(
                key, functools.partial(installer.resolve, interpreter, lines)
            )
            return installer.stored(interpreter, changes, lines, rebuild=fresh)
        except InstallError as error:
            problems.append(error)
    raise InstallError(
        ["pytest (for the child of an inside=True test)"],
        "\n".join(error.output for error in problems),
    )


def _environment(interpreter: Interpreter) -> dict[str, str]:
    major, minor, _ = interpreter.version
    found = {key: str(value) for key, value in default_environment().items()}
    found.update(
        python_version=f"{major}.{minor}",
        python_full_version=interpreter.version_text,
        implementation_name=interpreter.implementation,
        platform_python_implementation=_IMPLEMENTATIONS.get(
            interpreter.implementation, interpreter.implementation
        ),
        extra="",
    )
    return found


def _host_closure(interpreter: Interpreter) -> list[importlib.metadata.Distribution] | None:
    """The host's pytest and what it requires on ``interpreter``, if all can be copied."""
    environment = _environment(interpreter)
    found: dict[str, importlib.metadata.Distribution] = {}
    todo = ["pytest"]
    while todo:
        name = canonicalize_name(todo.pop())
        if name in found:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            return None
        if not _portable(dist, interpreter):
            return None
        found[name] = dist
        for text in dist.requires or ():
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate(environment):
                todo.append(requirement.name)
    return list(found.values())


def _portable(dist: importlib.metadata.Distribution, interpreter: Interpreter) -> bool:
    """Pure Python, installed from a wheel (not editable), and for ``interpreter``'s version."""
    wheel = dist.read_text("WHEEL") or ""
    if "root-is-purelib: true" not in wheel.lower():
        return False
    direct = dist.read_text("direct_url.json")
    if direct and json.loads(direct).get("dir_info", {}).get("editable"):
        return False
    requires = dist.metadata["Requires-Python"]
    if requires:
        try:
            if Version(interpreter.version_text) not in SpecifierSet(requires):
                return False
        except InvalidSpecifier:
            return False
    return dist.files is not None


def _copied(
    installer: Installer, interpreter: Interpreter, dists: list[importlib.metadata.Distribution]
) -> list[Entry]:
    """Store copies of the host's ``dists`` (once per cache), split by their ``RECORD``."""
    settings = f"host-copy-{interpreter.cache_tag}"
    entries: list[Entry] = []
    missing: list[importlib.metadata.Distribution] = []
    for dist in dists:
        name, version = canonicalize_name(dist.metadata["Name"]), dist.version
        entry = installer.dists.lookup(name, version, settings)
        if entry is not None:
            entries.append(entry)
        else:
            missing.append(dist)
    if not missing:
        return entries
    with installer.dists.staging("install") as staging:
        site = staging / interpreter.purelib
        for dist in missing:
            for file in dist.files or ():
                parts = file.parts
                if not parts or parts[0] == ".." or "__pycache__" in parts:
                    continue
                source = Path(str(dist.locate_file(file)))
                if source.is_file():
                    target = site / file
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(source, target)
        entries += installer.dists.add_install(
            staging,
            interpreter.purelib,
            interpreter.scripts,
            interpreter.cache_tag + interpreter.platform,
            settings,
            index_direct=True,
        )
    return entries
