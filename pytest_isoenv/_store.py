"""A store of published envs: built beside, published atomically, verified before reuse.

One directory per env, named by its cache key. A build happens in a sibling temporary
directory under a file lock (so concurrent sessions and xdist workers wait for one build
instead of racing) and is published with one ``rename``; a manifest written last marks it
complete. Anything without a valid manifest, or whose verification fails, is never reused.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock
from filelock import Timeout as FileLockTimeout

from . import _progress
from ._errors import IsoenvError
from ._fingerprint import MANIFEST, full_fingerprint
from ._swap import remove_tree, replace_dir

FORMAT_VERSION = 2
_FIRST_WORD = 2.0  # seconds of waiting for another process's build before saying so

Verifier = Callable[[Path, "dict[str, Any]"], "str | None"]


@dataclass(frozen=True)
class Published:
    """An env found in, or just built into, a store."""

    path: Path
    manifest: dict[str, Any]
    built: bool
    seconds: float
    replaced: str | None  # why a previous env under this key was thrown away


def secure_directory(path: Path) -> Path:
    """Create ``path`` (0700) or check an existing one is ours and not world-writable.

    A symbolic link is followed only when you own it (or root does) and what it leads to
    passes the same checks: a link someone else planted (say in ``/tmp``) could be pointed
    elsewhere at any time. Nothing is ever changed through a link that is refused.
    """
    try:
        link = path.lstat()
    except FileNotFoundError:
        link = None
    except OSError as error:
        raise IsoenvError(f"cannot use cache dir {path}: {error}") from None
    uid = os.getuid() if hasattr(os, "getuid") else None
    foreign_link = link is not None and stat.S_ISLNK(link.st_mode) and link.st_uid != uid
    if uid is not None and foreign_link and link is not None and link.st_uid != 0:
        raise IsoenvError(
            f"refusing cache dir {path}: it is a symbolic link owned by uid {link.st_uid}, "
            f"not by you (uid {uid}); whoever owns it could point it at envs your tests "
            "would run"
        )
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.stat()
    except OSError as error:
        raise IsoenvError(f"cannot use cache dir {path}: {error}") from None
    if uid is not None and info.st_uid != uid:
        raise IsoenvError(
            f"refusing cache dir {path}: it is owned by uid {info.st_uid}, not by you "
            f"(uid {uid}); another user could plant envs your tests would run"
        )
    if info.st_mode & stat.S_IWOTH:
        raise IsoenvError(
            f"refusing cache dir {path}: it is world-writable, so anyone could plant envs "
            "your tests would run; use a private directory (chmod 700)"
        )
    if stat.S_IMODE(info.st_mode) & 0o077:
        path.chmod(0o700)
    return path


def read_manifest(root: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class Store:
    """The published envs of one kind (bases or layers) in one directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def get_or_build(
        self,
        key: str,
        build: Callable[[Path], dict[str, Any]],
        verify: Verifier,
        *,
        what: str,
        stale_before: float | None = None,
        stale_because: str = "a rebuild was asked for (--isoenv-rebuild)",
    ) -> Published:
        """The env published under ``key``: reused when it verifies, else (re)built.

        ``what`` says what it holds, for whoever waits for this build. An env published before
        ``stale_before`` (a time stamp) is built again, ``stale_because``; a broken one is
        rebuilt beside and swapped in, so the path never goes missing. Under the lock, an env
        another process published meanwhile is taken as it is.
        """
        final = self.root / key
        start = time.perf_counter()
        stale = (stale_before, stale_because)
        if self._valid(final, key, verify, stale) is None:
            return Published(final, _manifest(final), False, time.perf_counter() - start, None)
        self.root.mkdir(parents=True, exist_ok=True)
        with self._locked(key, what):
            problem = self._valid(final, key, verify, stale)
            if problem is None:  # another process built it while we waited
                return Published(final, _manifest(final), False, time.perf_counter() - start, None)
            self._remove_leftovers(key)
            replaced = problem if os.path.lexists(final) else None
            with _progress.announced(f"building {what}"):
                manifest = self._build(final, key, build)
        return Published(final, manifest, True, time.perf_counter() - start, replaced)

    @contextmanager
    def _locked(self, key: str, what: str) -> Iterator[None]:
        """Hold ``key``'s lock; while another process holds it, say who and for what."""
        lock = FileLock(str(self.root / f"{key}.lock"))
        owner_file = self.root / f"{key}.owner"
        waited = time.monotonic()
        next_word = _FIRST_WORD
        while True:
            try:
                lock.acquire(timeout=next_word)
                break
            except FileLockTimeout:
                _progress.say(
                    f"waiting for {_owner(owner_file)} building {what} "
                    f"({time.monotonic() - waited:.0f}s so far)"
                )
                next_word = _progress.EVERY
        try:
            owner = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
            owner_file.write_text(json.dumps(owner), encoding="utf-8")
            yield
        finally:
            owner_file.unlink(missing_ok=True)
            lock.release()

    def _valid(  # noqa: PLR0911 - one reason per way an env can be unusable
        self, final: Path, key: str, verify: Verifier, stale: tuple[float | None, str]
    ) -> str | None:
        try:
            manifest = read_manifest(final)
            if manifest is None:
                return "it is incomplete (no manifest)" if final.exists() else "it does not exist"
            if manifest.get("format") != FORMAT_VERSION or manifest.get("key") != key:
                return "its manifest is from another format or key"
            if stale[0] is not None and manifest.get("created", 0) < stale[0]:
                return stale[1]
            problem = verify(final, manifest)
            if problem is not None:
                return problem
            if manifest.get("fingerprint") != full_fingerprint(final):
                return "its files changed after it was built"
        except OSError as error:  # being replaced by another process: wait for its lock
            return f"it changed while being read ({error.strerror})"
        return None

    def _build(
        self, final: Path, key: str, build: Callable[[Path], dict[str, Any]]
    ) -> dict[str, Any]:
        staging = self.root / f"{key}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            staging.mkdir()  # there from the start: a build in progress is visible
            manifest = dict(build(staging))
            # Fingerprint as it will be seen from the published path: renaming keeps every
            # entry's mtime, and the manifest itself is left out.
            manifest.update(
                format=FORMAT_VERSION,
                key=key,
                created=time.time(),
                fingerprint=full_fingerprint(staging),
            )
            tmp_manifest = staging / (MANIFEST + ".tmp")
            tmp_manifest.write_text(json.dumps(manifest, indent=1, sort_keys=True), "utf-8")
            with open(tmp_manifest, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp_manifest, staging / MANIFEST)
            if os.path.lexists(final):
                replace_dir(staging, final)
            else:
                os.rename(staging, final)
        except BaseException:
            remove_tree(staging)
            raise
        return manifest

    def _remove_leftovers(self, key: str) -> None:
        """Half-built or half-deleted dirs of ``key`` (their builder died); we hold the lock."""
        for pattern in (f"{key}.tmp-*", f"{key}.trash-*"):
            for leftover in self.root.glob(pattern):
                remove_tree(leftover)


def _owner(owner_file: Path) -> str:
    try:
        owner = json.loads(owner_file.read_text(encoding="utf-8"))
        return f"pid {owner['pid']} on {owner['host']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


def _manifest(final: Path) -> dict[str, Any]:
    manifest = read_manifest(final)
    assert manifest is not None
    return manifest
