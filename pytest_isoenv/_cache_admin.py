"""The cache's contents, and pruning what no session uses: envs, stored distributions, bytecode.

A cache (``<cache dir>/v2``) holds views (``bases/``, ``layers/``, and ``kept/`` envs), the
stored distributions they link (``dists/``), the bytecode of both (``pycache/``, mirroring
absolute paths) and what killed builders left behind. Which view links which distribution is
read from the view itself (its symbolic links and ``.pth`` lines), not from its manifest: a
layer links its base's distributions too.

Nothing a running session uses is removed. A session holds each env and each stored
distribution it uses (``_usage``); pruning takes one exclusively before removing it and keeps
it until the end, so a session that starts using it meanwhile waits, then builds it anew. A
stored distribution goes only when no remaining env links it either. Sessions without
``--isoenv-base=cache`` store distributions here too, linked by envs outside the cache: those
have a last use of their own.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import re
import stat
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from . import _usage
from ._fingerprint import ENTRY_MANIFEST
from ._store import FORMAT_VERSION, read_manifest
from ._swap import remove_tree

VERSION_DIR = f"v{FORMAT_VERSION}"
#: The directories of envs below ``v2``, and what each holds.
ENV_KINDS = {"bases": "base", "layers": "layer", "kept": "kept env"}
KEPT_VIEW = "view"  # where a kept env holds its copy of its view (``_keep.VIEW``)
#: Builder leftovers younger than this may belong to a build still under way.
LEFTOVER_AGE = 3600.0
DAY = 86400.0
_SIZES_FILE = ".dist-sizes.json"
_BUILDING = (".tmp-", ".trash-")
_ADDSITEDIR = re.compile(r"addsitedir\(((?:'[^']*')|(?:\"[^\"]*\"))\)")
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)


class NotACache(Exception):
    """A directory that holds no cache of this pytest-isoenv version."""


# -- sizes -------------------------------------------------------------------------------------


def parse_size(text: str) -> int:
    """Bytes in ``500M``, ``2G``, ``1.5GiB``, ``300K``, ``4096`` (K, M, G, T are powers of 1024)."""
    found = _SIZE.match(text)
    if found is None:
        raise ValueError(f"{text!r} is not a size (examples: 500M, 2G, 1.5G, 300K)")
    return int(float(found.group(1)) * _UNITS[found.group(2).upper()])


def format_size(size: int) -> str:
    """``size`` bytes as ``du -h`` would say it (``0B``, ``12K``, ``1.5M``, ``2.0G``)."""
    value = float(size)
    for unit in ("B", "K", "M", "G", "T"):
        if value < 1024 or unit == "T":
            break
        value /= 1024
    if unit == "B":
        return f"{size}B"
    return f"{value:.1f}{unit}" if value < 10 else f"{value:.0f}{unit}"


def disk_usage(path: Path) -> int:
    """What ``path`` takes on disk, like ``du``: a file with several links counts once, a
    symbolic link as a link (its target is not followed)."""
    seen: set[tuple[int, int]] = set()
    try:
        info = os.lstat(path)
    except OSError:
        return 0
    total = _blocks(info, seen)
    stack = [str(path)] if os.path.isdir(path) and not os.path.islink(path) else []
    while stack:
        try:
            scan = os.scandir(stack.pop())
        except OSError:
            continue
        with scan:
            for entry in scan:
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                total += _blocks(info, seen)
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
    return total


def _blocks(info: os.stat_result, seen: set[tuple[int, int]]) -> int:
    if info.st_nlink > 1 and not stat.S_ISDIR(info.st_mode):
        key = (info.st_dev, info.st_ino)
        if key in seen:
            return 0
        seen.add(key)
    blocks = getattr(info, "st_blocks", None)
    return info.st_size if blocks is None else blocks * 512


# -- what the cache holds ----------------------------------------------------------------------


@dataclass(eq=False)
class CachedEnv:
    """A base, a layer or a kept env in the cache."""

    kind: str  # "base", "layer" or "kept env"
    path: Path
    requirements: tuple[str, ...]
    #: What it holds itself, as ``name version`` (a layer: what it adds to its base's).
    packages: tuple[str, ...]
    #: Stored distributions it links but does not list (a layer's from its base).
    inherited: int
    size: int
    #: When a session last started using it (else when it was made).
    last_used: float
    dists: frozenset[Path]
    #: The views it links through ``.pth`` lines (a kept env's).
    views: frozenset[Path]

    def describe(self) -> str:
        asked = ", ".join(self.requirements) or "no requirements"
        holds = ", ".join(self.packages) or "no packages"
        if self.inherited:
            holds += f" (and {self.inherited} from its base)"
        return f"{asked}: {holds}"


@dataclass(eq=False)
class StoredDist:
    """One stored distribution and the envs linking it."""

    path: Path
    name: str
    version: str
    size: int
    #: When a session last started using it itself (else when it was stored).
    used: float
    users: list[CachedEnv] = field(default_factory=list)

    @property
    def last_used(self) -> float:
        """Its own last use, or the latest of the envs linking it."""
        return max([self.used, *(env.last_used for env in self.users)])

    def describe(self) -> str:
        return f"{self.name} {self.version}"


@dataclass(eq=False)
class Leftover:
    """What a builder left: a staging or trash dir of an env, or a staging dir of ``dists/``."""

    path: Path
    #: The env whose hold a live builder of it takes (None: one in ``dists/``).
    env: Path | None
    age: float
    size: int


@dataclass
class Inventory:
    """Everything in one cache, with sizes and last uses."""

    root: Path
    envs: list[CachedEnv]
    dists: list[StoredDist]
    leftovers: list[Leftover]
    #: Distributions linked by builds in progress (or killed): never taken for orphans.
    building: frozenset[Path]
    total: int

    @property
    def pycache(self) -> Path:
        return self.root / "pycache"


def cache_root(cache_dir: Path) -> Path | None:
    """The ``v2`` directory of ``cache_dir``; None when nothing was cached there yet.

    Raise ``NotACache`` for a directory holding other things: nothing in it is ours to remove.
    """
    try:
        names = os.listdir(cache_dir)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        raise NotACache(f"{cache_dir} is not a directory") from None
    root = cache_dir / VERSION_DIR
    if VERSION_DIR in names and root.is_dir() and not root.is_symlink():
        return root
    if not names:
        return None
    hint = ""
    if cache_dir.name == VERSION_DIR or (cache_dir / "bases").is_dir():
        hint = f" (give the directory that holds {VERSION_DIR}/, not {VERSION_DIR}/ itself)"
    elif (cache_dir / "v1").is_dir():
        hint = " (its v1/ is from an older pytest-isoenv: delete it by hand)"
    raise NotACache(
        f"{cache_dir} is not a pytest-isoenv cache: it has no {VERSION_DIR}/ directory{hint}; "
        "nothing was changed"
    )


def scan(root: Path, *, now: float | None = None) -> Inventory:
    """Read the cache at ``root`` (a ``v2`` directory): every env, distribution and leftover."""
    now = time.time() if now is None else now
    total = disk_usage(root)
    dists_root = root / "dists"
    envs: list[CachedEnv] = []
    leftovers: list[Leftover] = []
    building: set[Path] = set()
    for kind in ENV_KINDS:
        for path in _children(root / kind):
            if not path.is_dir() or path.is_symlink():
                continue
            stem, building_suffix = _split_building(path.name)
            if building_suffix:
                building.update(_links(path, root)[0])
                age = now - _mtime(path)
                leftovers.append(Leftover(path, path.with_name(stem), age, disk_usage(path)))
                continue
            envs.append(_read_env(kind, path, root))
    dists: list[StoredDist] = []
    sizes = _SizeMemo(root)
    for path in _children(dists_root):
        if path.name == "index":
            continue
        if path.name.startswith("."):
            leftovers.append(Leftover(path, None, now - _mtime(path), disk_usage(path)))
            continue
        if not path.is_dir() or path.is_symlink():
            continue
        size = disk_usage(path)
        sizes.record(path, size)
        size += sum(disk_usage(mirror) for mirror in mirrors(root, path))
        name, version = _dist_name(path)
        used = _usage.last_used(path)
        dists.append(StoredDist(path, name, version, size, _mtime(path) if used is None else used))
    sizes.save()
    by_path = {dist.path: dist for dist in dists}
    for env in envs:
        for linked in env.dists:
            found = by_path.get(linked)
            if found is not None:
                found.users.append(env)
    return Inventory(root, envs, dists, leftovers, frozenset(building), total)


def quick_size(root: Path) -> int:
    """About what ``scan(root).total`` says, without reading stored distributions again.

    Stored distributions never change: their sizes are remembered by ``scan`` and by this,
    so a session's summary line reads views, bytecode and new distributions only.
    """
    total = 0
    sizes = _SizeMemo(root)
    for path in _children(root):
        if path.name != "dists" or path.is_symlink():
            total += disk_usage(path)
            continue
        for child in _children(path):
            if child.name == "index" or child.name.startswith(".") or child.is_symlink():
                total += disk_usage(child)
                continue
            known = sizes.get(child)
            if known is None:
                known = disk_usage(child)
                sizes.record(child, known)
            total += known
    sizes.save()
    return total


def mirrors(root: Path, path: Path) -> list[Path]:
    """Where bytecode of ``path`` lands in the cache's ``pycache/`` (which mirrors paths)."""
    found: list[Path] = []
    for form in dict.fromkeys((os.path.abspath(path), os.path.realpath(path))):
        mirror = root / "pycache" / form.lstrip(os.sep)
        if os.path.lexists(mirror):
            found.append(mirror)
    return found


