"""Installing with uv: offline first, the network only when uv's cache cannot answer.

uv's own environment variables are honoured as they are; the ones that change what gets
installed are part of every cache key (``install_settings``). uv runs in a process group of
its own, which dies with the test that waits for it (see ``run_in_group``).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from packaging.version import InvalidVersion, Version

from ._errors import InstallError, IsoenvError
from ._redact import redact

# The oldest uv that has everything used here: ``uv pip install --dry-run --output-format json``
# (how a layer is planned) is new in uv 0.12.18.
UV_FLOOR = "0.12.18"

# uv variables that change which distributions an install picks (cache-key material).
INSTALL_VARIABLES = (
    "UV_INDEX",
    "UV_DEFAULT_INDEX",
    "UV_INDEX_URL",
    "UV_EXTRA_INDEX_URL",
    "UV_FIND_LINKS",
    "UV_NO_INDEX",
    "UV_INDEX_STRATEGY",
    "UV_PRERELEASE",
    "UV_RESOLUTION",
    "UV_EXCLUDE_NEWER",
    "UV_CONSTRAINT",
    "UV_OVERRIDE",
    "UV_BUILD_CONSTRAINT",
    "UV_TORCH_BACKEND",
    "UV_NO_BINARY",
    "UV_NO_BINARY_PACKAGE",
    "UV_NO_BUILD",
    "UV_NO_BUILD_PACKAGE",
    "UV_ONLY_BINARY",
    "UV_NO_BUILD_ISOLATION",
    "UV_CONFIG_FILE",
    "UV_NO_CONFIG",
    "UV_PYTHON_PLATFORM",
)
# Variables holding URLs, whose credentials are kept out of keys: a rotated token reuses envs.
_URL_VARIABLES = (
    "UV_INDEX",
    "UV_DEFAULT_INDEX",
    "UV_INDEX_URL",
    "UV_EXTRA_INDEX_URL",
    "UV_FIND_LINKS",
)
# Variables that would point uv (or the interpreters it queries) somewhere else than we ask.
_DROPPED_VARIABLES = ("VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONPATH", "PYTHONHOME", "UV_PYTHON")
_TRUE = ("1", "true", "yes", "on")
# What uv says when ``--offline`` failed only because its cache could not answer: then, and
# only then, asking the index can help. Any other failure (a full disk, a bad requirement) is
# reported as it is: a second attempt over a half-done install could even "succeed".
_CACHE_MISS = re.compile(
    r"network connectivity is disabled|network was disabled|not found in the cache", re.IGNORECASE
)


def install_settings(environ: Mapping[str, str], no_index: bool) -> dict[str, str]:
    """The settings that decide what uv installs, for cache keys; credentials redacted."""
    found = {name: environ[name] for name in INSTALL_VARIABLES if environ.get(name)}
    for name in _URL_VARIABLES:
        if name in found:
            found[name] = redact(found[name])
    config = environ.get("UV_CONFIG_FILE")
    if config and Path(config).is_file():
        found["UV_CONFIG_FILE content"] = redact(
            Path(config).read_text(encoding="utf-8", errors="replace")
        )
    if no_index:
        found["--no-index"] = "1"
    return found


@dataclass(frozen=True)
class Change:
    """One distribution an install would add: its name, version and how to ask uv for it."""

    name: str
    version: str | None


def find_uv() -> str:
    """The uv binary: the one shipped with the ``uv`` package, else the one on ``PATH``."""
    try:
        from uv import find_uv_bin  # noqa: PLC0415 - optional at import time

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        import shutil  # noqa: PLC0415

        found = shutil.which("uv")
        if found is None:
            raise InstallError([], "uv was not found: install the 'uv' package") from None
        return found


# binary -> what is wrong with it ("" when nothing): each uv is asked once per process.
_CHECKED: dict[str, str] = {}


def check_uv_version(binary: str) -> None:
    """Raise ``IsoenvError`` naming the version, path and floor when ``binary`` is too old."""
    if binary not in _CHECKED:
        _CHECKED[binary] = _version_problem(binary)
    if _CHECKED[binary]:
        raise IsoenvError(_CHECKED[binary])


def _version_problem(binary: str) -> str:
    try:
        done = subprocess.run(
            [binary, "--version"],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except OSError as error:
        return f"uv at {binary} could not be run: {error}"
    match = re.match(r"uv\s+(\S+)", done.stdout.strip())
    try:
        found = Version(match[1]) if match else None
    except InvalidVersion:
        found = None
    if found is None:  # not a version we can read: let uv itself say what is wrong, if anything
        return ""
    if found < Version(UV_FLOOR):
        return (
            f"uv {found} (at {binary}) is too old: pytest-isoenv needs uv >= {UV_FLOOR}; "
            "upgrade the 'uv' package (pip install -U uv) or the uv on PATH"
        )
    return ""


class Uv:
    """Runs ``uv pip`` with the session's settings."""

    def __init__(self, *, cwd: Path, no_index: bool, refresh: bool) -> None:
        self.binary = find_uv()
        check_uv_version(self.binary)
        self.cwd = cwd
        self.no_index = no_index
        self.refresh = refresh
        self.environ = {k: v for k, v in os.environ.items() if k not in _DROPPED_VARIABLES}
        self.environ["UV_NO_PROGRESS"] = "1"
        # uv runs interpreters (bytecode compilation, build backends): no user site in them
        self.environ["PYTHONNOUSERSITE"] = "1"
        # uv wraps its messages at COLUMNS; pytest shows them again, so keep each one a line.
        self.environ["COLUMNS"] = "10000"
        self.user_offline = os.environ.get("UV_OFFLINE", "").lower() in _TRUE

    def install(
        self,
        python: Path,
        requirements: Sequence[str],
        *,
        prefix: Path | None = None,
        no_deps: bool = False,
        rebuild: Sequence[str] = (),
    ) -> None:
        """Install into the env of ``python`` (or under ``prefix``, resolving for ``python``).

        Raise ``InstallError`` with uv's message. ``prefix`` spares uv from inspecting a new
        interpreter (~50 ms) for every new env: it reuses what it knows of ``python``.
        ``rebuild`` names local projects uv must build again rather than take from its cache
        (``local_project_names``).
        """
        __tracebackhide__ = True  # pytest: its arguments hold credentials; the message does not
        # Copies, never hard links into uv's cache: a test that writes into a file of its env
        # (or of a shared env) would otherwise change uv's cache and every env linked to it.
        args = ["pip", "install", "--link-mode", "copy", "--python", str(python)]
        if prefix is not None:
            args += ["--prefix", str(prefix)]
        if no_deps:
            args.append("--no-deps")
        self._offline_first(args + _rebuild_args(rebuild), requirements)

    def plan(
        self,
        python: Path,
        requirements: Sequence[str],
        *,
        prefix: Path | None = None,
        rebuild: Sequence[str] = (),
    ) -> list[Change]:
        """What the env of ``python`` (or ``prefix``) would need added for ``requirements``."""
        __tracebackhide__ = True
        args = ["pip", "install", "--dry-run", "--output-format", "json", "--python", str(python)]
        if prefix is not None:
            args += ["--prefix", str(prefix)]
        out = self._offline_first(args + _rebuild_args(rebuild), requirements)
        try:
            changes = json.loads(out)["changes"]
        except (ValueError, KeyError, TypeError) as error:
            raise InstallError(
                _display(requirements), f"unexpected uv output ({error}): {out}"
            ) from None
        return [
            Change(change["name"], change.get("version"))
            for change in changes
            if change.get("action") == "installed"
        ]

    def _offline_first(self, args: list[str], requirements: Sequence[str]) -> str:
        __tracebackhide__ = True
        if self.no_index:
            args = [*args, "--no-index"]
        if self.refresh:
            return self._run([*args, "--refresh"], requirements)
        if self.user_offline:
            return self._run(args, requirements)
        try:
            return self._run([*args, "--offline"], requirements)
        except InstallError as error:
            if not _CACHE_MISS.search(" ".join(error.output.split())):
                raise
        # uv's cache cannot answer: ask the index (its message is the one to show)
        return self._run(args, requirements)

    def _run(self, args: list[str], requirements: Sequence[str]) -> str:
        __tracebackhide__ = True
        command = [self.binary, *args, *requirements]
        try:
            returncode, stdout, stderr = run_in_group(command, cwd=self.cwd, env=self.environ)
        except OSError as error:
            raise InstallError(_display(requirements), f"could not run uv: {error}") from None
        if returncode < 0:
            raise InstallError(
                _display(requirements),
                f"{_without_noise(stderr)}\n{_killed_by(-returncode)}".strip(),
            )
        if returncode != 0:
            raise InstallError(_display(requirements), _without_noise(stderr or stdout))
        return stdout


