"""The session directory: where a run keeps its session base and derived envs, gone after it.

Its name carries the owning process id, so a later run can delete the directories of runs
that were killed (SIGKILL, a lost CI machine) before they could clean up.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

_PREFIX = "pytest-isoenv-"


def create() -> Path:
    """A new private session directory in the system's temporary directory."""
    remove_abandoned()
    return Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-"))


def remove_abandoned() -> None:
    """Delete the session directories of runs whose process no longer exists."""
    for path in Path(tempfile.gettempdir()).glob(f"{_PREFIX}*-*"):
        pid_text = path.name[len(_PREFIX) :].split("-", 1)[0]
        if pid_text.isdigit() and not _alive(int(pid_text)) and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True
