"""The terminal lines: one about the base per session, and per-test env work in verbose mode.

Env work is attached to each test's report as a section, so it reaches the xdist controller
with the report and shows in a failing test's output too.
"""

from __future__ import annotations

from typing import Any

import pytest

REPORT_SECTION = "isoenv"


class SummaryReporter:
    """Collects the isoenv sections of test reports and prints them at the end."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.lines: list[tuple[str, str]] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # A report carries the sections of the earlier phases too: read only its own.
        for title, content in report.sections:
            if title == f"Captured {REPORT_SECTION} {report.when}":
                self.lines += [(report.nodeid, line) for line in content.splitlines()]

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        bases = [text for _, text in self.lines if text.startswith("base ")]
        # Under xdist every worker reports the base; the one that built it tells the story.
        first_hand = [text for text in bases if not text.startswith("base reused")]
        for text in dict.fromkeys(first_hand or bases[:1]):
            terminalreporter.write_line(f"isoenv: {text}")
        if self.config.get_verbosity() > 0:
            for nodeid, text in self.lines:
                if not text.startswith("base "):
                    terminalreporter.write_line(f"isoenv: {nodeid}: {text}")
