"""The test body inside its env (``inside=True``): the host's end of one child per test.

The host does not set the test up: a child process, started with the env's interpreter
(spawned, never forked), runs pytest on that one node id and sends back its reports, which
the host rebuilds with pytest's ``pytest_report_from_serializable`` and logs as its own, so
the terminal, ``-x``, junitxml and other report plugins see ordinary reports. The child of
the next ``inside`` test is started (python up, pytest imported) while the previous test
runs, and each child serves exactly one test. A crash, a signal or a timeout of the child
fails its test with the exit status and the tail of its output; the session goes on.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import pytest

from . import _inside_child
from ._discovery import PARAMETER, spec_id
from ._errors import IsoenvError
from ._settings import KEEP_ALL, KEEP_NONE, add_options
from ._summary import (
    ENV_SECTION,
    JUNIT_PROPERTY,
    KEEP_ERROR_ATTRIBUTE,
    KEPT_ATTRIBUTE,
    REPORT_SECTION,
    WORK_ATTRIBUTE,
    Work,
    env_fate,
    env_section,
)
from ._swap import remove_tree

if TYPE_CHECKING:
    from ._derived import DerivedEnv
    from ._interpreter import Interpreter
    from ._session import IsoenvSession

CHILD_SCRIPT = "_pytest_isoenv_inside.py"
_TAIL = 4000  # characters of the child's output shown when it dies
_DUMP_GRACE = 2.0  # seconds a timed-out child may take to dump its stacks
_EXIT_GRACE = 30.0  # seconds a child may take to exit after its last report (atexit work)
_AHEAD = 2  # children started ahead (one under xdist, whose next tests are not known)
# Host option values the child must not take: what selects or schedules tests, what writes
# the host's files (reports, caches), debuggers, and what is passed on its command line.
_NOT_FORWARDED = frozenset(
    {
        "file_or_dir",
        "rootdir",
        "inifilename",
        "override_ini",  # on the child's command line
        "plugins",
        "keyword",
        "markexpr",
        "deselect",
        "ignore",
        "ignore_glob",
        "basetemp",
        "capture",
        "pythonwarnings",
        "importmode",
        "noconftest",
        "confcutdir",
        "strict_config",
        "disable_plugin_autoload",
        "lf",
        "failedfirst",
        "last_failed_no_failures",
        "newfirst",
        "cacheclear",
        "cacheshow",
        "stepwise",
        "stepwise_skip",
        "exitfirst",
        "maxfail",
        "collectonly",
        "usepdb",
        "usepdb_cls",
        "trace",
        "help",
        "version",
        "debug",
        "traceconfig",
        "showfixtures",
        "show_fixtures_per_test",
        "markers",
        "setuponly",
        "setupplan",
        "setupshow",
        "durations",
        "durations_min",
        "xmlpath",
        "junitprefix",
        "resultlog",
        "report_log",
        "pastebin",
        "numprocesses",
        "maxprocesses",
        "dist",
        "tx",
        "rsyncdir",
        "rsyncignore",
        "looponfail",
        "distload",
        "maxschedchunk",
        "maxworkerrestart",
        "testrunuid",
        "timeout",
        "timeout_method",
        "timeout_disable_debugger_detection",
        "session_timeout",
    }
)


class _IniNames:
    """Records the ini keys ``add_options`` registers (the child registers them too)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def getgroup(self, *args: Any, **kwargs: Any) -> _IniNames:
        return self

    def addoption(self, *args: Any, **kwargs: Any) -> None:
        pass

    def addini(self, name: str, *args: Any, **kwargs: Any) -> None:
        self.names.append(name)


def _jsonable(value: object) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


@dataclass
class _Child:
    """A started child waiting for its test."""

    process: subprocess.Popen[bytes]
    commands: int  # the host's end of the command pipe
    replies: int  # the host's end of the report pipe
    log: IO[bytes]  # the child's stdout and stderr (unless -s)

    def kill(self) -> None:
        """Kill the child and whatever it started (its own process group)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        self.process.wait()

    def stop_timed_out(self) -> None:
        """Kill a child that ran out of time, after it showed where it was: pytest's
        faulthandler in it dumps every thread's stack on SIGABRT (to its log)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(self.process.pid, signal.SIGABRT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=_DUMP_GRACE)
        self.kill()

    def close(self) -> None:
        for fd in (self.commands, self.replies):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.log.close()

    def tail(self) -> str:
        """The child's output, its start and its end when long (a fault handler's
        traceback starts with the innermost frame; an interpreter's last words end it)."""
        with contextlib.suppress(OSError, ValueError):
            self.log.seek(0)
            text = self.log.read().decode("utf-8", "replace").strip()
            if len(text) > _TAIL:
                half = _TAIL // 2
                text = f"{text[:half]}\n[...]\n{text[-half:]}"
            return text
        return ""


