"""The pytest plugin: options, the ``isoenv`` marker, the fixtures and the report lines.

A session that uses no env pays for nothing but this module: settings, the session
directory, uv, ``packaging`` and ``filelock`` are all reached at the first test that needs an
env (or just before the test loop, when a collected test is known to need one).
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ._session_dir import SessionDir, plan
from ._settings import (
    CACHE,
    KEEP_ALL,
    KEEP_NONE,
    SETTINGS_KEY,
    add_options,
    default_pythons,
    keep_mode,
    python_missing,
)
from ._summary import (
    BASE_ERROR_ATTRIBUTE,
    BASE_ERROR_SHORT,
    ENV_SECTION,
    JUNIT_PROPERTY,
    KEEP_ERROR_ATTRIBUTE,
    KEPT_ATTRIBUTE,
    REPORT_SECTION,
    WORK_ATTRIBUTE,
    SummaryReporter,
    Work,
    env_fate,
    env_section,
)
from ._xdist import (
    SESSION_DIR_KEY,
    STARTED_KEY,
    XdistGlue,
    send_base_lines,
    worker_id,
    worker_input,
)

if TYPE_CHECKING:
    from ._coverage import CoverageGlue
    from ._derived import DerivedEnv
    from ._inside import InsideRunner
    from ._interpreter import Interpreter
    from ._requirements import RequirementLine
    from ._session import IsoenvSession
    from ._settings import Settings
    from ._shared_env import SharedEnv

MARKER = "isoenv"
MARKER_HELP = (
    "isoenv(requires=[...], python=SPEC|[SPEC, ...], inside=False): run the test in its own "
    "derived env with these extra requirements (PEP 508 strings, local paths, '-e PATH', "
    "'-r FILE'; markers on the module, class, function and pytest.param combine), on the "
    "interpreter SPEC names ('3.12', 'cpython3.11', 'pypy3.10', a path; a list runs the test "
    "once per interpreter; the closest marker naming one wins). inside=True runs the test "
    "function itself in the env's interpreter, in a child process."
)
_MARKER_KEYWORDS = frozenset({"requires", "python", "inside"})
# The fixtures that need the base: a test using either (directly or through its fixtures)
# has the base built before the test loop starts, outside any test's timeout.
_ENV_FIXTURES = ("isoenv", "isoenv_base")
_PYTEST_COV = "_cov"  # pytest-cov's plugin, registered with --cov only


class _Run:
    """This process's pytest-isoenv state; everything costly is made at first need."""

    def __init__(
        self, config: pytest.Config, session_dir: SessionDir, owner: bool, started: float
    ) -> None:
        self.config = config
        self.session_dir = session_dir
        self.owner = owner  # the controller (or the only process) deletes the session dir
        self.started = started  # when the controller started: --isoenv-rebuild's line
        self._settings: Settings | None = None
        self._session: IsoenvSession | None = None
        self.base_error_told = False
        self.base_lines: list[str] = []  # what this process has to say about the base
        self.base_work: list[Work] = []
        self.coverage: CoverageGlue | None = None  # pytest-cov measures this process

    def prepare_base(self, items: Sequence[pytest.Item]) -> None:
        """Build or find the bases of ``items`` now (one per interpreter), then their layers,
        outside any test's timeout; a failure is kept by the session for the tests."""
        from ._errors import IsoenvError  # noqa: PLC0415

        session = self.session()
        wanted = {
            (python_spec(item, session.settings), item.stash.get(_LINES_KEY, ())): None
            for item in items
            if item.get_closest_marker("skip") is None  # a static skip needs no env
        }
        interpreters: dict[str | None, Interpreter | None] = {}
        for spec, _ in wanted:
            if spec in interpreters:
                continue
            interpreters[spec] = None
            with contextlib.suppress(IsoenvError, OSError):  # told by their tests
                interpreters[spec] = None if spec is None else session.find_interpreter(spec)
                if spec is None or interpreters[spec] is not None:
                    session.base(interpreters[spec])
        bases = [event for event in session.events if event.kind == "base"]
        self.base_lines += [event.text for event in bases]
        self.base_work += [event.work() for event in bases]
        layers = [(spec, lines) for spec, lines in wanted if lines]
        if worker_id(self.config) not in ("main", "gw0"):
            # Other xdist workers take the layers in another order: they build different
            # ones at the same time, then reuse each other's.
            shift = sum(map(ord, worker_id(self.config))) % len(layers) if layers else 0
            layers = layers[shift:] + layers[:shift]
        for spec, lines in layers:
            if spec is None or interpreters.get(spec) is not None:
                with contextlib.suppress(IsoenvError, OSError):  # told by their tests
                    session.layer(lines, interpreters.get(spec))

    def settings(self) -> Settings:
        """The resolved settings; ``pytest.UsageError`` on a static mistake."""
        if self._settings is None:
            from ._settings import resolve  # noqa: PLC0415 - parsing imports packaging

            self._settings = resolve(self.config)
            self.config.stash[SETTINGS_KEY] = self._settings
        return self._settings

    def session(self) -> IsoenvSession:
        """The session's env builder, with its session directory made (or joined)."""
        if self._session is None:
            from ._session import IsoenvSession  # noqa: PLC0415 - the heavy part

            settings = self.settings()
            path = self.session_dir.ensure()
            self._session = IsoenvSession(
                settings,
                path,
                worker_id(self.config),
                stale_before=self.started if settings.rebuild else None,
                coverage=self.coverage.coverage if self.coverage is not None else None,
            )
        return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
        if self.owner:
            if self._settings is not None:
                from ._session import remove_session_files  # noqa: PLC0415

                remove_session_files(self._settings, self.session_dir.path)
            self.session_dir.remove()


