"""Requirement specs: what the base or a test asks for, parsed once and hashed into cache keys.

A line is a PEP 508 string, a URL, a local project path, ``-e PATH`` or ``-r FILE``; relative
paths are relative to the rootdir. Parsing is static (no file access), so a bad string fails
collection; files are only read when a key is computed or uv runs.
"""

from __future__ import annotations

import configparser
import hashlib
import os
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ._errors import MarkerError
from ._redact import redact

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
# Files at an editable project's root that build backends read metadata from without being
# told (pbr and hatch-requirements-txt read requirements.txt, flit and others VERSION). Not
# every file: test reports written to the root (junit.xml, coverage.xml) would rebuild the
# base after every run.
_ROOT_METADATA_SUFFIXES = frozenset({".txt", ".in", ".cfg", ".toml"})
_ROOT_METADATA_NAMES = frozenset({"VERSION", "PKG-INFO"})
# Keys of pyproject.toml tables that name files a backend reads metadata from.
_FILE_KEYS = frozenset({"file", "files", "path", "paths"})


@dataclass(frozen=True, order=True, repr=False)
class RequirementLine:
    """One parsed requirement line.

    ``root`` is the directory uv runs in: paths inside ``-r`` files are relative to it (as
    they are for uv), so it is needed to hash what they name. It is not part of equality.
    """

    kind: str
    value: str
    root: str = field(default="", compare=False, repr=False)

    @property
    def name(self) -> str | None:
        """The canonical project name, when the line states it."""
        if self.kind == PEP508:
            return canonicalize_name(Requirement(self.value).name)
        return None

    def uv_args(self) -> list[str]:
        """The arguments that ask uv for this line (credentials included: for uv only)."""
        if self.kind == EDITABLE:
            return ["--editable", self.value]
        if self.kind == FILE:
            return ["--requirement", self.value]
        return [self.value]

    @property
    def display(self) -> str:
        """The line as a person wrote it, credentials in URLs replaced by ``****``.

        What terminal lines, errors and manifests show; ``str()`` gives the same.
        """
        if self.kind == EDITABLE:
            return redact(f"-e {self.value}")
        if self.kind == FILE:
            return f"-r {self.value}"
        return redact(self.value)

    def __str__(self) -> str:
        return self.display

    def __repr__(self) -> str:  # a traceback or assertion shows no credentials either
        return f"RequirementLine(kind={self.kind!r}, value={redact(self.value)!r})"

    @property
    def project(self) -> Path | None:
        """The local directory (or wheel, sdist) this line installs, if it names one."""
        if self.kind in (PATH, EDITABLE):
            target = _split_extras(self.value)[0]
            return _file_url_path(target, self._root) if _URL.match(target) else Path(target)
        if self.kind == URL:
            return _file_url_path(self.value, self._root)
        if self.kind == PEP508:
            url = Requirement(self.value).url
            return _file_url_path(url, self._root) if url else None
        return None

    @property
    def _root(self) -> Path:
        return Path(self.root) if self.root else Path.cwd()

    def digest_input(self) -> str:
        """The text that stands for this line in a cache key: content, not just names.

        Credentials are left out, so a rotated token reuses what was built with the old one.
        """
        if self.kind == FILE:
            return f"{self}\0{_requirements_digest(Path(self.value), self._root)}"
        project = self.project
        if project is None:
            return str(self)
        if self.kind == EDITABLE:
            return f"{self}\0{_files_digest(_editable_files(project))}"
        return f"{self}\0{_tree_digest(project)}"


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# Extras after a local path: ``./proj[test, docs]``.
_EXTRAS = re.compile(r"^(?P<path>.*?)\s*(?P<extras>\[[^\[\]]*\])$")


def _looks_like_path(text: str) -> bool:
    """A local path: explicit (``./x``, ``/x``, ``~/x``), or a bare ``dir/x`` with no spaces."""
    if text.startswith((".", "/", "~")):
        return True
    return os.sep in text and not any(c in text for c in " ;@=<>!~[]")


def _split_extras(text: str) -> tuple[str, str]:
    """``./proj[x]`` -> (``./proj``, ``[x]``); a path without extras -> (path, '')."""
    match = _EXTRAS.match(text)
    if match is None:
        return text, ""
    return match["path"], match["extras"].replace(" ", "")


