"""The session directory: where a run keeps its session base and derived envs, gone after it.

Its name carries the owning host and process id, so a later run on the same host can delete
the directories of runs that were killed (SIGKILL, an OOM kill) before they could clean up;
another container sharing the temporary directory has another host name, and is left alone.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import tempfile
from pathlib import Path

_PREFIX = "pytest-isoenv-"


def _host() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def create() -> Path:
    """A new private session directory in the system's temporary directory."""
    remove_abandoned()
    return Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{_host()}-{os.getpid()}-"))


def remove_abandoned() -> None:
    """Delete the session directories of runs whose process no longer exists."""
    mine = f"{_PREFIX}{_host()}-"
    for path in Path(tempfile.gettempdir()).glob(f"{mine}*-*"):
        pid_text = path.name[len(mine) :].split("-", 1)[0]
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