@dataclass
class _Prepared:
    """What a test inside needs before it starts: its env and its child, or why not."""

    env: DerivedEnv | None = None
    child: _Child | None = None
    error: str | None = None
    skipped: str | None = None  # the reason
    sections: list[tuple[str, str]] = field(default_factory=list)
    work: list[Work] = field(default_factory=list)


@dataclass
class _Outcome:
    """What a child said and how it ended."""

    reports: list[pytest.TestReport] = field(default_factory=list)
    problem: str | None = None  # why the test did not complete in the child
    finished: bool = False  # the test's last report came: the child is only exiting now
    over: bool = False  # the child's protocol of the test ended (its warnings are sent)
    version: str | None = None


class InsideRunner:
    """Runs the ``inside`` tests of one pytest process (controller or xdist worker)."""

    def __init__(
        self,
        config: pytest.Config,
        session: Callable[[], IsoenvSession],
        derive: Callable[[pytest.Item], DerivedEnv],
        is_inside: Callable[[pytest.Item], bool],
    ) -> None:
        self.config = config
        self._session = session
        self._derive = derive
        self._is_inside = is_inside
        self._ahead: dict[str, _Prepared] = {}
        self._exiting: list[_Child] = []  # children whose test is over, exiting meanwhile
        self._order: dict[str, int] = {}
        self._sites: dict[Interpreter, list[str]] = {}
        self._script: Path | None = None
        self._static: dict[str, Any] | None = None
        self._count = 0
        self._warnings: list[dict[str, Any]] = []  # what the running test's child warned
        # (reason, return code, pytest.exit rather than KeyboardInterrupt): the test stopped
        # the session in its child
        self._interrupted: tuple[str, int | None, bool] | None = None

    # -- the protocol --------------------------------------------------------------------

    def protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> bool:
        """Run ``item`` in a child and log its reports as pytest would; always True."""
        ihook = item.ihook
        _cancel_host_timeout(item)
        reruns, delay = _reruns(item)
        for attempt in range(reruns + 1):
            ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
            reports = self._run(item, nextitem)
            if self._interrupted is not None:
                self._interrupt(item, reports)
            item.execution_count = attempt + 1  # type: ignore[attr-defined]  # rerunfailures'
            if attempt == reruns or not _rerun_wanted(item, reports):
                break
            # pytest-rerunfailures' way: the failed phase is logged as a rerun, and the test
            # runs again (in a new child, in a new env).
            for report in reports:
                report.rerun = attempt  # type: ignore[attr-defined]
                failed = report.failed
                if failed:
                    report.outcome = "rerun"  # type: ignore[assignment]
                ihook.pytest_runtest_logreport(report=report)
                if failed:
                    break
            self._warnings.clear()
            ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
            time.sleep(delay)
        teardown = reports.pop()
        for report in reports:
            ihook.pytest_runtest_logreport(report=report)
        for warning in self._warnings:
            ihook.pytest_warning_recorded.call_historic(
                kwargs={
                    "warning_message": _warning(warning),
                    "when": "runtest",
                    "nodeid": item.nodeid,
                    "location": None,
                }
            )
        self._warnings.clear()
        ihook.pytest_runtest_logreport(report=self._teardown_host(item, nextitem, teardown))
        ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        if nextitem is None or (
            not self._is_inside(nextitem) and self._session().coverage is not None
        ):
            # Children write their coverage data as they exit: done before the test loop
            # ends and pytest-cov combines (with --cov, also before an ordinary test, which
            # may be the last of an xdist worker's).
            self._reap(wait=_EXIT_GRACE)
        return True

    def _interrupt(self, item: pytest.Item, reports: list[pytest.TestReport]) -> None:
        """The test stopped the session (``pytest.exit()``, ``KeyboardInterrupt``): so it is
        in the host, after what the child reported."""
        assert self._interrupted is not None
        reason, returncode, exit_ = self._interrupted
        self._interrupted = None
        for report in reports:
            item.ihook.pytest_runtest_logreport(report=report)
        item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        if exit_:
            pytest.exit(reason, returncode=returncode)
        raise KeyboardInterrupt(reason)

    def _run(self, item: pytest.Item, nextitem: pytest.Item | None) -> list[pytest.TestReport]:
        prepared = self._ahead.pop(item.nodeid, None) or self._prepare(item)
        if prepared.skipped is not None:
            path, lineno, _ = item.location
            reason = (str(item.config.rootpath / path), (lineno or 0) + 1, prepared.skipped)
            return [_report(item, "setup", "skipped", reason), _passed(item)]
        if prepared.error is not None or prepared.env is None or prepared.child is None:
            reports = [_failed(item, "setup", prepared.error or "isoenv: no env"), _passed(item)]
            self._annotate(reports[0], prepared)
            return reports
        env, child = prepared.env, prepared.child
        session = self._session()
        session.watch([env.base, env.layer])
        deadline = _timeout(item)
        try:
            self._send(child, item)
            self._reap()
            for upcoming in self._upcoming(item, nextitem):
                # Started now, while this test runs in its child.
                self._ahead[upcoming.nodeid] = self._prepare(upcoming)
            # The timeout runs from here: building the next tests' envs (a layer can take
            # seconds) is not this test's time, and its child had that time as a bonus.
            started = time.monotonic()
            outcome = self._wait(child, started + deadline if deadline else None)
        except BaseException:
            child.kill()  # Ctrl-C, or the host failing: no child outlives its test
            child.close()
            env.remove()
            raise
        if outcome.problem == "timeout":
            limit = f"Timeout (>{deadline:g}s)" if deadline else "Timeout"
            outcome.problem = (
                f"{limit}: the child process running the test (pid {child.process.pid}) was "
                "killed with its process group"
            )
        kept = False
        try:
            reports = self._complete(item, outcome, child, env)
            if reports:  # none: the session was stopped in the test's set-up
                self._annotate(reports[0], prepared)
                self._check_shared(session, env, reports)
                kept = self._keep_or_describe(item, session, env, reports)
        finally:
            if outcome.finished:
                self._exiting.append(child)  # its interpreter's exit is off the critical path
            else:
                child.close()
            if not kept:
                env.remove()
        return reports

    def _keep_or_describe(
        self,
        item: pytest.Item,
        session: IsoenvSession,
        env: DerivedEnv,
        reports: list[pytest.TestReport],
    ) -> bool:
        """Keep the env (``--isoenv-keep``) and describe it in the first failed report, as
        for a test run in the host; True when it was kept."""
        from ._keep import kept_root, reserve  # noqa: PLC0415

        keep = session.settings.keep
        failed = next((report for report in reports if report.failed), None)
        kept: Path | None = None
        problem = None
        if keep == KEEP_ALL or (keep != KEEP_NONE and failed is not None):
            try:
                kept = reserve(kept_root(session.settings.cache_dir), item.nodeid)
                session.keep(env, kept, item.nodeid)
            except (IsoenvError, OSError) as error:
                problem = f"could not keep the env of {item.nodeid}: {error}"
                if kept is not None:
                    remove_tree(kept)  # half kept is not kept
                kept = None
            if kept is not None:
                setattr(reports[-1], KEPT_ATTRIBUTE, str(kept))
            else:
                setattr(reports[-1], KEEP_ERROR_ATTRIBUTE, problem)
        if failed is not None:
            text = env_section(env, env_fate(env, kept, keep, problem))
            failed.sections.append((ENV_SECTION, text))
            reports[-1].user_properties.append((JUNIT_PROPERTY, text))  # junitxml's
        return kept is not None

    def _upcoming(self, item: pytest.Item, nextitem: pytest.Item | None) -> list[pytest.Item]:
        """The next ``inside`` tests to start children for, not started yet."""
        items: list[pytest.Item] = [nextitem] if nextitem is not None else []
        if getattr(self.config, "workerinput", None) is None and nextitem is not None:
            session_items: list[pytest.Item] = getattr(item.session, "items", [])
            if not self._order:
                self._order = {it.nodeid: n for n, it in enumerate(session_items)}
            start = self._order.get(nextitem.nodeid)
            if start is not None and session_items[start] is nextitem:
                items = session_items[start : start + _AHEAD]
        return [it for it in items if self._is_inside(it) and it.nodeid not in self._ahead]

    def _reap(self, wait: float = 0.0) -> None:
        """Let go of the children that have exited (all of them, after ``wait`` at most)."""
        deadline = time.monotonic() + wait
        for child in list(self._exiting):
            try:
                child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                if not wait:
                    continue
                child.kill()
            child.close()
            self._exiting.remove(child)

    def _teardown_host(
        self, item: pytest.Item, nextitem: pytest.Item | None, teardown: pytest.TestReport
    ) -> pytest.TestReport:
        """Tear down, in the host, the scopes ``nextitem`` does not share (as pytest does).

        The host never set ``item`` up, but the session's scopes (a module, a class) of the
        ordinary tests before it may still be on pytest's stack of set-up nodes, and must be
        torn down now, not when the next ordinary test finds them there. That stack is
        private (``session._setupstate``): guarded, so that a pytest without it only
        tears them down later (at the next ordinary test or the end).
        """
        state = getattr(item.session, "_setupstate", None)
        teardown_exact = getattr(state, "teardown_exact", None)
        if teardown_exact is None:
            return teardown
        call = pytest.CallInfo.from_call(lambda: teardown_exact(nextitem), when="teardown")
        if call.excinfo is None:
            return teardown
        report = _failed(item, "teardown", "")
        report.longrepr = item.repr_failure(call.excinfo)
        report.sections = list(teardown.sections)
        return report

    # -- preparing a child -----------------------------------------------------------------

    def _prepare(self, item: pytest.Item) -> _Prepared:
        """The env of ``item`` and a child started in it (or the error that prevents them)."""
        prepared = _Prepared()
        session = self._session()
        try:
            prepared.env = self._derive(item)
            prepared.work.append(["derived", "", 0.0])
            sites = self._pytest_sites(session, prepared.env.base.interpreter)
            prepared.child = self._spawn(session, prepared.env, sites)
        except pytest.skip.Exception as skip:  # its interpreter is not installed
            prepared.skipped = skip.msg
        except (IsoenvError, OSError, pytest.fail.Exception) as error:
            prepared.error = (
                error.msg if isinstance(error, pytest.fail.Exception) else (f"isoenv: {error}")
            )
            if prepared.env is not None:
                prepared.env.remove()
                prepared.env = None
        if session.events:
            text = "\n".join(event.text for event in session.events)
            prepared.sections.append((f"Captured {REPORT_SECTION} setup", text))
            prepared.work += [e.work() for e in session.events]
            session.events.clear()
        return prepared

    def _pytest_sites(self, session: IsoenvSession, interpreter: Interpreter) -> list[str]:
        found = self._sites.get(interpreter)
        if found is None:
            from ._inside_pytest import pytest_entries  # noqa: PLC0415

            found = [str(entry.site) for entry in pytest_entries(session.installer, interpreter)]
            self._sites[interpreter] = found
        return found

    def _child_script(self, session: IsoenvSession) -> Path:
        """The child's code, alone in a private directory (it is the child's ``sys.path[0]``)."""
        if self._script is None:
            directory = session.session_dir / "inside" / session.worker_id
            directory.mkdir(parents=True, exist_ok=True)
            script = directory / CHILD_SCRIPT
            script.write_text(Path(_inside_child.__file__).read_text("utf-8"), "utf-8")
            self._script = script
        return self._script

    def _spawn(self, session: IsoenvSession, env: DerivedEnv, sites: list[str]) -> _Child:
        script = self._child_script(session)
        commands_read, commands = os.pipe()
        replies, replies_write = os.pipe()
        capture_none = self.config.getoption("capture", "fd") == "no"
        log = tempfile.TemporaryFile(dir=script.parent)  # noqa: SIM115 - the child's life
        environ = env.env
        for name in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_CURRENT_TEST"):
            environ.pop(name, None)  # the host's arguments are sent; the child's are its own
        output = None if capture_none else log
        try:
            process = subprocess.Popen(
                [
                    str(env.python),
                    str(script),
                    str(commands_read),
                    str(replies_write),
                    json.dumps(sites),
                ],
                pass_fds=(commands_read, replies_write),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                env=environ,
                cwd=self.config.invocation_params.dir,
                start_new_session=True,  # its own process group: killed as one
            )
        except BaseException:
            for fd in (commands, replies):
                os.close(fd)
            log.close()
            raise
        finally:
            os.close(commands_read)
            os.close(replies_write)
        child = _Child(process, commands, replies, log)
        message = dict(self._static_message())
        basetemp = self._basetemp()
        if basetemp is not None:  # pytest empties a given basetemp: one of its own for each
            self._count += 1
            message["basetemp"] = str(basetemp / f"inside-{os.getpid()}-{self._count}")
        _write(child.commands, message)  # read at once: it configures pytest ahead
        return child

    def _basetemp(self) -> Path | None:
        """The host's basetemp, made now: children's ``tmp_path`` go inside it.

        Else each child would make a numbered ``pytest-N`` of its own, and pytest, which
        keeps the newest three, would delete the user's earlier sessions' (and the failed
        tests' own) directories. pytest's factory of the session is private
        (``config._tmp_path_factory``): guarded, with ``--basetemp`` as the fallback.
        """
        getbasetemp = getattr(getattr(self.config, "_tmp_path_factory", None), "getbasetemp", None)
        if getbasetemp is not None:
            with contextlib.suppress(OSError):
                return Path(getbasetemp())
        given = self.config.getoption("basetemp", None)
        if not given:
            return None
        Path(given).mkdir(parents=True, exist_ok=True)
        return Path(given)

    # -- talking to a child ----------------------------------------------------------------

    def _static_message(self) -> dict[str, Any]:
        if self._static is None:
            config = self.config
            option = vars(config.option)
            names = _IniNames()
            add_options(names)  # type: ignore[arg-type]
            self._static = {
                "args": [str(Path(config.invocation_params.dir, a)) for a in config.args],
                "rootdir": str(config.rootpath),
                "inifile": str(config.inipath) if config.inipath else None,
                "capture": option.get("capture") or "fd",
                "importmode": option.get("importmode"),
                "noconftest": bool(option.get("noconftest")),
                "warnings": list(option.get("pythonwarnings") or []),
                "plugins": [str(p) for p in option.get("plugins") or []],
                "override_ini": [str(o) for o in option.get("override_ini") or []],
                "markers": [str(line) for line in config.getini("markers")],
                "ini": names.names,
                "options": {
                    key: value
                    for key, value in option.items()
                    if key not in _NOT_FORWARDED
                    and not key.startswith("isoenv")
                    and _jsonable(value)
                },
            }
        return self._static

    def _send(self, child: _Child, item: pytest.Item) -> None:
        """Name the child's test: it collects and runs it at once."""
        path, _, rest = item.nodeid.partition("::")
        target = str(self.config.rootpath / path) + (f"::{rest}" if rest else "")
        message: dict[str, Any] = {"target": target}
        callspec = getattr(item, "callspec", None)
        spec = None if callspec is None else callspec.params.get(PARAMETER)
        if spec is not None:  # the child parametrizes the test the same way: one interpreter
            message["python"] = [PARAMETER, spec, spec_id(spec)]
        _write(child.commands, message)

    def _wait(self, child: _Child, deadline: float | None) -> _Outcome:
        """Read the child's replies until it is done, dies or passes ``deadline``."""
        outcome = _Outcome()
        for message in _messages(child.replies, deadline):
            if message is None:
                child.stop_timed_out()
                outcome.problem = "timeout"
                return outcome
            if self._read(message, outcome):
                break
            if outcome.over and _complete_set(outcome.reports) and outcome.problem is None:
                outcome.finished = True
                return outcome
        try:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            child.process.wait(timeout=_EXIT_GRACE if remaining is None else remaining)
        except subprocess.TimeoutExpired:
            if outcome.problem is None and not _complete_set(outcome.reports):
                outcome.problem = "timeout"
                child.stop_timed_out()
            else:
                child.kill()
        if outcome.problem is None and not _complete_set(outcome.reports):
            outcome.problem = _exit_status(child.process.returncode)
        return outcome

    def _read(self, message: dict[str, Any], outcome: _Outcome) -> bool:
        """Take one reply into ``outcome``; True for the last one."""
        if "report" in message:
            data = message["report"]
            for key in ("location", "longrepr"):  # tuples, which JSON made lists
                if isinstance(data.get(key), list):
                    data[key] = tuple(data[key])
            report = self.config.hook.pytest_report_from_serializable(config=self.config, data=data)
            if isinstance(report, pytest.TestReport):
                outcome.reports.append(report)
        elif "over" in message:
            outcome.over = True
        elif "interrupted" in message:
            stop = message["interrupted"]
            self._interrupted = (str(stop["reason"]), stop.get("returncode"), bool(stop["exit"]))
        elif "warning" in message:
            self._warnings.append(message["warning"])
        elif "started" in message:
            outcome.version = str(message["started"])
        elif "fatal" in message or "collect_error" in message:
            outcome.problem = str(message.get("fatal") or message.get("collect_error"))
        elif "done" in message:
            if not outcome.reports and outcome.problem is None:
                outcome.problem = (
                    f"pytest {outcome.version or ''} in the env ran no test for this node "
                    f"id (exit code {message['done']})"
                )
            return True
        return False

    def _complete(
        self, item: pytest.Item, outcome: _Outcome, child: _Child, env: DerivedEnv
    ) -> list[pytest.TestReport]:
        """The child's reports, completed with a failure where it stopped short."""
        reports = list(outcome.reports)
        if self._interrupted is not None or (_complete_set(reports) and outcome.problem is None):
            return reports
        message = f"isoenv: {outcome.problem} ({item.nodeid} inside, python {env.python})"
        tail = child.tail()
        if tail:
            what = "stdout and stderr"
            if (outcome.problem or "").startswith("Timeout"):
                what += "; the stacks it dumped when it was stopped"
            message += f"\n--- its output ({what}) ---\n{tail}"
        whens = [report.when for report in reports]
        if "setup" not in whens:
            reports.append(_failed(item, "setup", message))
        elif "call" not in whens and reports[0].passed:
            reports.append(_failed(item, "call", message))
        elif "teardown" not in whens:
            reports.append(_failed(item, "teardown", message))
        else:  # complete, but something was said besides (a collection error)
            reports[-1] = _failed(item, "teardown", message)
        if reports[-1].when != "teardown":
            reports.append(_passed(item))
        return reports

    def _annotate(self, report: pytest.TestReport, prepared: _Prepared) -> None:
        report.sections = [*prepared.sections, *report.sections]
        if prepared.work:
            setattr(report, WORK_ATTRIBUTE, list(prepared.work))

    def _check_shared(
        self, session: IsoenvSession, env: DerivedEnv, reports: list[pytest.TestReport]
    ) -> None:
        """The guard, as after an ordinary test: a damaged shared env fails the test."""
        try:
            session.check_shared([env.base, env.layer])
        except (IsoenvError, OSError) as error:  # damaged; or rebuilding it failed
            problem = f"isoenv: {error}"
        else:
            return
        target = next((r for r in reports if r.when == "call"), reports[-1])
        if target.passed:
            target.outcome = "failed"
            target.longrepr = problem
        else:
            target.sections.append((f"Captured {REPORT_SECTION} {target.when}", problem))

    def close(self) -> None:
        """Stop the children started ahead that no test took (an interrupted session), and
        wait for those whose test is over."""
        self._reap(wait=_EXIT_GRACE)
        for prepared in self._ahead.values():
            if prepared.child is not None:
                prepared.child.kill()
                prepared.child.close()
            if prepared.env is not None:
                prepared.env.remove()
        self._ahead.clear()


