"""The session's envs: the base (once), layers (once per requirement set), derived (per test).

Everything that can be done once per session is done here once and kept: interpreter facts,
the base, each layer, the console scripts to copy. The per-test path only takes a venv made
ahead. Bases and layers are views over the store of distributions (``_dists``, ``_compose``):
uv installs only what is not stored yet, into a staging prefix that is split into entries.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.requirements import Requirement
from packaging.specifiers import InvalidSpecifier
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from . import _interpreter, _usage
from ._compose import Source, link_sources, mirror_bytecode, site_sources
from ._derived import DerivedEnv
from ._dists import Entry, entries_json
from ._env_factory import EnvFactory
from ._errors import BaseBuildError, InstallError, IsoenvError, SharedEnvModified
from ._guard import Guard
from ._installer import Installer, exact_requirements, is_direct
from ._interpreter import Interpreter
from ._requirements import PEP508, RequirementLine, digest, lines_digest, local_project_names
from ._settings import CACHE, SESSION, Settings
from ._shared_env import SharedEnv, installed_packages, verify_venv
from ._store import FORMAT_VERSION, Published, Store, secure_directory
from ._swap import make_read_only, remove_tree
from ._uv import Change
from ._venv import (
    Script,
    bin_dir,
    create_venv,
    make_scripts_relocatable,
    read_scripts,
    write_scripts,
)

_LayerKey = tuple[Path, tuple[RequirementLine, ...]]  # (interpreter executable, lines)

if TYPE_CHECKING:
    from ._coverage import EnvCoverage


@dataclass
class Event:
    """Something worth a line in the terminal summary."""

    kind: str  # "base", "layer" or "install"
    text: str
    verb: str = ""  # "built", "reused" or "used" (a venv of yours) for a base or a layer
    seconds: float = 0.0
    which: str = ""  # a base's interpreter: bases are counted once per interpreter

    def work(self) -> list[Any]:
        """The summary's count of this (``_summary.Work``)."""
        return [self.kind, self.verb, self.seconds, self.which]