def _rebuild_args(names: Sequence[str]) -> list[str]:
    # --reinstall-package, not --refresh-package: uv refuses the latter with --offline.
    return [arg for name in names for arg in ("--reinstall-package", name)]


# -- uv's process group ----------------------------------------------------------------------

# How long uv and its build backends get to stop on SIGTERM before SIGKILL.
_GRACE_SECONDS = 1.0


def run_in_group(
    command: Sequence[str], *, cwd: Path, env: Mapping[str, str]
) -> tuple[int, str, str]:
    """Run ``command`` in a process group of its own; return its exit code, stdout and stderr.

    uv starts build backends, which start compilers: when the wait is interrupted (Ctrl-C,
    pytest-timeout's exception, any ``BaseException``) the whole group is stopped (SIGTERM,
    then SIGKILL) before the exception goes on, so nothing keeps building for a test that is
    gone. If this process dies without a word (SIGKILL, ``os._exit``, a crashed xdist worker),
    a watchdog process kills the group (``_Watchdog``).
    """
    process = subprocess.Popen(
        list(command),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    _WATCHDOG.watch(process.pid)
    try:
        stdout, stderr = process.communicate()
    except BaseException:
        _stop_group(process)
        raise
    finally:
        _WATCHDOG.forget(process.pid)
    return process.returncode, stdout, stderr


def _signal_group(pgid: int, number: int) -> None:
    with contextlib.suppress(OSError):  # OSError: the group is gone already
        os.killpg(pgid, number)


def _stop_group(process: subprocess.Popen[str]) -> None:
    """Stop uv's whole group: SIGTERM, a moment to exit, then SIGKILL for what is left."""
    try:
        _signal_group(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=_GRACE_SECONDS)
    finally:
        # Even when uv exited on SIGTERM: a backend that ignored it is still in the group.
        _signal_group(process.pid, signal.SIGKILL)
        process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


# The watchdog's code: it reads the groups to guard from its stdin, one per line ("+PGID" to
# guard, "-PGID" when done). End of file means the pytest process is gone: it kills the groups
# still guarded. It ignores SIGINT: a Ctrl-C that reaches it must not end it before pytest.
_WATCHDOG_CODE = """\
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
groups = set()
for line in iter(sys.stdin.buffer.readline, b""):
    try:
        pgid = int(line[1:])
    except ValueError:
        continue
    if line.startswith(b"+"):
        groups.add(pgid)
    else:
        groups.discard(pgid)
for number in (signal.SIGTERM, signal.SIGKILL):
    for pgid in groups:
        try:
            os.killpg(pgid, number)
        except OSError:
            pass
    if groups and number == signal.SIGTERM:
        time.sleep(%r)
"""


class _Watchdog:
    """A helper process that kills uv's groups if this process dies without stopping them.

    Chosen over ``prctl(PR_SET_PDEATHSIG)`` in a ``preexec_fn``: that is Linux only, a
    ``preexec_fn`` is unsafe in a process with threads (pytest-isoenv deletes envs in a
    background thread; xdist workers run execnet threads), the signal fires when the *thread*
    that started uv ends rather than the process, and it reaches uv alone, not the build
    backends uv started. A pipe's end of file reaches the watchdog however this process ends,
    on every POSIX system. It is started once per process, the first time uv runs.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._owner = 0  # the pid that started it: a forked child starts its own

    def watch(self, pgid: int) -> None:
        self._send(f"+{pgid}\n", start=True)

    def forget(self, pgid: int) -> None:
        self._send(f"-{pgid}\n", start=False)

    def _send(self, text: str, *, start: bool) -> None:
        with self._lock:
            if self._owner != os.getpid():
                self._disown()
                if not start:
                    return
                self._start()
            stdin: IO[bytes] | None = self._process.stdin if self._process else None
            if stdin is None:
                return
            try:
                stdin.write(text.encode("ascii"))
                stdin.flush()
            except OSError:  # the watchdog is gone: uv still runs, unguarded
                self._process = None

    def _disown(self) -> None:
        """In a forked child: let go of the parent's watchdog (its end of file is the parent's)."""
        if self._process is not None and self._process.stdin is not None:
            with contextlib.suppress(OSError):
                self._process.stdin.close()  # nothing buffered: every write is flushed
        self._process = None

    def _start(self) -> None:
        self._owner = os.getpid()
        if not sys.executable or not hasattr(os, "killpg"):
            return
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _WATCHDOG_CODE % _GRACE_SECONDS],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError:
            self._process = None
            return
        atexit.register(self.close)

    def close(self) -> None:
        """End the watchdog (at exit): end of file, with no group left to kill."""
        with self._lock:
            process, self._process = self._process, None
        if process is None or self._owner != os.getpid():
            return
        try:
            if process.stdin is not None:
                process.stdin.close()
            process.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass


_WATCHDOG = _Watchdog()


def _killed_by(number: int) -> str:
    """Why uv stopped without a word: the signal that killed it, and what it usually means."""
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    meaning = {
        "SIGXFSZ": " (a file grew past the file size limit, ulimit -f)",
        "SIGKILL": " (out of memory, or killed by someone)",
        "SIGSEGV": " (a crash)",
    }.get(name, "")
    return f"uv was killed by {name}{meaning}"


def _display(requirements: Sequence[str]) -> list[str]:
    """Requirements as a person wrote them: ``--editable X`` reads as ``-e X``."""
    shown: list[str] = []
    flag = {"--editable": "-e", "--requirement": "-r"}
    pending = ""
    for word in requirements:
        if word in flag:
            pending = flag[word] + " "
            continue
        shown.append(pending + word)
        pending = ""
    return shown


# uv's lines naming the interpreter or env it uses: "Using Python 3.12.3 environment at: ...",
# "Using CPython 3.12.3 interpreter at: ...", "Using PyPy 3.10.14 interpreter at: ...".
_NOISE = re.compile(r"^Using (?:[A-Za-z]+ )?\d+\.\d+\S* (?:environment|interpreter) at: ")


def _without_noise(output: str) -> str:
    """uv's message without the lines that only say which interpreter or env it looked at."""
    return "\n".join(line for line in output.splitlines() if not _NOISE.match(line)).strip()
