"""Derived-env factory: bare venvs made ahead of need and used ones deleted, off the test's path.

Making a venv is a handful of ``mkdir``/``symlink`` calls and deleting one a handful of
``rmdir`` calls; on overlay file systems (containers, CI) each costs ~0.1-0.3 ms, which adds up
to milliseconds per test. A background thread does both while tests run: a test takes a venv
that is already there, and its used venv vanishes at once (one ``rename``) and is deleted later.
Syscalls release the GIL, so the thread costs the tests next to nothing.
"""

from __future__ import annotations

import itertools
import os
import queue
import shutil
import threading
from pathlib import Path

from ._interpreter import Interpreter
from ._venv import create_venv

_STOP = None


class EnvFactory:
    """Hands out fresh bare venvs for one interpreter under ``root``; deletes returned ones."""

    def __init__(self, root: Path, interpreter: Interpreter, ahead: int = 2) -> None:
        self.root = root
        self.interpreter = interpreter
        self.ahead = ahead
        self._names = itertools.count()
        self._ready: queue.SimpleQueue[Path] = queue.SimpleQueue()
        self._jobs: queue.SimpleQueue[Path | None] = queue.SimpleQueue()
        self._trash = root / "trash"
        self._trash.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._work, name="isoenv-factory", daemon=True)
        self._thread.start()
        for _ in range(ahead):
            self._jobs.put(self._trash)  # the trash dir as a job means "make one more"

    def take(self) -> Path:
        """A fresh bare venv (made now if none is ready); the caller owns it until ``give_back``."""
        self._jobs.put(self._trash)
        try:
            return self._ready.get_nowait()
        except queue.Empty:
            return self._make()

    def give_back(self, path: Path) -> None:
        """Make ``path`` vanish now; its files are deleted in the background."""
        target = self._trash / path.name
        try:
            os.rename(path, target)
        except OSError:
            shutil.rmtree(path, ignore_errors=True)
            return
        self._jobs.put(target)

    def close(self) -> None:
        """Stop the thread and delete everything this factory made."""
        self._jobs.put(_STOP)
        self._thread.join(timeout=30)
        shutil.rmtree(self.root, ignore_errors=True)

    def _make(self) -> Path:
        path = self.root / f"env-{os.getpid()}-{next(self._names)}"
        create_venv(path, self.interpreter)
        return path

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is _STOP:
                return
            try:
                if job == self._trash:
                    self._ready.put(self._make())
                else:
                    shutil.rmtree(job, ignore_errors=True)
            except OSError:
                continue  # a full disk, say: take() makes its venv itself and reports the error
