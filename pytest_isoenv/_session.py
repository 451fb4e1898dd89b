"""The session's envs: the base (once), layers (once per requirement set), derived (per test).

Everything that can be done once per session is done here once and kept: interpreter facts,
the base, each layer, the console scripts to copy. The per-test path only writes a tiny venv.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from . import _interpreter
from ._derived import DerivedEnv
from ._env_factory import EnvFactory
from ._errors import BaseBuildError, InstallError, IsoenvError, SharedEnvModified
from ._fingerprint import DirectorySnapshot
from ._interpreter import Interpreter
from ._requirements import PEP508, RequirementLine, digest, lines_digest
from ._settings import CACHE, SESSION, Settings
from ._shared_env import SharedEnv, broken_by, installed_packages, verify_venv
from ._store import FORMAT_VERSION, Published, Store, secure_directory
from ._uv import Change, Uv, install_settings
from ._venv import bin_dir, compile_bytecode, create_venv, make_scripts_relocatable


@dataclass
class Event:
    """Something worth a line in the terminal summary."""

    kind: str  # "base", "layer" or "install"
    text: str


@dataclass
class IsoenvSession:
    """Builds and hands out the envs of one pytest process (controller or xdist worker)."""

    settings: Settings
    session_dir: Path
    worker_id: str
    events: list[Event] = field(default_factory=list)
    _uv: Uv | None = None
    _base: SharedEnv | None = None
    _base_error: str | None = None
    _layers: dict[tuple[RequirementLine, ...], SharedEnv | None] = field(default_factory=dict)
    _layer_errors: dict[tuple[RequirementLine, ...], str] = field(default_factory=dict)
    _snapshots: dict[Path, DirectorySnapshot] = field(default_factory=dict)
    _factory: EnvFactory | None = None
    # A user's venv (--isoenv-base=PATH) -> the view of it uv is pointed at instead.
    _uv_views: dict[Path, Path] = field(default_factory=dict)

    # -- what every env is built from ---------------------------------------------------

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
    def interpreter(self) -> Interpreter:
        if self.settings.base in (SESSION, CACHE):
            return _interpreter.current()
        return _interpreter.inspect(Path(self.settings.base) / "bin" / "python")

    def _store(self, kind: str) -> Store:
        if self.settings.base == CACHE:
            return Store(secure_directory(self.settings.cache_dir) / f"v{FORMAT_VERSION}" / kind)
        return Store(self.session_dir / kind)

    def _publish(
        self,
        kind: str,
        key: str,
        interpreter: Interpreter,
        build: Callable[[Path], dict[str, Any]],
    ) -> tuple[SharedEnv, Published]:
        """The shared env of ``kind`` under ``key``: reused when it verifies, else built."""
        published = self._store(kind).get_or_build(
            key, build, lambda root, manifest: verify_venv(root, manifest, interpreter)
        )
        env = SharedEnv.load(
            published.path,
            interpreter,
            key,
            published.manifest,
            built=published.built,
            seconds=published.seconds,
        )
        return env, published

    # -- the base ------------------------------------------------------------------------

    def base(self) -> SharedEnv:
        """The base env: built or reused on first call, then kept for the session."""
        if self._base is not None:
            return self._base
        if self._base_error is not None:
            raise BaseBuildError(self._base_error)
        try:
            if self.settings.base in (SESSION, CACHE):
                self._base = self._published_base()
            else:
                self._base = self._existing_base(Path(self.settings.base))
        except (IsoenvError, OSError) as error:
            self._base_error = f"the isoenv base env could not be prepared: {error}"
            raise BaseBuildError(self._base_error) from None
        return self._base

    def base_key(self) -> str:
        identity = self.interpreter.identity()
        return digest(
            [
                "base",
                str(FORMAT_VERSION),
                json.dumps(
                    {
                        k: identity[k]
                        for k in ("executable", "version", "implementation", "platform")
                    },
                    sort_keys=True,
                ),
                lines_digest(self.settings.requires),
                json.dumps(install_settings(os.environ, self.settings.no_index), sort_keys=True),
            ]
        )

    def _published_base(self) -> SharedEnv:
        interpreter = self.interpreter
        requires = self.settings.requires
        key = self.base_key()

        def build(staging: Path) -> dict[str, Any]:
            create_venv(staging, interpreter)
            args = [arg for line in requires for arg in line.uv_args()]
            if args:
                python, prefix = self._uv_target(staging, interpreter)
                self.uv.install(python, args, prefix=prefix, compile_bytecode=True)
                make_scripts_relocatable(bin_dir(staging, interpreter))
            return _manifest("base", interpreter, requires)

        base, published = self._publish("bases", key, interpreter, build)
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
        self._uv_views[path] = uv_view(path, self.session_dir / "user-venv-view", interpreter)
        self.events.append(
            Event(
                "base",
                (
                    f"base used read-only: {path} ({interpreter.implementation} "
                    f"{interpreter.version_text}, {len(base.packages)} packages)"
                ),
            )
        )
        return base

    # -- layers --------------------------------------------------------------------------

    def layer(self, lines: tuple[RequirementLine, ...]) -> SharedEnv | None:
        """The shared layer holding what the base lacks for ``lines`` (None when nothing)."""
        if not lines:
            return None
        lines = tuple(sorted(lines))
        if lines in self._layers:
            return self._layers[lines]
        if lines in self._layer_errors:
            raise InstallError([str(line) for line in lines], self._layer_errors[lines])
        try:
            layer = self._published_layer(lines)
        except InstallError as error:
            self._layer_errors[lines] = error.output
            raise
        self._layers[lines] = layer
        return layer

    def _published_layer(self, lines: tuple[RequirementLine, ...]) -> SharedEnv | None:
        base = self.base()
        wanted = [str(line) for line in lines]
        parts = ["layer", base.key, lines_digest(lines)]
        changes: list[Change] | None = None
        if self.settings.refresh:  # the key records what a fresh resolution gives
            changes = self._plan(base, lines)
            parts.append(json.dumps([[c.name, c.version] for c in changes]))
        key = digest(parts)
        interpreter = base.interpreter
        start = time.perf_counter()

        def build(staging: Path) -> dict[str, Any]:
            nonlocal changes
            if changes is None:
                changes = self._plan(base, lines)
            packages = create_venv(staging, interpreter)
            args = _exact_requirements(changes, lines)
            if args:
                in_process = interpreter == _interpreter.current()
                python, prefix = self._uv_target(staging, interpreter)
                self.uv.install(
                    python, args, prefix=prefix, no_deps=True, compile_bytecode=not in_process
                )
                if in_process:  # saves uv starting an interpreter to compile
                    compile_bytecode(packages)
            manifest = _manifest("layer", interpreter, lines)
            manifest["resolved"] = {c.name: c.version for c in changes}
            return manifest

        layer, published = self._publish("layers", key, interpreter, build)
        verb = "built" if published.built else "reused"
        self.events.append(
            Event(
                "layer",
                (
                    f"layer {verb} in {time.perf_counter() - start:.2f}s for {', '.join(wanted)}: "
                    f"{', '.join(f'{n}=={v}' for n, v in layer.packages.items()) or 'nothing new'}"
                    + (
                        f" (previous one discarded: {published.replaced})"
                        if published.replaced
                        else ""
                    )
                ),
            )
        )
        return layer if layer.packages or layer.scripts else None

    @staticmethod
    def _uv_target(root: Path, interpreter: Interpreter) -> tuple[Path, Path | None]:
        """How to point uv at the env at ``root``: its real interpreter and ``--prefix``.

        uv inspects every interpreter path it has not seen (~50 ms); env paths are new all the
        time, the real interpreter's path is not. Where ``--prefix`` would not land in the
        env's site-packages (a distribution's own scheme), the env's python is used.
        """
        if interpreter.prefix_purelib == interpreter.purelib:
            return interpreter.executable, root
        return bin_dir(root, interpreter) / "python", None

    def _plan(
        self, base: SharedEnv, lines: Sequence[RequirementLine], shared: Sequence[SharedEnv] = ()
    ) -> list[Change]:
        """What the base lacks for ``lines``: base versions that satisfy them are kept.

        A package the test needs at another version shadows the base's copy, unless a package
        of the base (or of ``shared``) requires a version it excludes: that is a conflict.
        """
        args = [arg for line in lines for arg in line.uv_args()]
        root = self._uv_views.get(base.path, base.path)  # never uv in a user's venv
        python, prefix = self._uv_target(root, base.interpreter)
        changes = self.uv.plan(python, args, prefix=prefix)
        versions = {c.name: c.version for c in changes if c.version}
        problems = broken_by(versions, [base, *shared], [c.name for c in changes])
        if problems:
            raise InstallError([str(line) for line in lines], "\n".join(problems))
        return changes

    # -- derived envs --------------------------------------------------------------------

    def derived(self, lines: tuple[RequirementLine, ...]) -> DerivedEnv:
        """A fresh derived env for one test; give it back with ``release``."""
        base = self.base()
        layer = self.layer(lines)
        if self._factory is None:
            self._factory = EnvFactory(self.session_dir / "derived" / self.worker_id)
        path = self._factory.take(
            (base.path, layer.path if layer else None),
            lambda root: DerivedEnv.make(root, base, layer),
        )
        return DerivedEnv(path, base, layer, lines, self)

    def release(self, env: DerivedEnv) -> None:
        """Delete a derived env: its path vanishes now, its files go in the background."""
        if self._factory is not None:
            self._factory.give_back(env.path)

    def close(self) -> None:
        """Delete every derived env this process made."""
        if self._factory is not None:
            self._factory.close()
            self._factory = None

    def install_into(self, env: DerivedEnv, lines: tuple[RequirementLine, ...]) -> list[str]:
        """Install what ``env`` lacks for ``lines`` into it alone; return what was added.

        Resolved against the base together with everything the env already asked for, so the
        result stays consistent; only what neither the layer nor the env holds is installed.
        """
        shared = [env.layer] if env.layer else []
        changes = self._plan(env.base, [*env.marker_lines, *env.installed_lines, *lines], shared)
        present = installed_packages(
            [env.site_packages] + ([env.layer.site_packages] if env.layer else [])
        )
        missing = [c for c in changes if c.version and present.get(c.name) != c.version]
        args = _exact_requirements(missing, lines)
        if args:
            python, prefix = self._uv_target(env.path, env.base.interpreter)
            self.uv.install(python, args, prefix=prefix, no_deps=True)
            make_scripts_relocatable(env.bin)
        added = [f"{c.name}=={c.version}" for c in missing]
        added += [str(line) for line in lines if _is_direct(line)]
        self.events.append(Event("install", f"installed {', '.join(added) or 'nothing new'}"))
        return added

    # -- the guard on shared envs --------------------------------------------------------

    def watch(self, env: DerivedEnv) -> None:
        """Remember the shared envs ``env`` reads, to check after the test that none changed."""
        for shared in (env.base, env.layer):
            if shared is not None and shared.path not in self._snapshots:
                self._snapshots[shared.path] = DirectorySnapshot.take(
                    [shared.site_packages, shared.bin]
                )

    def check_shared(self, env: DerivedEnv) -> None:
        """Raise ``SharedEnvModified`` (after undoing what can be undone) if a test changed one."""
        problems: list[str] = []
        for shared in (env.base, env.layer):
            if shared is None:
                continue
            snapshot = self._snapshots.get(shared.path)
            if snapshot is None:
                continue
            changes = snapshot.changes()
            if not changes:
                continue
            kind = "base env" if shared is env.base else "layer"
            restored = snapshot.undo_additions()
            del self._snapshots[shared.path]
            if not restored:
                self._damaged(shared)
            fate = "undone" if restored else "it will be rebuilt"
            problems.append(
                f"the test changed the shared {kind} {shared.path} ({fate}):\n  "
                + "\n  ".join(changes[:20])
            )
        if problems:
            raise SharedEnvModified("\n".join(problems))

    def _damaged(self, shared: SharedEnv) -> None:
        """Replace a shared env a test damaged: discard it and rebuild it at once.

        The rebuild lands at the same path (same key), so other workers' derived envs, which
        link to that path, are whole again as soon as possible.
        """
        if self.settings.base not in (SESSION, CACHE) and shared is self._base:
            return  # a user's own venv: not ours to delete; the message says what changed
        is_base = shared is self._base
        self._store("bases" if is_base else "layers").discard(shared.key)
        # Layers hold only what they add, keyed by the base's key: a rebuilt base keeps them.
        stale = [lines for lines, layer in self._layers.items() if layer is shared]
        for lines in stale:
            del self._layers[lines]
        if is_base:
            self._base = None
            self.base()
        for lines in stale:
            self.layer(lines)


def _manifest(
    kind: str, interpreter: Interpreter, lines: Sequence[RequirementLine]
) -> dict[str, Any]:
    return {
        "kind": kind,
        "interpreter": interpreter.identity(),
        "requirements": [str(line) for line in lines],
        "created": time.time(),
    }


def _exact_requirements(changes: Sequence[Change], lines: Sequence[RequirementLine]) -> list[str]:
    """uv arguments installing exactly ``changes`` (with --no-deps).

    Registry packages are pinned to the resolved version; projects asked for by path or URL
    are passed as asked, since the index cannot serve them.
    """
    args: list[str] = []
    direct: set[str] = set()
    for line in lines:
        if not _is_direct(line):
            continue
        args += line.uv_args()
        if line.kind == PEP508:
            direct.add(canonicalize_name(Requirement(line.value).name))
    for change in changes:
        if change.version is not None and canonicalize_name(change.name) not in direct:
            args.append(f"{change.name}=={change.version}")
    return args


def _is_direct(line: RequirementLine) -> bool:
    """A line the index cannot serve by name and version: a path, a file, a URL."""
    return line.kind != PEP508 or Requirement(line.value).url is not None