def _local_target(target: str, rootdir: Path) -> str:
    """A project path made absolute, its extras kept after it (uv takes ``/abs/proj[x]``)."""
    if _URL.match(target):
        return target
    path, extras = _split_extras(target)
    return f"{_absolute(path, rootdir)}{extras}"


def parse_line(text: str, rootdir: Path) -> RequirementLine:
    """Parse one requirement line; raise ``MarkerError`` naming the value when it is invalid."""
    if not isinstance(text, str):
        raise MarkerError(f"requirement {text!r} is a {type(text).__name__}, not a string")
    line = text.strip()
    if not line:
        raise MarkerError("empty requirement string")
    root = str(rootdir)
    shown = redact(text)
    for flags, kind in ((("-e", "--editable"), EDITABLE), (("-r", "--requirement"), FILE)):
        for flag in flags:
            if line == flag or line.startswith((flag + " ", flag + "=")):
                target = line[len(flag) :].lstrip(" =").strip()
                if not target:
                    raise MarkerError(f"{shown!r}: {flag} needs a path")
                if kind == FILE:
                    return RequirementLine(kind, str(_absolute(target, rootdir)), root)
                return RequirementLine(kind, _local_target(target, rootdir), root)
    if line.startswith("-"):
        raise MarkerError(f"{shown!r}: only -e PATH and -r FILE options are understood")
    if _URL.match(line):
        return RequirementLine(URL, line, root)
    if _looks_like_path(line):
        return RequirementLine(PATH, _local_target(line, rootdir), root)
    try:
        requirement = Requirement(line)
    except InvalidRequirement as error:
        raise MarkerError(f"invalid requirement {shown!r}: {redact(str(error))}") from None
    if any(not spec.version.strip() for spec in requirement.specifier):
        raise MarkerError(f"invalid requirement {shown!r}: a version specifier without a version")
    return RequirementLine(PEP508, str(requirement), root)


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


def local_project_names(lines: Iterable[RequirementLine]) -> list[str]:
    """The names of the local project directories ``lines`` install, ``-r`` files included.

    uv caches what it builds from a local directory and rebuilds it only when the project's
    ``pyproject.toml``, ``setup.py`` or ``setup.cfg`` changes (and, for a path given on its
    command line, on every install): a source edit, or a ``requirements.txt`` its metadata
    is read from, would be missed. Installs pass these names to ``uv --reinstall-package``.
    A project whose name cannot be read statically is left out.
    """
    names: dict[str, None] = {}
    for line in _expanded(lines):
        project = line.project
        if project is None or not project.is_dir():
            continue
        name = line.name or project_name(project)
        if name is not None:
            names.setdefault(name, None)
    return list(names)


def project_name(project: Path) -> str | None:
    """The canonical name of the project in directory ``project``, read statically.

    From ``[project] name`` in ``pyproject.toml``, else ``[metadata] name`` in ``setup.cfg``,
    else a literal ``name=`` in ``setup.py``; None when none of them says.
    """
    name = _get(_load_toml(project / "pyproject.toml"), ("project", "name"))
    if isinstance(name, str) and name.strip():
        return canonicalize_name(name)
    setup_cfg = _read_ini(project / "setup.cfg")
    if setup_cfg is not None and setup_cfg.get("metadata", "name", fallback="").strip():
        return canonicalize_name(setup_cfg.get("metadata", "name").strip())
    try:
        setup_py = (project / "setup.py").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    match = re.search(r"""\bname\s*=\s*['"]([A-Za-z0-9][A-Za-z0-9._-]*)['"]""", setup_py)
    return canonicalize_name(match[1]) if match else None


# -- what a -r file includes -----------------------------------------------------------------


def _expanded(lines: Iterable[RequirementLine]) -> Iterator[RequirementLine]:
    """``lines``, with the project lines found in their ``-r`` files (and theirs) added."""
    for line in lines:
        yield line
        if line.kind == FILE:
            yield from _requirement_file_inputs(Path(line.value), line._root)[1]


_FILE_OPTIONS = {
    "-r": "requirement",
    "--requirement": "requirement",
    "-c": "constraint",
    "--constraint": "constraint",
    "-e": "editable",
    "--editable": "editable",
}
_ENV_VAR = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


