"""Fingerprints of shared envs: a full one to verify a published env, a cheap one per test.

Permission bits cannot protect shared envs (tests and CI often run as root, and envs made
before uv was told to copy hard-link their files with uv's cache, so ``chmod`` on a file
would change every env linked to it), so these fingerprints are the real guard.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import json
import os
import shutil
import stat
import struct
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock
from filelock import Timeout as FileLockTimeout

MANIFEST = "isoenv-manifest.json"
ENTRY_MANIFEST = "isoenv-dist.json"
# Top-level files that are not content: our manifests, and the lock uv takes on every call
# (even a dry run) against an env.
_NOT_CONTENT = frozenset({MANIFEST, ENTRY_MANIFEST, ".lock"})
# Bytecode caches are never a change of content (``python -O`` writes opt-1 files, and so on).
BYTECODE_DIR = "__pycache__"


def full_fingerprint(root: Path) -> str:
    """A digest of every entry below ``root``: names, sizes, mtimes and link targets."""
    hasher = hashlib.sha256()
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(name for name in dirnames if name != BYTECODE_DIR)
        rel = os.path.relpath(directory, root)
        hasher.update(f"D {rel}\n".encode("utf-8", "surrogateescape"))
        for name in sorted(filenames):
            if (rel == "." and name in _NOT_CONTENT) or name.endswith(".pyc"):
                continue
            path = os.path.join(directory, name)
            info = os.lstat(path)
            target = os.readlink(path) if stat.S_ISLNK(info.st_mode) else ""
            line = f"F {rel}/{name} {info.st_size} {info.st_mtime_ns} {target}\n"
            hasher.update(line.encode("utf-8", "surrogateescape"))
    return hasher.hexdigest()


# inotify(7) constants (Linux)
_IN_MODIFY = 0x00000002
_IN_Q_OVERFLOW = 0x00004000
_IN_IGNORED = 0x00008000
_IN_ONLYDIR = 0x01000000
_IN_NONBLOCK = 0o4000
_IN_CLOEXEC = 0o2000000
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of name
# How long a check waits for a shared env that another process is rebuilding, and for one
# that was discarded to be published again (a damaged env is rebuilt at once).
_REBUILD_WAIT = 120.0
_REAPPEAR_WAIT = 5.0


class _WriteLog:
    """The files written in place in watched directories, from the process's inotify instance.

    Writing into an existing file changes no directory, so mtimes of directories cannot see
    it; stat-ing every file after every test would cost milliseconds. The kernel tells instead:
    a directory watched for ``IN_MODIFY`` reports every write to a file in it, by any process,
    and reading the (usually empty) queue after a test is one system call.
    """

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        init, self._add = libc.inotify_init1, libc.inotify_add_watch
        init.argtypes, init.restype = [ctypes.c_int], ctypes.c_int
        self._add.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        self._add.restype = ctypes.c_int
        self.fd = init(_IN_NONBLOCK | _IN_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self.dirs: dict[int, str] = {}
        self.written: set[str] = set()
        self.overflows = 0

    def watch(self, directory: str) -> bool:
        wd = self._add(self.fd, os.fsencode(directory), _IN_MODIFY | _IN_ONLYDIR)
        if wd < 0:  # e.g. the per-user watch limit: that directory goes unwatched
            return False
        self.dirs[wd] = directory
        return True

    def drain(self) -> None:
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return
            offset = 0
            while offset < len(data):
                wd, mask, _, length = _EVENT.unpack_from(data, offset)
                name = data[offset + _EVENT.size : offset + _EVENT.size + length].split(b"\0")[0]
                offset += _EVENT.size + length
                if mask & _IN_Q_OVERFLOW:
                    self.overflows += 1
                elif mask & _IN_IGNORED:
                    self.dirs.pop(wd, None)
                elif name and wd in self.dirs:
                    self.written.add(os.path.join(self.dirs[wd], os.fsdecode(name)))

    def forget(self, directories: Iterable[str]) -> None:
        """Drop what was written in ``directories`` so far (a new snapshot starts from now)."""
        self.drain()
        wanted = set(directories)
        self.written = {path for path in self.written if os.path.dirname(path) not in wanted}


@functools.cache
def _write_log() -> _WriteLog | None:
    """The process's write log, or None where inotify is not available (then mtimes only)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return _WriteLog()
    except (OSError, AttributeError):
        return None