@dataclass
class IsoenvSession:
    """Builds and hands out the envs of one pytest process (controller or xdist worker)."""

    settings: Settings
    session_dir: Path
    worker_id: str
    events: list[Event] = field(default_factory=list)
    #: Shared envs published before this time are built again (``--isoenv-rebuild``).
    stale_before: float | None = None
    #: pytest-cov measures this process: derived envs are measured too (``_coverage``).
    coverage: EnvCoverage | None = None
    _bases: dict[Path, SharedEnv] = field(default_factory=dict)  # by interpreter executable
    _base_errors: dict[Path, str] = field(default_factory=dict)
    _layers: dict[_LayerKey, SharedEnv | None] = field(default_factory=dict)
    _layer_errors: dict[_LayerKey, str] = field(default_factory=dict)
    _found: dict[str, Interpreter | None] = field(default_factory=dict)  # spec -> interpreter
    _guard: Guard = field(default_factory=Guard)
    _factory: EnvFactory | None = None
    _mirrored: set[Path] = field(default_factory=set)
    _makers: dict[Path, Callable[[Path], None]] = field(default_factory=dict)
    _links: dict[Path, list[Path]] = field(default_factory=dict)  # view -> its envs' links

    # -- what every env is built from ---------------------------------------------------

    @functools.cached_property
    def installer(self) -> Installer:
        """The session's way to uv and to the store of distributions."""
        return Installer(
            self.settings,
            self.session_dir,
            self.store_root,
            reuse_plans=self.stale_before is None,
        )

    @property
    def interpreter(self) -> Interpreter:
        """The interpreter of envs no ``python=`` names: pytest's, or the user's base venv's."""
        if self.settings.base in (SESSION, CACHE):
            return _interpreter.current()
        return _interpreter.inspect(Path(self.settings.base) / "bin" / "python")

    def find_interpreter(self, spec: str) -> Interpreter | None:
        """The interpreter ``spec`` names (``"3.12"``, a path), None when none is installed.

        Raise ``IsoenvError`` for one that is found but cannot be served.
        """
        if spec not in self._found:
            from ._discovery import find  # noqa: PLC0415 - only for tests naming one

            cache = None
            with contextlib.suppress(IsoenvError):
                cache = secure_directory(self.settings.cache_dir) / "interpreters"
            executable = find(spec, self.settings.rootdir, cache)
            self._found[spec] = None if executable is None else _interpreter.inspect(executable)
        return self._found[spec]

    @property
    def root(self) -> Path:
        """Where bases and layers live: the cache, or this session's own directory."""
        if self.settings.base == CACHE:
            return secure_directory(self.settings.cache_dir) / f"v{FORMAT_VERSION}"
        return self.session_dir

    @functools.cached_property
    def store_root(self) -> Path:
        """Where stored distributions and bytecode live: the cache, whatever the base mode.

        Distributions are immutable and verified before use, so a session base built fresh
        still links the copies earlier sessions stored, and imports bytecode they compiled.
        A cache dir that cannot be used leaves them in the session's own directory.
        """
        try:
            return secure_directory(self.settings.cache_dir) / f"v{FORMAT_VERSION}"
        except IsoenvError:
            if self.settings.base == CACHE:
                raise
            return self.session_dir

    @property
    def _coverage_dir(self) -> Path:
        """This process's part of the session dir for coverage (``_coverage``)."""
        return self.session_dir / "coverage" / self.worker_id

    @property
    def pycache(self) -> Path:
        """The ``sys.pycache_prefix`` of every env: bytecode never lands in a shared env."""
        return self.store_root / "pycache"

    def _store(self, kind: str) -> Store:
        return Store(self.root / kind)

    def _publish(
        self,
        kind: str,
        key: str,
        interpreter: Interpreter,
        build: Callable[[Path], dict[str, Any]],
        what: str,
        *,
        damaged_since: float | None = None,
    ) -> tuple[SharedEnv, Published]:
        """The shared env of ``kind`` under ``key``: reused when it verifies, else built."""
        entries: dict[str, tuple[Entry, ...]] = {}

        def verify(root: Path, manifest: dict[str, Any]) -> str | None:
            problem = verify_venv(root, manifest, interpreter)
            if problem is not None:
                return problem
            found = []
            for item in manifest.get("entries", ()):
                entry = self.installer.dists.load(str(item["dir"]))
                if entry is None:
                    return f"its stored distribution {item['dir']} is missing or changed"
                found.append(entry)
            entries[key] = tuple(found)
            return None

        if damaged_since is not None:
            stale: dict[str, Any] = {
                "stale_before": damaged_since,
                "stale_because": "a test changed it",
            }
        else:
            stale = {"stale_before": self.stale_before}
        if self.settings.base == CACHE:  # held before it is read: pruning passes it by
            (self.root / kind).mkdir(parents=True, exist_ok=True)
            _usage.hold(self.root / kind / key)
        published = self._store(kind).get_or_build(key, build, verify, what=what, **stale)
        if key not in entries:  # just built: its entries verified as they were stored
            verify(published.path, published.manifest)
        env = SharedEnv.load(
            published.path,
            interpreter,
            key,
            published.manifest,
            built=published.built,
            seconds=published.seconds,
            entries=entries.get(key, ()),
            kind=kind[:-1],
        )
        if env.path not in self._mirrored:
            mirror_bytecode(env.site_packages, self.pycache)
            self._mirrored.add(env.path)
        return env, published

    def _compose(
        self,
        root: Path,
        interpreter: Interpreter,
        sources: Sequence[Source],
        scripts: Sequence[Script],
    ) -> None:
        """Write the view at ``root``: a venv linking ``sources``, with copies of ``scripts``."""
        packages = create_venv(root, interpreter, pycache=self.pycache)
        link_sources(packages, sources)
        write_scripts(scripts, bin_dir(root, interpreter))
        make_read_only(packages)
        make_read_only(bin_dir(root, interpreter))

    # -- the base ------------------------------------------------------------------------

    def base(self, interpreter: Interpreter | None = None) -> SharedEnv:
        """The base env on ``interpreter`` (default: :attr:`interpreter`): built or reused
        on first call, then kept for the session."""
        if interpreter is not None:
            with contextlib.suppress(IsoenvError, OSError):  # else told below
                if interpreter == self.interpreter:
                    interpreter = None  # one key for the default however it is reached
        which = Path() if interpreter is None else interpreter.executable  # Path(): default
        found = self._bases.get(which)
        if found is not None:
            return found
        error_text = self._base_errors.get(which)
        if error_text is not None:
            raise BaseBuildError(error_text)
        on = "" if interpreter is None else f" on {interpreter}"
        try:
            interpreter = interpreter or self.interpreter
            if self.settings.base in (SESSION, CACHE):
                base = self._published_base(interpreter)
            elif interpreter == self.interpreter:
                base = self._existing_base(Path(self.settings.base))
            else:
                raise IsoenvError(
                    f"--isoenv-base={self.settings.base} is a venv of {self.interpreter}; "
                    f"an env on {interpreter} needs --isoenv-base=session or cache"
                )
        except (IsoenvError, OSError) as error:
            error_text = f"the isoenv base env{on} could not be prepared: {error}"
            self._base_errors[which] = error_text
            raise BaseBuildError(error_text) from None
        self._bases[which] = base
        return base

    def base_key(self, interpreter: Interpreter | None = None) -> str:
        interpreter = interpreter or self.interpreter
        parts = [
            "base",
            str(FORMAT_VERSION),
            self.installer.settings_digest(interpreter),
            lines_digest(self.settings.requires),
        ]
        if self.settings.refresh and self.settings.requires:  # what they resolve to today
            resolved = sorted(
                (c.name, c.version or "")
                for c in self.installer.resolve(interpreter, self.settings.requires)
            )
            parts.append(json.dumps(resolved))
        return digest(parts)

    def _published_base(
        self, interpreter: Interpreter, *, damaged_since: float | None = None
    ) -> SharedEnv:
        requires = self.settings.requires
        key = self.base_key(interpreter)

        def build(staging: Path) -> dict[str, Any]:
            changes, fresh = self.installer.planned(
                key, lambda: self.installer.resolve(interpreter, requires)
            )
            entries = self.installer.stored(interpreter, changes, requires, rebuild=fresh)
            self._compose(staging, interpreter, _sources(entries), _scripts(entries))
            manifest = _manifest("base", interpreter, requires)
            manifest["entries"] = entries_json(entries)
            return manifest

        what = f"the base env ({', '.join(map(str, requires)) or 'no packages'})"
        base, published = self._publish(
            "bases", key, interpreter, build, what, damaged_since=damaged_since
        )
        verb = "built" if published.built else "reused"
        why = f" (previous one discarded: {published.replaced})" if published.replaced else ""
        self.events.append(
            Event(
                "base",
                (
                    f"base {verb} in {published.seconds:.2f}s: {base.path} "
                    f"({interpreter.implementation} {interpreter.version_text}, "
                    f"{len(base.packages)} packages){why}"
                ),
                verb,
                published.seconds,
                str(interpreter.executable),
            )
        )
        return base

    def _existing_base(self, path: Path) -> SharedEnv:
        interpreter = self.interpreter
        base = SharedEnv.load(
            path,
            interpreter,
            f"path-{digest([str(path)])}",
            {"requirements": [str(r) for r in self.settings.requires]},
            built=False,
            seconds=0.0,
            external=True,
        )
        # Read, never run uv against it: uv would write into the user's venv (its lock file).
        from ._user_venv import VenvChecker, uv_view  # noqa: PLC0415

        missing = VenvChecker(base.site_packages, interpreter.version).missing(
            self.settings.requires
        )
        if missing:
            wanted = "; ".join(missing)
            raise IsoenvError(
                f"--isoenv-base={path} is used read-only but lacks what isoenv_requires asks "
                f"for: {wanted}"
            )
        self.installer.uv_views[path] = uv_view(
            path, self.session_dir / "user-venv-view", interpreter
        )
        self.events.append(
            Event(
                "base",
                (
                    f"base used read-only: {path} ({interpreter.implementation} "
                    f"{interpreter.version_text}, {len(base.packages)} packages)"
                ),
                "used",
                which=str(interpreter.executable),
            )
        )
        return base

    def _base_sources(self, base: SharedEnv) -> list[Source]:
        if base.external:
            return site_sources(base.site_packages)
        return _sources(base.entries)

    # -- layers --------------------------------------------------------------------------

    def layer(
        self, lines: tuple[RequirementLine, ...], interpreter: Interpreter | None = None
    ) -> SharedEnv | None:
        """The shared layer holding what the base (on ``interpreter``) lacks for ``lines``
        (None when nothing)."""
        if not lines:
            return None
        base = self.base(interpreter)
        key = (base.interpreter.executable, tuple(sorted(lines)))
        if key in self._layers:
            return self._layers[key]
        if key in self._layer_errors:
            raise InstallError([str(line) for line in lines], self._layer_errors[key])
        try:
            layer = None if _satisfied(base, lines) else self._published_layer(key[1], base)
        except InstallError as error:
            self._layer_errors[key] = error.output
            raise
        self._layers[key] = layer
        return layer

    def _published_layer(
        self,
        lines: tuple[RequirementLine, ...],
        base: SharedEnv,
        *,
        damaged_since: float | None = None,
    ) -> SharedEnv | None:
        wanted = [str(line) for line in lines]
        parts = ["layer", base.key, lines_digest(lines)]
        changes: list[Change] | None = None
        if self.settings.refresh:  # the key records what a fresh resolution gives
            changes = self._plan_layer(base, lines)
            parts.append(json.dumps([[c.name, c.version] for c in changes]))
        key = digest(parts)
        interpreter = base.interpreter
        start = time.perf_counter()

        def build(staging: Path) -> dict[str, Any]:
            if changes is not None:
                planned, fresh = changes, True
            else:
                planned, fresh = self.installer.planned(key, lambda: self._plan_layer(base, lines))
            own = self.installer.stored(interpreter, planned, lines, rebuild=fresh)
            names = {entry.name for entry in own}
            kept = [source for source in self._base_sources(base) if source.dist not in names]
            replaced = {entry.name for entry in base.entries if entry.name in names}
            scripts = [
                script
                for script in base.scripts
                if not any(script.name in e.scripts for e in base.entries if e.name in replaced)
            ]
            self._compose(staging, interpreter, _sources(own) + kept, scripts + _scripts(own))
            manifest = _manifest("layer", interpreter, lines)
            manifest["entries"] = entries_json(own)
            manifest["resolved"] = {c.name: c.version for c in planned}
            return manifest

        what = f"the layer for {', '.join(wanted)}"
        layer, published = self._publish(
            "layers", key, interpreter, build, what, damaged_since=damaged_since
        )
        verb = "built" if published.built else "reused"
        held = ", ".join(f"{e.name}=={e.version}" for e in layer.entries) or "nothing new"
        why = f" (previous one discarded: {published.replaced})" if published.replaced else ""
        seconds = time.perf_counter() - start
        self.events.append(
            Event(
                "layer",
                f"layer {verb} in {seconds:.2f}s for {', '.join(wanted)}: {held}{why}",
                verb,
                seconds,
            )
        )
        return layer if layer.entries else None

    def _plan_layer(self, base: SharedEnv, lines: Sequence[RequirementLine]) -> list[Change]:
        """What a layer over ``base`` holds: ``lines`` resolved with ``isoenv_requires``.

        uv prefers the base's versions; what must change (pandas 3 -> 2.2 for ``numpy<2``)
        goes into the layer and shadows the base's copy.
        """
        together = _overridden(self.settings.requires, lines)
        try:
            return self.installer.plan(base, together, new=lines)
        except InstallError as error:
            if not self.settings.requires:
                raise
            raise InstallError(
                [str(line) for line in lines],
                f"{error.output}\n"
                f"isoenv_requires asks for: {', '.join(map(str, self.settings.requires))}\n"
                f"the marker asks for: {', '.join(map(str, lines))}\n"
                "(they are resolved together; a project the marker names is taken as the "
                "marker asks, whatever isoenv_requires says of it)",
            ) from None

    # -- derived envs --------------------------------------------------------------------

    def derived(
        self, lines: tuple[RequirementLine, ...], interpreter: Interpreter | None = None
    ) -> DerivedEnv:
        """A fresh derived env for one test, on ``interpreter`` (default: :attr:`interpreter`);
        give it back with ``release``."""
        base = self.base(interpreter)
        layer = self.layer(lines, interpreter)
        view = layer or base
        if self._factory is None:
            pycache = self.pycache
            self._factory = EnvFactory(
                self.session_dir / "derived" / self.worker_id,
                lambda path: [pycache / str(path).lstrip(os.sep)],
            )
        path = self._factory.take(view.path, self._maker(view))
        return DerivedEnv(
            path,
            base,
            layer,
            lines,
            rootdir=self.settings.rootdir,
            installer=self.install_into,
            release=self._factory.give_back,
            uv=lambda: self.installer.uv.binary,
            variables=(
                self.coverage.variables(
                    base,
                    directory=self._coverage_dir,
                    roots=[self.store_root, self.session_dir],
                )
                if self.coverage
                else None
            ),
        )

    def _maker(self, view: SharedEnv) -> Callable[[Path], None]:
        """What writes a derived env of ``view``: made once per view, run for every test."""
        found = self._makers.get(view.path)
        if found is not None:
            return found
        tool = None
        if "pip" not in installed_packages([view.site_packages]):
            tool = self.installer.tool_entry(view.interpreter)
        links = [view.site_packages] + ([tool.site] if tool is not None else [])
        if self.coverage is not None:
            own = "coverage" in installed_packages([view.site_packages])
            links += self.coverage.links(
                view,
                own,
                installer=self.installer,
                pycache=self.pycache,
                directory=self._coverage_dir,
            )
        scripts = [*(read_scripts(tool.bin) if tool is not None else []), *view.scripts]
        interpreter, pycache = view.interpreter, self.pycache

        def make(root: Path) -> None:
            create_venv(root, interpreter, links, pycache)
            write_scripts(scripts, bin_dir(root, interpreter))

        self._makers[view.path] = make
        self._links[view.path] = links
        return make

    def keep(self, env: DerivedEnv, dest: Path, nodeid: str) -> None:
        """Move ``env`` to the empty directory ``dest``, to outlive the session (``_keep``)."""
        from ._keep import keep_env  # noqa: PLC0415 - only with --isoenv-keep

        view = env.layer or env.base
        links = self._links.get(view.path, [view.site_packages])
        keep_env(
            env, dest, nodeid, links=links, pycache=self.pycache, dists=self.installer.dists.root
        )

    def close(self) -> None:
        """Delete every derived env this process made; let go of the shared envs."""
        if self._factory is not None:
            self._factory.close()
            self._factory = None
        _usage.release_all()

    def install_into(self, env: DerivedEnv, lines: tuple[RequirementLine, ...]) -> list[str]:
        """Install what ``env`` lacks for ``lines`` into it alone; return what was added.

        Resolved with ``isoenv_requires`` and everything the env already asked for, so the
        result stays consistent; only what neither its view nor the env holds is installed.
        """
        start = time.perf_counter()
        view = env.layer or env.base
        asked = _overridden(
            _overridden(self.settings.requires, env.marker_lines),
            [*env.installed_lines, *lines],
        )
        missing = self.installer.plan(view, asked, [env.site_packages], new=lines)
        args = exact_requirements(missing, lines)
        if args:
            python, prefix = self.installer.uv_target(env.path, env.base.interpreter)
            names = local_project_names(lines)
            self.installer.uv.install(python, args, prefix=prefix, no_deps=True, rebuild=names)
            make_scripts_relocatable(env.bin)
        added = [f"{c.name}=={c.version}" for c in missing if c.version]
        added += [str(line) for line in lines if is_direct(line)]
        self.events.append(
            Event(
                "install",
                f"installed {', '.join(added) or 'nothing new'}",
                seconds=time.perf_counter() - start,
            )
        )
        return added

    # -- the guard on shared envs --------------------------------------------------------

    def watch(self, envs: Sequence[SharedEnv | None]) -> None:
        """Remember shared envs a test reads, to check after it that none changed."""
        self._guard.watch(envs)

    def check_shared(self, envs: Sequence[SharedEnv | None]) -> None:
        """Raise ``SharedEnvModified`` if a test changed a shared env, after undoing what can
        be undone and rebuilding (beside, then swapped in) what cannot."""
        problems, damaged = self._guard.check(envs)
        for shared, changes in damaged:
            self._damaged(shared, changes)
        if problems:
            raise SharedEnvModified("\n".join(problems))

    def _damaged(self, shared: SharedEnv, changes: Sequence[str]) -> None:
        """Rebuild a shared env a test damaged, beside the old one, and swap it in.

        Stored distributions it changed are stored again; other workers' derived envs, which
        link to the same paths, are whole again as soon as the swap is done.
        """
        for entry in shared.entries:
            if any(str(entry.path) in line for line in changes):
                self.installer.dists.mark_damaged(entry.path)
        # Rebuilt unless another process (a worker that saw the same damage) has meanwhile.
        since = time.time()
        interpreter = shared.interpreter
        if shared.kind == "base":
            base = self._published_base(interpreter, damaged_since=since)
            for which, old in list(self._bases.items()):
                if old is shared:
                    self._bases[which] = base
            return
        for key, layer in list(self._layers.items()):
            if layer is shared:
                base = self.base(interpreter)
                self._layers[key] = self._published_layer(key[1], base, damaged_since=since)


