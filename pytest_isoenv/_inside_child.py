"""The child end of ``inside=True``: one test run by pytest in its env's interpreter.

This file is copied, alone, into a private directory and run as a script by the env's
python (``python _pytest_isoenv_inside.py CMD_FD OUT_FD SITES``): it must import nothing but
the standard library and pytest, and stay Python 3.8-compatible. The host starts it ahead of
its test; it makes pytest importable (after the env's own packages: an env holding its own
pytest keeps it), imports it, then waits for one line of JSON naming its test and the host's
settings. It runs ``pytest.main`` on that node id and writes each report, serialized by
pytest's own ``pytest_report_to_serializable`` hook, as a line of JSON on ``OUT_FD``, then
``{"done": exit_code}``. It exits as soon as the host goes away (``CMD_FD`` hits its end).
"""

from __future__ import annotations

import json
import os
import signal
import site
import sys
import threading
from typing import Any, TextIO

MIN_PYTEST = (7, 0)
# The host's own plugins and those that must not run twice: the host runs the session
# (xdist, caches, timeouts), the child runs one test.
_BLOCKED = ("isoenv", "cacheprovider", "xdist", "xdist.looponfail", "timeout")


def _send(out: TextIO, message: dict[str, Any]) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


def _plugin_available(name: str) -> bool:
    import importlib.util  # noqa: PLC0415

    if name.startswith("no:"):
        return True
    for candidate in (name, "_pytest." + name):
        try:
            if importlib.util.find_spec(candidate) is not None:
                return True
        except (ImportError, ValueError):
            continue
    return False


def _argv(message: dict[str, Any], pytest_version: tuple[int, ...]) -> list[str]:
    # The host's own arguments: the same initial conftest files (and their options). The
    # test itself is collected alone, once named (``pytest_collection`` below).
    args = [*message.get("args", ()), "--rootdir", message["rootdir"]]
    if message.get("inifile"):
        args += ["-c", message["inifile"]]
    # The host's addopts (and PYTEST_ADDOPTS) are already in the option values it sends;
    # its required plugins are the host's business.
    args += [arg for value in message.get("override_ini", ()) for arg in ("-o", value)]
    args += ["-o", "addopts=", "-o", "required_plugins="]
    if pytest_version >= (9,):
        args += ["-o", "strict_config=false"]
    args += ["--capture", message["capture"]]
    if message.get("basetemp"):
        args += ["--basetemp", message["basetemp"]]
    if message.get("importmode"):
        args += ["--import-mode", message["importmode"]]
    if message.get("noconftest"):
        args.append("--noconftest")
    # The host checked its configuration; keys of its plugins absent here are no mistake.
    args += ["-W", "ignore:Unknown config option:pytest.PytestConfigWarning"]
    for spec in message.get("warnings", ()):
        args += ["-W", spec]
    for name in _BLOCKED:
        args += ["-p", "no:" + name]
    for name in message.get("plugins", ()):
        if name.split(":", 1)[-1] not in _BLOCKED and _plugin_available(name):
            args += ["-p", name]
    return args