def _children(directory: Path) -> list[Path]:
    try:
        return sorted(directory / name for name in os.listdir(directory))
    except OSError:
        return []


def _split_building(name: str) -> tuple[str, bool]:
    for marker in _BUILDING:
        stem, sep, _ = name.partition(marker)
        if sep:
            return stem, True
    return name, False


def _mtime(path: Path) -> float:
    try:
        return os.lstat(path).st_mtime
    except OSError:
        return 0.0


def _read_env(kind: str, path: Path, root: Path) -> CachedEnv:
    manifest = read_manifest(path) or {}
    dists, views = _links(path, root)
    own: list[str] = []
    own_dirs: set[Path] = set()
    for item in manifest.get("entries", ()):
        if isinstance(item, dict):
            own.append(f"{item.get('name', '?')} {item.get('version', '?')}")
            own_dirs.add(root / "dists" / str(item.get("dir", "")))
    if not manifest.get("entries") and kind == "kept":
        own = _installed(path)
    used = _usage.last_used(path)
    if used is None:
        created = manifest.get("created")
        used = float(created) if isinstance(created, (int, float)) else _mtime(path)
    size = disk_usage(path) + sum(disk_usage(mirror) for mirror in mirrors(root, path))
    requirements = manifest.get("requirements", ())
    return CachedEnv(
        kind=ENV_KINDS.get(kind, kind),
        path=path,
        requirements=tuple(str(r) for r in requirements) if isinstance(requirements, list) else (),
        packages=tuple(own),
        inherited=len(dists - own_dirs),
        size=size,
        last_used=used,
        dists=frozenset(dists),
        views=frozenset(views),
    )


