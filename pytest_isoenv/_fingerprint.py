"""Fingerprints of shared envs: a full one to verify a published env, a cheap one per test.

Permission bits cannot protect shared envs (tests and CI often run as root, and uv hardlinks
files from its cache, so ``chmod`` on a file would change every env linked to it), so these
fingerprints are the real guard.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

MANIFEST = "isoenv-manifest.json"
# Top-level files that are not content: our manifest, and the lock uv takes on every call
# (even a dry run) against an env.
_NOT_CONTENT = frozenset({MANIFEST, ".lock"})


def full_fingerprint(root: Path) -> str:
    """A digest of every entry below ``root``: names, sizes, mtimes and link targets."""
    hasher = hashlib.sha256()
    for directory, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = os.path.relpath(directory, root)
        hasher.update(f"D {rel}\n".encode("utf-8", "surrogateescape"))
        for name in sorted(filenames):
            if rel == "." and name in _NOT_CONTENT:
                continue
            path = os.path.join(directory, name)
            info = os.lstat(path)
            target = os.readlink(path) if os.path.islink(path) else ""
            line = f"F {rel}/{name} {info.st_size} {info.st_mtime_ns} {target}\n"
            hasher.update(line.encode("utf-8", "surrogateescape"))
    return hasher.hexdigest()


@dataclass
class DirectorySnapshot:
    """The directories below some roots with their mtimes and entries: a cheap per-test check.

    Creating, removing or renaming anything changes its directory's mtime, so comparing mtimes
    (one ``stat`` per directory) finds every such change; the entry lists then say what changed.
    """

    roots: tuple[Path, ...]
    entries: dict[str, tuple[int, frozenset[str]]] = field(default_factory=dict)

    @classmethod
    def take(cls, roots: Iterable[Path]) -> DirectorySnapshot:
        snapshot = cls(tuple(roots))
        for root in snapshot.roots:
            snapshot._scan(str(root))
        return snapshot

    def _scan(self, directory: str) -> None:
        try:
            mtime = os.stat(directory).st_mtime_ns
            with os.scandir(directory) as scan:
                children = list(scan)
        except FileNotFoundError:
            self.entries[directory] = (-1, frozenset())
            return
        self.entries[directory] = (mtime, frozenset(child.name for child in children))
        for child in children:
            if child.is_dir(follow_symlinks=False):
                self._scan(child.path)

    def changes(self) -> list[str]:
        """What changed since the snapshot, one line per entry ("added x", "removed y")."""
        found: list[str] = []
        for directory, (mtime, names) in self.entries.items():
            try:
                now = os.stat(directory).st_mtime_ns
            except FileNotFoundError:
                now = -1
            if now == mtime:
                continue
            if now == -1:
                found.append(f"removed {directory}")
                continue
            current = frozenset(os.listdir(directory))
            found += [f"added {os.path.join(directory, n)}" for n in sorted(current - names)]
            found += [f"removed {os.path.join(directory, n)}" for n in sorted(names - current)]
            if current == names:
                found.append(f"modified entries of {directory}")
        return found

    def undo_additions(self) -> bool:
        """Delete what was added since the snapshot; True when that restores every directory."""
        restored = True
        for directory, (mtime, names) in self.entries.items():
            try:
                if os.stat(directory).st_mtime_ns == mtime:
                    continue
                current = set(os.listdir(directory))
            except FileNotFoundError:
                restored = False
                continue
            if names - current or current == names:
                restored = False
            for name in current - names:
                path = os.path.join(directory, name)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.unlink(path)
        return restored
