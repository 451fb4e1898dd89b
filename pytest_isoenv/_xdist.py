"""The pytest-xdist glue: the controller owns the session dir and hands it to every worker.

Session state crosses to workers as a plain value in ``workerinput`` (xdist's own channel), so
all workers of one run share one session base and one lock directory. What a worker has to say
about the base comes back in ``workeroutput`` when it ends, so that a worker that built the
base but ran none of the tests is heard too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

SESSION_DIR_KEY = "isoenv_session_dir"
STARTED_KEY = "isoenv_started"
BASE_LINES_KEY = "isoenv_base_lines"


def worker_input(config: pytest.Config) -> dict[str, Any] | None:
    """xdist's ``workerinput`` when this process is a worker, else None."""
    found: dict[str, Any] | None = getattr(config, "workerinput", None)
    return found


def worker_id(config: pytest.Config) -> str:
    found = worker_input(config)
    return str(found["workerid"]) if found else "main"


class XdistGlue:
    """Registered on the controller; its hook only exists (and runs) where xdist is loaded."""

    def __init__(self, session_dir: str, started: float, base_line: Callable[[str], None]) -> None:
        self.session_dir = session_dir
        self.started = started
        self.base_line = base_line

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[SESSION_DIR_KEY] = self.session_dir
        node.workerinput[STARTED_KEY] = self.started

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        for line in getattr(node, "workeroutput", {}).get(BASE_LINES_KEY, ()):
            self.base_line(str(line))


def send_base_lines(config: pytest.Config, lines: list[str]) -> None:
    """On a worker: hand the lines about the base to the controller."""
    output: dict[str, Any] | None = getattr(config, "workeroutput", None)
    if output is not None:
        output[BASE_LINES_KEY] = list(lines)
