"""Interpreter facts: read once per interpreter per process, and its identity for cache keys."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._errors import IsoenvError

# Run in-process for the current interpreter and with `python -c` for any other, so both
# read the same facts the same way. It defines FACTS and must stay Python 3.6-compatible.
_FACTS_SCRIPT = r"""
import os, platform, sys, sysconfig
_exe = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
if sys.prefix != sys.base_prefix and not os.path.isfile(_exe):
    _exe = os.path.realpath(sys.executable)
_scheme = "venv" if "venv" in sysconfig.get_scheme_names() else (
    "nt" if os.name == "nt" else "posix_prefix")
_root = os.path.abspath(os.sep + "isoenv-root")
_vars = {"base": _root, "platbase": _root, "installed_base": _root, "installed_platbase": _root}
def _rel(key, scheme=_scheme):
    return os.path.relpath(sysconfig.get_path(key, scheme, vars=_vars), _root)
_default_scheme = (getattr(sysconfig, "get_default_scheme", None)
                   or getattr(sysconfig, "_get_default_scheme"))()
_stat = os.stat(_exe)
FACTS = {
    "executable": _exe,
    "version": list(sys.version_info[:3]),
    "implementation": sys.implementation.name,
    "cache_tag": sys.implementation.cache_tag,
    "platform": sysconfig.get_platform(),
    "machine": platform.machine(),
    "purelib": _rel("purelib"),
    "prefix_purelib": _rel("purelib", _default_scheme),
    "scripts": _rel("scripts"),
    "stdlib": sysconfig.get_path("stdlib"),
    "executable_size": _stat.st_size,
    "executable_mtime_ns": _stat.st_mtime_ns,
}
"""


@dataclass(frozen=True)
class Interpreter:
    """A Python interpreter envs are built on: where it is and what it is."""

    executable: Path
    version: tuple[int, int, int]
    implementation: str
    cache_tag: str
    platform: str
    purelib: str
    prefix_purelib: str  # where ``--prefix`` installs put packages (Debian's python differs)
    scripts: str
    stdlib: str  # where ``ensurepip`` keeps the pip wheel it bundles
    executable_size: int
    executable_mtime_ns: int

    @property
    def home(self) -> Path:
        """The directory a venv's ``pyvenv.cfg`` names as ``home``."""
        return self.executable.parent

    @property
    def version_text(self) -> str:
        return ".".join(map(str, self.version))

    def identity(self) -> dict[str, Any]:
        """What must not change for an env built on this interpreter to stay valid."""
        return {
            "executable": str(self.executable),
            "version": self.version_text,
            "implementation": self.implementation,
            "platform": self.platform,
            "executable_size": self.executable_size,
            "executable_mtime_ns": self.executable_mtime_ns,
        }

    def __str__(self) -> str:
        return f"{self.implementation} {self.version_text} ({self.executable})"


def _from_facts(facts: dict[str, Any]) -> Interpreter:
    return Interpreter(
        executable=Path(facts["executable"]),
        version=(facts["version"][0], facts["version"][1], facts["version"][2]),
        implementation=facts["implementation"],
        cache_tag=facts["cache_tag"],
        platform=facts["platform"],
        purelib=facts["purelib"],
        prefix_purelib=facts["prefix_purelib"],
        scripts=facts["scripts"],
        stdlib=facts["stdlib"],
        executable_size=facts["executable_size"],
        executable_mtime_ns=facts["executable_mtime_ns"],
    )


@functools.cache
def current() -> Interpreter:
    """The interpreter running pytest (its base interpreter when pytest runs in a venv)."""
    namespace: dict[str, Any] = {}
    exec(compile(_FACTS_SCRIPT, "<isoenv-facts>", "exec"), namespace)  # noqa: S102 - our own constant
    return _from_facts(namespace["FACTS"])


@functools.cache
def inspect(python: Path) -> Interpreter:
    """The facts of another interpreter, read with one subprocess per process."""
    if Path(os.path.realpath(python)) == Path(os.path.realpath(sys.executable)):
        return current()
    script = _FACTS_SCRIPT + "\nimport json; print(json.dumps(FACTS))\n"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    try:
        out = subprocess.run(
            [str(python), "-I", "-c", script], capture_output=True, text=True, check=True, env=env
        )
        return _from_facts(json.loads(out.stdout))
    except (OSError, subprocess.CalledProcessError, ValueError, KeyError) as error:
        detail = getattr(error, "stderr", None) or error
        raise IsoenvError(f"{python} is not a working Python interpreter: {detail}") from None
