"""Derived-env factory: a fresh venv per test, made ahead and deleted behind, never reused.

Making a venv is about a dozen ``mkdir``/``symlink``/write calls and deleting one as many
``unlink``/``rmdir`` calls; on the disks of containers and CI machines each costs 0.1-0.7 ms.
So a background thread makes the next env while a test runs (one per set of links, guessed
from the last test), and deletes envs after their test: the test's path is renamed away at
once, and the tree is deleted off the critical path. No directory ever serves a second test: a
process a test left behind can only ever write into a tree that is being deleted.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import queue
import threading
from collections.abc import Callable, Hashable
from pathlib import Path

from ._swap import remove_tree

Maker = Callable[[Path], None]


class EnvFactory:
    """Hands out fresh derived venvs under ``root``; deletes them after their test."""

    def __init__(self, root: Path, also_remove: Callable[[Path], list[Path]] | None = None) -> None:
        self.root = root
        self._names = itertools.count()
        self._ready: dict[Hashable, list[Path]] = {}
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._also_remove = also_remove
        root.mkdir(parents=True, exist_ok=True)

    def _new_path(self) -> Path:
        return self.root / f"env-{os.getpid()}-{next(self._names)}"

    def take(self, link_key: Hashable, make: Maker) -> Path:
        """A fresh env whose links are ``link_key``: one made ahead, or one ``make`` writes now."""
        with self._lock:
            ready = self._ready.get(link_key)
            path = ready.pop() if ready else None
        if path is None:
            path = self._new_path()
            make(path)
        self._submit(lambda: self._make_ahead(link_key, make))
        return path

    def _make_ahead(self, link_key: Hashable, make: Maker) -> None:
        with self._lock:
            if self._ready.get(link_key):
                return
        path = self._new_path()
        try:
            make(path)
        except OSError:
            remove_tree(path)
            return
        with self._lock:
            self._ready.setdefault(link_key, []).append(path)

    def give_back(self, path: Path) -> None:
        """The test is over: ``path`` vanishes now; its files are deleted in the background."""
        trash = path.with_name(f"trash-{path.name}")
        try:
            os.rename(path, trash)
        except OSError:
            trash = path
        extra = self._also_remove(path) if self._also_remove else []
        self._submit(functools.partial(_remove_all, [trash, *extra]))

    def _submit(self, job: Callable[[], None]) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="isoenv-envs", daemon=True)
            self._thread.start()
        self._jobs.put(job)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            with contextlib.suppress(Exception):  # a failed background step only costs speed
                job()

    def close(self) -> None:
        """Wait for the background work, then delete every env this factory made."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None
        with self._lock:
            self._ready.clear()
        remove_tree(self.root)


def _remove_all(paths: list[Path]) -> None:
    for path in paths:
        remove_tree(path)
