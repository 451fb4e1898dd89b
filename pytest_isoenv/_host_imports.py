"""The host's copy: a marked test that imports, in pytest's process, what its env should give.

A test marked ``@pytest.mark.isoenv(requires=["pydantic<2"])`` gets an env with pydantic 1,
but its body runs in pytest's own process: ``import pydantic`` there gives the host's pydantic
2, silently. This module tells it with an :class:`~pytest_isoenv.IsoenvWarning`, at the end of
the test's call phase, for each distribution the marker names whose *host* copy the test used:

- a module the test's code imports (``import`` statements in the test function, found in its
  bytecode), even when the host had it loaded already;
- a module the test's code reaches through a global of its module (``import pydantic`` or
  ``from pydantic import BaseModel`` at the top of the file, which runs at collection, before
  the test, and a name the test uses), or through the values of its fixtures;
- a module first imported while the test ran (by any code).

Cheap on purpose: an unmarked test costs two stash look-ups; a marked test whose distributions
the host does not have costs a dictionary look-up (what the host has is read once per
session); only a distribution the host has *and has loaded* costs a look at the test.
"""

from __future__ import annotations

import contextlib
import dis
import inspect
import os
import sys
import types
import warnings
from collections.abc import Generator, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ._derived import DerivedEnv
    from ._requirements import RequirementLine

#: Canonical names of the distributions an ``activate()`` block already warned about in the
#: current test: the guard does not tell them a second time.
TOLD: set[str] = set()

_IMPORT_OPS = frozenset({"IMPORT_NAME"})
_SUFFIXES = (".py", ".pyc", ".so", ".pyd")


def canonical(name: str) -> str:
    """A distribution name as PEP 503 normalizes it (``Foo_Bar`` -> ``foo-bar``)."""
    import re  # noqa: PLC0415 - only on the warning paths

    return re.sub(r"[-_.]+", "-", name).lower()


def top_level_names(directory: str) -> frozenset[str]:
    """The top-level module names a ``sys.path`` directory provides (by its listing)."""
    try:
        stat = os.stat(directory)
    except OSError:
        return frozenset()
    key = (directory, stat.st_mtime_ns)
    found = _TOP_NAMES.get(key)
    if found is None:
        names: set[str] = set()
        try:
            entries = os.listdir(directory)
        except OSError:
            entries = []
        for entry in entries:
            if entry.endswith(_SUFFIXES):
                names.add(entry.partition(".")[0])
            elif entry.isidentifier():  # a package (dist-info directories have a dot)
                names.add(entry)
        found = _TOP_NAMES[key] = frozenset(names)
    return found


_TOP_NAMES: dict[tuple[str, int], frozenset[str]] = {}
_PROVIDERS: dict[tuple[str, int, str], tuple[str, str] | None] = {}


def distribution_tops(dist: Any) -> frozenset[str]:
    """The top-level module names an ``importlib.metadata`` distribution installs."""
    text = dist.read_text("top_level.txt")
    if text:
        return frozenset(line.strip() for line in text.splitlines() if line.strip())
    names: set[str] = set()
    for file in dist.files or ():
        first = file.parts[0] if file.parts else ""
        if not first or first.startswith("..") or first.endswith((".dist-info", ".egg-info")):
            continue
        if len(file.parts) == 1:
            if first.endswith(_SUFFIXES):
                names.add(first.partition(".")[0])
        elif first.isidentifier() and first != "__pycache__":
            names.add(first)
    return frozenset(names)


def distribution_in(directory: str, top: str) -> tuple[str, str] | None:
    """``(name, version)`` of the distribution in ``directory`` that installs module ``top``."""
    try:
        stat = os.stat(directory)
        entries = os.listdir(directory)
    except OSError:
        return None
    key = (directory, stat.st_mtime_ns, top)
    if key in _PROVIDERS:
        return _PROVIDERS[key]
    import importlib.metadata  # noqa: PLC0415 - only on the warning paths

    wanted = canonical(top)
    metas = [e for e in entries if e.endswith((".dist-info", ".egg-info"))]
    # The distribution named like the module first: usually the one, read alone.
    metas.sort(key=lambda e: canonical(e.partition("-")[0].rpartition(".")[0] or e) != wanted)
    found = None
    for entry in metas:
        dist = importlib.metadata.PathDistribution(Path(directory, entry))
        try:
            if top in distribution_tops(dist):
                found = (str(dist.metadata["Name"]), str(dist.version))
                break
        except Exception:  # noqa: S112 - a broken record of someone else's: not this one
            continue
    _PROVIDERS[key] = found
    return found


