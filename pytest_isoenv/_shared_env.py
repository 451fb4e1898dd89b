"""What base envs and layers have in common: immutable, published venvs shared by tests."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from email.parser import HeaderParser
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from ._dists import Entry, canonical
from ._interpreter import Interpreter
from ._venv import Script, bin_dir, read_scripts, site_packages


@dataclass(frozen=True)
class SharedEnv:
    """A published env every test may read and none may change: the base, or a layer."""

    path: Path
    interpreter: Interpreter
    key: str
    #: The requirements it was built for (``isoenv_requires``, or a marker's).
    requirements: tuple[str, ...]
    #: Its distributions, name -> version: all of the base's; what a layer adds or changes.
    packages: dict[str, str] = field(compare=False)
    #: True when this session built it, False when it was reused.
    built: bool = field(compare=False)
    seconds: float = field(compare=False)
    scripts: tuple[Script, ...] = field(compare=False, repr=False)
    #: The stored distributions it links (empty for a venv of yours).
    entries: tuple[Entry, ...] = field(compare=False, repr=False, default=())
    #: "base" or "layer".
    kind: str = field(compare=False, default="base")
    #: A venv of yours (``--isoenv-base=PATH``), never written.
    external: bool = field(compare=False, default=False)

    def describe(self) -> str:
        """What it is, by what it holds (for messages)."""
        asked = ", ".join(self.requirements) or "nothing"
        if self.external:
            return f"your base venv {self.path}"
        if self.kind == "base":
            return f"the base env (isoenv_requires: {asked})"
        return f"the layer for {asked}"

    @property
    def python(self) -> Path:
        """The env's interpreter."""
        return bin_dir(self.path, self.interpreter) / "python"

    @property
    def bin(self) -> Path:
        """The env's scripts directory."""
        return bin_dir(self.path, self.interpreter)

    @property
    def site_packages(self) -> Path:
        return site_packages(self.path, self.interpreter)

    @functools.cached_property
    def dependents(self) -> dict[str, list[tuple[str, Requirement]]]:
        """For each project name: the installed distributions here that require it, and how."""
        found: dict[str, list[tuple[str, Requirement]]] = {}
        try:
            names = os.listdir(self.site_packages)
        except FileNotFoundError:
            return found
        for name in names:
            if not name.endswith(".dist-info"):
                continue
            try:
                text = (self.site_packages / name / "METADATA").read_text("utf-8", "replace")
            except OSError:
                continue
            metadata = HeaderParser().parsestr(text)
            dist = f"{metadata.get('Name', name)} {metadata.get('Version', '')}".strip()
            for line in metadata.get_all("Requires-Dist") or ():
                try:
                    requirement = Requirement(line)
                except InvalidRequirement:
                    continue
                if requirement.marker is not None and not _applies(requirement):
                    continue
                found.setdefault(canonicalize_name(requirement.name), []).append(
                    (dist, requirement)
                )
        return found

    @classmethod
    def load(
        cls,
        path: Path,
        interpreter: Interpreter,
        key: str,
        manifest: dict[str, Any],
        *,
        built: bool,
        seconds: float,
        entries: tuple[Entry, ...] = (),
        kind: str = "base",
        external: bool = False,
    ) -> SharedEnv:
        return cls(
            path=path,
            interpreter=interpreter,
            key=key,
            requirements=tuple(manifest.get("requirements", ())),
            packages=(
                {entry.name: entry.version for entry in entries}
                if kind == "layer"  # what it adds to the base
                else installed_packages([site_packages(path, interpreter)])
            ),
            built=built,
            seconds=seconds,
            scripts=tuple(read_scripts(bin_dir(path, interpreter))),
            entries=entries,
            kind=kind,
            external=external,
        )


def installed_packages(site_dirs: Iterable[Path]) -> dict[str, str]:
    """Distribution name -> version for the given site-packages, first hit wins."""
    found: dict[str, str] = {}
    for directory in site_dirs:
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            continue
        for name in sorted(names):
            if name.endswith(".dist-info"):
                dist, _, version = name[: -len(".dist-info")].partition("-")
                found.setdefault(canonical(dist), version)
    return found


def _applies(requirement: Requirement) -> bool:
    assert requirement.marker is not None
    try:
        return requirement.marker.evaluate({"extra": ""})
    except Exception:  # an odd marker must not stop the check: assume it applies
        return True


def broken_by(
    versions: dict[str, str], shared: Sequence[SharedEnv], replaced: Iterable[str] = ()
) -> list[str]:
    """Requirements of packages in ``shared`` envs that the new ``versions`` would break.

    ``versions`` maps canonical names to the versions a test's env will see instead; packages
    named in ``replaced`` are themselves being replaced, so their requirements do not count.
    """
    skip = {canonicalize_name(name) for name in (*versions, *replaced)}
    problems: list[str] = []
    for name, version in versions.items():
        try:
            parsed = Version(version)
        except InvalidVersion:
            continue
        for env in shared:
            for dist, requirement in env.dependents.get(canonicalize_name(name), []):
                if canonicalize_name(dist.split()[0]) in skip:
                    continue
                if not requirement.specifier.contains(parsed, prereleases=True):
                    problems.append(
                        f"{name}=={version} conflicts with {dist} (in {env.describe()}), "
                        f"which requires {requirement}"
                    )
    return problems


def verify_venv(root: Path, manifest: dict[str, Any], interpreter: Interpreter) -> str | None:
    """Why an env published for ``interpreter`` can no longer be used, or None."""
    recorded = manifest.get("interpreter")
    if recorded != interpreter.identity():
        return f"its interpreter changed (built for {recorded}, now {interpreter.identity()})"
    try:
        config = (root / "pyvenv.cfg").read_text(encoding="utf-8")
    except OSError:
        return "its pyvenv.cfg is missing"
    home = _config_value(config, "home")
    if home is None or Path(home) != interpreter.home:
        return f"its pyvenv.cfg is broken (home = {home!r}, expected {interpreter.home})"
    python = bin_dir(root, interpreter) / "python"
    if not python.exists():
        return f"its interpreter {python} is gone"
    return None


def _config_value(config: str, wanted: str) -> str | None:
    for line in config.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == wanted:
            return value.strip()
    return None
