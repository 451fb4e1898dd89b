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
import threading
from collections.abc import Callable, Hashable
from pathlib import Path

from ._swap import remove_tree

Maker = Callable[[Path], None]
_AHEAD = 2  # envs made ahead per set of links: the next test's, and the one after


class EnvFactory:
    """Hands out fresh derived venvs under ``root``; deletes them after their test."""

    def __init__(self, root: Path, also_remove: Callable[[Path], list[Path]] | None = None) -> None:
        self.root = root
        self._names = itertools.count()
        self._ready: dict[Hashable, list[Path]] = {}
        self._wanted: dict[Hashable, Maker] = {}  # envs to make ahead, by their links
        self._trash: list[list[Path]] = []
        self._work = threading.Condition()
        self._closing = False
        self._threads: list[threading.Thread] = []
        self._also_remove = also_remove
        root.mkdir(parents=True, exist_ok=True)

    def _new_path(self) -> Path:
        return self.root / f"env-{os.getpid()}-{next(self._names)}"

    def take(self, link_key: Hashable, make: Maker) -> Path:
        """A fresh env whose links are ``link_key``: one made ahead, or one ``make`` writes now."""
        with self._work:
            ready = self._ready.get(link_key)
            path = ready.pop() if ready else None
            self._wanted[link_key] = make  # the next test most likely needs the same
            self._work.notify_all()
        if path is None:
            path = self._new_path()
            make(path)
        self._start()
        return path

    def give_back(self, path: Path) -> None:
        """The test is over: ``path`` vanishes now; its files are deleted in the background."""
        trash = path.with_name(f"trash-{path.name}")
        try:
            os.rename(path, trash)
        except OSError:
            trash = path
        extra = self._also_remove(path) if self._also_remove else []
        with self._work:
            self._trash.append([trash, *extra])
            self._work.notify_all()
        self._start()

    def _start(self) -> None:
        if not self._threads:
            thread = threading.Thread(target=self._run, name="isoenv-envs", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _run(self) -> None:
        """Make the envs the next tests will take first, then delete the old ones."""
        while True:
            with self._work:
                while not (self._closing or self._wanted or self._trash):
                    self._work.wait()
                if self._wanted:
                    link_key, make = self._wanted.popitem()
                    if len(self._ready.get(link_key, ())) >= _AHEAD:
                        continue
                    job: Callable[[], None] = functools.partial(self._make_ahead, link_key, make)
                elif self._trash:
                    job = functools.partial(_remove_all, self._trash.pop())
                else:
                    return  # closing, and nothing left to delete
            with contextlib.suppress(Exception):  # a failed background step only costs speed
                job()

    def _make_ahead(self, link_key: Hashable, make: Maker) -> None:
        path = self._new_path()
        try:
            make(path)
        except OSError:
            remove_tree(path)
            return
        with self._work:
            self._ready.setdefault(link_key, []).append(path)
            if len(self._ready[link_key]) < _AHEAD:
                self._wanted.setdefault(link_key, make)

    def close(self) -> None:
        """Wait for the background work, then delete every env this factory made."""
        with self._work:
            self._closing = True
            self._wanted.clear()
            self._work.notify_all()
        for thread in self._threads:
            thread.join()
        self._threads.clear()
        self._ready.clear()
        remove_tree(self.root)


def _remove_all(paths: list[Path]) -> None:
    for path in paths:
        remove_tree(path)