_RUN_KEY = pytest.StashKey[_Run]()


class _CacheUpkeep:
    """The controller's end of a cache-mode session: the daily prune, then a summary line."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.line: str | None = None

    @pytest.hookimpl(trylast=True)  # after xdist's: its workers are gone
    def pytest_sessionfinish(self) -> None:
        run = self.config.stash.get(_RUN_KEY, None)
        settings = run._settings if run is not None else None  # None: no env was used
        if settings is None:
            return
        if settings.base == CACHE:
            from ._cache_upkeep import end_of_session  # noqa: PLC0415

            self.line = end_of_session(settings.cache_dir, settings.prune_after)
        elif settings.prune_after > 0:
            # Session bases store their distributions in the cache too: prune it, silently.
            from ._cache_admin import NotACache, cache_root  # noqa: PLC0415
            from ._cache_upkeep import daily_prune  # noqa: PLC0415

            with contextlib.suppress(NotACache, OSError):
                root = cache_root(settings.cache_dir)
                if root is not None:
                    daily_prune(root, settings.prune_after)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        quiet_quiet = int(self.config.getoption("verbose") or 0) < -1  # -qq: errors only
        if self.line is not None and not quiet_quiet:
            terminalreporter.write_line(f"isoenv: {self.line}")


_LINES_KEY = pytest.StashKey["tuple[RequirementLine, ...]"]()
_INSIDE_KEY = pytest.StashKey[bool]()
_INSIDE_RUNNER_KEY = pytest.StashKey["InsideRunner"]()
_ENV_KEY = pytest.StashKey["DerivedEnv"]()
_BASE_ERROR_KEY = pytest.StashKey[str]()
# The test's env from its setup to its last report; once torn down, it waits there (parked)
# for the test's outcome, which decides whether it is kept (--isoenv-keep) or deleted.
_TEST_ENV_KEY = pytest.StashKey["DerivedEnv"]()
_PARKED_KEY = pytest.StashKey["DerivedEnv"]()
_WORK_KEY = pytest.StashKey["list[Work]"]()


@dataclass
class _Outcome:
    """What the reports of one test with an env have said so far."""

    failed: bool = False
    kept: Path | None = None  # where its env is (to be) kept
    problem: str | None = None  # why it could not be kept


_OUTCOME_KEY = pytest.StashKey[_Outcome]()


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    if worker_input(config) is None:  # registered first: its line comes after the base's
        config.pluginmanager.register(_CacheUpkeep(config), "isoenv-cache")
    reporter = SummaryReporter(config)
    config.pluginmanager.register(reporter, "isoenv-summary")
    found = worker_input(config)
    if found is not None and SESSION_DIR_KEY in found:
        session_dir = SessionDir(Path(found[SESSION_DIR_KEY]))
        run = _Run(config, session_dir, owner=False, started=float(found[STARTED_KEY]))
    else:
        # Decided now, made by whichever process first needs it (this one or a worker).
        run = _Run(config, SessionDir(plan()), owner=True, started=time.time())
        # Always: xdist may be loaded after us (-p xdist.plugin), and the hook is optional.
        glue = XdistGlue(
            str(run.session_dir.path), run.started, reporter.base_line, reporter.base_work
        )
        config.pluginmanager.register(glue, "isoenv-xdist")
    config.stash[_RUN_KEY] = run
    if config.pluginmanager.has_plugin(_PYTEST_COV):
        from ._coverage import CoverageGlue  # noqa: PLC0415 - only with --cov

        run.coverage = CoverageGlue(Path(config.rootpath), worker_id(config))
        config.pluginmanager.register(run.coverage, "isoenv-coverage")


def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    keep_mode(config)  # a mistake there is told now, whether any test needs an env or not
    default_pythons(config)
    python_missing(config)
    if worker_input(config) is None and config.pluginmanager.has_plugin("dsession"):
        # The xdist controller runs no test, its workers do: a static mistake in the
        # settings is told once, here, before any worker starts on it.
        config.stash[_RUN_KEY].settings()


def pytest_unconfigure(config: pytest.Config) -> None:
    inside = config.stash.get(_INSIDE_RUNNER_KEY, None)
    if inside is not None:
        inside.close()
    run = config.stash.get(_RUN_KEY, None)
    if run is not None:
        run.close()


# -- the marker ------------------------------------------------------------------------------


def marker_requirements(item: pytest.Item, rootdir: Path) -> tuple[RequirementLine, ...]:
    """The requirements of every ``isoenv`` marker on ``item``, outermost first, validated."""
    from ._errors import MarkerError  # noqa: PLC0415 - only for marked tests
    from ._requirements import parse_lines  # noqa: PLC0415

    texts: list[object] = []
    for mark in reversed(list(item.iter_markers(MARKER))):
        if mark.args:
            raise MarkerError(
                f"positional arguments {mark.args!r} are not accepted; use requires=[...]"
            )
        unknown = sorted(set(mark.kwargs) - _MARKER_KEYWORDS)
        if unknown:
            raise MarkerError(
                f"unknown keyword argument(s) {', '.join(unknown)}; accepted: "
                f"{', '.join(sorted(_MARKER_KEYWORDS))}"
            )
        if "python" in mark.kwargs:
            _marker_python(mark.kwargs["python"])
        requires = mark.kwargs.get("requires", [])
        if isinstance(requires, (str, bytes)) or not isinstance(requires, (list, tuple)):
            raise MarkerError(f"requires must be a list of requirement strings, got {requires!r}")
        texts += requires
    return parse_lines(texts, rootdir)


def _marker_python(value: object) -> list[str] | str:
    """A marker's ``python=``, checked: one spec, or a list of distinct ones."""
    from ._discovery import check_spec, spec_id  # noqa: PLC0415
    from ._errors import MarkerError  # noqa: PLC0415

    try:
        if isinstance(value, (list, tuple)):
            specs = [check_spec(spec) for spec in value]
            if not specs or len({spec_id(spec) for spec in specs}) != len(specs):
                raise ValueError(f"{list(value)!r} must name distinct interpreters, at least one")
            return specs
        return check_spec(value)
    except ValueError as error:
        raise MarkerError(f"python={value!r}: {error}") from None


