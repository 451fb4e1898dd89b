"""Replacing and removing directory trees: swapped in one step where the system allows.

A shared env that was found damaged is rebuilt beside the old one and swapped in, so a test
on another worker never finds the path missing or half-deleted. Linux swaps two paths
atomically (``renameat2(RENAME_EXCHANGE)``); elsewhere two renames leave the path missing for
a moment. Trees are made writable before deleting, so read-only files of a non-root user
never leave half of one behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import shutil
import stat
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


@functools.cache
def _renameat2() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function: Any = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # glibc < 2.28, musl
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
    function.argtypes.append(ctypes.c_uint)
    function.restype = ctypes.c_int
    return function  # type: ignore[no-any-return]


def replace_dir(new: Path, final: Path) -> None:
    """Put the tree ``new`` at ``final`` (which may exist), and delete what was there."""
    exchange = _renameat2()
    if exchange is not None and os.path.lexists(final):
        done = exchange(
            _AT_FDCWD, os.fsencode(new), _AT_FDCWD, os.fsencode(final), _RENAME_EXCHANGE
        )
        if done == 0:
            remove_tree(new)  # ``new`` now names the old tree
            return
    trash = final.with_name(f"{final.name}.trash-{uuid.uuid4().hex[:8]}")
    if os.path.lexists(final):
        os.rename(final, trash)
    os.rename(new, final)
    remove_tree(trash)


def remove_tree(path: Path) -> None:
    """Delete ``path`` and everything below it, read-only directories included; never raise."""
    if os.path.islink(path) or (os.path.lexists(path) and not os.path.isdir(path)):
        with contextlib.suppress(OSError):
            os.unlink(path)
        return
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        return
    except OSError:
        _make_writable(str(path))
        shutil.rmtree(path, ignore_errors=True)


def _make_writable(directory: str) -> None:
    """Give the owner every right on the directories below ``directory`` (as far as it can)."""
    try:
        os.chmod(directory, stat.S_IMODE(os.lstat(directory).st_mode) | stat.S_IRWXU)
        with os.scandir(directory) as scan:
            children = [child.path for child in scan if child.is_dir(follow_symlinks=False)]
    except OSError:
        return
    for child in children:
        _make_writable(child)


def make_read_only(root: Path) -> None:
    """Take every write bit off the tree at ``root`` (not through symbolic links).

    Stops a user who is not root from changing a shared env through its links (pip or uv
    aimed at a base, a test writing into a package); root is not stopped, and the guard is
    what catches that. ``remove_tree`` gives the bits back before deleting.
    """
    no_write = ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    for directory, dirnames, filenames in os.walk(root, topdown=False):
        for name in [*filenames, *dirnames]:
            path = os.path.join(directory, name)
            info = os.lstat(path)
            if not stat.S_ISLNK(info.st_mode):
                os.chmod(path, stat.S_IMODE(info.st_mode) & no_write)
    os.chmod(root, stat.S_IMODE(os.lstat(root).st_mode) & no_write)