def _listing(directory: str) -> dict[str, int]:
    """A directory's entries: name -> inode number (free with the names on POSIX)."""
    with os.scandir(directory) as scan:
        return {child.name: child.inode() for child in scan if _is_content(child.name)}


def _is_content(name: str) -> bool:
    return name != BYTECODE_DIR and not name.endswith(".pyc")


def _published_root(roots: Sequence[Path]) -> Path | None:
    """The published env (a directory holding a manifest) the roots belong to, if any."""
    for parent in list(roots[0].parents)[:3] if roots else ():  # <env>/lib/pythonX.Y/site-packages
        if (parent / MANIFEST).is_file():
            return parent
    return None


def _verifies(env: Path) -> bool:
    """The env at ``env`` is whole, as published: its files are the ones its manifest records."""
    try:
        manifest = json.loads((env / MANIFEST).read_text(encoding="utf-8"))
        return isinstance(manifest, dict) and manifest.get("fingerprint") == full_fingerprint(env)
    except (OSError, ValueError):
        return False


def _entry_stamps(roots: Sequence[Path]) -> dict[Path, tuple[int, int] | None]:
    """The stored distributions among ``roots`` (``<entry>/site``), with their manifests' stamps.

    A stored distribution is replaced whole (swapped in) when one is found damaged, with a
    new manifest: a new stamp means "stored again", not "changed by a test".
    """
    found: dict[Path, tuple[int, int] | None] = {}
    for root in roots:
        if (root.parent / ENTRY_MANIFEST).exists():
            found[root.parent] = _stamp(root.parent / ENTRY_MANIFEST)
    return found


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    return info.st_ino, info.st_mtime_ns


def _entry_verifies(entry: Path) -> bool:
    try:
        manifest = json.loads((entry / ENTRY_MANIFEST).read_text(encoding="utf-8"))
        return isinstance(manifest, dict) and manifest.get("fingerprint") == full_fingerprint(entry)
    except (OSError, ValueError):
        return False