def _python_of(node: pytest.Item) -> list[str] | str | None:
    """The ``python=`` of the closest ``isoenv`` marker naming one."""
    for mark in node.iter_markers(MARKER):
        if "python" in mark.kwargs:
            return _marker_python(mark.kwargs["python"])
    return None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run an env test once per interpreter of its ``python=`` list (or of isoenv_python)."""
    definition = metafunc.definition
    marked = definition.get_closest_marker(MARKER) is not None
    if not marked and "isoenv" not in metafunc.fixturenames:
        return
    from ._errors import MarkerError  # noqa: PLC0415

    problem: str | None = None
    try:
        specs = _python_of(definition) if marked else None
    except MarkerError as error:
        problem = f"In {definition.name}: invalid isoenv marker: {error}"
    if problem is not None:
        pytest.fail(problem, pytrace=False)
    if specs is None:
        from ._settings import default_pythons  # noqa: PLC0415

        defaults = default_pythons(metafunc.config)
        specs = list(defaults) if len(defaults) > 1 else None
    if isinstance(specs, list):
        from ._discovery import PARAMETER, spec_id  # noqa: PLC0415

        # Not a fixture of the test's: the name is pruned from its closure again, and the
        # value read from its callspec.
        metafunc.fixturenames.append(PARAMETER)
        metafunc.parametrize(PARAMETER, specs, ids=[spec_id(spec) for spec in specs])


def python_spec(item: pytest.Item, settings: Settings) -> str | None:
    """The interpreter spec of ``item``'s env; None: the default interpreter."""
    from ._discovery import PARAMETER  # noqa: PLC0415

    callspec = getattr(item, "callspec", None)
    if callspec is not None and PARAMETER in callspec.params:
        return str(callspec.params[PARAMETER])
    found = _python_of(item)
    if isinstance(found, list):  # not parametrized: an item of unittest or another plugin
        return found[0]
    if found is not None:
        return found
    return settings.python[0] if settings.python else None


