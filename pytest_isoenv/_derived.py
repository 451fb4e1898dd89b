"""The derived env: a test's own tiny venv, linked to its layer and the base, deleted after it."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ._errors import RunError
from ._requirements import RequirementLine, parse_lines
from ._shared_env import SharedEnv, installed_packages
from ._venv import bin_dir, site_packages

if TYPE_CHECKING:
    from collections.abc import Callable

    #: Installs requirement lines into a derived env; returns what was added.
    Installer = Callable[["DerivedEnv", tuple[RequirementLine, ...]], list[str]]

# Host variables that would let the host's packages or interpreter leak into the env.
_LEAKY_VARIABLES = (
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSTARTUP",
    "PYTHONUSERBASE",
    "__PYVENV_LAUNCHER__",
    "VIRTUAL_ENV_PROMPT",
    "CONDA_PREFIX",
)


class DerivedEnv(os.PathLike[str]):
    """A test's isolated environment: sees the base (and its layer), changes only itself."""

    def __init__(
        self,
        path: Path,
        base: SharedEnv,
        layer: SharedEnv | None,
        requirements: tuple[RequirementLine, ...],
        *,
        rootdir: Path,
        installer: Installer,
        release: Callable[[Path], None],
        uv: Callable[[], str],
        variables: Mapping[str, str] | None = None,
    ) -> None:
        #: The env's root directory; ``os.fspath(env)`` is this path too.
        self.path = path
        #: The shared base env (read-only).
        self.base = base
        #: The shared layer holding this test's marker requirements, if it needed one.
        self.layer = layer
        #: The requirements declared by the test's ``isoenv`` markers.
        self.requirements = tuple(str(line) for line in requirements)
        self.marker_lines = requirements
        self.installed_lines: list[RequirementLine] = []
        self._added: list[str] = []  # what install() added, name==version (for reports)
        # What the session that made this env lends it: no way back into the session.
        self._rootdir = rootdir
        self._installer = installer
        self._release = release
        self._uv = uv
        self._variables = dict(variables or {})  # the session's additions (coverage's)
        self._env: dict[str, str] | None = None

    def __fspath__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"<DerivedEnv {self.path} requirements={list(self.requirements)}>"

    @property
    def python(self) -> Path:
        """The env's interpreter."""
        return bin_dir(self.path, self.base.interpreter) / "python"

    @property
    def bin(self) -> Path:
        """The env's scripts directory (console scripts of the base and layer included)."""
        return bin_dir(self.path, self.base.interpreter)

    @property
    def site_packages(self) -> Path:
        """Where packages installed into this env (and only this env) go."""
        return site_packages(self.path, self.base.interpreter)

    @property
    def env(self) -> dict[str, str]:
        """Environment variables for running things in this env (a fresh copy each time).

        ``VIRTUAL_ENV`` names the env, ``PATH`` starts with its scripts, and nothing of the
        host's Python setup (``PYTHONPATH``, ``PYTHONHOME``, user site-packages) leaks in.
        """
        if self._env is None:
            environ = {k: v for k, v in os.environ.items() if k not in _LEAKY_VARIABLES}
            environ["VIRTUAL_ENV"] = str(self.path)
            environ["PATH"] = os.pathsep.join(
                part for part in (str(self.bin), os.environ.get("PATH", "")) if part
            )
            environ["PYTHONNOUSERSITE"] = "1"
            environ.update(self._variables)
            self._env = environ
        return dict(self._env)

    def packages(self) -> dict[str, str]:
        """Every distribution this env can import: name -> version, the visible one first."""
        dirs = [self.site_packages] + [
            env.site_packages for env in (self.layer, self.base) if env is not None
        ]
        return installed_packages(dirs)

    def which(self, command: str) -> str | None:
        """The program ``command`` resolves to in this env: its own scripts first, then PATH.

        ``uv`` falls back to the uv pytest-isoenv uses (it installs into ``VIRTUAL_ENV``).
        """
        if os.sep in command or (os.altsep and os.altsep in command):
            return command
        if command in ("python", "python3"):
            return str(self.python)
        own = shutil.which(command, path=str(self.bin))
        if own is not None:
            return own
        if command == "uv":
            return self._uv()
        return shutil.which(command, path=self.env["PATH"])

    def _command(self, args: list[str]) -> list[str]:
        name = args[0]
        if name in ("pip", "pip3") and shutil.which(name, path=str(self.bin)) is None:
            # Never the host's pip, which would install into the host: the env's, or an error.
            return [str(self.python), "-m", "pip", *args[1:]]
        return [self.which(name) or name, *args[1:]]

    def run(
        self,
        *args: str | os.PathLike[str],
        check: bool = True,
        env: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command in this env; output is captured as text.

        A bare command (``python``, ``pip``, a console script) is looked up in the env first.
        ``env`` adds to (or overrides) :attr:`env`. Other keyword arguments go to
        :func:`subprocess.run` (``input=``, ``stdin=``, ``timeout=``, ``cwd=`` ...); without
        ``input`` or ``stdin`` the command reads nothing. With ``check`` (the default) a
        failure raises :class:`~pytest_isoenv.RunError` showing the command's output.
        """
        __tracebackhide__ = True  # a failure points at the test's line, not at this one
        if not args:
            raise TypeError("run() needs a command")
        command = self._command([os.fspath(arg) for arg in args])
        environ = self.env
        if env:
            environ.update(env)
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        if "input" not in kwargs:
            # Never the test's own stdin (pytest's, or a terminal a command would wait on).
            kwargs.setdefault("stdin", subprocess.DEVNULL)
        done: subprocess.CompletedProcess[str] = subprocess.run(
            command, env=environ, check=False, **kwargs
        )
        if check and done.returncode != 0:
            raise RunError(done.returncode, command, done.stdout, done.stderr)
        return done

    def install(self, *requirements: str) -> list[str]:
        """Install more into this env only (never the base or layer); return what was added.

        Only what the base and layer lack is installed, at versions consistent with them.
        Raise :class:`~pytest_isoenv.InstallError` (or ``MarkerError`` for a malformed line)
        with uv's message.
        """
        __tracebackhide__ = True  # pytest: ``requirements`` may hold credentials
        from ._errors import IsoenvError  # noqa: PLC0415

        try:
            lines = parse_lines(requirements, self._rootdir)
            added = self._installer(self, lines)
        except IsoenvError as error:
            # The message says it all; the frames inside pytest-isoenv would only hide the
            # test's own line.
            raise error.with_traceback(None) from None
        self.installed_lines += lines
        self._added += added
        return added

    @property
    def installed(self) -> tuple[str, ...]:
        """Requirements installed at run time with :meth:`install`."""
        return tuple(str(line) for line in self.installed_lines)

    @contextmanager
    def activated(self, monkeypatch: pytest.MonkeyPatch | None = None) -> Iterator[None]:
        """``os.environ`` set to :attr:`env` for the duration, then restored exactly.

        With ``monkeypatch``, the changes are made through it and undone when it is undone
        (not when the block ends): the ``isoenv`` fixture passes the test's own, so that the
        test's ``monkeypatch.setenv("PATH", ...)`` and the env's settings unwind in reverse
        order, whichever fixture came first.
        """
        wanted = self.env
        with pytest.MonkeyPatch.context() as own:
            patch = own if monkeypatch is None else monkeypatch
            for key in set(wanted) | set(os.environ):
                if key not in wanted:
                    patch.delenv(key)
                elif os.environ.get(key) != wanted[key]:
                    patch.setenv(key, wanted[key])
            yield

    def activate(self) -> AbstractContextManager[DerivedEnv]:
        """A ``with`` block in which this process imports from the env: a quick in-process check.

        The env's site-packages (its own, its layer's or the base's, with their ``.pth``
        files) go in front of ``sys.path`` and ``os.environ`` is the env's (as
        :meth:`activated` sets it); on exit ``sys.path``, ``sys.modules`` and importlib's state
        are put back. For pure-Python packages on the interpreter running pytest: an env on
        another interpreter raises :class:`~pytest_isoenv.IsoenvError`, and so does a nested
        block. A module the host imported before the block stays the host's inside it (an
        :class:`~pytest_isoenv.IsoenvWarning` says so when the env has another version), and
        extension modules stay loaded. See "where your test runs" in the docs.
        """
        from ._activate import activate  # noqa: PLC0415 - only for tests that use it

        return activate(self)

    def remove(self) -> None:
        """Delete this env (its path is gone at once)."""
        self._release(self.path)