def _option(line: str) -> tuple[str, str] | None:
    """(``requirement|constraint|editable``, its value) when ``line`` is one of those options.

    Accepted as uv does: ``-r FILE``, ``-rFILE``, ``--requirement FILE``, ``--requirement=FILE``.
    """
    for flag in sorted(_FILE_OPTIONS, key=len, reverse=True):
        if not line.startswith(flag):
            continue
        rest = line[len(flag) :]
        if flag.startswith("--") and rest[:1] not in ("", " ", "\t", "="):
            continue
        value = rest.strip().removeprefix("=").strip()
        return _FILE_OPTIONS[flag], value
    return None


def _logical_lines(text: str) -> Iterator[str]:
    """A requirements file's lines: continuations joined, comments dropped, ``${VAR}`` expanded."""
    pending = ""
    for raw in text.splitlines():
        if raw.endswith("\\"):
            pending += raw[:-1]
            continue
        line, pending = pending + raw, ""
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        if line:
            yield _ENV_VAR.sub(lambda m: os.environ.get(m[1], m[0]), line)
    if pending.strip():
        yield pending.strip()


def _requirement_file_inputs(first: Path, root: Path) -> tuple[list[Path], list[RequirementLine]]:
    """A requirements file's inputs: every file it includes (``-r``/``-c``, relative to the
    including file, each once) and every local project line in them (relative to ``root``).
    """
    files: list[Path] = []
    projects: list[RequirementLine] = []
    pending = [first]
    while pending:
        file = pending.pop()
        if file in files:
            continue
        files.append(file)
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        for logical in _logical_lines(text):
            option = _option(logical)
            if option is not None and option[0] in ("requirement", "constraint"):
                if option[1]:
                    pending.append(_absolute(option[1], file.parent))
                continue
            if option is not None:
                line = f"-e {option[1]}"
            elif logical.startswith("-"):
                continue  # other options (--index-url, --hash on its own line, ...)
            else:
                # a requirement's own options (--hash=..., --config-settings ...) follow it
                line = re.split(r"\s+--?[A-Za-z]", logical, maxsplit=1)[0]
            try:
                parsed = parse_line(line, root)
            except (MarkerError, ValueError):
                continue  # uv will say what is wrong with it
            if parsed.project is not None:
                projects.append(parsed)
    return files, projects


def _requirements_digest(first: Path, root: Path) -> str:
    """A requirements file's content, of the files it includes, and of the projects they name."""
    files, projects = _requirement_file_inputs(first, root)
    return digest([_files_digest(files), *sorted(line.digest_input() for line in projects)])


# -- local projects --------------------------------------------------------------------------


def _absolute(target: str, rootdir: Path) -> Path:
    path = Path(os.path.expanduser(target))
    return path if path.is_absolute() else rootdir / path


def _file_url_path(url: str, root: Path) -> Path | None:
    """The local path of a ``file:`` URL (relative ones are relative to ``root``), else None."""
    url = re.split(r"\s+;", url, maxsplit=1)[0].strip()  # a marker after a URL line
    parts = urlsplit(url)
    if parts.scheme.lower() != "file" or parts.netloc not in ("", "localhost"):
        return None
    path = Path(url2pathname(unquote(parts.path)))
    return path if path.is_absolute() else root / path


def _files_digest(files: Iterable[Path]) -> str:
    hasher = hashlib.sha256()
    for file in files:
        hasher.update(str(file).encode("utf-8", "surrogateescape") + b"\0")
        try:
            hasher.update(file.read_bytes())
        except OSError:
            hasher.update(b"<missing>")
    return hasher.hexdigest()


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


def _editable_files(root: Path) -> list[Path]:
    """What decides an editable install of ``root``: its metadata, not its Python sources.

    Its metadata files; every file they name as a metadata source (dependencies, version or
    readme read from a file); and the files at its root that may hold metadata.
    """
    files = [root / name for name in _EDITABLE_METADATA]
    files += _metadata_sources(root)
    try:
        entries = sorted(root.iterdir())
    except OSError:
        entries = []
    files += [
        entry
        for entry in entries
        if not entry.name.startswith(".")
        and (
            entry.suffix in _ROOT_METADATA_SUFFIXES
            or entry.name in _ROOT_METADATA_NAMES
            or entry.name.startswith("requirements")
        )
        and entry.is_file()
    ]
    return list(dict.fromkeys(files))


