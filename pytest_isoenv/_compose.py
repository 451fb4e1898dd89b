"""Env composition: a shared env is a venv whose site-packages links stored distributions.

Each distribution's top-level names (``numpy/``, ``numpy-2.1.3.dist-info/``, ``six.py``) are
symbolic links into the store, so a base or a layer is a complete environment (uv and
``importlib.metadata`` see exactly one version of each name) that costs a few links, however
many envs share a distribution. Where two distributions share a directory (a namespace
package such as ``google/``), the env holds a real directory linking each one's children.

Bytecode: envs send it to a private ``sys.pycache_prefix``. There, a linked directory of an
env is linked to its distribution's directory too (``mirror_bytecode``), so what one env
compiled is reused by every env holding that distribution.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ._dists import canonical
from ._link import LINK_NAMES


@dataclass(frozen=True)
class Source:
    """Names in ``directory`` an env links, all from one distribution (or none: ``dist`` None)."""

    directory: Path
    names: tuple[str, ...]
    dist: str | None


def link_sources(site_packages: Path, sources: Iterable[Source]) -> None:
    """Link every source's names into ``site_packages``; earlier sources win on a clash."""
    for source in sources:
        for name in source.names:
            _link(source.directory / name, site_packages / name)


def _link(source: Path, target: Path) -> None:
    real = Path(os.path.realpath(source))
    if not os.path.lexists(target):
        os.symlink(real, target)
        return
    if not real.is_dir() or not target.is_dir():
        return  # a file of the same name: the first source's stays
    if target.is_symlink():  # two distributions share this directory: merge them
        first = Path(os.path.realpath(target))
        target.unlink()
        target.mkdir()
        for child in sorted(os.listdir(first)):
            _link(first / child, target / child)
    for child in sorted(os.listdir(real)):
        if child != "__pycache__":
            _link(real / child, target / child)


def site_sources(site_packages: Path) -> list[Source]:
    """The sources of an existing site-packages (a venv of yours): one per distribution.

    Names no distribution's ``RECORD`` claims come last, as a source of their own.
    """
    import csv  # noqa: PLC0415 - only for user venvs

    try:
        names = sorted(os.listdir(site_packages))
    except FileNotFoundError:
        return []
    owned: set[str] = set()
    sources: list[Source] = []
    for name in names:
        if not name.endswith(".dist-info"):
            continue
        top = {name}
        try:
            with open(site_packages / name / "RECORD", encoding="utf-8", newline="") as handle:
                for row in csv.reader(handle):
                    if row and row[0] and not row[0].startswith(".."):
                        top.add(os.path.normpath(row[0]).split(os.sep, 1)[0])
        except OSError:
            pass
        present = tuple(sorted(n for n in top if n in names and n != "__pycache__"))
        owned.update(present)
        dist = name[: -len(".dist-info")].partition("-")[0]
        sources.append(Source(site_packages, present, canonical(dist)))
    rest = tuple(n for n in names if n not in owned and n not in ("__pycache__", *LINK_NAMES))
    if rest:
        sources.append(Source(site_packages, rest, None))
    return sources


def mirror_bytecode(site_packages: Path, pycache: Path) -> None:
    """Point the env's directories under ``pycache`` at their distributions' (idempotent)."""
    mirror = pycache / str(site_packages).lstrip(os.sep)
    for name, target in _linked_dirs(site_packages):
        link = mirror / name
        if os.path.lexists(link):
            continue
        shared = pycache / str(target).lstrip(os.sep)
        try:
            shared.mkdir(parents=True, exist_ok=True)
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(shared, link)
        except FileExistsError:
            pass  # another worker made it meanwhile


def _linked_dirs(root: Path, prefix: str = "") -> Sequence[tuple[str, Path]]:
    found: list[tuple[str, Path]] = []
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return found
    for entry in entries:
        rel = os.path.join(prefix, entry.name)
        if entry.is_symlink():
            if entry.is_dir():
                found.append((rel, Path(os.readlink(entry.path))))
        elif entry.is_dir() and not entry.name.endswith(".dist-info"):
            found += _linked_dirs(Path(entry.path), rel)  # a merged (namespace) directory
    return found
