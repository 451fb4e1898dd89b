"""A user's own venv as the base (``--isoenv-base=PATH``): checked by reading, never written.

Running uv against the venv would write into it (uv takes a ``.lock`` file in every env it
looks at, even for a dry run), and uv's dry run lists every local or editable project as "to
install" even when it is there. So what ``isoenv_requires`` asks for is checked by reading
the venv's ``*.dist-info`` directories: name and version from ``METADATA``, and, for
projects installed from a path or URL, ``direct_url.json`` (PEP 610).

- A PEP 508 line is satisfied by an installed distribution of that name whose version its
  specifier allows (pre-releases included), whose requirements for the asked extras are
  satisfied in turn, and whose own dependencies are installed, recursively. A line whose
  environment marker does not apply to the venv's interpreter asks for nothing.
- ``name @ URL``, a bare URL, a local path: a distribution whose ``direct_url.json`` names
  that URL (a local path as its ``file://`` URL; a ``vcs+`` prefix and ``#fragment`` are
  ignored); ``-e PATH`` also needs it to be editable.
- ``-r FILE``: every line of the file (and of the files it includes with ``-r``) is read the
  same way, relative to the file's directory; ``-c`` constraints ask for nothing; lines with
  other options (``--index-url``, ``--hash`` ...) or that cannot be parsed are skipped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from ._errors import MarkerError
from ._interpreter import Interpreter
from ._requirements import EDITABLE, FILE, PATH, PEP508, RequirementLine, parse_line
from ._venv import bin_dir, site_packages


@dataclass(frozen=True)
class Installed:
    """One distribution found in a site-packages directory."""

    name: str  # canonical
    version: str
    requires: tuple[str, ...]
    url: str | None  # from direct_url.json
    editable: bool


def read_site_packages(site_packages: Path) -> dict[str, Installed]:
    """Every distribution of ``site_packages`` by canonical name (only reads files)."""
    found: dict[str, Installed] = {}
    try:
        names = sorted(os.listdir(site_packages))
    except OSError:
        return found
    for entry in names:
        if not entry.endswith(".dist-info"):
            continue
        info = site_packages / entry
        try:
            metadata = HeaderParser().parsestr(
                (info / "METADATA").read_text("utf-8", "replace"), headersonly=True
            )
        except OSError:
            continue
        name = metadata.get("Name")
        if not name:
            continue
        url, editable = _direct_url(info)
        found.setdefault(
            canonicalize_name(name),
            Installed(
                canonicalize_name(name),
                str(metadata.get("Version", "")),
                tuple(metadata.get_all("Requires-Dist") or ()),
                url,
                editable,
            ),
        )
    return found


def _direct_url(info: Path) -> tuple[str | None, bool]:
    try:
        data = json.loads((info / "direct_url.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None, False
    if not isinstance(data, dict) or not isinstance(data.get("url"), str):
        return None, False
    url: str = data["url"]
    vcs = data.get("vcs_info")
    if isinstance(vcs, dict) and vcs.get("requested_revision"):
        url = f"{url}@{vcs['requested_revision']}"
    dir_info = data.get("dir_info")
    return url, bool(isinstance(dir_info, dict) and dir_info.get("editable"))


def _same_url(installed: str | None, wanted: str) -> bool:
    """Whether a ``direct_url.json`` URL is the one asked for (paths compared as paths)."""
    if installed is None:
        return False
    wanted = wanted.split("#", 1)[0]
    scheme = wanted.split("://", 1)[0]
    if "+" in scheme:  # git+https://... is recorded as https://... with vcs_info
        wanted = wanted[scheme.index("+") + 1 :]
    if installed.startswith("file:") and wanted.startswith("file:"):
        return _file_path(installed) == _file_path(wanted)
    return installed.rstrip("/") == wanted.rstrip("/")


def _file_path(url: str) -> str:
    return os.path.realpath(unquote(urlsplit(url).path))


def _environment(version: Sequence[int]) -> dict[str, str]:
    environment = {key: str(value) for key, value in default_environment().items()}
    environment["python_version"] = f"{version[0]}.{version[1]}"
    environment["python_full_version"] = ".".join(str(part) for part in version[:3])
    return environment


class VenvChecker:
    """Answers whether a venv holds what requirement lines ask for."""

    def __init__(self, site_packages: Path, version: Sequence[int]) -> None:
        self.installed = read_site_packages(site_packages)
        self.environment = _environment(version)

    def missing(self, lines: Iterable[RequirementLine]) -> list[str]:
        """What ``lines`` ask for that the venv lacks, each said once."""
        problems: dict[str, None] = {}
        for line in lines:
            for problem in self._line(line, set()):
                problems.setdefault(problem, None)
        return list(problems)

    def _line(self, line: RequirementLine, seen_files: set[Path]) -> list[str]:
        if line.kind == PEP508:
            return self._requirement(Requirement(line.value), set())
        if line.kind == FILE:
            return self._file(Path(line.value), seen_files)
        wanted = line.value if line.kind not in (PATH, EDITABLE) else Path(line.value).as_uri()
        for dist in self.installed.values():
            if _same_url(dist.url, wanted) and (line.kind != EDITABLE or dist.editable):
                return self._dependencies(dist, (), {dist.name})
        kind = "an editable install of " if line.kind == EDITABLE else ""
        return [f"{kind}{line.value}"]

    def _requirement(  # noqa: PLR0911 - one return per way a line is (not) met
        self, requirement: Requirement, seen: set[str], by: Installed | None = None
    ) -> list[str]:
        env = {**self.environment, "extra": ""}
        if requirement.marker is not None and not requirement.marker.evaluate(env):
            return []
        name = canonicalize_name(requirement.name)
        dist = self.installed.get(name)
        wanted = str(requirement) + (f", required by {by.name} {by.version}" if by else "")
        if dist is None:
            return [wanted]
        if requirement.url is not None:
            if not _same_url(dist.url, requirement.url):
                return [f"{wanted} ({dist.version} is installed from elsewhere)"]
        elif requirement.specifier:
            try:
                version = Version(dist.version)
            except InvalidVersion:
                return [f"{wanted} (the installed version {dist.version!r} is invalid)"]
            if not requirement.specifier.contains(version, prereleases=True):
                return [f"{wanted} ({dist.version} is installed)"]
        if name in seen:
            return []
        return self._dependencies(dist, tuple(requirement.extras), {*seen, name})

    def _dependencies(self, dist: Installed, extras: Sequence[str], seen: set[str]) -> list[str]:
        """What ``dist`` itself requires (with ``extras``) and the venv lacks."""
        problems: list[str] = []
        for text in dist.requires:
            try:
                requirement = Requirement(text)
            except InvalidRequirement:
                continue
            marker = requirement.marker
            if marker is not None and not any(
                marker.evaluate({**self.environment, "extra": extra}) for extra in ("", *extras)
            ):
                continue
            requirement.marker = None
            problems += self._requirement(requirement, seen, dist)
        return problems

    def _file(self, file: Path, seen_files: set[Path]) -> list[str]:
        if file in seen_files:
            return []
        seen_files.add(file)
        try:
            text = file.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as error:
            return [f"-r {file} (cannot be read: {error})"]
        problems: list[str] = []
        for raw in text.replace("\\\n", " ").splitlines():
            words = raw.split(" #", 1)[0].strip()
            if not words or words.startswith("#"):
                continue
            if words.startswith(("-c ", "--constraint")):
                continue
            try:
                line = parse_line(words, file.parent)
            except MarkerError:
                continue  # an option line (--index-url, --hash ...): it asks for no package
            problems += self._line(line, seen_files)
        return problems


def uv_view(venv: Path, root: Path, interpreter: Interpreter) -> Path:
    """A stand-in for ``venv`` at ``root`` that uv may look at (and write its lock file in).

    uv asks what a layer or a run-time install needs by a dry run against the base, and
    takes a lock file in the env it looks at. The view is a venv of our own whose
    site-packages is a symbolic link to the user's: uv reads the user's packages through it
    and writes only here.
    """
    if (root / "pyvenv.cfg").is_file():
        return root
    staging = root.with_name(f"{root.name}.tmp-{os.getpid()}")
    bin_path = bin_dir(staging, interpreter)
    bin_path.mkdir(parents=True)
    (staging / "pyvenv.cfg").write_bytes((venv / "pyvenv.cfg").read_bytes())
    (bin_path / "python").symlink_to(interpreter.executable)
    target = site_packages(venv, interpreter).resolve()
    for relative in dict.fromkeys((interpreter.purelib, interpreter.prefix_purelib)):
        link = staging / relative
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target, target_is_directory=True)
    try:
        os.rename(staging, root)
    except OSError:  # another xdist worker made it first
        if not (root / "pyvenv.cfg").is_file():
            raise
        import shutil  # noqa: PLC0415

        shutil.rmtree(staging, ignore_errors=True)
    return root