def _site_packages(env: Path) -> list[Path]:
    return [*sorted(env.glob("lib/*/site-packages")), *sorted(env.glob("Lib/site-packages"))]


def _installed(env: Path) -> list[str]:
    """``name version`` of the distributions installed in ``env``'s own site-packages."""
    found = []
    for packages in _site_packages(env):
        for info in sorted(packages.glob("*.dist-info")):
            name, _, version = info.name[: -len(".dist-info")].partition("-")
            found.append(f"{name} {version}")
    return found


def _links(env: Path, root: Path) -> tuple[set[Path], set[Path]]:
    """The stored distributions and the views ``env`` links (by symlink or ``.pth`` line)."""
    dists: set[Path] = set()
    views: set[Path] = set()
    forms = {os.path.abspath(root), os.path.realpath(root)}
    for packages in _site_packages(env):
        targets = list(_symlink_targets(str(packages)))
        for pth in packages.glob("*.pth"):
            targets += _pth_paths(pth)
        for target in targets:
            _classify(target, forms, root, dists, views)
    # A kept env's own copy of its view (``_keep``): the distributions it links are the
    # kept env's to keep.
    for packages in sorted(env.glob(f"{KEPT_VIEW}/lib/*/site-packages")):
        for target in _symlink_targets(str(packages)):
            _classify(target, forms, root, dists, views)
    return dists, views


def _symlink_targets(directory: str) -> Iterator[str]:
    try:
        scan = list(os.scandir(directory))
    except OSError:
        return
    for entry in scan:
        if entry.is_symlink():
            with contextlib.suppress(OSError):
                yield os.path.join(directory, os.readlink(entry.path))
        elif entry.is_dir(follow_symlinks=False) and not entry.name.endswith(".dist-info"):
            yield from _symlink_targets(entry.path)  # a merged (namespace) directory