def _metadata_sources(root: Path) -> list[Path]:
    """The files ``pyproject.toml`` or ``setup.cfg`` name as sources of metadata.

    setuptools (``[tool.setuptools.dynamic] dependencies = {file = [...]}``, ``setup.cfg``
    ``file:`` values), hatch (``[tool.hatch.version] path``, the requirements_txt hook's
    files), pdm (``[tool.pdm.version] path``), and the readme and license files.
    """
    data = _load_toml(root / "pyproject.toml")
    names: list[str] = []
    project = data.get("project", {})
    if isinstance(project, dict):
        readme = project.get("readme")
        names += [readme] if isinstance(readme, str) else _named_files(readme)
        names += _named_files(project.get("license"))
    tool = data.get("tool", {})
    for path in (
        ("setuptools", "dynamic"),
        ("hatch", "version"),
        ("hatch", "metadata"),
        ("hatch", "build", "hooks"),
        ("pdm", "version"),
    ):
        names += _named_files(_get(tool, path))
    hook = _get(tool, ("hatch", "metadata", "hooks", "requirements_txt"))
    names += _strings(_get(hook, ("optional-dependencies",)))
    setup_cfg = _read_ini(root / "setup.cfg")
    if setup_cfg is not None:
        for section in setup_cfg.sections():
            for _, value in setup_cfg.items(section):
                if value.strip().startswith("file:"):
                    names += [n.strip() for n in value.strip()[5:].split(",") if n.strip()]
    return [root / name for name in names if name]


def _get(data: object, path: tuple[str, ...]) -> object:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _strings(value: object) -> list[str]:
    """Every string in a TOML value (lists and tables searched)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    return []


def _named_files(value: object) -> list[str]:
    """The values of every ``file``/``files``/``path``/``paths`` key in a TOML value."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _strings(item) if key in _FILE_KEYS else _named_files(item)
    elif isinstance(value, list):
        for item in value:
            found += _named_files(item)
    return found


def _read_ini(path: Path) -> configparser.ConfigParser | None:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, configparser.Error):
        return None
    return parser


# -- reading pyproject.toml ------------------------------------------------------------------


