"""The installer: what uv is asked, and how its installs land in the store of distributions.

Plans come from uv's dry runs (``uv pip install --dry-run``), kept in the store by the content
key of the env they are for; installs go into a staging prefix that the store splits into
one entry per distribution; registry distributions already stored are linked, not
installed. Nothing here knows about tests, views or the guard.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from . import _interpreter
from ._dists import DistStore, Entry
from ._errors import InstallError
from ._interpreter import Interpreter
from ._requirements import PEP508, RequirementLine, digest, local_project_names
from ._settings import Settings
from ._shared_env import SharedEnv, broken_by, installed_packages
from ._swap import remove_tree
from ._uv import Change, Uv, install_settings
from ._venv import bin_dir, create_venv


@dataclass
class Installer:
    """Asks uv, and stores what it installs, for one session."""

    settings: Settings
    session_dir: Path
    #: Where the store of distributions and the plans are.
    store_root: Path
    #: Plans kept in the store are used (not with ``--isoenv-rebuild``).
    reuse_plans: bool = True
    #: A user's venv (--isoenv-base=PATH) -> the view of it uv is pointed at instead.
    uv_views: dict[Path, Path] = field(default_factory=dict)
    _uv: Uv | None = None
    _dists: DistStore | None = None
    _tools: dict[Path, Entry | None] = field(default_factory=dict)

    @property
    def uv(self) -> Uv:
        if self._uv is None:
            self._uv = Uv(
                cwd=self.settings.rootdir,
                no_index=self.settings.no_index,
                refresh=self.settings.refresh,
            )
        return self._uv

    @property
    def dists(self) -> DistStore:
        if self._dists is None:
            self._dists = DistStore(self.store_root / "dists")
        return self._dists

    def settings_digest(self, interpreter: Interpreter) -> str:
        """What decides which file a registry distribution ``name==version`` is."""
        identity = interpreter.identity()
        return digest(
            [
                json.dumps(
                    {
                        k: identity[k]
                        for k in ("executable", "version", "implementation", "platform")
                    },
                    sort_keys=True,
                ),
                json.dumps(install_settings(os.environ, self.settings.no_index), sort_keys=True),
            ]
        )

    def install_entries(
        self,
        interpreter: Interpreter,
        args: Sequence[str],
        *,
        no_deps: bool,
        settings: str | None = None,
        index_direct: bool = False,
        rebuild: Sequence[str] = (),
    ) -> list[Entry]:
        """Install ``args`` into a staging prefix and store what landed there, one entry each.

        ``rebuild`` names local projects uv must build again (its cache keys their builds by
        ``pyproject.toml`` mtimes, so it could serve an old build of an edited source).
        """
        if not args:
            return []
        with self.dists.staging("install") as staging:  # swept if this process is killed
            create_venv(staging, interpreter)
            python, prefix = self.uv_target(staging, interpreter)
            self.uv.install(python, args, prefix=prefix, no_deps=no_deps, rebuild=rebuild)
            return self.dists.add_install(
                staging,
                interpreter.purelib,
                interpreter.scripts,
                interpreter.cache_tag + interpreter.platform,
                settings or self.settings_digest(interpreter),
                index_direct=index_direct,
            )

    def resolve(
        self, interpreter: Interpreter, lines: Sequence[RequirementLine], *, rebuild: bool = True
    ) -> list[Change]:
        """What ``lines`` resolve to on their own (uv, against an empty env)."""
        if not lines:
            return []
        empty = self.session_dir / f"resolve-{uuid.uuid4().hex[:8]}"
        try:
            create_venv(empty, interpreter)
            python, prefix = self.uv_target(empty, interpreter)
            names = local_project_names(lines) if rebuild else []
            return self.uv.plan(python, args_of(lines), prefix=prefix, rebuild=names)
        finally:
            remove_tree(empty)

    def planned(self, key: str, plan: Callable[[], list[Change]]) -> tuple[list[Change], bool]:
        """The plan of the env ``key`` names (its content digest), and whether it is new.

        Plans are kept in the store: a session base or layer made again (every session, in
        session mode) asks uv nothing when its distributions are stored. The key covers every
        input, local projects' content included; ``--isoenv-refresh`` plans afresh.
        """
        path = self.store_root / "plans" / f"{key}.json"
        if not self.settings.refresh and self.reuse_plans:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                return [Change(name, version) for name, version in data], False
            except (OSError, ValueError, TypeError):
                pass
        changes = plan()
        with contextlib.suppress(OSError):  # a plan not kept is asked for again next time
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
            tmp.write_text(json.dumps([[c.name, c.version] for c in changes]), "utf-8")
            os.replace(tmp, path)
        return changes, True

    def stored(
        self,
        interpreter: Interpreter,
        changes: Sequence[Change],
        lines: Sequence[RequirementLine],
        *,
        rebuild: bool,
    ) -> list[Entry]:
        """The entries of ``changes``: stored ones as they are, the others installed now.

        ``rebuild``: the local projects among ``lines`` are new to this key, so uv builds them
        again rather than trust its cache of their builds.
        """
        settings = self.settings_digest(interpreter)
        direct = direct_names(lines)
        stored: list[Entry] = []
        missing: list[Change] = []
        for change in changes:
            found = (
                self.dists.lookup(change.name, change.version, settings)
                if change.version and canonicalize_name(change.name) not in direct
                else None
            )
            if found is not None:
                stored.append(found)
            else:
                missing.append(change)
        installed = self.install_entries(
            interpreter,
            exact_requirements(missing, lines),
            no_deps=True,
            rebuild=local_project_names(lines) if rebuild else (),
        )
        return stored + installed

    @staticmethod
    def uv_target(root: Path, interpreter: Interpreter) -> tuple[Path, Path | None]:
        """How to point uv at the env at ``root``: its real interpreter and ``--prefix``.

        uv inspects every interpreter path it has not seen (~50 ms); env paths are new all the
        time, the real interpreter's path is not. Where ``--prefix`` would not land in the
        env's site-packages (a distribution's own scheme), the env's python is used.
        """
        if interpreter.prefix_purelib == interpreter.purelib:
            return interpreter.executable, root
        return bin_dir(root, interpreter) / "python", None

    def plan(
        self,
        view: SharedEnv,
        lines: Sequence[RequirementLine],
        extra: Sequence[Path] = (),
        *,
        new: Sequence[RequirementLine] = (),
    ) -> list[Change]:
        """What ``view`` (with the site-packages in ``extra``) lacks for ``lines``.

        Versions the env already has are kept by uv. uv lists local projects as changes even
        when installed: a version already visible is no change. A change that breaks a
        requirement of a distribution that stays is a conflict.
        """
        root = self.uv_views.get(view.path, view.path)  # never uv in a user's venv
        python, prefix = self.uv_target(root, view.interpreter)
        # The local projects ``new`` asks for are built again (uv's cache may hold an old
        # build of their source); the ones the view holds already were built for it.
        changes = self.uv.plan(
            python, args_of(lines), prefix=prefix, rebuild=local_project_names(new)
        )
        visible = installed_packages([*extra, view.site_packages])
        changes = [
            c
            for c in changes
            if ((c.name not in visible) if c.version is None else visible.get(c.name) != c.version)
        ]
        versions = {c.name: c.version for c in changes if c.version}
        problems = broken_by(versions, [view], [c.name for c in changes])
        if problems:
            raise InstallError([str(line) for line in lines], "\n".join(problems))
        return changes

    def tool_entry(self, interpreter: Interpreter) -> Entry | None:
        """pip, for every derived env: from the interpreter's own bundled wheel if it has one
        (Debian's keeps it in ``/usr/share/python-wheels``), else from uv's cache or the index.
        """
        if interpreter.executable in self._tools:
            return self._tools[interpreter.executable]
        bundled = Path(interpreter.stdlib) / "ensurepip" / "_bundled"
        wheels = sorted(bundled.glob("pip-*.whl"))
        if not wheels and interpreter == _interpreter.current():
            wheels = sorted(Path("/usr/share/python-wheels").glob("pip-*.whl"))
        settings = f"bundled-{interpreter.cache_tag}"
        entry = None
        if wheels:
            version = wheels[-1].name.split("-")[1]
            entry = self.dists.lookup("pip", version, settings)
        with contextlib.suppress(InstallError):  # no pip: `pip` says so in the env
            if entry is None:
                found = self.install_entries(
                    interpreter,
                    [str(wheels[-1])] if wheels else ["pip"],
                    no_deps=True,
                    settings=settings if wheels else None,
                    index_direct=bool(wheels),
                )
                entry = found[0] if found else None
        self._tools[interpreter.executable] = entry
        return entry


def args_of(lines: Sequence[RequirementLine]) -> list[str]:
    """The uv arguments asking for ``lines``."""
    return [arg for line in lines for arg in line.uv_args()]


def direct_names(lines: Sequence[RequirementLine]) -> set[str]:
    """The names of the projects ``lines`` ask for by URL."""
    return {
        canonicalize_name(Requirement(line.value).name)
        for line in lines
        if line.kind == PEP508 and Requirement(line.value).url is not None
    }


def exact_requirements(changes: Sequence[Change], lines: Sequence[RequirementLine]) -> list[str]:
    """uv arguments installing exactly ``changes`` (with --no-deps).

    Registry packages are pinned to the resolved version; projects asked for by path or URL
    are passed as asked, since the index cannot serve them.
    """
    if not changes:
        return []
    args: list[str] = []
    direct: set[str] = set()
    for line in lines:
        if not is_direct(line):
            continue
        args += line.uv_args()
        if line.kind == PEP508:
            direct.add(canonicalize_name(Requirement(line.value).name))
    for change in changes:
        if change.version is not None and canonicalize_name(change.name) not in direct:
            args.append(f"{change.name}=={change.version}")
    return args


def is_direct(line: RequirementLine) -> bool:
    """A line the index cannot serve by name and version: a path, a file, a URL."""
    return line.kind != PEP508 or Requirement(line.value).url is not None