def _write(fd: int, message: dict[str, Any]) -> None:
    data = (json.dumps(message) + "\n").encode("utf-8")
    try:
        while data:
            data = data[os.write(fd, data) :]
    except BrokenPipeError:
        pass  # the child died first: told when its replies end


def _messages(fd: int, deadline: float | None) -> Iterator[dict[str, Any] | None]:
    """The JSON lines read from ``fd`` until its end; None once ``deadline`` has passed."""
    buffer = b""
    while True:
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:  # what the child wrote in time is read before this
            if timeout == 0.0:
                yield None
                return
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            return
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            with contextlib.suppress(ValueError):
                yield json.loads(line)


def _complete_set(reports: list[pytest.TestReport]) -> bool:
    return any(report.when == "teardown" for report in reports)


def _exit_status(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"the child process running the test was killed by {name} (exit status {code})"
    return f"the child process running the test exited with status {code} before it finished"


def _report(
    item: pytest.Item, when: str, outcome: str = "passed", longrepr: object = None
) -> pytest.TestReport:
    """A report the host makes itself (not through ``pytest_runtest_makereport``, whose
    other implementations expect the state of a test the host ran)."""
    now = time.time()
    return pytest.TestReport(
        item.nodeid,
        item.location,
        dict.fromkeys(item.keywords, 1),
        outcome,  # type: ignore[arg-type]
        longrepr,  # type: ignore[arg-type]
        when,  # type: ignore[arg-type]
        start=now,
        stop=now,
        user_properties=list(item.user_properties),
    )


def _failed(item: pytest.Item, when: str, message: str) -> pytest.TestReport:
    return _report(item, when, "failed", message)


def _passed(item: pytest.Item) -> pytest.TestReport:
    return _report(item, "teardown")


_CATEGORIES: dict[tuple[str, str], type[Warning]] = {}


def _warning(data: dict[str, Any]) -> warnings.WarningMessage:
    """A warning the child recorded, for the host's warnings summary.

    Its category is the host's class when the host has that module loaded (builtins,
    pytest's), else a look-alike of the same name: a category from the env's packages is not
    imported into the host for this.
    """
    module, name = str(data.get("module", "builtins")), str(data.get("category", "UserWarning"))
    text = str(data.get("message", ""))
    found = getattr(sys.modules.get(module), name, None)
    message = None
    if isinstance(found, type) and issubclass(found, Warning):
        with contextlib.suppress(Exception):  # a category whose constructor wants more
            message = found(text)
    if message is None:
        found = _CATEGORIES.get((module, name))
        if found is None:
            found = type(name, (UserWarning,), {"__module__": module})
            _CATEGORIES[(module, name)] = found
        message = found(text)
    return warnings.WarningMessage(
        message, type(message), str(data.get("filename", "")), int(data.get("lineno") or 0)
    )


def _reruns(item: pytest.Item) -> tuple[int, float]:
    """How often pytest-rerunfailures would run ``item`` again, and the delay between: its
    own functions read its marker and options (its protocol does not run for this test)."""
    module = sys.modules.get("pytest_rerunfailures")
    if module is None or not item.config.pluginmanager.hasplugin("rerunfailures"):
        return 0, 0.0
    try:
        return int(module.get_reruns_count(item) or 0), float(module.get_reruns_delay(item) or 0)
    except Exception:  # another version's API: no reruns rather than a crash
        return 0, 0.0


def _rerun_wanted(item: pytest.Item, reports: list[pytest.TestReport]) -> bool:
    """A failed attempt pytest-rerunfailures would rerun: its ``--only-rerun`` and
    ``--rerun-except`` patterns (and the flaky marker's) are matched against the failure's
    text, where it matches the exception's type and message."""
    failed = [report for report in reports if report.failed]
    if not failed:
        return False
    text = "\n".join(report.longreprtext for report in failed)
    marker = item.get_closest_marker("flaky")
    only = list(item.config.getoption("only_rerun", None) or [])
    excepted = list(item.config.getoption("rerun_except", None) or [])
    if marker is not None:
        only += _patterns(marker.kwargs.get("only_rerun"))
        excepted += _patterns(marker.kwargs.get("rerun_except"))
    if only and not any(re.search(pattern, text) for pattern in only):
        return False
    return not any(re.search(pattern, text) for pattern in excepted)


def _patterns(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [str(pattern) for pattern in value] if isinstance(value, (list, tuple)) else []


def _cancel_host_timeout(item: pytest.Item) -> None:
    """pytest-timeout armed its timer (SIGALRM or a thread) for this test: the host enforces
    the timeout on the child instead, so it never fires in the host while it waits."""
    cancel = getattr(item.config.hook, "pytest_timeout_cancel_timer", None)
    if cancel is not None:
        cancel(item=item)


def _timeout(item: pytest.Item) -> float | None:
    """The test's timeout as pytest-timeout reads it: marker, then option, variable, ini."""
    value: object = None
    marker = item.get_closest_marker("timeout")
    if marker is not None:
        value = marker.args[0] if marker.args else marker.kwargs.get("timeout")
    else:
        value = getattr(item.config.option, "timeout", None)
        if value is None:
            value = os.environ.get("PYTEST_TIMEOUT")
        if value is None:
            with contextlib.suppress(ValueError):
                value = item.config.getini("timeout") or None
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return seconds if seconds > 0 else None