@dataclass
class DirectorySnapshot:
    """The directories below some roots with their mtimes and entries: a cheap per-test check.

    Creating, removing or renaming anything changes its directory's mtime, so comparing mtimes
    (one ``stat`` per directory) finds every such change; the entry lists (names and inode
    numbers) then say what changed, and an mtime that moved over unchanged entries (something
    added and removed again) is no change. Where the system can tell (Linux), files written in
    place are reported too.

    A shared env published again while the snapshot was live was found damaged and rebuilt by
    another process (a worker's guard, or a session that verified it before use): some test
    changed it, maybe this one, maybe one running beside it. That is reported, once the new env
    verifies, as a change already undone: nobody rebuilds it again.
    """

    roots: tuple[Path, ...]
    # directory -> (its mtime, its entries: name -> inode)
    entries: dict[str, tuple[int, dict[str, int]]] = field(default_factory=dict)
    _published: Path | None = None
    _stamp: tuple[int, int] | None = None  # the published env's manifest: inode, mtime
    _entries: dict[Path, tuple[int, int] | None] = field(default_factory=dict)
    _rebuilt: bool = False
    _log: _WriteLog | None = field(default=None, repr=False)
    _overflows: int = 0

    @classmethod
    def take(cls, roots: Iterable[Path]) -> DirectorySnapshot:
        snapshot = cls(tuple(roots))
        snapshot._published = _published_root(snapshot.roots)
        snapshot._take()
        return snapshot

    def _take(self) -> None:
        self.entries = {}
        log = _write_log()
        for root in self.roots:
            self._scan(str(root), log)
        self._stamp = self._manifest_stamp()
        self._entries = _entry_stamps(self.roots)
        if log is not None:
            log.forget(self.entries)
            self._log, self._overflows = log, log.overflows

    def _scan(self, directory: str, log: _WriteLog | None) -> None:
        if log is not None:  # watched first: a write while scanning is not missed
            log.watch(directory)
        try:
            mtime = os.stat(directory).st_mtime_ns
            with os.scandir(directory) as scan:
                children = list(scan)
        except FileNotFoundError:
            self.entries[directory] = (-1, {})
            return
        children = [child for child in children if _is_content(child.name)]
        self.entries[directory] = (mtime, {child.name: child.inode() for child in children})
        for child in children:
            if child.is_dir(follow_symlinks=False):
                self._scan(child.path, log)

    def _manifest_stamp(self) -> tuple[int, int] | None:
        """Which publication of the env this is: its manifest is written anew by every build."""
        if self._published is None:
            return None
        try:
            info = os.stat(self._published / MANIFEST)
        except FileNotFoundError:
            return None
        return info.st_ino, info.st_mtime_ns

    def _republished(self) -> bool:
        """True (and the snapshot taken again) when the env was rebuilt and published anew.

        Stored distributions are swapped in whole by a rebuild, each with a new manifest,
        while the rebuilder holds the env's lock: a new stamp on any of them, or on the env,
        means "published again", once the rebuild is over and everything verifies.
        """
        entries_moved = bool(self._entries) and _entry_stamps(self.roots) != self._entries
        if self._published is None or (not entries_moved and self._manifest_stamp() == self._stamp):
            return False
        # Discarded and being rebuilt (by the store, under the env's lock)? Wait for the new one.
        lock = FileLock(str(self._published.parent / f"{self._published.name}.lock"))
        deadline = time.monotonic() + _REAPPEAR_WAIT
        while True:
            try:
                with lock.acquire(timeout=_REBUILD_WAIT):
                    stamp = self._manifest_stamp()
            except (OSError, FileLockTimeout):
                stamp = self._manifest_stamp()
            if stamp is not None or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        if stamp is None or not _verifies(self._published):
            return False
        if not all(_entry_verifies(entry) for entry in _entry_stamps(self.roots)):
            return False
        self._take()
        self._rebuilt = True
        return True

    def _written(self) -> list[str]:
        """Files of the snapshot written in place since it was taken (where that is known)."""
        if self._log is None:
            return []
        self._log.drain()
        found: list[str] = []
        if self._log.overflows != self._overflows:
            found.append(f"modified files below {', '.join(map(str, self.roots))} (not listed)")
        for path in sorted(self._log.written):
            directory, name = os.path.split(path)
            entry = self.entries.get(directory)
            if entry is not None and name in entry[1]:  # an added file is reported as added
                found.append(path)
        return found

    def changes(self) -> list[str]:
        """What changed since the snapshot, one line per entry ("added x", "removed y")."""
        if self._rebuilt or self._republished():
            return [
                f"rebuilt {self._published}: it was found changed and was published again by "
                "another process (changed by this test, or by one running at the same time)"
            ]
        found: list[str] = []
        for directory, (mtime, names) in self.entries.items():
            try:
                now = os.stat(directory).st_mtime_ns
                current = _listing(directory) if now != mtime else names
            except FileNotFoundError:
                found.append(f"removed {directory}")
                continue
            if current == names:
                if now != mtime:  # added and removed again: nothing to report, nor to re-list
                    self.entries[directory] = (now, names)
                continue
            for name in sorted(current.keys() - names.keys()):
                found.append(f"added {os.path.join(directory, name)}")
            for name in sorted(names.keys() - current.keys()):
                found.append(f"removed {os.path.join(directory, name)}")
            for name in sorted(current.keys() & names.keys()):
                if current[name] != names[name]:
                    found.append(f"replaced {os.path.join(directory, name)}")
        for path in self._written():
            found.append(path if path.startswith("modified ") else f"modified {path}")
        return list(dict.fromkeys(found))

    def undo_additions(self) -> bool:
        """Delete what was added since the snapshot; True when that restores every directory."""
        if self._rebuilt:
            return True  # published again, whole: nothing left to undo
        restored = not self._written()  # a file written in place cannot be restored here
        for directory, (mtime, names) in self.entries.items():
            try:
                if os.stat(directory).st_mtime_ns == mtime:
                    continue
                current = _listing(directory)
            except FileNotFoundError:
                restored = False
                continue
            kept = current.keys() & names.keys()
            if names.keys() - current.keys() or any(current[n] != names[n] for n in kept):
                restored = False  # something removed or replaced: only a rebuild restores it
            for name in current.keys() - names.keys():
                path = os.path.join(directory, name)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.unlink(path)
        return restored
