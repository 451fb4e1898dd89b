"""In-process activation: a derived env's packages importable in pytest's own process, for a block.

``with isoenv.activate():`` puts the env's site-packages chain (its own, then its layer's or
the base's, processed as ``site.addsitedir`` does, so the ``.pth`` files of editable installs
and namespace packages work) in front of ``sys.path``, and ``os.environ`` is the env's. On
exit the import state is put back as it was: ``sys.path``, ``sys.meta_path``,
``sys.path_hooks``, ``sys.path_importer_cache``, the bytecode settings the env's link sets,
list ``__path__`` of namespace packages that stayed, and ``sys.modules``: a module the block
replaced is restored, a module it imported is removed, except the standard library's and
new submodules of the host's packages imported before (pytest's own lazy imports), which are
the host's anyway. ``importlib.invalidate_caches()`` runs at both ends.

What cannot be undone (documented in docs/where-your-test-runs.md): an extension module stays
loaded in the process (only its name is removed), and cannot be loaded a second time, so a
package with extension modules is kept aside and put back, as it was, in a later block whose
env has the same files (the store's, shared by every env holding that distribution); a module
the host imported before the block stays the host's inside it (told with an
``IsoenvWarning`` when the block imports it and the env has another version); objects made in
the block keep the env's modules alive.
"""

from __future__ import annotations

import builtins
import importlib
import importlib.machinery
import os
import site
import sys
import sysconfig
import types
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

from . import _interpreter
from ._errors import IsoenvError
from ._host_imports import (
    TOLD,
    canonical,
    distribution_in,
    module_root,
    top_level_names,
    warn_host_copy,
    within,
)

if TYPE_CHECKING:
    from ._derived import DerivedEnv

_ACTIVE: _Activation | None = None


def active_directories() -> list[str]:
    """The ``sys.path`` entries an open ``activate()`` block added (none outside a block)."""
    return list(_ACTIVE.added) if _ACTIVE is not None else []


@contextmanager
def activate(env: DerivedEnv) -> Iterator[DerivedEnv]:
    """``env``'s packages importable in this process for the block; see the module docstring."""
    global _ACTIVE  # noqa: PLW0603 - import state is process-wide: one block at a time
    _check_interpreter(env)
    if _ACTIVE is not None:
        raise IsoenvError(
            f"isoenv.activate() is already active for {_ACTIVE.env.path}: blocks cannot be "
            "nested (import state is process-wide); leave the first block before entering "
            "another"
        )
    with env.activated():
        activation = _Activation(env)
        _ACTIVE = activation
        try:
            activation.enter()
            yield env
        finally:
            _ACTIVE = None
            activation.exit()


def _check_interpreter(env: DerivedEnv) -> None:
    mine = _interpreter.current()
    theirs = env.base.interpreter

    def abi(interpreter: _interpreter.Interpreter) -> tuple[object, ...]:
        return (
            interpreter.implementation,
            interpreter.version[:2],
            interpreter.platform,
            interpreter.purelib,
        )

    if abi(mine) != abi(theirs):
        raise IsoenvError(
            f"isoenv.activate() imports the env's packages into pytest's own interpreter "
            f"({mine}), but this env runs {theirs}: run the test in its env's interpreter with "
            "@pytest.mark.isoenv(..., inside=True), or run code there with isoenv.run(...)"
        )


