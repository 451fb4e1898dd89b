"""Coverage of derived envs: what their processes run is measured and joins pytest-cov's report.

pytest-cov (``--cov``) measures the pytest process. What a test runs in its env
(``isoenv.run``, ``subprocess`` with ``isoenv.env`` or with the ``os.environ`` the fixture sets,
``inside`` children) runs in other processes, with the env's interpreter. For those, without any
set-up by the user:

- Each derived env links, after its own packages, a small site directory of this session holding
  the host's coverage (the same version, for the env's interpreter, kept in the store of
  distributions) and a start-up hook, a ``.pth`` file calling ``coverage.process_startup()``. An
  env that holds coverage itself keeps its own; only the hook is added.
- ``DerivedEnv.env`` carries ``COVERAGE_PROCESS_CONFIG``: the configuration pytest-cov's
  coverage runs with (``--cov`` sources, ``--cov-branch``, omit, ...), taken from the running
  ``Coverage`` object, with ``parallel`` on and the data file in this process's part of the
  session directory. Nothing is written into the project meanwhile.
- When the test loop ends, this process combines those data files into one, mapping the files
  of a non-editable install of the project back to its sources, and writes it beside
  pytest-cov's data file, where pytest-cov's own combine (in this process, or in the xdist
  controller) reads it and deletes it.

A session without ``--cov`` never imports this module.
"""

from __future__ import annotations

import copy
import filecmp
import json
import os
import shutil
import socket
import sys
import uuid
import warnings
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import pytest

from ._compose import mirror_bytecode

if TYPE_CHECKING:
    from ._dists import Entry
    from ._installer import Installer
    from ._interpreter import Interpreter
    from ._shared_env import SharedEnv