def module_root(module: types.ModuleType) -> str | None:
    """The ``sys.path`` directory a top-level module was imported from, or None."""
    file = getattr(module, "__file__", None)
    if not isinstance(file, str):
        return None
    folder = os.path.dirname(file)
    # A package: its __init__'s parent. Not ``__path__``, which a module may set itself
    # (six.py does: ``__path__ = []``).
    if os.path.splitext(os.path.basename(file))[0] == "__init__":
        folder = os.path.dirname(folder)
    return folder


def within(path: str, directories: Iterable[str]) -> bool:
    """Whether ``path`` lies inside one of ``directories``."""
    return any(path == d or path.startswith(d.rstrip(os.sep) + os.sep) for d in directories)


def top_of(value: object) -> str | None:
    """The top-level module a global value comes from: a module, or a class's or function's."""
    name: object
    if isinstance(value, types.ModuleType):
        name = value.__name__
    elif isinstance(value, (type, types.FunctionType, types.BuiltinFunctionType)):
        name = getattr(value, "__module__", None)
    else:  # an instance: its class's module (never the instance's own attributes)
        name = type(value).__module__
    return name.partition(".")[0] if isinstance(name, str) else None


def code_imports(code: types.CodeType) -> frozenset[str]:
    """Top-level names imported by ``import`` statements in ``code`` and the code nested in it."""
    found = _CODE_IMPORTS.get(code)
    if found is None:
        found = _CODE_IMPORTS[code] = frozenset(
            instruction.argval.partition(".")[0]
            for current in _nested(code)
            for instruction in dis.get_instructions(current)
            if instruction.opname in _IMPORT_OPS and isinstance(instruction.argval, str)
        )
    return found


def code_names(code: types.CodeType) -> frozenset[str]:
    """The global and attribute names ``code`` and the code nested in it use."""
    found = _CODE_NAMES.get(code)
    if found is None:
        found = _CODE_NAMES[code] = frozenset(
            name for current in _nested(code) for name in current.co_names
        )
    return found


def _nested(code: types.CodeType) -> Iterator[types.CodeType]:
    """``code`` and the code objects nested in it (functions, classes, comprehensions)."""
    pending = [code]
    while pending:
        current = pending.pop()
        yield current
        pending += [c for c in current.co_consts if isinstance(c, types.CodeType)]


_CODE_IMPORTS: dict[types.CodeType, frozenset[str]] = {}
_CODE_NAMES: dict[types.CodeType, frozenset[str]] = {}


def warn_host_copy(message: str, item: pytest.Item | None = None, stacklevel: int = 2) -> None:
    """Tell ``message`` as an ``IsoenvWarning``: at the test's line, or at the caller's."""
    from ._errors import IsoenvWarning  # noqa: PLC0415

    if item is None:
        warnings.warn(message, IsoenvWarning, stacklevel=stacklevel + 1)
        return
    lineno = item.location[1]
    warnings.warn_explicit(
        message,
        IsoenvWarning,
        filename=str(item.path),
        lineno=(lineno or 0) + 1,
        module=getattr(getattr(item, "module", None), "__name__", None),
    )


HOW_TO = (
    "run it in its env with @pytest.mark.isoenv(..., inside=True), with isoenv.run(...), "
    "or import it inside `with isoenv.activate():`"
)


class _HostDistribution:
    """A distribution the host has: its version and the top-level modules it installs."""

    def __init__(self, name: str, version: str, tops: frozenset[str]) -> None:
        self.name = name
        self.version = version
        self.tops = tops