class _Activation:
    """One block: what it changed, and everything needed to put it back."""

    def __init__(self, env: DerivedEnv) -> None:
        self.env = env
        self.path = list(sys.path)
        self.modules = dict(sys.modules)
        self.importer_cache = dict(sys.path_importer_cache)
        self.meta_path = list(sys.meta_path)
        self.path_hooks = list(sys.path_hooks)
        self.pycache_prefix = sys.pycache_prefix
        self.dont_write_bytecode = sys.dont_write_bytecode
        self.original_import = builtins.__import__
        self.added: list[str] = []
        self.env_names: frozenset[str] = frozenset()
        self.namespace_paths: list[tuple[list[str], list[str]]] = []
        # Top-level names the host imported before the block and the env has too: examined
        # (at most once each) when the block imports them.
        self.pending: set[str] = set()
        self.brought_back: set[str] = set()  # tops put back from _EXTENSION_PACKAGES

    # -- entering ----------------------------------------------------------------------------

    def enter(self) -> None:
        self._keep_namespace_paths()  # before the env's .pth lines can extend them
        known = set(sys.path)
        site.addsitedir(str(self.env.site_packages))
        # addsitedir appends (and .pth lines may insert): whatever is new goes in front.
        self.added = [entry for entry in sys.path if entry not in known]
        host = [entry for entry in sys.path if entry in known]
        sys.path[:] = self.added + host
        self.env_names = frozenset().union(*map(top_level_names, self.added))
        self._bring_back_extensions()
        self.pending = {
            name
            for name in self.env_names
            if (module := sys.modules.get(name)) is not None
            and not self._is_env(module)
            and name not in self.brought_back
        }
        if self.pending:
            # The same signature as __import__'s, written with looser types.
            builtins.__import__ = self._import  # type: ignore[assignment]
        importlib.invalidate_caches()

    def _bring_back_extensions(self) -> None:
        """Put back the packages with extension modules an earlier block imported from the
        same files: such a module cannot be loaded twice in a process (NumPy refuses to)."""
        for (top, real), modules in list(_EXTENSION_PACKAGES.items()):
            if top in sys.modules or top not in self.env_names:
                continue
            provider = next(d for d in self.added if top in top_level_names(d))
            if _real_location(provider, top) == real:
                sys.modules.update(modules)
                self.brought_back.add(top)

    def _keep_namespace_paths(self) -> None:
        """Copy the list ``__path__`` of the host's packages: the env could add a part to one.

        Every package's, since a ``.pth`` line may touch any (~50 µs for 300 modules).
        """
        for module in list(self.modules.values()):
            try:
                path = vars(module).get("__path__")
            except TypeError:
                continue
            if type(path) is list:
                self.namespace_paths.append((path, list(path)))

    def _is_env(self, module: types.ModuleType) -> bool:
        file = getattr(module, "__file__", None)
        if isinstance(file, str):
            return within(file, self.added)
        path = getattr(module, "__path__", None)
        try:
            return any(within(entry, self.added) for entry in path or ())
        except TypeError:
            return False

    # -- the block's imports -----------------------------------------------------------------

    def _import(
        self,
        name: str,
        globals: dict[str, Any] | None = None,  # __import__'s own names
        locals: Any = None,
        fromlist: Any = (),
        level: int = 0,
    ) -> Any:
        if level == 0 and self.pending:
            top = name.partition(".")[0]
            if top in self.pending:
                self._examine(top, globals)
        return self.original_import(name, globals, locals, fromlist, level)

    def _examine(self, top: str, importer: dict[str, Any] | None) -> None:
        """Warn when ``import top`` gets the host's module while the env has another version."""
        if _host_code(importer):
            return  # the host's own code (pytest, a plugin) wants the host's copy
        self.pending.discard(top)
        module = sys.modules.get(top)
        if module is None:  # removed in the block: the import finds the env's
            return
        host_root = module_root(module)
        env_root = next((d for d in self.added if top in top_level_names(d)), None)
        if env_root is None or host_root == env_root:
            return
        env_dist = distribution_in(env_root, top)
        host_dist = distribution_in(host_root, top) if host_root else None
        if env_dist and host_dist and env_dist[1] == host_dist[1]:
            return  # the same version: the host's copy is as good
        name = env_dist[0] if env_dist else (host_dist[0] if host_dist else top)
        TOLD.add(canonical(name))
        host_version = host_dist[1] if host_dist else "(version unknown)"
        env_version = env_dist[1] if env_dist else "(version unknown)"
        warn_host_copy(
            f"`import {top}` in an isoenv.activate() block gets the module the host imported "
            f"before the block, {name} {host_version} ({getattr(module, '__file__', top)}), "
            f"not the env's {name} {env_version}: a module already imported cannot be "
            "replaced. Import it in the env with @pytest.mark.isoenv(..., inside=True) or "
            "isoenv.run(...), or do not import it in the host before the block.",
            stacklevel=3,  # _examine < _import < the import statement
        )

    # -- leaving -----------------------------------------------------------------------------

    def exit(self) -> None:
        if builtins.__import__ == self._import:
            builtins.__import__ = self.original_import
        sys.path[:] = self.path
        sys.meta_path[:] = self.meta_path
        sys.path_hooks[:] = self.path_hooks
        sys.pycache_prefix = self.pycache_prefix
        sys.dont_write_bytecode = self.dont_write_bytecode
        self._restore_modules()
        for path, saved in self.namespace_paths:
            if path != saved:
                path[:] = saved
        # Before the importer cache is put back: it drops the entries of relative paths.
        importlib.invalidate_caches()
        sys.path_importer_cache.clear()
        sys.path_importer_cache.update(self.importer_cache)

    def _restore_modules(self) -> None:
        removed: dict[str, Any] = {}
        for name, module in list(sys.modules.items()):
            if name not in self.modules and not self._keeps(name, module):
                removed[name] = sys.modules.pop(name)
        restored: dict[str, Any] = {}
        for name, module in self.modules.items():
            if sys.modules.get(name) is not module:
                sys.modules[name] = module
                restored[name] = module
        self._keep_extensions(removed)
        # A submodule is an attribute of its package too: unbind the removed, rebind the put back.
        for name, module in removed.items():
            parent, _, child = name.rpartition(".")
            owner = sys.modules.get(parent) if parent else None
            if owner is not None and getattr(owner, child, None) is module:
                with suppress(AttributeError, TypeError):
                    delattr(owner, child)
        for name, module in restored.items():
            parent, _, child = name.rpartition(".")
            owner = sys.modules.get(parent) if parent else None
            if owner is not None and hasattr(owner, child):
                with suppress(AttributeError, TypeError):
                    setattr(owner, child, module)

    def _keep_extensions(self, removed: dict[str, Any]) -> None:
        """Keep, for later blocks, the env's packages the block loaded extension modules of."""
        with_extensions = {
            name.partition(".")[0]
            for name, module in removed.items()
            if str(getattr(module, "__file__", None) or "").endswith(_EXTENSION_SUFFIXES)
        }
        for top in with_extensions:
            module = removed.get(top)
            if module is None or not (self._is_env(module) or top in self.brought_back):
                continue
            root = module_root(module)
            if root is None:
                continue
            modules = {n: m for n, m in removed.items() if n == top or n.startswith(top + ".")}
            _EXTENSION_PACKAGES[(top, _real_location(root, top))] = modules

    def _keeps(self, name: str, module: object) -> bool:
        """Whether a module the block imported stays: the host's own, whatever the block."""
        if not isinstance(module, types.ModuleType) or self._is_env(module):
            return False
        file = getattr(module, "__file__", None)
        if isinstance(file, str):
            if _is_stdlib(file):
                return True
        else:
            spec = getattr(module, "__spec__", None)
            if getattr(spec, "origin", None) in ("built-in", "frozen"):
                return True
        # A new submodule of a package the host imported before (pytest's own lazy imports).
        top = name.partition(".")[0]
        return top != name and self.modules.get(top) is not None


