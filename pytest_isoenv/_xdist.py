"""The pytest-xdist glue: the controller owns the session dir and hands it to every worker.

Session state crosses to workers as a plain value in ``workerinput`` (xdist's own channel), so
all workers of one run share one session base and one lock directory.
"""

from __future__ import annotations

from typing import Any

import pytest

SESSION_DIR_KEY = "isoenv_session_dir"
STARTED_KEY = "isoenv_started"


def worker_input(config: pytest.Config) -> dict[str, Any] | None:
    """xdist's ``workerinput`` when this process is a worker, else None."""
    found: dict[str, Any] | None = getattr(config, "workerinput", None)
    return found


def worker_id(config: pytest.Config) -> str:
    found = worker_input(config)
    return str(found["workerid"]) if found else "main"


class XdistGlue:
    """Registered on the controller; its hook only exists (and runs) where xdist is loaded."""

    def __init__(self, session_dir: str, started: float) -> None:
        self.session_dir = session_dir
        self.started = started

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[SESSION_DIR_KEY] = self.session_dir
        node.workerinput[STARTED_KEY] = self.started