class HostImportGuard:
    """The plugin that warns when a marked test used the host's copy of what it asked for."""

    def __init__(
        self,
        lines_key: pytest.StashKey[tuple[RequirementLine, ...]],
        env_key: pytest.StashKey[DerivedEnv],
    ) -> None:
        self._lines_key = lines_key
        self._env_key = env_key
        self._index: dict[str, Path] | None = None  # canonical name -> host metadata dir
        self._host: dict[str, _HostDistribution | None] = {}
        self._watched: dict[tuple[RequirementLine, ...], dict[str, str]] = {}

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, object, object]:
        lines = item.stash.get(self._lines_key, None)
        if lines is None:  # unmarked: nothing to watch
            return (yield)
        watched = self._watched.get(lines)
        if watched is None:
            watched = self._watched[lines] = self._watch(lines)
        if not watched:  # (an inside=True test never runs here: its child runs it)
            return (yield)
        loaded_before = frozenset(top for top in watched if top in sys.modules)
        TOLD.clear()
        from ._errors import IsoenvWarning  # noqa: PLC0415

        try:
            result = yield
        except BaseException:
            # The test failed already: the warning is told, but under ``-W error`` it must
            # not replace the test's own failure.
            with contextlib.suppress(IsoenvWarning):
                self._check(item, watched, loaded_before)
            raise
        try:
            self._check(item, watched, loaded_before)
        except IsoenvWarning as error:  # -W error: the test fails, on the message alone
            failure = f"IsoenvWarning: {error}"
        else:
            return result
        pytest.fail(failure, pytrace=False)

    def _watch(self, lines: tuple[RequirementLine, ...]) -> dict[str, str]:
        """Top-level module -> distribution, for what the marker names and the host has."""
        watched: dict[str, str] = {}
        for line in lines:
            name = line.name
            if name is None:
                continue
            host = self._host_distribution(canonical(name))
            if host is not None:
                watched.update(dict.fromkeys(host.tops, canonical(name)))
        return watched

    def _host_distribution(self, name: str) -> _HostDistribution | None:
        if name in self._host:
            return self._host[name]
        found = None
        path = self._host_index().get(name)
        if path is not None:
            import importlib.metadata  # noqa: PLC0415

            dist = importlib.metadata.PathDistribution(path)
            try:
                found = _HostDistribution(name, str(dist.version), distribution_tops(dist))
            except Exception:  # an unreadable record: the guard cannot tell, so it does not
                found = None
        self._host[name] = found
        return found

    def _host_index(self) -> dict[str, Path]:
        """Where the host's distributions' metadata is, first on ``sys.path`` first (once)."""
        if self._index is None:
            from ._activate import active_directories  # noqa: PLC0415

            skipped = set(active_directories())  # a block's env is not the host
            index: dict[str, Path] = {}
            for directory in sys.path:
                directory = directory or os.getcwd()  # noqa: PLW2901
                if directory in skipped:
                    continue
                try:
                    entries = sorted(os.listdir(directory))
                except OSError:
                    continue
                for entry in entries:
                    if entry.endswith((".dist-info", ".egg-info")):
                        stem = entry.rpartition(".")[0]
                        index.setdefault(canonical(stem.partition("-")[0]), Path(directory, entry))
            self._index = index
        return self._index

    def _check(
        self, item: pytest.Item, watched: dict[str, str], loaded_before: frozenset[str]
    ) -> None:
        env = item.stash.get(self._env_key, None)
        referenced: set[str] | None = None
        told: set[str] = set()
        for top, dist in watched.items():
            module = sys.modules.get(top)
            if module is None or dist in told or dist in TOLD:
                continue
            if top in loaded_before:
                if referenced is None:
                    referenced = self._referenced(item)
                if top not in referenced:
                    continue
            root = module_root(module)
            if env is not None and root is not None and root == _env_provider(env, top):
                continue  # the env's own copy (imported in an activate() block)
            told.add(dist)
            host = distribution_in(root, top) if root is not None else None
            host_version = host[1] if host else self._host[dist].version  # type: ignore[union-attr]
            env_version = env.packages().get(dist) if env is not None else None
            if env_version == host_version:
                continue  # the same version: the host's copy is as good as the env's
            where = f" ({module.__file__})" if getattr(module, "__file__", None) else ""
            warn_host_copy(
                f"{item.nodeid} used the host's {dist} {host_version}{where}, not the env's "
                f"{dist} {env_version or '(not installed)'} its isoenv marker asks for: the "
                f"test body runs in pytest's own process. To use the env's, {HOW_TO}.",
                item,
            )

    def _referenced(self, item: pytest.Item) -> set[str]:
        """Top-level modules the test's code imports or its globals and fixtures reference."""
        found: set[str] = set()
        function = getattr(item, "obj", None)
        function = getattr(function, "__func__", function)
        with contextlib.suppress(TypeError, ValueError):
            function = inspect.unwrap(function)  # type: ignore[arg-type]
        code = getattr(function, "__code__", None)
        module_globals = getattr(function, "__globals__", None)
        if isinstance(code, types.CodeType):
            found |= code_imports(code)
            if isinstance(module_globals, dict):
                # Only the globals the test's code names: a module-level `import pydantic`
                # used by other tests (or only in strings run in the env) is not this one's.
                names = code_names(code)
                values = [module_globals[name] for name in names if name in module_globals]
                found.update(top for top in map(top_of, values) if top)
        funcargs = getattr(item, "funcargs", None)
        if isinstance(funcargs, dict):
            found.update(top for top in map(top_of, list(funcargs.values())) if top)
        return found


def _is_relative_to(path: Path, other: Path) -> bool:
    return path == other or other in path.parents


def _env_provider(env: DerivedEnv, top: str) -> str | None:
    """The directory of ``env``'s chain its own ``import top`` would come from."""
    for directory in env_directories(env):
        if top in top_level_names(directory):
            return directory
    return None


def env_directories(env: DerivedEnv) -> Iterator[str]:
    """The site-packages an env's interpreter searches, its own first (no ``.pth`` entries)."""
    yield str(env.site_packages)
    view = env.layer or env.base
    yield str(view.site_packages)