def _plugins(message: dict[str, Any], commands: TextIO, out: TextIO) -> list[object]:
    """The child's plugins (made once pytest is importable: they use its decorators)."""
    import pytest  # noqa: PLC0415 - importable once main() has added its sites

    stdout = sys.stdout
    null = open(os.devnull, "w")  # noqa: SIM115 - open for the child's life

    class Quiet:
        """Sends pytest's terminal output nowhere: the host reports the test, not the child.

        The terminal reporter writes to the ``sys.stdout`` of its ``pytest_configure``.
        """

        @pytest.hookimpl(tryfirst=True)
        def pytest_configure(self, config: Any) -> None:
            sys.stdout = null

    class Settle:
        @pytest.hookimpl(trylast=True)
        def pytest_configure(self, config: Any) -> None:
            sys.stdout = stdout
            # The host's option values (its command line, addopts, conftest options) where
            # this pytest knows them; set last, so that plugins writing files named by an
            # option in their own pytest_configure (report files) have read their defaults.
            for dest, value in message.get("options", {}).items():
                if hasattr(config.option, dest):
                    setattr(config.option, dest, value)

    class Reporter:
        """Registers what the host registered, ships reports back."""

        config: Any = None
        python: Any = None  # [name, spec, id]: the host's python= parameter of the test

        def pytest_generate_tests(self, metafunc: Any) -> None:
            # The host ran the test once per interpreter (python=[...]): this child is one
            # of those runs, its test id the host's.
            if self.python is not None:
                name, spec, ident = self.python
                metafunc.fixturenames.append(name)
                metafunc.parametrize(name, [spec], ids=[ident])

        def pytest_addoption(self, parser: Any) -> None:
            # The isoenv ini keys are known here, so that --strict-config passes.
            for name in message.get("ini", ()):
                parser.addini(name, "read by the host (pytest-isoenv, inside=True)")

        def pytest_configure(self, config: Any) -> None:
            self.config = config
            for line in message.get("markers", ()):
                config.addinivalue_line("markers", line)

        @pytest.hookimpl(hookwrapper=True, tryfirst=True)
        def pytest_runtest_protocol(self, item: Any, nextitem: Any) -> Any:
            # Outside pytest's warnings wrapper, which records the test's warnings after its
            # teardown: the host waits for this before it reports the test.
            yield
            _send(out, {"over": True})

        def pytest_warning_recorded(
            self, warning_message: Any, when: str, nodeid: str, location: Any
        ) -> None:
            if when != "runtest":  # the host tells its own configure and collection warnings
                return
            category = warning_message.category
            _send(
                out,
                {
                    "warning": {
                        "category": category.__name__,
                        "module": category.__module__,
                        "message": str(warning_message.message),
                        "filename": warning_message.filename,
                        "lineno": warning_message.lineno,
                    }
                },
            )

        def pytest_keyboard_interrupt(self, excinfo: Any) -> None:
            # pytest.exit() or KeyboardInterrupt in the test: the host stops its session too.
            value = excinfo.value
            exit_ = isinstance(value, pytest.exit.Exception)
            reason = str(getattr(value, "msg", "") or value or type(value).__name__)
            returncode = getattr(value, "returncode", None) if exit_ else None
            _send(out, {"interrupted": {"reason": reason, "returncode": returncode, "exit": exit_}})

        def pytest_runtest_logreport(self, report: Any) -> None:
            data = self.config.hook.pytest_report_to_serializable(config=self.config, report=report)
            _send(out, {"report": data})

        @pytest.hookimpl(tryfirst=True)
        def pytest_collection(self, session: Any) -> bool:
            # Configured, plugins and conftest files loaded: the child waits here for its
            # test, while the test before it runs.
            line = commands.readline()
            if not line:
                os._exit(0)  # the host needed no test of this child (or is gone)
            command = json.loads(line)
            target = command["target"]
            self.python = command.get("python")
            threading.Thread(target=_watch_host, args=(commands,), daemon=True).start()
            _send(out, {"started": pytest.__version__, "pytest": pytest.__file__})
            session.perform_collect([target])
            return True

        def pytest_collectreport(self, report: Any) -> None:
            if report.failed:
                _send(out, {"collect_error": report.longreprtext})

        @pytest.hookimpl(tryfirst=True)
        def pytest_runtest_makereport(self, item: Any, call: Any) -> None:
            excinfo = call.excinfo
            if excinfo is None or excinfo.typename != "FixtureLookupError":
                return
            name = getattr(excinfo.value, "argname", None)
            if name:
                item.add_report_section(
                    call.when,
                    "isoenv",
                    f"fixture {name!r} of {item.nodeid} is not available inside its env "
                    "(inside=True): no conftest file or plugin installed in the env defines "
                    "it (host-only fixtures, such as isoenv, isoenv_base and those of plugins "
                    "the env lacks, cannot be used inside)",
                )

    return [Quiet(), Reporter(), Settle()]


def _watch_host(commands: TextIO) -> None:
    """Exit at once when the host goes away (its end of the command pipe closes), with
    what the test started: the child leads its own process group (a SIGTERM to the host
    runs none of its clean-up)."""
    try:
        commands.read()
    finally:
        try:
            os.killpg(os.getpgid(0), signal.SIGKILL)
        finally:
            os._exit(70)


def _no_core_files() -> None:
    """A timed-out child is stopped with SIGABRT (its faulthandler dumps the stacks): no core
    file of it in the user's directory."""
    try:
        import resource  # noqa: PLC0415 - POSIX

        resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
    except (ImportError, OSError, ValueError):
        pass


def main(argv: list[str]) -> int:
    _no_core_files()
    commands = os.fdopen(int(argv[1]), "r", encoding="utf-8")
    out = os.fdopen(int(argv[2]), "w", encoding="utf-8")
    line = commands.readline()  # the host's settings, sent when it starts the child
    if not line:
        return 0
    message = json.loads(line)
    for path in json.loads(argv[3]):
        if path not in sys.path:
            site.addsitedir(path)
    try:
        import pytest  # noqa: PLC0415 - after the sites above
    except Exception as error:  # anything: the host says it
        _send(out, {"fatal": f"pytest cannot be imported in the env: {error!r}"})
        return 3
    version = tuple(int(part) for part in pytest.__version__.split(".")[:2] if part.isdigit())
    if version < MIN_PYTEST:
        _send(
            out,
            {
                "fatal": (
                    f"the env's own pytest {pytest.__version__} ({pytest.__file__}) is too "
                    f"old to run a test inside it: pytest-isoenv needs pytest >= "
                    f"{'.'.join(map(str, MIN_PYTEST))} there"
                )
            },
        )
        return 3
    code = pytest.main(_argv(message, version), plugins=_plugins(message, commands, out))
    _send(out, {"done": int(code)})
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