def _interpreter(item: pytest.Item, session: IsoenvSession) -> Interpreter | None:
    """The interpreter of ``item``'s env (None: the default); skip or fail the test if the
    one it names is not installed or cannot be served."""
    return _interpreter_of(python_spec(item, session.settings), session)


def _interpreter_of(spec: str | None, session: IsoenvSession) -> Interpreter | None:
    from ._errors import IsoenvError  # noqa: PLC0415
    from ._settings import SKIP  # noqa: PLC0415

    if spec is None:
        return None
    try:
        found = session.find_interpreter(spec)
    except IsoenvError as error:
        message = f"isoenv: {error}"
    else:
        if found is not None:
            return found
        message = f"isoenv: no interpreter python={spec!r} is installed"
        if session.settings.python_missing == SKIP:
            pytest.skip(message)
        message += " (--isoenv-python-missing=error)"
    pytest.fail(message, pytrace=False)


def marker_inside(item: pytest.Item) -> bool:
    """The ``inside`` argument of the closest ``isoenv`` marker that gives one (False)."""
    from ._errors import MarkerError  # noqa: PLC0415 - only for marked tests

    for mark in item.iter_markers(MARKER):
        if "inside" in mark.kwargs:
            inside = mark.kwargs["inside"]
            if not isinstance(inside, bool):
                raise MarkerError(f"inside must be True or False, got {inside!r}")
            return inside
    return False


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    """Read the markers of every item a collector made, whatever its kind.

    Here rather than in ``pytest_pycollect_makeitem``, which never sees the methods of a
    ``unittest.TestCase`` or the items of other plugins. A marked item gets the ``isoenv``
    fixture added to its fixture names (not an autouse fixture every test would carry).
    """
    report = yield
    if not report.passed or not report.result:
        return report
    marked = [
        node
        for node in report.result
        if isinstance(node, pytest.Item) and node.get_closest_marker(MARKER) is not None
    ]
    if not marked:
        return report
    from ._errors import MarkerError  # noqa: PLC0415 - only for marked tests

    _guard_host_imports(collector.config)
    rootdir = Path(collector.config.rootpath)
    for item in marked:
        try:
            item.stash[_LINES_KEY] = marker_requirements(item, rootdir)
            item.stash[_INSIDE_KEY] = marker_inside(item)
            _check_matrix(item)
        except MarkerError as error:
            report.outcome = "failed"
            report.longrepr = f"In {item.name}: invalid isoenv marker: {error}"
            report.result = []
            return report
        names = getattr(item, "fixturenames", None)
        if item.stash[_INSIDE_KEY]:
            continue  # its env is the child's: the host sets up none of its fixtures
        if isinstance(names, list) and "isoenv" not in names:
            # A new list: the one there may be shared with the other parameters of a test.
            item.fixturenames = [*names, "isoenv"]  # type: ignore[attr-defined]
    return report


_HOST_IMPORTS = "isoenv-host-imports"


def _tell(message: str) -> None:
    """An ``IsoenvWarning`` for pytest's warnings summary, never an error: where this runs (a
    hook, not a test), a ``filterwarnings = error`` would make it an internal error."""
    import warnings  # noqa: PLC0415

    from ._errors import IsoenvWarning  # noqa: PLC0415

    with warnings.catch_warnings():
        warnings.simplefilter("always", IsoenvWarning)
        warnings.warn(IsoenvWarning(message), stacklevel=3)


