"""Progress lines for slow work: builds and waits that take more than a second say so.

They are written to the process's original standard error, duplicated when the plugin is
imported: pytest captures file descriptor 2 while tests and fixtures run, and an xdist worker
has no terminal reporter, but its standard error is the terminal's.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

# Before pytest starts capturing (plugins are imported first): the terminal, or wherever the
# user sent standard error.
_STDERR: int | None
try:
    _STDERR = os.dup(2)
    os.set_inheritable(_STDERR, False)
except OSError:
    _STDERR = None

FIRST_AFTER = 1.0  # seconds before a slow step first says what it does
EVERY = 15.0  # and how often it says it again


def say(text: str) -> None:
    """Write one ``isoenv:`` line to the terminal, outside pytest's capturing."""
    if _STDERR is None:
        return
    with suppress(OSError):
        os.write(_STDERR, f"\nisoenv: {text}\n".encode("utf-8", "replace"))


@contextmanager
def announced(what: str, *, first_after: float = FIRST_AFTER) -> Iterator[None]:
    """Say "``what`` (N s)" while the block runs longer than ``first_after`` seconds."""
    start = time.monotonic()
    done = threading.Event()
    spoke = False

    def watch() -> None:
        nonlocal spoke
        wait = first_after
        while not done.wait(wait):
            spoke = True
            say(f"{what} ({time.monotonic() - start:.0f}s so far)")
            wait = EVERY

    thread = threading.Thread(target=watch, name="isoenv-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        if spoke:
            say(f"{what}: done in {time.monotonic() - start:.1f}s")