def remove_session_files(settings: Settings, session_dir: Path) -> None:
    """Delete what a session (its controller) left outside its own directory: the bytecode
    mirrors of its views, which live in the cache's ``sys.pycache_prefix``."""
    pycache = settings.cache_dir / f"v{FORMAT_VERSION}" / "pycache"
    remove_tree(pycache / str(session_dir).lstrip(os.sep))


def _manifest(
    kind: str, interpreter: Interpreter, lines: Sequence[RequirementLine]
) -> dict[str, Any]:
    return {
        "kind": kind,
        "interpreter": interpreter.identity(),
        "requirements": [str(line) for line in lines],
    }


def _args(lines: Sequence[RequirementLine]) -> list[str]:
    return [arg for line in lines for arg in line.uv_args()]


def _sources(entries: Sequence[Entry]) -> list[Source]:
    return [Source(entry.site, entry.top_level, entry.name) for entry in entries]


def _scripts(entries: Sequence[Entry]) -> list[Script]:
    return [script for entry in entries for script in read_scripts(entry.bin)]


def _satisfied(base: SharedEnv, lines: Sequence[RequirementLine]) -> bool:
    """The base already holds what ``lines`` ask for (by name and version): no uv needed."""
    for line in lines:
        if line.kind != PEP508:
            return False
        requirement = Requirement(line.value)
        version = base.packages.get(canonicalize_name(requirement.name))
        if version is None or requirement.url or requirement.extras or requirement.marker:
            return False
        try:
            if not requirement.specifier.contains(Version(version), prereleases=True):
                return False
        except (InvalidVersion, InvalidSpecifier):
            return False
    return True


def _overridden(
    lines: Sequence[RequirementLine], wins: Sequence[RequirementLine]
) -> list[RequirementLine]:
    """``lines`` and ``wins``, less the lines of ``lines`` naming a project ``wins`` names.

    A marker that pins ``six==1.16.0`` over a base asking for ``six==1.17.0`` means the test
    wants 1.16.0: the two are resolved together with the base's own pin set aside.
    """
    named = {line.name for line in wins if line.name is not None}
    return [*(line for line in lines if line.name is None or line.name not in named), *wins]