def _guard_host_imports(config: pytest.Config) -> None:
    """Watch marked tests for the host's copies (``_host_imports``), once one is collected;
    ``-p no:isoenv-host-imports`` turns it off."""
    manager = config.pluginmanager
    if manager.has_plugin(_HOST_IMPORTS) or manager.is_blocked(_HOST_IMPORTS):
        return
    from ._host_imports import HostImportGuard  # noqa: PLC0415 - only with marked tests

    manager.register(HostImportGuard(_LINES_KEY, _ENV_KEY), _HOST_IMPORTS)


def _check_matrix(item: pytest.Item) -> None:
    """A ``python=`` list that could not parametrize ``item`` is an error, not a quiet run
    on its first interpreter; ``isoenv``/``isoenv_base`` asked for inside are one too."""
    from ._discovery import PARAMETER  # noqa: PLC0415
    from ._errors import MarkerError  # noqa: PLC0415

    callspec = getattr(item, "callspec", None)
    parametrized = callspec is not None and PARAMETER in callspec.params
    own = _python_of(item)
    if own is None and not parametrized:
        defaults = default_pythons(item.config)
        if len(defaults) > 1:
            _tell(
                f"{item.nodeid} runs on {defaults[0]} only: the list of isoenv_python "
                "parametrizes test functions, not a unittest.TestCase method"
            )
    if isinstance(own, list) and not parametrized:
        raise MarkerError(
            "a python=[...] list runs a test once per interpreter by parametrizing it, which "
            "pytest does for test functions only: not for a unittest.TestCase method, nor "
            "from the marks of a pytest.param; name one interpreter there, or put the list "
            "on the test function (or its class or module)"
        )
    wanted = [name for name in _ENV_FIXTURES if name in getattr(item, "fixturenames", ())]
    if item.stash[_INSIDE_KEY] and wanted:
        raise MarkerError(
            f"inside=True runs the test in its env, where the {' and '.join(wanted)} "
            "fixture (the host's view of the env) is not available: sys.prefix, "
            "sys.executable and os.environ are the env's there"
        )


def _needs_env(item: pytest.Item) -> bool:
    names = getattr(item, "fixturenames", ())
    return item.stash.get(_INSIDE_KEY, False) or any(name in names for name in _ENV_FIXTURES)


@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session: pytest.Session) -> Generator[None, object, object]:
    """Build (or find) the base before the first test that needs it, outside its timeout."""
    config = session.config
    needing = [item for item in getattr(session, "items", ()) if _needs_env(item)]
    if (
        not config.option.collectonly
        and not getattr(config.option, "setupplan", False)
        and needing  # none on the xdist controller
    ):
        config.stash[_RUN_KEY].prepare_base(needing)
    return (yield)


def pytest_sessionfinish(session: pytest.Session) -> None:
    run = session.config.stash.get(_RUN_KEY, None)
    if run is not None and run.base_lines:
        send_base_lines(session.config, run.base_lines, run.base_work)


# -- the fixtures ----------------------------------------------------------------------------


def _report(item: pytest.Item, session: IsoenvSession, when: str) -> None:
    if session.events:
        item.add_report_section(
            when, REPORT_SECTION, "\n".join(event.text for event in session.events)
        )
        _work(item).extend(event.work() for event in session.events)
        session.events.clear()


def _work(item: pytest.Item) -> list[Work]:
    """The env work done for ``item`` not yet carried by one of its reports."""
    return item.stash.setdefault(_WORK_KEY, [])


def _base_failed(request: pytest.FixtureRequest, message: str) -> None:
    """Error this test briefly; the first in this process carries the message to the summary."""
    run = request.config.stash[_RUN_KEY]
    if not run.base_error_told:
        run.base_error_told = True
        request.node.stash[_BASE_ERROR_KEY] = message
    pytest.fail(BASE_ERROR_SHORT, pytrace=False)


@pytest.fixture(scope="session")
def isoenv_base(request: pytest.FixtureRequest) -> SharedEnv:
    """The session's base env, shared read-only by every test (built or reused once).

    On the first interpreter of ``isoenv_python`` when that is set; a test's own env (on the
    interpreter its marker names) has its base as ``isoenv.base``.
    """
    from ._errors import BaseBuildError  # noqa: PLC0415

    session = request.config.stash[_RUN_KEY].session()
    defaults = session.settings.python
    interpreter = _interpreter_of(defaults[0] if defaults else None, session)
    try:
        return session.base(interpreter)
    except BaseBuildError as error:
        message = str(error)
    _base_failed(request, message)
    raise AssertionError("unreachable")  # pragma: no cover


