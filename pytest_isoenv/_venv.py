"""Venv layout: a PEP 405 environment written in-process, and copies of console scripts.

Writing the layout by hand costs about a quarter of a millisecond, against ~100 ms for a
`uv venv` subprocess; it is what makes a derived env per test affordable.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ._interpreter import Interpreter
from ._link import START_FORM, write_link

# A script that finds its interpreter next to itself, wherever the env is (uv's relocatable
# form): safe for paths with spaces or non-ASCII characters and for the 127-byte shebang limit.
_RELOCATABLE_HEAD = (
    "#!/bin/sh\n"
    '\'\'\'exec\' "$(dirname -- "$(realpath -- "$0")")"/\'python\' "$0" "$@"\n'
    "' '''\n"
)
_SH_EXEC_START = b"#!/bin/sh\n'''exec' "
_SH_EXEC_END = b"\n' '''\n"
_NOT_SCRIPTS = ("python", "activate", "deactivate", "pydoc", "Activate")


@dataclass(frozen=True)
class Script:
    """A console script of a shared env, with the body that runs under any env's python."""

    name: str
    body: bytes


def site_packages(root: Path, interpreter: Interpreter) -> Path:
    return root / interpreter.purelib


def bin_dir(root: Path, interpreter: Interpreter) -> Path:
    return root / interpreter.scripts


def create_venv(
    root: Path, interpreter: Interpreter, link: Sequence[Path] = (), pycache: Path | None = None
) -> Path:
    """Write a venv for ``interpreter`` at ``root`` (which must not exist); return site-packages.

    ``link`` lists site-packages directories the env sees after its own, first one first;
    ``pycache`` is where its interpreter writes bytecode.
    """
    scripts = bin_dir(root, interpreter)
    packages = site_packages(root, interpreter)
    _mkdirs(root, [scripts, packages])
    major, minor, _ = interpreter.version
    (root / "pyvenv.cfg").write_text(
        f"home = {interpreter.home}\n"
        "include-system-site-packages = false\n"
        f"version = {interpreter.version_text}\n"
        f"version_info = {interpreter.version_text}\n"
        f"implementation = {interpreter.implementation}\n"
        # Tells uv to write relocatable console scripts, so a renamed env keeps working.
        "relocatable = true\n",
        encoding="utf-8",
    )
    for name in ("python", f"python{major}", f"python{major}.{minor}"):
        os.symlink(interpreter.executable, scripts / name)
    lib64 = root / "lib64"
    if os.name == "posix" and (root / "lib").is_dir() and not lib64.exists():
        os.symlink("lib", lib64)
    write_link(packages, link, pycache, start=interpreter.version >= START_FORM)
    return packages


def _mkdirs(root: Path, leaves: Sequence[Path]) -> None:
    """Make ``root`` (or take it as it is, empty) and the directories down to each leaf.

    One ``mkdir`` per directory: ``Path.mkdir(parents=True)`` tries each one twice, and on
    the disks of CI machines every call costs a tenth of a millisecond or more, per test.
    """
    made = {root}
    with contextlib.suppress(FileExistsError):
        os.mkdir(root)
    for leaf in leaves:
        path = root
        for part in leaf.relative_to(root).parts:
            path = path / part
            if path not in made:
                os.mkdir(path)
                made.add(path)


def read_scripts(scripts_dir: Path) -> list[Script]:
    """The console scripts of a shared env, rewritten to run with whichever env holds the copy."""
    found: list[Script] = []
    try:
        entries = sorted(os.scandir(scripts_dir), key=lambda entry: entry.name)
    except FileNotFoundError:
        return found
    for entry in entries:
        if entry.name.startswith(_NOT_SCRIPTS) or not entry.is_file(follow_symlinks=False):
            continue
        with open(entry.path, "rb") as handle:
            data = handle.read()
        body = _portable_body(data)
        if body is not None:
            found.append(Script(entry.name, body))
    return found


def _portable_body(data: bytes) -> bytes | None:
    if data.startswith(_RELOCATABLE_HEAD.encode()):
        return data
    if data.startswith(_SH_EXEC_START) and _SH_EXEC_END in data:
        # The sh-exec form uv and pip write when the interpreter path has spaces.
        return _RELOCATABLE_HEAD.encode() + data.split(_SH_EXEC_END, 1)[1]
    if not data.startswith(b"#!"):
        return None
    first, _, rest = data.partition(b"\n")
    if b"python" not in first:
        return None  # a shell script or binary of its own: its shebang is not ours to change
    return _RELOCATABLE_HEAD.encode() + rest


def write_scripts(scripts: Iterable[Script], scripts_dir: Path) -> None:
    """Write copies of shared scripts (later ones win) into an env's scripts directory."""
    mode = stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH
    for script in scripts:
        target = scripts_dir / script.name
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(script.body)


def make_scripts_relocatable(scripts_dir: Path) -> None:
    """Rewrite scripts that name some python by path to run with the python beside them."""
    for script in read_scripts(scripts_dir):
        target = scripts_dir / script.name
        if target.read_bytes() != script.body:
            target.write_bytes(script.body)
