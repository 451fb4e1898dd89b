"""Which cached envs are in use: a shared lock per env for a session's life, and its last use.

A session holds a shared ``flock`` on ``<env>.inuse`` for every base and layer it uses, from
first use to the end of the process (the kernel drops it when the process dies, however it
dies). Pruning takes the lock exclusively and without waiting: an env in use is never
removed. The lock file's mtime, set when the lock is first taken, is the env's last use: one
``utime`` per env per session, nothing per test.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no cross-process shared locks here; nothing is held
    fcntl = None  # type: ignore[assignment]

INUSE_SUFFIX = ".inuse"

_held: dict[Path, int] = {}


def inuse_file(env: Path) -> Path:
    return env.with_name(env.name + INUSE_SUFFIX)


def hold(env: Path) -> None:
    """Mark ``env`` used by this process until it exits (idempotent)."""
    if env in _held or fcntl is None:
        return
    path = inuse_file(env)
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            # Pruning deletes the file of an env it removed while holding it: a hold on the
            # deleted file would protect nothing, so take the file that is there now.
            if _same_file(fd, path):
                os.utime(fd)
                break
        except OSError:
            os.close(fd)
            return
        os.close(fd)
    _held[env] = fd


def _same_file(fd: int, path: Path) -> bool:
    try:
        there = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino)


@contextlib.contextmanager
def holding(path: Path) -> Iterator[None]:
    """Mark ``path`` in use for the block only (a staging dir): ``try_exclusive`` fails meanwhile.

    The lock is taken before the block makes ``path`` and its file removed after the block
    removed it, so a process that finds ``path`` and gets ``try_exclusive`` knows that whoever
    made it is gone (killed, say) and may delete it.
    """
    lock = inuse_file(path)
    fd = None
    if fcntl is not None:
        with contextlib.suppress(OSError):
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.flock(fd, fcntl.LOCK_SH)
    try:
        yield
    finally:
        if fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(lock)
            os.close(fd)


def release_all() -> None:
    """Let go of every env this process holds (the end of the session)."""
    for fd in _held.values():
        with contextlib.suppress(OSError):
            os.close(fd)
    _held.clear()


def try_exclusive(env: Path) -> int | None:
    """An exclusive hold on ``env`` (a descriptor to close), or None while a session uses it."""
    if fcntl is None:
        return None
    try:
        fd = os.open(inuse_file(env), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def last_used(env: Path) -> float | None:
    """When a session last started using ``env`` (None: never recorded)."""
    try:
        return os.stat(inuse_file(env)).st_mtime
    except OSError:
        return None
