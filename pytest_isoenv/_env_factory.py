"""Derived-env factory: fresh venvs per test, recycling the ones a test left untouched.

Making a venv is about a dozen ``mkdir``/``symlink``/write calls and deleting one as many
``unlink``/``rmdir`` calls; on the disks of containers and CI machines each costs 0.1-0.7 ms.
Most tests never change their env, so an untouched env (checked with one ``lstat`` per entry
it was made with) is renamed aside after its test and renamed again for a later test that
needs the same links: two ``rename`` calls instead of making and deleting. The test's own path
still vanishes when it ends, and the next test gets a path of its own.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path

_POOL_SIZE = 4  # per set of links; more would only help tests that run in parallel here


@dataclass(frozen=True)
class _Made:
    """A venv as it was made: every entry with what ``lstat`` said of it."""

    link_key: Hashable
    stats: tuple[tuple[str, int, int, int], ...]


def _stats(root: Path) -> tuple[tuple[str, int, int, int], ...]:
    """Every entry below ``root`` (and ``root`` itself), by relative path: a rename keeps it."""
    found = []
    for directory, dirnames, filenames in os.walk(root):
        for name in (".", *dirnames, *filenames):
            path = os.path.join(directory, name)
            info = os.lstat(path)
            rel = os.path.relpath(path, root)
            found.append((rel, info.st_ino, info.st_size, info.st_mtime_ns))
    return tuple(found)


class EnvFactory:
    """Hands out fresh derived venvs under ``root``; takes them back after their test."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._names = itertools.count()
        self._pools: dict[Hashable, list[Path]] = {}
        self._made: dict[Path, _Made] = {}
        root.mkdir(parents=True, exist_ok=True)

    def take(self, link_key: Hashable, make: Callable[[Path], None]) -> Path:
        """A fresh env whose links are ``link_key``: a recycled one, or one ``make`` writes."""
        path = self.root / f"env-{os.getpid()}-{next(self._names)}"
        pool = self._pools.get(link_key)
        if pool:
            pooled = pool.pop()
            os.rename(pooled, path)
            self._made[path] = self._made.pop(pooled)
            return path
        make(path)
        self._made[path] = _Made(link_key, _stats(path))
        return path

    def give_back(self, path: Path) -> None:
        """The test is over: ``path`` vanishes now, recycled if untouched, else deleted."""
        made = self._made.pop(path, None)
        pool = self._pools.setdefault(made.link_key, []) if made else None
        if made is not None and pool is not None and len(pool) < _POOL_SIZE:
            try:
                untouched = _stats(path) == made.stats
            except OSError:
                untouched = False
            if untouched:
                # Same parent directory: the rename changes nothing inside the env.
                pooled = self.root / f"pooled-{path.name}"
                os.rename(path, pooled)
                self._made[pooled] = made
                pool.append(pooled)
                return
        shutil.rmtree(path, ignore_errors=True)

    def close(self) -> None:
        """Delete every env this factory made."""
        shutil.rmtree(self.root, ignore_errors=True)
        self._pools.clear()
        self._made.clear()
