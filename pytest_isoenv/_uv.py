"""Installing with uv: offline first, the network only when uv's cache cannot answer.

uv's own environment variables are honoured as they are; the ones that change what gets
installed are part of every cache key (``install_settings``).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ._errors import InstallError

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
    """The settings that decide what uv installs, for cache keys."""
    found = {name: environ[name] for name in INSTALL_VARIABLES if environ.get(name)}
    config = environ.get("UV_CONFIG_FILE")
    if config and Path(config).is_file():
        found["UV_CONFIG_FILE content"] = Path(config).read_text(encoding="utf-8", errors="replace")
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


class Uv:
    """Runs ``uv pip`` with the session's settings."""

    def __init__(self, *, cwd: Path, no_index: bool, refresh: bool) -> None:
        self.binary = find_uv()
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
        compile_bytecode: bool = False,
    ) -> None:
        """Install into the env of ``python`` (or under ``prefix``, resolving for ``python``).

        Raise ``InstallError`` with uv's message. ``prefix`` spares uv from inspecting a new
        interpreter (~50 ms) for every new env: it reuses what it knows of ``python``.
        """
        # Copies, never hard links into uv's cache: a test that writes into a file of its env
        # (or of a shared env) would otherwise change uv's cache and every env linked to it.
        args = ["pip", "install", "--link-mode", "copy", "--python", str(python)]
        if prefix is not None:
            args += ["--prefix", str(prefix)]
        if no_deps:
            args.append("--no-deps")
        if compile_bytecode:
            args.append("--compile-bytecode")
        self._offline_first(args, requirements)

    def plan(
        self, python: Path, requirements: Sequence[str], *, prefix: Path | None = None
    ) -> list[Change]:
        """What the env of ``python`` (or ``prefix``) would need added for ``requirements``."""
        args = ["pip", "install", "--dry-run", "--output-format", "json", "--python", str(python)]
        if prefix is not None:
            args += ["--prefix", str(prefix)]
        out = self._offline_first(args, requirements)
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
        command = [self.binary, *args, *requirements]
        try:
            done = subprocess.run(
                command,
                cwd=self.cwd,
                env=self.environ,
                capture_output=True,
                text=True,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except OSError as error:
            raise InstallError(_display(requirements), f"could not run uv: {error}") from None
        if done.returncode < 0:
            raise InstallError(
                _display(requirements),
                f"{_without_noise(done.stderr)}\n{_killed_by(-done.returncode)}".strip(),
            )
        if done.returncode != 0:
            raise InstallError(_display(requirements), _without_noise(done.stderr or done.stdout))
        return done.stdout


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


def _without_noise(output: str) -> str:
    """uv's message without the lines that only say which env it looked at."""
    return "\n".join(
        line for line in output.splitlines() if not line.startswith("Using Python ")
    ).strip()
