"""The cache's upkeep at the end of a session: the daily prune, and a line saying its size.

Run by the controller after its last test (xdist workers are gone by then). The session's
own envs and distributions are still held, so they are never pruned. A stamp file makes it at
most once a day, whoever runs it; on other days the size costs a walk of the views and
bytecode only (``_cache_admin.quick_size``).
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from ._cache_admin import DAY, NotACache, PruneReport, cache_root, format_size, prune, quick_size

try:
    import fcntl
except ImportError:  # Windows: nothing is ever held there, so nothing would be pruned anyway
    fcntl = None  # type: ignore[assignment]

#: In the cache's ``v2``: its mtime is when a session last pruned the cache.
STAMP = ".last-prune"


def end_of_session(cache_dir: Path, prune_after: float, *, now: float | None = None) -> str | None:
    """Prune ``cache_dir`` of envs unused for ``prune_after`` days (0: never) unless that was
    done less than a day ago; return the summary's text (None: there is no cache)."""
    try:
        root = cache_root(cache_dir)
    except NotACache:
        return None
    if root is None:
        return None
    try:
        report = daily_prune(root, prune_after, now=now) if prune_after > 0 else None
        if report is None:
            return f"cache {cache_dir}: {format_size(quick_size(root))}"
    except OSError as error:
        return f"cache {cache_dir}: not measured ({error})"
    text = f"cache {cache_dir}: {format_size(report.size_after)}"
    if report.removed:
        envs = report.envs_removed
        unused = f", {envs} env{'' if envs == 1 else 's'} unused for {prune_after:g} days"
        text += f" (pruned today: {format_size(report.freed)} freed{unused if envs else ''})"
    return text


def daily_prune(root: Path, days: float, *, now: float | None = None) -> PruneReport | None:
    """``prune(root, older_than=days)`` unless the stamp says a session did in the last day
    (or one is doing it now); None when it did not run."""
    now = time.time() if now is None else now
    stamp = root / STAMP
    fd = os.open(stamp, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return None  # another session is pruning
        info = os.fstat(fd)
        if info.st_size > 0 and 0 <= now - info.st_mtime < DAY:
            return None
        report = prune(root, older_than=days, now=now)
        os.ftruncate(fd, 0)
        os.write(fd, b"the last prune of this cache\n")
        with contextlib.suppress(OSError):
            os.utime(fd, (now, now))
        return report
    finally:
        os.close(fd)
