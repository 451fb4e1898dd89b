"""The terminal lines: one about the base per session, and per-test env work in verbose mode.

Env work is attached to each test's report as a section, so it reaches the xdist controller
with the report and shows in a failing test's output too. A base that could not be built is
told once, in the summary: its message rides on the first report of each process that needed
it (an attribute of the report, which xdist carries to the controller), and every test that
needed it errors with a short line pointing here.
"""

from __future__ import annotations

from typing import Any

import pytest

REPORT_SECTION = "isoenv"
BASE_ERROR_ATTRIBUTE = "isoenv_base_error"
BASE_ERROR_SHORT = "isoenv: the base env could not be built; see the isoenv summary"


class SummaryReporter:
    """Collects the isoenv sections of test reports and prints them at the end."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        # (nodeid, line), in order, each once: a rerun test (pytest-rerunfailures) reports again
        self.lines: dict[tuple[str, str], None] = {}
        self.base_error: str | None = None

    def base_line(self, text: str) -> None:
        """A line about the base from elsewhere than a test's report (an xdist worker's end)."""
        self.lines.setdefault(("", text), None)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # A report carries the sections of the earlier phases too: read only its own.
        for title, content in report.sections:
            if title == f"Captured {REPORT_SECTION} {report.when}":
                for line in content.splitlines():
                    self.lines.setdefault((report.nodeid, line), None)
        error = getattr(report, BASE_ERROR_ATTRIBUTE, None)
        if error and self.base_error is None:
            # Under xdist each worker that needed the base tells; the first one is enough.
            self.base_error = str(error)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        # ``verbose`` rather than Config.get_verbosity(), which pytest 7 does not have.
        verbosity = int(self.config.getoption("verbose") or 0)
        if self.base_error is not None:  # always: the tests that errored point here
            terminalreporter.write_line(f"isoenv: {self.base_error}")
        if verbosity < -1:  # -qq: nothing else
            return
        bases = [text for _, text in self.lines if text.startswith("base ")]
        # Under xdist every worker reports the base; the one that built it tells the story.
        first_hand = [text for text in bases if not text.startswith("base reused")]
        for text in dict.fromkeys(first_hand or bases[:1]):
            terminalreporter.write_line(f"isoenv: {text}")
        if verbosity > 0:
            for nodeid, text in self.lines:
                if not text.startswith("base "):
                    terminalreporter.write_line(f"isoenv: {nodeid}: {text}")