def _pth_paths(pth: Path) -> list[str]:
    try:
        text = pth.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    found = []
    for literal in _ADDSITEDIR.findall(text):
        with contextlib.suppress(ValueError, SyntaxError):
            found.append(str(ast.literal_eval(literal)))
    return found


def _classify(target: str, forms: set[str], root: Path, dists: set[Path], views: set[Path]) -> None:
    target = os.path.normpath(target)
    for form in forms:
        if not target.startswith(form + os.sep):
            continue
        parts = target[len(form) + 1 :].split(os.sep)
        if len(parts) >= 2 and parts[0] == "dists" and parts[1] != "index":
            dists.add(root / "dists" / parts[1])
        elif len(parts) >= 2 and parts[0] in ENV_KINDS:
            views.add(root / parts[0] / parts[1])
        return


def _dist_name(path: Path) -> tuple[str, str]:
    try:
        data = json.loads((path / ENTRY_MANIFEST).read_text(encoding="utf-8"))
        return str(data["name"]), str(data["version"])
    except (OSError, ValueError, KeyError, TypeError):
        name = path.name.rpartition("-")[0]  # <name>-<version>-<digest>
        name, _, version = name.rpartition("-")
        return name or path.name, version or "?"


class _SizeMemo:
    """Sizes of stored distributions, by directory name and inode (they never change)."""

    def __init__(self, root: Path) -> None:
        self.path = root / _SIZES_FILE
        try:
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            loaded = {}
        self.sizes: dict[str, list[int]] = loaded if isinstance(loaded, dict) else {}
        self.seen: set[str] = set()
        self.changed = False

    def get(self, path: Path) -> int | None:
        self.seen.add(path.name)
        known = self.sizes.get(path.name)
        try:
            inode = os.lstat(path).st_ino
        except OSError:
            return None
        if isinstance(known, list) and len(known) == 2 and known[0] == inode:
            return int(known[1])
        return None

    def record(self, path: Path, size: int) -> None:
        self.seen.add(path.name)
        try:
            inode = os.lstat(path).st_ino
        except OSError:
            return
        if self.sizes.get(path.name) != [inode, size]:
            self.sizes[path.name] = [inode, size]
            self.changed = True

    def save(self) -> None:
        """Write the sizes of the distributions seen (forgetting the others), if they changed."""
        if not self.changed and set(self.sizes) <= self.seen:
            return
        kept = {name: self.sizes[name] for name in self.seen if name in self.sizes}
        tmp = self.path.with_name(f"{self.path.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            tmp.write_text(json.dumps(kept, sort_keys=True), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError:
            tmp.unlink(missing_ok=True)


# -- removing ----------------------------------------------------------------------------------


@dataclass
class Removed:
    """One thing a prune removed (or spared)."""

    what: str  # "base", "layer", "kept env", "stored distribution", "leftover", "bytecode"
    description: str
    size: int
    last_used: float | None = None


@dataclass
class PruneReport:
    """What a prune did."""

    removed: list[Removed] = field(default_factory=list)
    #: What it would have removed, but a running session uses it.
    in_use: list[Removed] = field(default_factory=list)
    size_before: int = 0

    @property
    def freed(self) -> int:
        return sum(item.size for item in self.removed)

    @property
    def size_after(self) -> int:
        return max(self.size_before - self.freed, 0)

    @property
    def envs_removed(self) -> int:
        return sum(item.what in ENV_KINDS.values() for item in self.removed)


class _Holds:
    """Exclusive holds on envs and distributions, kept until ``release``; the ``.inuse`` files
    of the removed ones go."""

    def __init__(self) -> None:
        self.fds: dict[Path, int] = {}
        #: Envs removed, and envs whose ``.inuse`` file only exists because we took them.
        self.gone: set[Path] = set()

    def take(self, env: Path) -> bool:
        if env in self.fds:
            return True
        existed = _usage.inuse_file(env).exists()
        fd = _usage.try_exclusive(env)
        if fd is None:
            return False
        self.fds[env] = fd
        if not existed:  # a new file would say "used now": it goes again
            self.gone.add(env)
        return True

    def release(self) -> None:
        """Let go of every hold; delete the ``.inuse`` file of each removed env.

        The file goes while it is held: a session waiting for it finds it deleted and takes the
        new one (``_usage.hold``).
        """
        for env, fd in list(self.fds.items()):
            if env in self.gone:
                _usage.inuse_file(env).unlink(missing_ok=True)
                self.gone.discard(env)
            with contextlib.suppress(OSError):
                os.close(fd)
            del self.fds[env]


def prune(
    root: Path,
    *,
    older_than: float | None = None,
    max_size: int | None = None,
    everything: bool = False,
    now: float | None = None,
) -> PruneReport:
    """Remove envs unused for ``older_than`` days, then the least recently used until the
    cache takes at most ``max_size`` bytes (``everything``: all envs); then what is left
    unused: distributions no env links, bytecode of what was removed, builders' leftovers.
    Whatever a running session uses stays.
    """
    now = time.time() if now is None else now
    inventory = scan(root, now=now)
    report = PruneReport(size_before=inventory.total)
    # Linked by no env of the cache: used by sessions' own envs (their pip, session bases).
    orphans = [d for d in inventory.dists if not d.users and d.path not in inventory.building]
    remaining = list(inventory.envs)
    holds = _Holds()

    def old(when: float) -> bool:
        return everything or (older_than is not None and now - when > older_than * DAY)

    try:
        _remove_leftovers(inventory, holds, report, everything=everything)
        for item in _removal_order(remaining, orphans, remaining):
            if old(item.last_used):
                _remove(inventory, item, remaining, holds, report)
        if max_size is not None and not everything:
            for item in _removal_order(remaining, orphans, remaining):
                if report.size_after <= max_size:
                    break
                _remove(inventory, item, remaining, holds, report)
        _remove_stale_files(inventory, remaining, holds)
        _remove_plans(root, now, None if everything else older_than)
        if everything:
            _clear_pycache(inventory, remaining, report)
    finally:
        holds.release()
    return report


def _remove_plans(root: Path, now: float, older_than: float | None) -> None:
    """Plans (a few hundred bytes each) made more than ``older_than`` days ago (None: all).

    A plan removed is only asked of uv again, next time its env is made.
    """
    try:
        plans = list(os.scandir(root / "plans"))
    except OSError:
        return
    for plan in plans:
        with contextlib.suppress(OSError):
            if older_than is None or now - plan.stat().st_mtime > older_than * DAY:
                os.unlink(plan.path)


def _removal_order(
    envs: list[CachedEnv], dists: list[StoredDist], remaining: list[CachedEnv]
) -> list[CachedEnv | StoredDist]:
    """Least recently used first; an env linking a view comes before the view."""
    rank = {"kept env": 0, "layer": 1, "base": 2}

    def key(item: CachedEnv | StoredDist) -> tuple[float, int, str]:
        if isinstance(item, StoredDist):
            return (item.last_used, 3, str(item.path))
        users = [other.last_used for other in remaining if item.path in other.views]
        return (max([item.last_used, *users]), rank.get(item.kind, 0), str(item.path))

    return sorted([*envs, *dists], key=key)


def _remove(
    inventory: Inventory,
    item: CachedEnv | StoredDist,
    remaining: list[CachedEnv],
    holds: _Holds,
    report: PruneReport,
) -> None:
    if isinstance(item, StoredDist):
        if item in inventory.dists:
            _remove_dist(inventory, item, holds, report)
    else:
        _remove_env(inventory, item, remaining, holds, report)


def _remove_env(
    inventory: Inventory,
    env: CachedEnv,
    remaining: list[CachedEnv],
    holds: _Holds,
    report: PruneReport,
) -> None:
    if env not in remaining:
        return
    if any(env.path in other.views for other in remaining if other is not env):
        return  # a kept env links it: it goes with (after) that env
    entry = Removed(env.kind, env.describe(), env.size, env.last_used)
    if not holds.take(env.path):
        report.in_use.append(entry)
        return
    remove_tree(env.path)
    for mirror in mirrors(inventory.root, env.path):
        remove_tree(mirror)
    # No builder of it can be alive while it is held: its leftovers and lock files go too.
    for leftover in list(inventory.leftovers):
        if leftover.env == env.path:
            remove_tree(leftover.path)
            inventory.leftovers.remove(leftover)
            entry.size += leftover.size
    for suffix in (".lock", ".owner"):
        env.path.with_name(env.path.name + suffix).unlink(missing_ok=True)
    holds.gone.add(env.path)
    remaining.remove(env)
    report.removed.append(entry)
    # Distributions only removed envs linked, unless a session holds them (its own envs).
    for dist in list(inventory.dists):
        if (
            env in dist.users
            and not any(user in remaining for user in dist.users)
            and dist.path not in inventory.building
        ):
            _remove_dist(inventory, dist, holds, report)


def _remove_dist(
    inventory: Inventory, dist: StoredDist, holds: _Holds, report: PruneReport
) -> None:
    entry = Removed("stored distribution", dist.describe(), dist.size, dist.last_used)
    if not holds.take(dist.path):
        report.in_use.append(entry)
        return
    index = inventory.root / "dists" / "index"
    for name in _children_names(index):
        with contextlib.suppress(OSError):
            if (index / name).read_text(encoding="utf-8").strip() == dist.path.name:
                (index / name).unlink()
    remove_tree(dist.path)
    for mirror in mirrors(inventory.root, dist.path):
        remove_tree(mirror)
    holds.gone.add(dist.path)
    inventory.dists.remove(dist)
    report.removed.append(entry)


def _children_names(directory: Path) -> list[str]:
    try:
        return sorted(os.listdir(directory))
    except OSError:
        return []


def _remove_leftovers(
    inventory: Inventory, holds: _Holds, report: PruneReport, *, everything: bool
) -> None:
    """What killed builders left: never while a builder may be alive."""
    for leftover in list(inventory.leftovers):
        if leftover.env is not None:  # its builder would hold the env
            old = everything or leftover.age > LEFTOVER_AGE
            if not (old and holds.take(leftover.env)):
                continue
        elif (leftover.age <= LEFTOVER_AGE and not everything) or not holds.take(leftover.path):
            continue  # a staging dir of the store: its builder holds it while it lives
        else:
            holds.gone.add(leftover.path)
        remove_tree(leftover.path)
        inventory.leftovers.remove(leftover)
        report.removed.append(Removed("leftover", leftover.path.name, leftover.size))


def _remove_stale_files(inventory: Inventory, remaining: list[CachedEnv], holds: _Holds) -> None:
    """Lock files of envs that are gone (a failed build's), index files naming no entry."""
    alive = {env.path for env in remaining} | {
        leftover.env for leftover in inventory.leftovers if leftover.env is not None
    }
    for kind in [*ENV_KINDS, "dists"]:
        directory = inventory.root / kind
        for name in _children_names(directory):
            stem, dot, suffix = name.rpartition(".")
            if not dot or f".{suffix}" not in (_usage.INUSE_SUFFIX, ".lock", ".owner"):
                continue
            env = directory / stem
            if env in alive or os.path.lexists(env) or not holds.take(env):
                continue
            holds.gone.add(env)
            for suffix_ in (".lock", ".owner"):
                env.with_name(env.name + suffix_).unlink(missing_ok=True)
    index = inventory.root / "dists" / "index"
    for name in _children_names(index):
        path = index / name
        with contextlib.suppress(OSError):
            if name.startswith(".tmp-"):
                if time.time() - _mtime(path) > LEFTOVER_AGE:
                    path.unlink()
                continue
            target = path.read_text(encoding="utf-8").strip()
            if not target or not (inventory.root / "dists" / target).is_dir():
                path.unlink()


def _clear_pycache(inventory: Inventory, remaining: list[CachedEnv], report: PruneReport) -> None:
    """All bytecode but that of the envs and distributions that stay."""
    keep: set[str] = set()
    for path in [*(env.path for env in remaining), *(dist.path for dist in inventory.dists)]:
        keep.update(str(mirror) for mirror in mirrors(inventory.root, path))
    freed = _prune_tree(inventory.pycache, keep)
    if freed:
        report.removed.append(Removed("bytecode", "of other paths", freed))


def _prune_tree(directory: Path, keep: set[str]) -> int:
    freed = 0
    for child in _children(directory):
        text = str(child)
        if text in keep:
            continue
        inside = any(k.startswith(text + os.sep) for k in keep)
        if inside and child.is_dir() and not child.is_symlink():
            freed += _prune_tree(child, keep)
        else:
            freed += disk_usage(child)
            remove_tree(child)
    return freed
