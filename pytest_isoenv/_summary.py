"""The terminal lines: the base, a count of env work, kept envs, and per-test work with ``-v``.

Env work is attached to each test's report as a section, so it reaches the xdist controller
with the report and shows in a failing test's output too. A base that could not be built is
told once, in the summary: its message rides on the first report of each process that needed
it (an attribute of the report, which xdist carries to the controller), and every test that
needed it errors with a short line pointing here.

Counts and kept envs ride on reports as attributes too (plain values, which xdist carries):
the count line sums what every process did, and each kept env is named once, by the
controller. A failed test's report gets a section describing its env (``env_section``), also
recorded as a junitxml property.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ._derived import DerivedEnv

REPORT_SECTION = "isoenv"
BASE_ERROR_ATTRIBUTE = "isoenv_base_error"
BASE_ERROR_SHORT = "isoenv: the base env could not be built; see the isoenv summary"
#: The section of a failed test's report describing its env, and its junitxml property.
ENV_SECTION = "isoenv env"
JUNIT_PROPERTY = "isoenv"
#: Env work done for a test: a list of ``[kind, verb, seconds]`` ("derived" for its env).
WORK_ATTRIBUTE = "isoenv_work"
KEPT_ATTRIBUTE = "isoenv_kept"  # the path a test's env was kept at
KEEP_ERROR_ATTRIBUTE = "isoenv_keep_error"

Work = Sequence[Any]  # [kind, verb, seconds, which]: JSON-able, for xdist


class SummaryReporter:
    """Collects the isoenv sections of test reports and prints them at the end."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        # (nodeid, line), in order, each once: a rerun test (pytest-rerunfailures) reports again
        self.lines: dict[tuple[str, str], None] = {}
        self.base_error: str | None = None
        self.work: list[Work] = []
        self.kept: dict[tuple[str, str], None] = {}  # (nodeid, path)
        self.keep_errors: dict[str, None] = {}

    def base_line(self, text: str) -> None:
        """A line about the base from elsewhere than a test's report (an xdist worker's end)."""
        self.lines.setdefault(("", text), None)

    def base_work(self, work: Iterable[Work]) -> None:
        """The base's work from an xdist worker's end (bases are counted once, not summed)."""
        self.work += [item for item in work if item[0] == "base"]

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
        self.work += getattr(report, WORK_ATTRIBUTE, None) or ()
        kept = getattr(report, KEPT_ATTRIBUTE, None)
        if kept:
            self.kept.setdefault((report.nodeid, str(kept)), None)
        problem = getattr(report, KEEP_ERROR_ATTRIBUTE, None)
        if problem:
            self.keep_errors.setdefault(str(problem), None)

    def _base_lines(self) -> list[str]:
        """A line per base (one per interpreter). Under xdist every worker reports each
        base; the one that built it tells the story."""
        bases: dict[str, str] = {}  # the base's path -> its line
        for _, text in self.lines:
            if text.startswith("base "):
                path = text.partition(": ")[2].partition(" (")[0]
                if path not in bases or bases[path].startswith("base reused"):
                    bases[path] = text
        return list(bases.values())

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        # ``verbose`` rather than Config.get_verbosity(), which pytest 7 does not have.
        verbosity = int(self.config.getoption("verbose") or 0)
        if self.base_error is not None:  # always: the tests that errored point here
            terminalreporter.write_line(f"isoenv: {self.base_error}")
        for problem in self.keep_errors:
            terminalreporter.write_line(f"isoenv: {problem}")
        if verbosity < -1:  # -qq: nothing else
            return
        for text in self._base_lines():
            terminalreporter.write_line(f"isoenv: {text}")
        counts = count_line(self.work)
        if counts:
            terminalreporter.write_line(f"isoenv: {counts}")
        for nodeid, path in self.kept:
            terminalreporter.write_line(f"isoenv: kept the env of {nodeid}: {path}")
        if self.kept:
            terminalreporter.write_line(
                "isoenv: in a kept env, run PATH/bin/python, or `source PATH/bin/activate` "
                "(bash, zsh; `deactivate` to leave); delete it with `rm -r PATH`"
            )
        if verbosity > 0:
            for nodeid, text in self.lines:
                if not text.startswith("base "):
                    terminalreporter.write_line(f"isoenv: {nodeid}: {text}")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def count_line(work: Iterable[Work]) -> str:
    """``1 base reused, 2 new layers (1.3s), 3 installs (0.4s), 200 derived envs``.

    Layers and installs are summed over every process; the base is one per session, however
    many workers report on it (one built it, the others waited for it and reused it).
    """
    bases: dict[str, dict[str, float]] = {}  # interpreter -> verb -> seconds
    layers: dict[str, list[float]] = {"built": [], "reused": []}
    installs: list[float] = []
    derived = 0
    for kind, verb, seconds, *which in work:
        if kind == "base":
            verbs = bases.setdefault(which[0] if which else "", {})
            verbs[verb] = max(verbs.get(verb, 0.0), float(seconds))
        elif kind == "layer" and verb in layers:
            layers[verb].append(float(seconds))
        elif kind == "install":
            installs.append(float(seconds))
        elif kind == "derived":
            derived += 1
    parts = []
    # Under xdist one worker built a base and the others reused it: it was built.
    told = [
        next(((v, d[v]) for v in ("built", "reused", "used") if v in d), ("", 0.0))
        for d in bases.values()
    ]
    built = [seconds for verb, seconds in told if verb == "built"]
    if built:
        parts.append(f"{_plural(len(built), 'base')} built ({sum(built):.1f}s)")
    for verb, text in (("reused", "reused"), ("used", "used read-only")):
        count = sum(1 for told_verb, _ in told if told_verb == verb)
        if count:
            parts.append(f"{_plural(count, 'base')} {text}")
    # Not "layer built": that is how the per-layer lines read.
    if layers["built"]:
        built = layers["built"]
        parts.append(f"{_plural(len(built), 'new layer')} ({sum(built):.1f}s)")
    if layers["reused"]:
        parts.append(_plural(len(layers["reused"]), "reused layer"))
    if installs:
        parts.append(f"{_plural(len(installs), 'install')} ({sum(installs):.1f}s)")
    if derived:
        parts.append(_plural(derived, "derived env"))
    return ", ".join(parts)


