"""The session directory: where a run keeps its session base and derived envs, gone after it.

Its path is decided when the run starts, but it is only made when a test first needs an env:
a run without env tests never creates, scans or deletes anything. Every process using it
(the run's own, its xdist workers) holds a shared ``flock`` on its ``lock`` file for as long as
it lives. A later run deletes the session directories of killed runs (SIGKILL, an OOM kill)
when it can take that lock exclusively: nobody holds it any more. File locks are what a
container or sandbox sharing the temporary directory shares with the host, unlike process
ids, which another PID namespace does not see.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import socket
import stat
import tempfile
import time
import uuid
from pathlib import Path

_PREFIX = "pytest-isoenv-"
LOCK = "lock"
# A directory without its lock file is being made right now (the file is renamed in, already
# locked, a moment after ``mkdir``), or its maker died in that moment: left alone until then.
_UNLOCKED_GRACE = 600.0


def _host() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def plan() -> Path:
    """The path the session directory of this run will have (nothing is created)."""
    name = f"{_PREFIX}{_host()}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    return Path(tempfile.gettempdir()) / name


class SessionDir:
    """The session directory of one run, made at first need by whichever process needs it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_fd: int | None = None

    def ensure(self) -> Path:
        """Make the directory (or join it) and hold its lock for as long as this process lives."""
        if self._lock_fd is not None:
            return self.path
        remove_abandoned()
        while True:
            with contextlib.suppress(FileExistsError):
                self.path.mkdir(mode=0o700)
            fd = self._join()
            if fd is not None:
                self._lock_fd = fd
                return self.path

    def _join(self) -> int | None:
        """A shared lock on the directory's lock file, made already locked if it is missing.

        None when a cleaner deleted the directory under us (it held the lock exclusively
        because nobody else did): then start again.
        """
        lock = self.path / LOCK
        staged = self.path / f"{LOCK}.new-{uuid.uuid4().hex[:8]}"
        try:
            fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            fd = os.open(staged, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            fcntl.flock(fd, fcntl.LOCK_SH)
            try:
                # Appears already locked: a cleaner never sees it free. A link, not a rename,
                # so that of two processes making it at once, one wins and the other joins.
                os.link(staged, lock)
            except FileExistsError:
                os.close(fd)
                os.unlink(staged)
                return self._join()
            except OSError:  # a file system without hard links: no other process races here
                os.rename(staged, lock)
                return fd
            os.unlink(staged)
            return fd
        fcntl.flock(fd, fcntl.LOCK_SH)
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            return None
        return fd

    def remove(self) -> None:
        """Delete the directory (the run is over) and let go of the lock."""
        if self.path.exists():
            remove_tree(self.path)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def remove_abandoned() -> None:
    """Delete the session directories of this host's runs that nobody holds the lock of."""
    mine = f"{_PREFIX}{_host()}-"
    try:
        candidates = [e for e in os.scandir(tempfile.gettempdir()) if e.name.startswith(mine)]
    except OSError:
        return
    for entry in candidates:
        try:
            if not entry.is_dir(follow_symlinks=False) or entry.stat().st_uid != os.getuid():
                continue  # another user's runs are theirs to clean up
        except OSError:
            continue
        path = Path(entry.path)
        try:
            fd = os.open(path / LOCK, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            try:
                young = time.time() - path.lstat().st_mtime < _UNLOCKED_GRACE
            except OSError:
                continue
            if not young:
                remove_tree(path)
            continue
        except OSError:  # another user's, or unreadable: not ours to judge
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    continue  # a live run, in this PID namespace or another
                raise
            remove_tree(path)
        finally:
            os.close(fd)


def remove_tree(root: Path) -> None:
    """Delete ``root`` and everything below it, even what was made read-only.

    A test may leave its env without write or search permission; a user other than root can
    then delete nothing inside it. Each directory gets ``u+rwx`` before it is listed (never
    through a symbolic link), then the tree goes. What still cannot be deleted is left.
    """
    _make_writable(str(root))
    for directory, dirnames, _ in os.walk(root):
        for name in dirnames:
            _make_writable(os.path.join(directory, name))
    import shutil  # noqa: PLC0415 - only runs when a session dir is deleted

    shutil.rmtree(root, ignore_errors=True)


def _make_writable(path: str) -> None:
    try:
        info = os.lstat(path)
        if stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_IRWXU != stat.S_IRWXU:
            os.chmod(path, stat.S_IMODE(info.st_mode) | stat.S_IRWXU)
    except OSError:
        pass
