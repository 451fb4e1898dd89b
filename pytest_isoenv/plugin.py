"""The pytest plugin: options, the ``isoenv`` marker, the fixtures and the report lines."""

from __future__ import annotations

import shutil
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from . import _session_dir
from ._cache_upkeep import end_of_session
from ._derived import DerivedEnv
from ._errors import BaseBuildError, InstallError, MarkerError, SharedEnvModified
from ._requirements import RequirementLine, parse_lines
from ._session import IsoenvSession
from ._settings import CACHE, SETTINGS_KEY, add_options, resolve
from ._shared_env import SharedEnv
from ._summary import REPORT_SECTION, SummaryReporter
from ._xdist import SESSION_DIR_KEY, STARTED_KEY, XdistGlue, worker_id, worker_input

MARKER = "isoenv"
MARKER_HELP = (
    "isoenv(requires=[...]): run the test in its own derived env with these extra "
    "requirements (PEP 508 strings, local paths, '-e PATH', '-r FILE'); markers on the "
    "module, class, function and pytest.param combine."
)
_MARKER_KEYWORDS = frozenset({"requires"})

_SESSION_KEY = pytest.StashKey[IsoenvSession]()
_OWNED_DIR_KEY = pytest.StashKey[Path]()
_LINES_KEY = pytest.StashKey[tuple[RequirementLine, ...]]()
_ENV_KEY = pytest.StashKey[DerivedEnv]()
_CACHE_LINE_KEY = pytest.StashKey[str]()


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    settings = resolve(config)
    config.stash[SETTINGS_KEY] = settings
    config.pluginmanager.register(SummaryReporter(config), "isoenv-summary")
    found = worker_input(config)
    if found is not None and SESSION_DIR_KEY in found:
        session_dir = Path(found[SESSION_DIR_KEY])
        started = float(found[STARTED_KEY])
    else:
        session_dir = _session_dir.create()
        started = time.time()
        config.stash[_OWNED_DIR_KEY] = session_dir
        # Always: xdist may be loaded after us (-p xdist.plugin), and the hook is optional.
        config.pluginmanager.register(XdistGlue(str(session_dir), started), "isoenv-xdist")
    config.stash[_SESSION_KEY] = IsoenvSession(
        settings,
        session_dir,
        worker_id(config),
        # --isoenv-rebuild: what was published before the session (its controller) started
        stale_before=started if settings.rebuild else None,
    )


@pytest.hookimpl(trylast=True)  # after xdist's: its workers are gone
def pytest_sessionfinish(session: pytest.Session) -> None:
    """The cache's daily prune, and its size for the summary (the controller only)."""
    config = session.config
    settings = config.stash.get(SETTINGS_KEY, None)
    if settings is not None and settings.base == CACHE and worker_input(config) is None:
        line = end_of_session(settings.cache_dir, settings.prune_after)
        if line is not None:
            config.stash[_CACHE_LINE_KEY] = line


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    line = config.stash.get(_CACHE_LINE_KEY, None)
    if line is not None:
        terminalreporter.write_line(f"isoenv: {line}")


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(_SESSION_KEY, None)
    if session is not None:
        session.close()
    owned = config.stash.get(_OWNED_DIR_KEY, None)
    if owned is not None:
        if session is not None:
            session.remove_session_files()
        shutil.rmtree(owned, ignore_errors=True)


# -- the marker ------------------------------------------------------------------------------


def marker_requirements(item: pytest.Item, rootdir: Path) -> tuple[RequirementLine, ...]:
    """The requirements of every ``isoenv`` marker on ``item``, outermost first, validated."""
    texts: list[object] = []
    for mark in reversed(list(item.iter_markers(MARKER))):
        if mark.args:
            raise MarkerError(
                f"positional arguments {mark.args!r} are not accepted; use requires=[...]"
            )
        unknown = sorted(set(mark.kwargs) - _MARKER_KEYWORDS)
        if unknown:
            raise MarkerError(
                f"unknown keyword argument(s) {', '.join(unknown)}; accepted: requires"
            )
        requires = mark.kwargs.get("requires", [])
        if isinstance(requires, (str, bytes)) or not isinstance(requires, (list, tuple)):
            raise MarkerError(f"requires must be a list of requirement strings, got {requires!r}")
        texts += requires
    return parse_lines(texts, rootdir)


@pytest.hookimpl(wrapper=True)
def pytest_pycollect_makeitem(
    collector: pytest.Collector, name: str, obj: object
) -> Generator[None, Any, Any]:
    result = yield
    items = result if isinstance(result, list) else [result]
    rootdir = collector.config.stash[SETTINGS_KEY].rootdir
    for item in items:
        if isinstance(item, pytest.Function) and item.get_closest_marker(MARKER) is not None:
            try:
                item.stash[_LINES_KEY] = marker_requirements(item, rootdir)
            except MarkerError as error:
                raise collector.CollectError(
                    f"In {item.name}: invalid isoenv marker: {error}"
                ) from None
    return result


# -- the fixtures ----------------------------------------------------------------------------


def _report(item: pytest.Item, session: IsoenvSession, when: str) -> None:
    if session.events:
        item.add_report_section(
            when, REPORT_SECTION, "\n".join(event.text for event in session.events)
        )
        session.events.clear()


@pytest.fixture(scope="session")
def isoenv_base(request: pytest.FixtureRequest) -> SharedEnv:
    """The session's base env, shared read-only by every test (built or reused once)."""
    session = request.config.stash[_SESSION_KEY]
    try:
        return session.base()
    except BaseBuildError as error:
        message = str(error)
    pytest.fail(message, pytrace=False)


@pytest.fixture
def isoenv(request: pytest.FixtureRequest) -> Iterator[DerivedEnv]:
    """This test's own derived env: sees the base, installs land in it alone, deleted after."""
    session = request.config.stash[_SESSION_KEY]
    item = request.node
    lines = item.stash.get(_LINES_KEY, ())
    try:
        env = session.derived(lines)
    except (BaseBuildError, InstallError) as error:
        failure = f"isoenv: {error}"
    else:
        failure = ""
    _report(item, session, "setup")
    if failure:
        pytest.fail(failure, pytrace=False)
    session.watch(env)
    item.stash[_ENV_KEY] = env
    try:
        with env.activated():
            yield env
    finally:
        del item.stash[_ENV_KEY]
        env.remove()
        _report(item, session, "teardown")


@pytest.fixture(autouse=True)
def _isoenv_for_marked_tests(request: pytest.FixtureRequest) -> None:
    """A test with the marker gets its derived env even when it does not name the fixture."""
    if request.node.get_closest_marker(MARKER) is not None:
        request.getfixturevalue("isoenv")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    try:
        return (yield)
    finally:
        env = item.stash.get(_ENV_KEY, None)
        if env is not None:
            try:
                item.config.stash[_SESSION_KEY].check_shared(env)
            except SharedEnvModified as error:
                failure = f"isoenv: {error}"
            else:
                failure = ""
            if failure:
                pytest.fail(failure, pytrace=False)