def _load_toml(path: Path) -> dict[str, Any]:
    """A TOML file's tables, or an empty dict when it is missing or cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    if sys.version_info >= (3, 11):
        import tomllib  # noqa: PLC0415 - only where it exists

        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            return {}
    return toml_subset(text)


def toml_subset(text: str) -> dict[str, Any]:
    """Just enough TOML for Python 3.9/3.10, which lack ``tomllib``: tables, dotted keys,
    strings, arrays, inline tables (other values are kept as their text). ``{}`` on an error.
    """
    try:
        return _TomlSubset(text).parse()
    except (ValueError, IndexError, KeyError):
        return {}


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_SCALAR = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?|[^\s,\]}#]+"
)
_ESCAPES = {
    "b": "\b",
    "t": "\t",
    "n": "\n",
    "f": "\f",
    "r": "\r",
    '"': '"',
    "\\": "\\",
    "e": "\x1b",
}


class _TomlSubset:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def parse(self) -> dict[str, Any]:
        root: dict[str, Any] = {}
        table = root
        while True:
            self._skip(newlines=True)
            if self.pos >= len(self.text):
                return root
            if self.text.startswith("[[", self.pos):
                self.pos += 2
                keys = self._keys()
                self._expect("]]")
                array = self._table(root, keys[:-1]).setdefault(keys[-1], [])
                if not isinstance(array, list):
                    raise ValueError("not an array of tables")
                table = {}
                array.append(table)
            elif self.text.startswith("[", self.pos):
                self.pos += 1
                keys = self._keys()
                self._expect("]")
                table = self._table(root, keys)
            else:
                keys = self._keys()
                self._expect("=")
                self._table(table, keys[:-1])[keys[-1]] = self._value()
            self._skip()
            if self.pos < len(self.text) and self.text[self.pos] not in "\r\n":
                raise ValueError(f"unexpected text at {self.pos}")

    @staticmethod
    def _table(table: dict[str, Any], keys: list[str]) -> dict[str, Any]:
        for key in keys:
            found = table.setdefault(key, {})
            if isinstance(found, list) and found:
                found = found[-1]
            if not isinstance(found, dict):
                raise ValueError(f"{key} is not a table")
            table = found
        return table

    def _skip(self, *, newlines: bool = False) -> None:
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char in " \t" or (newlines and char in "\r\n"):
                self.pos += 1
            elif char == "#":
                while self.pos < len(self.text) and self.text[self.pos] != "\n":
                    self.pos += 1
            else:
                return

    def _expect(self, token: str) -> None:
        self._skip()
        if not self.text.startswith(token, self.pos):
            raise ValueError(f"expected {token!r} at {self.pos}")
        self.pos += len(token)

    def _keys(self) -> list[str]:
        keys: list[str] = []
        while True:
            self._skip()
            char = self.text[self.pos]
            if char in "\"'":
                keys.append(self._string())
            else:
                match = _BARE_KEY.match(self.text, self.pos)
                if match is None:
                    raise ValueError(f"expected a key at {self.pos}")
                keys.append(match[0])
                self.pos = match.end()
            self._skip()
            if not self.text.startswith(".", self.pos):
                return keys
            self.pos += 1

    def _value(self) -> Any:
        self._skip()
        char = self.text[self.pos]
        if char in "\"'":
            return self._string()
        if char == "[":
            self.pos += 1
            items: list[Any] = []
            while True:
                self._skip(newlines=True)
                if self.text.startswith("]", self.pos):
                    self.pos += 1
                    return items
                items.append(self._value())
                self._skip(newlines=True)
                if self.text.startswith(",", self.pos):
                    self.pos += 1
                elif not self.text.startswith("]", self.pos):
                    raise ValueError(f"expected ',' or ']' at {self.pos}")
        if char == "{":
            self.pos += 1
            table: dict[str, Any] = {}
            self._skip()
            if self.text.startswith("}", self.pos):
                self.pos += 1
                return table
            while True:
                keys = self._keys()
                self._expect("=")
                self._table(table, keys[:-1])[keys[-1]] = self._value()
                self._skip()
                char = self.text[self.pos]
                self.pos += 1
                if char == "}":
                    return table
                if char != ",":
                    raise ValueError(f"expected ',' or '}}' at {self.pos}")
        match = _SCALAR.match(self.text, self.pos)
        if match is None:
            raise ValueError(f"expected a value at {self.pos}")
        self.pos = match.end()
        return {"true": True, "false": False}.get(match[0], match[0])

    def _string(self) -> str:
        quote = self.text[self.pos]
        multiline = self.text.startswith(quote * 3, self.pos)
        self.pos += 3 if multiline else 1
        if multiline and self.text.startswith("\n", self.pos):
            self.pos += 1
        elif multiline and self.text.startswith("\r\n", self.pos):
            self.pos += 2
        out: list[str] = []
        while True:
            char = self.text[self.pos]
            if multiline and self.text.startswith(quote * 3, self.pos):
                # up to two more quotes just before the closing ones belong to the string
                extra = 0
                while extra < 2 and self.text.startswith(quote, self.pos + 3 + extra):
                    extra += 1
                out.append(quote * extra)
                self.pos += 3 + extra
                return "".join(out)
            if not multiline and char == quote:
                self.pos += 1
                return "".join(out)
            if char == "\n" and not multiline:
                raise ValueError("newline in a string")
            if char == "\\" and quote == '"':
                out.append(self._escape(multiline))
                continue
            out.append(char)
            self.pos += 1

    def _escape(self, multiline: bool) -> str:
        code = self.text[self.pos + 1]
        if code in _ESCAPES:
            self.pos += 2
            return _ESCAPES[code]
        if code in "uU":
            size = 4 if code == "u" else 8
            digits = self.text[self.pos + 2 : self.pos + 2 + size]
            self.pos += 2 + size
            return chr(int(digits, 16))
        if multiline and code in " \t\r\n":
            # a line-ending backslash: the newline and the whitespace after it are dropped
            self.pos += 1
            while self.text[self.pos] in " \t\r\n":
                self.pos += 1
            return ""
        raise ValueError(f"invalid escape at {self.pos}")
