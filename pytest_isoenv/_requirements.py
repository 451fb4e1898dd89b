"""Requirement specs: what the base or a test asks for, parsed once and hashed into cache keys.

A line is a PEP 508 string, a URL, a local project path, ``-e PATH`` or ``-r FILE``; relative
paths are relative to the rootdir. Parsing is static (no file access), so a bad string fails
collection; files are only read when a key is computed or uv runs.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ._errors import MarkerError

PEP508 = "pep508"
URL = "url"
PATH = "path"
EDITABLE = "editable"
FILE = "file"

# Directories that never hold a local project's source: skipped when hashing it.
_SKIPPED_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".tox",
        ".nox",
        ".venv",
        "venv",
        "__pycache__",
        "build",
        "dist",
        "node_modules",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
    }
)
# Files whose content decides what an editable install puts in the env (its sources do not).
_EDITABLE_METADATA = ("pyproject.toml", "setup.cfg", "setup.py")


@dataclass(frozen=True, order=True)
class RequirementLine:
    """One parsed requirement line."""

    kind: str
    value: str

    @property
    def name(self) -> str | None:
        """The canonical project name, when the line states it."""
        if self.kind == PEP508:
            return canonicalize_name(Requirement(self.value).name)
        return None

    def uv_args(self) -> list[str]:
        """The arguments that ask uv for this line."""
        if self.kind == EDITABLE:
            return ["--editable", self.value]
        if self.kind == FILE:
            return ["--requirement", self.value]
        return [self.value]

    def __str__(self) -> str:
        return " ".join(self.uv_args()) if self.kind in (EDITABLE, FILE) else self.value

    def digest_input(self) -> str:
        """The text that stands for this line in a cache key: content, not just names."""
        if self.kind == PATH:
            return f"{self}\0{_tree_digest(Path(self.value))}"
        if self.kind == EDITABLE:
            root = Path(self.value)
            files = [root / name for name in _EDITABLE_METADATA]
            return f"{self}\0{_files_digest(files)}"
        if self.kind == FILE:
            return f"{self}\0{_files_digest(_requirement_files(Path(self.value)))}"
        return str(self)


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _looks_like_path(text: str) -> bool:
    """A local path: explicit (``./x``, ``/x``, ``~/x``), or a bare ``dir/x`` with no spaces."""
    if text.startswith((".", "/", "~")):
        return True
    return os.sep in text and not any(c in text for c in " ;@=<>!~[]")


def parse_line(text: str, rootdir: Path) -> RequirementLine:
    """Parse one requirement line; raise ``MarkerError`` naming the value when it is invalid."""
    if not isinstance(text, str):
        raise MarkerError(f"requirement {text!r} is a {type(text).__name__}, not a string")
    line = text.strip()
    if not line:
        raise MarkerError("empty requirement string")
    for flags, kind in ((("-e", "--editable"), EDITABLE), (("-r", "--requirement"), FILE)):
        for flag in flags:
            if line == flag or line.startswith((flag + " ", flag + "=")):
                target = line[len(flag) :].lstrip(" =").strip()
                if not target:
                    raise MarkerError(f"{text!r}: {flag} needs a path")
                return RequirementLine(kind, str(_absolute(target, rootdir)))
    if line.startswith("-"):
        raise MarkerError(f"{text!r}: only -e PATH and -r FILE options are understood")
    if _URL.match(line):
        return RequirementLine(URL, line)
    if _looks_like_path(line):
        return RequirementLine(PATH, str(_absolute(line, rootdir)))
    try:
        requirement = Requirement(line)
    except InvalidRequirement as error:
        raise MarkerError(f"invalid requirement {text!r}: {error}") from None
    if any(not spec.version.strip() for spec in requirement.specifier):
        raise MarkerError(f"invalid requirement {text!r}: a version specifier without a version")
    return RequirementLine(PEP508, str(requirement))


def parse_lines(texts: Iterable[object], rootdir: Path) -> tuple[RequirementLine, ...]:
    """Parse many lines, dropping duplicates but keeping the first-seen order."""
    seen: dict[RequirementLine, None] = {}
    for text in texts:
        if not isinstance(text, str):
            raise MarkerError(f"requirement {text!r} is a {type(text).__name__}, not a string")
        seen.setdefault(parse_line(text, rootdir), None)
    return tuple(seen)


def digest(parts: Iterable[str]) -> str:
    """A short, stable hex digest of some strings (order matters; sort first when it should not)."""
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(part.encode("utf-8", "surrogateescape"))
        hasher.update(b"\0\1")
    return hasher.hexdigest()[:24]


def lines_digest(lines: Iterable[RequirementLine]) -> str:
    """The content digest of a set of requirement lines (order does not matter)."""
    return digest(sorted(line.digest_input() for line in lines))


def _absolute(target: str, rootdir: Path) -> Path:
    path = Path(os.path.expanduser(target))
    return path if path.is_absolute() else rootdir / path


def _files_digest(files: Iterable[Path]) -> str:
    hasher = hashlib.sha256()
    for file in files:
        hasher.update(str(file).encode("utf-8", "surrogateescape") + b"\0")
        try:
            hasher.update(file.read_bytes())
        except OSError:
            hasher.update(b"<missing>")
    return hasher.hexdigest()


def _requirement_files(first: Path) -> list[Path]:
    """A requirements file and every file it includes with -r/-c, depth first, each once."""
    found: list[Path] = []
    pending = [first]
    while pending:
        file = pending.pop()
        if file in found:
            continue
        found.append(file)
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        for raw in text.splitlines():
            words = raw.split("#", 1)[0].split()
            if len(words) == 2 and words[0] in ("-r", "--requirement", "-c", "--constraint"):
                pending.append(_absolute(words[1], file.parent))
    return found


def _tree_files(root: Path) -> Iterator[Path]:
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(
            d for d in dirnames if d not in _SKIPPED_DIRS and not d.endswith(".egg-info")
        )
        for filename in sorted(filenames):
            yield Path(directory, filename)


def _tree_digest(root: Path) -> str:
    """The content digest of a local (non-editable) project, so a changed source rebuilds."""
    if not root.exists():
        return "<missing>"
    if root.is_file():  # a wheel or sdist on disk
        return _files_digest([root])
    return _files_digest(_tree_files(root))