@pytest.fixture
def isoenv(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[DerivedEnv]:
    """This test's own derived env: sees the base, installs land in it alone, deleted after.

    While the test runs, ``os.environ`` is the env's (``VIRTUAL_ENV``, ``PATH``), set through
    the test's own ``monkeypatch``, so that the test's own ``monkeypatch.setenv`` calls, before
    or after, unwind in order whatever the order of the fixtures.

    A test with the ``isoenv`` marker gets this fixture without naming it. A
    ``unittest.TestCase`` method cannot name fixtures: it finds the env active in
    ``os.environ`` and the ``DerivedEnv`` as ``self.isoenv``.
    """
    from ._errors import BaseBuildError, InstallError  # noqa: PLC0415

    session = request.config.stash[_RUN_KEY].session()
    item = request.node
    lines = item.stash.get(_LINES_KEY, ())
    interpreter = _interpreter(item, session)
    base_error = ""
    try:
        env = session.derived(lines, interpreter)
    except BaseBuildError as error:
        base_error = str(error)
        failure = BASE_ERROR_SHORT
    except InstallError as error:
        failure = f"isoenv: {error}"
    else:
        failure = ""
    _report(item, session, "setup")
    if base_error:
        _base_failed(request, base_error)
    if failure:
        pytest.fail(failure, pytrace=False)
    session.watch([env.base, env.layer])
    item.stash[_ENV_KEY] = env
    item.stash[_TEST_ENV_KEY] = env
    _work(item).append(["derived", "", 0.0])
    unittest = sys.modules.get("unittest")
    instance = request.instance
    if unittest is not None and isinstance(instance, unittest.TestCase):
        instance.isoenv = env
    try:
        with env.activated(monkeypatch):
            yield env
    finally:
        del item.stash[_ENV_KEY]
        if session.settings.keep == KEEP_NONE:
            env.remove()
        else:  # kept or deleted when the teardown's outcome is known too
            item.stash[_PARKED_KEY] = env
        _report(item, session, "teardown")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    message = item.stash.get(_BASE_ERROR_KEY, None)
    if message is not None and call.when == "setup":
        # An attribute, not a section: it is for the summary, not for the test's own output;
        # xdist carries it to the controller with the report.
        setattr(report, BASE_ERROR_ATTRIBUTE, message)
    work = item.stash.get(_WORK_KEY, None)
    if work:
        setattr(report, WORK_ATTRIBUTE, list(work))
        work.clear()
    env = item.stash.get(_TEST_ENV_KEY, None)
    if env is not None:
        _env_outcome(item, call.when, report, env)
    return report


def _env_outcome(item: pytest.Item, when: str, report: pytest.TestReport, env: DerivedEnv) -> None:
    """Describe the env of a failed test in its report; keep or delete it after its teardown.

    The first failed report (setup, call or teardown) gets the description, as a section and
    as a property, which junitxml records from the teardown report. An env to keep is moved
    only once its fixture is torn down, while its path still works.
    """
    session = item.config.stash[_RUN_KEY].session()
    keep = session.settings.keep
    outcome = item.stash.setdefault(_OUTCOME_KEY, _Outcome())
    first_failure = report.failed and not outcome.failed
    outcome.failed = outcome.failed or report.failed
    wanted = keep == KEEP_ALL or (keep != KEEP_NONE and outcome.failed)
    if wanted and outcome.kept is None and outcome.problem is None:
        outcome.kept, outcome.problem = _reserve(session, item.nodeid)
    if when == "teardown":
        del item.stash[_TEST_ENV_KEY]
        del item.stash[_OUTCOME_KEY]
        parked = item.stash.get(_PARKED_KEY, None)
        if parked is not None:
            del item.stash[_PARKED_KEY]
            _keep_or_remove(session, parked, outcome, item.nodeid, report)
    if first_failure:
        text = env_section(env, env_fate(env, outcome.kept, keep, outcome.problem))
        report.sections.append((ENV_SECTION, text))
        item.user_properties.append((JUNIT_PROPERTY, text))  # the teardown report's
        if when == "teardown":
            report.user_properties.append((JUNIT_PROPERTY, text))


def _reserve(session: IsoenvSession, nodeid: str) -> tuple[Path | None, str | None]:
    """The directory to keep the env of ``nodeid`` in, or why there is none."""
    from ._errors import IsoenvError  # noqa: PLC0415
    from ._keep import kept_root, reserve  # noqa: PLC0415

    try:
        return reserve(kept_root(session.settings.cache_dir), nodeid), None
    except (IsoenvError, OSError) as error:
        return None, f"could not keep the env of {nodeid}: {error}"


def _keep_or_remove(
    session: IsoenvSession,
    env: DerivedEnv,
    outcome: _Outcome,
    nodeid: str,
    report: pytest.TestReport,
) -> None:
    if outcome.kept is None:
        env.remove()
        if outcome.problem is not None:
            setattr(report, KEEP_ERROR_ATTRIBUTE, outcome.problem)
        return
    from ._errors import IsoenvError  # noqa: PLC0415
    from ._swap import remove_tree  # noqa: PLC0415

    try:
        session.keep(env, outcome.kept, nodeid)
    except (IsoenvError, OSError) as error:
        outcome.problem = f"could not keep the env of {nodeid}: {error}"
        setattr(report, KEEP_ERROR_ATTRIBUTE, outcome.problem)
        remove_tree(outcome.kept)  # half kept is not kept
        outcome.kept = None
        if env.path.exists():
            env.remove()
        return
    setattr(report, KEPT_ATTRIBUTE, str(outcome.kept))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """Check, after the test, the shared envs it could reach: its env's, or the base alone."""
    shared: list[SharedEnv | None] = []
    env = item.stash.get(_ENV_KEY, None)
    if env is not None:
        shared = [env.base, env.layer]
    elif "isoenv_base" in getattr(item, "fixturenames", ()):
        base = getattr(item, "funcargs", {}).get("isoenv_base")
        if base is not None:  # else the fixture said why there is no base
            shared = [base]
            item.config.stash[_RUN_KEY].session().watch(shared)
    try:
        return (yield)
    finally:
        if shared:
            _check_shared(item, shared)


def _check_shared(item: pytest.Item, shared: list[SharedEnv | None]) -> None:
    from ._errors import SharedEnvModified  # noqa: PLC0415

    try:
        item.config.stash[_RUN_KEY].session().check_shared(shared)
    except SharedEnvModified as error:
        failure = f"isoenv: {error}"
    else:
        return
    pytest.fail(failure, pytrace=False)


# -- inside=True -----------------------------------------------------------------------------


def _inside_env(item: pytest.Item) -> DerivedEnv:
    """The derived env an ``inside`` test runs in (made ahead, while the test before runs).

    ``pytest.skip.Exception`` when its interpreter is not installed, ``pytest.fail.Exception``
    when it cannot be served, ``IsoenvError`` when the env cannot be made.
    """
    session = item.config.stash[_RUN_KEY].session()
    interpreter = _interpreter(item, session)
    return session.derived(item.stash.get(_LINES_KEY, ()), interpreter)


def _is_inside(item: pytest.Item) -> bool:
    return item.stash.get(_INSIDE_KEY, False)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    """An ``inside`` test runs in a child process in its env (``_inside``); not here."""
    option = item.config.option
    if (
        not _is_inside(item)
        or getattr(option, "setuponly", False)
        or getattr(option, "setupplan", False)
    ):
        return None  # --setup-only, --setup-plan: pytest's own protocol, which runs no test
    runner: InsideRunner | None = item.config.stash.get(_INSIDE_RUNNER_KEY, None)
    if runner is None:
        from ._inside import InsideRunner  # noqa: PLC0415

        runner = InsideRunner(
            item.config, item.config.stash[_RUN_KEY].session, _inside_env, _is_inside
        )
        item.config.stash[_INSIDE_RUNNER_KEY] = runner
        if getattr(item.config.option, "usepdb", False):
            _tell(
                "--pdb does not stop in inside=True tests: they run in a child process "
                "without the terminal (keep the env with --isoenv-keep=failed and run pytest "
                "in it to debug)"
            )
    return runner.protocol(item, nextitem)