#: The name pytest-cov registers its plugin under, with ``--cov`` only.
PYTEST_COV = "_cov"
#: The variable that tells coverage (7.10 and newer) in a new process what to measure.
VARIABLE = "COVERAGE_PROCESS_CONFIG"
#: The oldest coverage that reads ``COVERAGE_PROCESS_CONFIG``.
OLDEST = (7, 10)
HOOK_FILE = "_pytest_isoenv_coverage.pth"
# The start-up hook. A .pth line runs only when it starts with "import"; exec() makes room for
# a try. A coverage that fails to start says so (on stderr, as site.py reports .pth errors):
# a silent failure would only show as lines missing from the report.
_HOOK = (
    "import os; exec("
    + repr(
        f"if os.environ.get({VARIABLE!r}):\n"
        " try:\n"
        "  import coverage\n"
        " except ImportError:\n"
        "  pass\n"
        " else:\n"
        "  coverage.process_startup()\n"
    )
    + ")\n"
)
_DATA = "data"


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for part in text.split(".")[:2]:
        digits = "".join(c for c in part if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


@dataclass
class EnvCoverage:
    """How this process's derived envs are measured, and where their data goes."""

    #: The ``Coverage`` object pytest-cov runs in this process.
    host: Any
    #: The host's coverage version: what envs get.
    version: str
    #: The module directory of the host's coverage (to find its distribution).
    module_dir: Path
    #: pytest-cov's data file (absolute): its combine reads ``<target>.*``.
    target: Path
    #: The configuration the env processes run with; paths already absolute.
    config: Any
    #: pytest-cov measures no named source: it measures everything outside the envs.
    everything: bool
    #: The host stores paths relative to this directory (``relative_files``), else None.
    relative_to: Path | None
    #: Where a non-editable install's files are looked for: ``<root>/<path in site-packages>``.
    source_roots: list[Path]
    _directory: Path | None = None
    _variables: dict[str, str] | None = None
    _roots: list[Path] = field(default_factory=list)
    _sites: dict[tuple[Path, bool], Path] = field(default_factory=dict)
    _mapped: dict[str, str] = field(default_factory=dict)
    _projects: dict[Path, list[Path]] = field(default_factory=dict)

    # -- the derived envs' side --------------------------------------------------------------

    def links(
        self, view: SharedEnv, own: bool, *, installer: Installer, pycache: Path, directory: Path
    ) -> list[Path]:
        """What a derived env of ``view`` links after its own packages (and pip).

        ``own``: the view holds coverage itself, which then is the one that runs. Made in
        ``directory``, this process's own (its data files go there too).
        """
        key = (view.interpreter.executable, own)
        site = self._sites.get(key)
        if site is None:
            site = self._in(directory) / f"site-{len(self._sites)}"
            site.mkdir()
            entry = None if own else self._entry(installer, view.interpreter)
            if entry is not None:
                for name in entry.top_level:
                    if not name.endswith(".pth"):  # its own hook: ours starts any version
                        os.symlink(entry.site / name, site / name)
            (site / HOOK_FILE).write_text(_HOOK, encoding="utf-8")
            # Bytecode: coverage's modules compiled by an earlier session are used again.
            mirror_bytecode(site, pycache)
            self._sites[key] = site
        return [site]

    def variables(
        self, base: SharedEnv, *, directory: Path, roots: Sequence[Path]
    ) -> dict[str, str]:
        """The variables of every derived env: coverage's configuration for a new process.

        ``roots``: where pytest-isoenv's own files are (the store, the session directory),
        left out of a bare ``--cov``'s measure as the host leaves out its site-packages.
        """
        if self._variables is None:
            config = copy.copy(self.config)
            config.data_file = str(self._in(directory) / _DATA / ".coverage")
            self._roots = list(roots)
            if base.external:
                self._roots.append(base.path)
            if self.everything:
                # As the host leaves out its site-packages: the envs' packages are not the
                # project's code (a project installed in them is measured with --cov=NAME).
                config.run_omit = [*config.run_omit, *(f"{root}{os.sep}*" for root in self._roots)]
            self._variables = {VARIABLE: config.serialize()}
        return dict(self._variables)

    def _in(self, directory: Path) -> Path:
        """This process's coverage directory (made at first use): data files, site dirs."""
        if self._directory is None:
            (directory / _DATA).mkdir(parents=True, exist_ok=True)
            self._directory = directory
        return self._directory

    def _entry(self, installer: Installer, interpreter: Interpreter) -> Entry | None:
        """The stored coverage for ``interpreter``; None (with a warning) when there is none."""
        from . import _interpreter  # noqa: PLC0415
        from ._errors import InstallError  # noqa: PLC0415

        if interpreter == _interpreter.current():
            found = _host_entry(installer, interpreter, self.module_dir, self.version)
            if found is not None:
                return found
        found = installer.dists.lookup(
            "coverage", self.version, installer.settings_digest(interpreter)
        )
        if found is not None:
            return found
        problem = ""
        # The host's version, else the newest this interpreter has (coverage 7.11 left 3.9):
        # coverage 7 writes data files of one format.
        for wanted in (f"coverage=={self.version}", "coverage>={}.{}".format(*OLDEST)):
            try:
                entries = installer.install_entries(interpreter, [wanted], no_deps=True)
            except InstallError as error:
                problem = error.output
                continue
            found = next((e for e in entries if e.name == "coverage"), None)
            if found is not None:
                return found
        warnings.warn(
            _coverage_warning(
                f"isoenv: code run in envs of {interpreter} is not measured: coverage could "
                f"not be installed for it:\n{problem}"
            ),
            stacklevel=1,
        )
        return None

    # -- the end of the test loop ------------------------------------------------------------

    def combine(self, worker: str) -> None:
        """Join the env processes' data into one file beside pytest-cov's data file."""
        if self._directory is None:
            return
        files = sorted((self._directory / _DATA).glob(".coverage.*"))
        if not files:
            return
        from coverage import CoverageData  # noqa: PLC0415
        from coverage.exceptions import CoverageException  # noqa: PLC0415

        host = socket.gethostname().replace(".", "_")
        suffix = f"{host}.isoenv-{worker}.pid{os.getpid()}.X{uuid.uuid4().hex[:8]}x"
        combined = CoverageData(basename=str(self.target), suffix=suffix)
        for path in files:
            data = CoverageData(basename=str(path))
            try:
                combined.update(data, map_path=self._map)
            except (CoverageException, OSError, ValueError):
                # A process still writing it (one left running in the background), or one
                # measured with another coverage's settings: this file is left out.
                pass
            finally:
                _close(data)
                path.unlink(missing_ok=True)
        measured = bool(combined.measured_files())
        _close(combined)
        if not measured:
            Path(combined.data_filename()).unlink(missing_ok=True)
            return
        # The host's coverage would warn, as it saves, that it collected nothing and never saw
        # the sources imported: the envs did. (Private attributes, the ones pytest-cov itself
        # sets on xdist workers for the same reason; left alone if a coverage has them not.)
        for name in ("_warn_no_data", "_warn_unimported_source"):
            if hasattr(self.host, name):
                setattr(self.host, name, False)

    def _map(self, path: str) -> str:
        """``path`` as the report shows it: an installed copy of a source file as the source."""
        found = self._mapped.get(path)
        if found is None:
            found = self._source_of(path) or path
            if self.relative_to is not None and found.startswith(str(self.relative_to) + os.sep):
                found = os.path.relpath(found, self.relative_to)
            self._mapped[path] = found
        return found

    def _source_of(self, path: str) -> str | None:
        if not any(path.startswith(str(root) + os.sep) for root in self._roots):
            return None
        roots = list(self.source_roots)
        dists = f"{self._roots[0]}{os.sep}dists{os.sep}"
        marker = f"{os.sep}site-packages{os.sep}"
        if path.startswith(dists):  # <store>/dists/<entry>/site/<path in site-packages>
            entry, _, rest = path[len(dists) :].partition(os.sep)
            kind, _, rel = rest.partition(os.sep)
            if kind != "site" or not rel:
                return None
            roots = self._project_dirs(Path(dists) / entry) + roots
        elif marker in path:  # a derived env's own site-packages, or a venv of yours
            rel = path[path.rindex(marker) + len(marker) :]
        else:
            return None
        for root in roots:
            candidate = root / rel
            # The same content only: an edited source would show other lines as run.
            if candidate.is_file() and filecmp.cmp(candidate, path, shallow=False):
                return str(candidate)
        return None

    def _project_dirs(self, entry: Path) -> list[Path]:
        """The local project a stored distribution was built from (its ``direct_url.json``)."""
        found = self._projects.get(entry)
        if found is None:
            found = []
            for direct in (entry / "site").glob("*.dist-info/direct_url.json"):
                try:
                    url = urlparse(json.loads(direct.read_text(encoding="utf-8"))["url"])
                except (OSError, ValueError, KeyError, TypeError):
                    continue
                if url.scheme == "file":
                    project = Path(unquote(url.path))
                    found += [project, project / "src"]
            self._projects[entry] = found
        return found


def _close(data: Any) -> None:
    close = getattr(data, "close", None)  # coverage 7.10 has it; guarded all the same
    if close is not None:
        close()


def _coverage_warning(message: str) -> Warning:
    from coverage.exceptions import CoverageWarning  # noqa: PLC0415

    return CoverageWarning(message)


def detect(config: pytest.Config, rootdir: Path) -> EnvCoverage | None:
    """The coverage pytest-cov runs in this process, if it does; call it at session start.

    At session start, because the paths of coverage's configuration are relative to the
    directory pytest-cov started in, which a test may leave.
    """
    coverage = sys.modules.get("coverage")
    if not config.pluginmanager.has_plugin(PYTEST_COV) or coverage is None:
        return None
    cov = coverage.Coverage.current()  # None with --no-cov
    host: Any = getattr(cov, "config", None)
    if host is None or not hasattr(host, "serialize") or _version(coverage.__version__) < OLDEST:
        return None
    child = copy.copy(host)
    # Names stay names, directories become absolute: coverage takes a `source` item that is
    # not a directory (relative to the process's own cwd) for a package name.
    dirs = [os.path.abspath(s) for s in host.source or () if os.path.isdir(s)]
    names = [s for s in host.source or () if not os.path.isdir(s)]
    child.source = dirs or None
    child.source_pkgs = [*host.source_pkgs, *names]
    if getattr(host, "source_dirs", None):
        child.source_dirs = [os.path.abspath(s) for s in host.source_dirs]
    if host.debug_file:
        child.debug_file = os.path.abspath(host.debug_file)
    child.parallel = True
    child.relative_files = False  # relative to each process's cwd: mapped here instead
    child.plugins = []  # the env cannot import them; they would stop coverage from starting
    everything = not (dirs or child.source_pkgs or getattr(child, "source_dirs", None))
    roots = [rootdir, rootdir / "src"]
    for directory in map(Path, dirs):
        roots += [directory, directory.parent]
    return EnvCoverage(
        host=cov,
        version=coverage.__version__,
        module_dir=Path(str(coverage.__file__)).parent,
        target=Path(os.path.abspath(host.data_file)),
        config=child,
        everything=everything,
        relative_to=Path.cwd() if host.relative_files else None,
        source_roots=list(dict.fromkeys(roots)),
    )


def _host_entry(
    installer: Installer, interpreter: Interpreter, module_dir: Path, version: str
) -> Entry | None:
    """The host's own coverage, stored from its installed files: no uv, no index.

    None when the host's copy cannot be stored that way (an editable install, no ``RECORD``).
    """
    from importlib import metadata  # noqa: PLC0415

    from ._requirements import digest  # noqa: PLC0415

    try:
        dist = metadata.distribution("coverage")
    except metadata.PackageNotFoundError:
        return None
    site = Path(str(dist.locate_file("")))
    record = dist.read_text("RECORD")
    files = [str(name) for name in dist.files or ()]
    if (
        dist.version != version
        or record is None
        or os.path.realpath(site) != os.path.realpath(module_dir.parent)
        or "coverage/__init__.py" not in files
    ):
        return None
    tag = interpreter.cache_tag + interpreter.platform
    settings = f"host-{digest([tag, record])}"
    found = installer.dists.lookup("coverage", version, settings)
    if found is not None:
        return found
    with installer.dists.staging("install") as staging:
        target = staging / interpreter.purelib
        for name in files:
            if name.startswith("..") or os.path.isabs(name) or "__pycache__" in name:
                continue  # its scripts (made for the host's python) and bytecode
            source = site / name
            if source.is_file():
                (target / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target / name)
        entries = installer.dists.add_install(
            staging, interpreter.purelib, interpreter.scripts, tag, settings, index_direct=True
        )
    return next((e for e in entries if e.name == "coverage"), None)


class CoverageGlue:
    """Registered when pytest-cov is: finds its coverage at session start, combines at the end."""

    def __init__(self, rootdir: Path, worker: str) -> None:
        self.rootdir = rootdir
        self.worker = worker
        #: How this process's derived envs are measured (None: pytest-cov measures nothing).
        self.coverage: EnvCoverage | None = None

    @pytest.hookimpl(trylast=True)  # after pytest-cov's, which starts an xdist worker's coverage
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.coverage = detect(session.config, self.rootdir)

    @pytest.hookimpl(wrapper=True, trylast=True)  # inside pytest-cov's, which combines after it
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, object, object]:
        result = yield  # interrupted: nothing is combined, by pytest-cov either
        if self.coverage is not None:
            self.coverage.combine(self.worker)
        return result