def env_section(env: DerivedEnv, fate: str) -> str:
    """What a failed test's env was: where, which python, what the base, layer and test added.

    ``fate`` says where the env is now (kept, or deleted).
    """
    interpreter = env.base.interpreter
    lines = [
        f"env: {fate}",
        f"python: {interpreter.implementation} {interpreter.version_text} "
        f"({interpreter.executable})",
    ]
    for shared in (env.base, env.layer):
        if shared is None:
            continue
        name = "base" if shared.kind == "base" else "layer"
        mine = " (your venv, read-only)" if shared.external else ""
        lines.append(f"{name}: {shared.path}{mine}")
        asked = ", ".join(shared.requirements) or "nothing"
        lines += _wrapped("requires", asked)
        held = ", ".join(f"{dist}=={version}" for dist, version in sorted(shared.packages.items()))
        lines += _wrapped("holds" if name == "base" else "adds", held or "nothing")
    added = env._added  # what install() added, by name and version
    if env.installed:
        lines.append("installed at run time: " + ", ".join(env.installed))
        lines += _wrapped("added", ", ".join(added) or "nothing new")
    return "\n".join(lines)


def _wrapped(label: str, text: str) -> list[str]:
    return textwrap.wrap(
        text,
        width=100,
        initial_indent=f"  {label}: ",
        subsequent_indent="    ",
        break_on_hyphens=False,
        break_long_words=False,
    )


def env_fate(env: DerivedEnv, kept: Path | None, keep: str, problem: str | None) -> str:
    """Where a failed test's env is, for its report section."""
    if kept is not None:
        return f"{kept} (kept: run its bin/python, or source its bin/activate)"
    if problem:
        return f"{env.path} ({problem})"
    if keep == "none":
        return f"{env.path} (deleted after the test; --isoenv-keep=failed keeps it)"
    return f"{env.path} (deleted after the test)"