# Packages with extension modules imported in blocks, by top-level name and the real path of
# their files (the store's: the same in every env holding that distribution), with all their
# modules: a later block whose env has the same files gets them back as they were.
_EXTENSION_PACKAGES: dict[tuple[str, str], dict[str, Any]] = {}
_EXTENSION_SUFFIXES = tuple(importlib.machinery.EXTENSION_SUFFIXES)


def _real_location(directory: str, top: str) -> str:
    """The real path of module ``top`` in ``directory`` (its package dir, or its file)."""
    package = os.path.join(directory, top)
    if os.path.isdir(package):
        return os.path.realpath(package)
    for name in sorted(os.listdir(directory)):
        if name.partition(".")[0] == top:
            return os.path.realpath(os.path.join(directory, name))
    return os.path.realpath(package)


def _stdlib() -> list[str]:
    global _STDLIB  # noqa: PLW0603 - computed once per process
    if _STDLIB is None:
        paths = sysconfig.get_paths()
        _STDLIB = sorted({paths["stdlib"], paths["platstdlib"]})
    return _STDLIB


def _is_stdlib(file: str) -> bool:
    """Whether ``file`` is the standard library's (a site-packages may lie inside its dir)."""
    if not within(file, _stdlib()):
        return False
    paths = sysconfig.get_paths()
    return not within(file, [paths["purelib"], paths["platlib"]])


_STDLIB: list[str] | None = None
_HOST_CODE: list[str] | None = None


def _host_code(importer: dict[str, Any] | None) -> bool:
    """Whether an import comes from the host's installed code (its site-packages, stdlib)."""
    global _HOST_CODE  # noqa: PLW0603 - computed once per process
    if importer is None:
        return False
    name = importer.get("__name__")
    if isinstance(name, str) and name.partition(".")[0] == "pytest_isoenv":
        return True
    file = importer.get("__file__")
    if not isinstance(file, str):
        return False
    if _HOST_CODE is None:
        paths = sysconfig.get_paths()
        found = {paths["purelib"], paths["platlib"], *_stdlib()}
        found.update(getattr(site, "getsitepackages", list)())
        if site.ENABLE_USER_SITE:
            found.add(site.getusersitepackages())
        _HOST_CODE = sorted(os.path.abspath(p) for p in found)
    return within(file, _HOST_CODE)
