"""Real wheels (numpy, pandas, ...) downloaded once into a cache outside the repo, for tests and bench.

The wheelhouse lives in ``$ISOENV_TEST_WHEELHOUSE`` if set, else in
``$XDG_CACHE_HOME/pytest-isoenv-tests/wheelhouse-<python>-<platform>-<digest>`` (``~/.cache`` when
``XDG_CACHE_HOME`` is unset). The digest is that of :data:`REQUIREMENTS`, so changing the list
downloads a new wheelhouse beside the old one. It is downloaded with ``pip download
--only-binary :all:`` into a temporary sibling directory under a file lock and published with one
rename, so xdist workers and concurrent sessions download it once and never see half of it.

``bench/run.py`` imports this module too (it adds ``tests/`` to ``sys.path``): the benchmark
and the tests install the same wheels, offline.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from filelock import FileLock
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

ENV_VAR = "ISOENV_TEST_WHEELHOUSE"
MANIFEST = "wheelhouse.json"
FORMAT = 1

# Each group is one `pip download` (resolved together, so numpy 1.x and 2.x need two groups).
# Markers keep out what has no wheel for the running Python: numpy 1.26 stops at 3.12, pandas 3
# starts at 3.11 (and needs numpy>=2).
REQUIREMENTS: tuple[tuple[str, ...], ...] = (
    ('numpy>=1.26,<2; python_version < "3.13"', 'pandas>=2.2,<2.3; python_version < "3.14"'),
    ('pandas>=3; python_version >= "3.11"',),
    ("numpy>=2", "python-dateutil", "six", "tzdata", "pytz", "attrs", "iniconfig", "pip"),
)


class WheelhouseError(RuntimeError):
    """The real wheelhouse could not be downloaded."""


@dataclass(frozen=True)
class Wheelhouse:
    """A directory of real wheels for the running interpreter."""

    path: Path

    def versions(self, project: str) -> list[Version]:
        """The versions of ``project`` in the wheelhouse, newest first."""
        wanted = canonicalize_name(project)
        found = set()
        for wheel in self.path.glob("*.whl"):
            name, version, _, _ = parse_wheel_filename(wheel.name)
            if name == wanted:
                found.add(version)
        return sorted(found, reverse=True)

    def newest(self, project: str, specifier: str = "") -> Version | None:
        """The newest version of ``project`` matching ``specifier``, or None."""
        spec = SpecifierSet(specifier)
        return next((v for v in self.versions(project) if spec.contains(v, prereleases=True)), None)

    def wheel(self, project: str, specifier: str = "") -> Path:
        """The wheel file of :meth:`newest` (``FileNotFoundError`` if there is none)."""
        version = self.newest(project, specifier)
        for wheel in self.path.glob("*.whl"):
            name, found, _, _ = parse_wheel_filename(wheel.name)
            if name == canonicalize_name(project) and found == version:
                return wheel
        raise FileNotFoundError(f"no {project}{specifier} wheel in {self.path}")


def digest(groups: Sequence[Sequence[str]] = REQUIREMENTS) -> str:
    text = json.dumps({"format": FORMAT, "groups": [list(g) for g in groups]})
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def default_location(groups: Sequence[Sequence[str]] = REQUIREMENTS) -> Path:
    """Where the wheelhouse for the running interpreter goes when ``$ISOENV_TEST_WHEELHOUSE`` is unset."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    tag = f"{sys.implementation.cache_tag}-{platform}"
    return Path(cache) / "pytest-isoenv-tests" / f"wheelhouse-{tag}-{digest(groups)}"


def _complete(path: Path) -> bool:
    """The directory is a published wheelhouse whose files are all there."""
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    files = manifest.get("files")
    return isinstance(files, list) and all((path / str(name)).is_file() for name in files)


def _download(groups: Sequence[Sequence[str]], dest: Path) -> None:
    for group in groups:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--only-binary",
            ":all:",
            "--disable-pip-version-check",
            "--no-input",
            "--quiet",
            "--dest",
            str(dest),
            *group,
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            output = (done.stdout + done.stderr).strip()
            raise WheelhouseError(
                f"could not download the real wheels {', '.join(group)} "
                f"(`{' '.join(command)}` exited {done.returncode}):\n{output}\n"
                f"Set {ENV_VAR} to a directory of wheels, or deselect these tests "
                "with -m 'not realpkgs'."
            )
    files = sorted(p.name for p in dest.iterdir() if p.name.endswith(".whl"))
    manifest = {"format": FORMAT, "groups": [list(g) for g in groups], "files": files}
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")


def ensure_wheelhouse(
    location: Path | None = None, groups: Sequence[Sequence[str]] = REQUIREMENTS
) -> Wheelhouse:
    """The real wheelhouse, downloaded first if it is not there yet.

    ``location`` defaults to ``$ISOENV_TEST_WHEELHOUSE``, then to :func:`default_location`. A
    directory given by the variable that holds wheels but no manifest is used as it is (a
    wheelhouse made by hand, for a machine without the index).
    """
    if location is None:
        given = os.environ.get(ENV_VAR)
        location = Path(given).expanduser() if given else default_location(groups)
        made_by_hand = given and location.is_dir() and not (location / MANIFEST).exists()
        if made_by_hand and any(location.glob("*.whl")):
            return Wheelhouse(location)
    location = location.absolute()
    if _complete(location):
        return Wheelhouse(location)
    location.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(location) + ".lock"):
        if _complete(location):  # another process published it while we waited
            return Wheelhouse(location)
        if location.exists():  # a damaged one (a file deleted by hand): download it again
            shutil.rmtree(location)
        staging = Path(tempfile.mkdtemp(prefix=location.name + ".tmp-", dir=location.parent))
        try:
            _download(groups, staging)
            staging.rename(location)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return Wheelhouse(location)


# -- pytest fixtures (imported by conftest.py) ------------------------------------------------


@pytest.fixture(scope="session")
def real_wheelhouse() -> Wheelhouse:
    """Real wheels (numpy 1.26 and 2.x, pandas 2.2 and 3.x, ...) for this interpreter."""
    try:
        return ensure_wheelhouse()
    except WheelhouseError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="session")
def real_uv_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A uv cache for real wheels: one per session, shared by its xdist workers, kept warm.

    Unpacking numpy into uv's cache costs seconds; uv's cache is safe for concurrent use.
    """
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the session's directory, above the workers' own
    path = base / "real-uv-cache"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture
def offline_real_env(
    monkeypatch: pytest.MonkeyPatch,
    real_wheelhouse: Wheelhouse,
    real_uv_cache: Path,
    tmp_path: Path,
) -> Path:
    """Point uv (for pytester runs) at the real wheelhouse only; returns the isoenv cache dir."""
    for name in list(os.environ):
        if name.startswith(("UV_", "PYTEST_ISOENV_")) or name == "PYTEST_ADDOPTS":
            monkeypatch.delenv(name)
    monkeypatch.setenv("UV_FIND_LINKS", str(real_wheelhouse.path))
    monkeypatch.setenv("UV_CACHE_DIR", str(real_uv_cache))
    monkeypatch.setenv("PYTEST_ISOENV_NO_INDEX", "1")
    cache_dir = tmp_path / "isoenv-cache"
    monkeypatch.setenv("PYTEST_ISOENV_CACHE_DIR", str(cache_dir))
    return cache_dir
