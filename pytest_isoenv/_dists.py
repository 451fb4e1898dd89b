"""The store of installed distributions: each one kept once, shared by every env that uses it.

uv installs into a staging prefix; the install is then split, by each distribution's
``RECORD``, into one entry per distribution: ``dists/<name>-<version>-<digest>/`` holding
``site/`` (its files as they lie in site-packages), ``bin/`` (its scripts) and a manifest.
The digest covers the ``RECORD`` (which hashes every file) and the interpreter, so equal
content is stored once, whichever base or layer installed it first. An entry is published
with one ``rename`` after its manifest is written; anything else in ``dists/`` is never read.

Registry distributions are also indexed by name, version and install settings, so a later
layer needing ``numpy==2.1.3`` links the stored copy without asking uv to install it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from . import _usage
from ._fingerprint import ENTRY_MANIFEST, full_fingerprint
from ._requirements import digest
from ._swap import make_read_only, remove_tree, replace_dir


@dataclass(frozen=True)
class Entry:
    """One stored distribution."""

    name: str  # canonical
    version: str
    path: Path
    top_level: tuple[str, ...]  # names directly in site-packages it provides
    scripts: tuple[str, ...]
    direct: bool  # installed from a path or URL (not reusable by name and version)

    @property
    def site(self) -> Path:
        return self.path / "site"

    @property
    def bin(self) -> Path:
        return self.path / "bin"

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "version": self.version,
            "dir": self.path.name,
            "top_level": list(self.top_level),
            "scripts": list(self.scripts),
            "direct": self.direct,
        }


def canonical(name: str) -> str:
    return name.replace("_", "-").replace(".", "-").lower()


class DistStore:
    """The distributions below ``root`` (``<store>/dists``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._verified: dict[Path, Entry] = {}
        self._damaged: set[Path] = set()
        self._swept = False

    # -- reading ----------------------------------------------------------------------------

    def load(self, dirname: str) -> Entry | None:
        """The entry published as ``dirname``, if it is there and whole; else None."""
        path = self.root / dirname
        if path in self._damaged:
            return None
        found = self._verified.get(path)
        if found is not None:
            return found
        _usage.hold(path)  # held before it is read: a prune running now passes it by
        try:
            data = json.loads((path / ENTRY_MANIFEST).read_text(encoding="utf-8"))
            if data.get("fingerprint") != full_fingerprint(path):
                return None
            entry = Entry(
                name=data["name"],
                version=data["version"],
                path=path,
                top_level=tuple(data["top_level"]),
                scripts=tuple(data["scripts"]),
                direct=bool(data["direct"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None
        self._verified[path] = entry
        return entry

    def forget(self, path: Path) -> None:
        """Verify ``path`` again next time."""
        self._verified.pop(path, None)

    def mark_damaged(self, path: Path) -> None:
        """A test changed the entry at ``path``: never use it again, store it anew."""
        self._verified.pop(path, None)
        self._damaged.add(path)

    def lookup(self, name: str, version: str, settings: str) -> Entry | None:
        """A registry distribution stored before under the same install settings."""
        try:
            dirname = (self.root / "index" / _index_name(name, version, settings)).read_text(
                encoding="utf-8"
            )
        except OSError:
            return None
        return self.load(dirname.strip())

    # -- writing ----------------------------------------------------------------------------

    @contextmanager
    def staging(self, kind: str) -> Iterator[Path]:
        """A fresh path ``.<kind>-<pid>-<random>`` in the store, deleted after the block.

        It is held in use meanwhile (``_usage.holding``): a staging dir whose process died
        (SIGKILL, the OOM killer, a crashed worker) is recognised by ``sweep``, which no pid
        check could do across containers sharing the cache.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        self.sweep()
        path = self.root / f".{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        with _usage.holding(path):
            try:
                yield path
            finally:
                remove_tree(path)

    def sweep(self) -> None:
        """Delete the staging dirs of dead processes (once per process: one ``listdir``).

        A killed install leaves a half-installed prefix (``.install-*``, as big as what it was
        installing) or a half-split entry (``.tmp-*``); nothing reads them, but they would
        stay forever.
        """
        if self._swept:
            return
        self._swept = True
        try:
            names = os.listdir(self.root)
        except OSError:
            return
        staged = {
            name.removesuffix(_usage.INUSE_SUFFIX)
            for name in names
            if name.startswith((".install-", ".tmp-"))
        }
        for name in sorted(staged):
            path = self.root / name
            fd = _usage.try_exclusive(path)
            if fd is None:
                continue  # in use by a live process (or no locks on this system)
            try:
                remove_tree(path)
                with suppress(OSError):
                    os.unlink(_usage.inuse_file(path))
            finally:
                os.close(fd)

    def add_install(
        self,
        prefix: Path,
        site: str,
        scripts: str,
        tag: str,
        settings: str,
        *,
        index_direct: bool = False,
    ) -> list[Entry]:
        """Split what uv installed under ``prefix`` into entries; return them.

        ``site`` and ``scripts`` are the prefix's site-packages and scripts directories,
        relative to it; ``tag`` names the interpreter. Distributions already stored with the
        same content are not stored again: the stored entry is returned.
        """
        site_dir = prefix / site
        entries: list[Entry] = []
        try:
            names = sorted(os.listdir(site_dir))
        except FileNotFoundError:
            return entries
        self.root.mkdir(parents=True, exist_ok=True)
        for name in names:
            if name.endswith(".dist-info"):
                entry = self._split(prefix, site_dir / name, prefix / scripts, tag)
                if index_direct or not entry.direct:
                    self._index(entry, settings)
                entries.append(entry)
        return entries

    def _split(self, prefix: Path, dist_info: Path, scripts_dir: Path, tag: str) -> Entry:
        record_bytes = (dist_info / "RECORD").read_bytes()
        metadata = _metadata(dist_info / "METADATA")
        name = canonical(metadata.get("name", dist_info.name.split("-")[0]))
        version = metadata.get("version", "0")
        direct = (dist_info / "direct_url.json").exists()
        dirname = f"{name}-{version}-{digest([tag, record_bytes.decode('utf-8', 'replace')])}"
        final = self.root / dirname
        existing = self.load(dirname)
        if existing is None:
            with self.staging("tmp") as staging:
                top_level, scripts = _move_files(
                    prefix, dist_info.parent, scripts_dir, record_bytes, staging
                )
                manifest = {
                    "name": name,
                    "version": version,
                    "top_level": sorted(top_level),
                    "scripts": sorted(scripts),
                    "direct": direct,
                    "fingerprint": full_fingerprint(staging),
                }
                (staging / ENTRY_MANIFEST).write_text(json.dumps(manifest, indent=1), "utf-8")
                make_read_only(staging)
                self._publish(staging, final)
            self._damaged.discard(final)
            self.forget(final)
            existing = self.load(dirname)
            if existing is None:
                raise OSError(f"stored distribution {final} does not verify after publishing")
        return existing

    def _publish(self, staging: Path, final: Path) -> None:
        """Publish ``staging`` as ``final``; a whole entry already there wins, a broken one goes."""
        try:
            os.rename(staging, final)
        except OSError:
            if final not in self._damaged and self.load(final.name) is not None:
                return  # another process stored the same content meanwhile
            self.forget(final)
            replace_dir(staging, final)

    def _index(self, entry: Entry, settings: str) -> None:
        index = self.root / "index"
        index.mkdir(exist_ok=True)
        target = index / _index_name(entry.name, entry.version, settings)
        tmp = index / f".tmp-{uuid.uuid4().hex[:8]}"
        tmp.write_text(entry.path.name, encoding="utf-8")
        os.replace(tmp, target)


def _index_name(name: str, version: str, settings: str) -> str:
    return f"{canonical(name)}-{version}-{settings}"


def _metadata(path: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return found
    for line in text.splitlines():
        if not line.strip():
            break  # the body starts
        key, sep, value = line.partition(":")
        if sep and key.lower() in ("name", "version"):
            found.setdefault(key.lower(), value.strip())
    return found


def _move_files(
    prefix: Path, site_dir: Path, scripts_dir: Path, record: bytes, staging: Path
) -> tuple[set[str], set[str]]:
    """Move the files ``record`` lists from the staging prefix into an entry at ``staging``."""
    top_level: set[str] = set()
    scripts: set[str] = set()
    site_real = os.path.normpath(site_dir)
    scripts_real = os.path.normpath(scripts_dir)
    prefix_real = os.path.normpath(prefix)
    (staging / "site").mkdir(parents=True)
    (staging / "bin").mkdir()
    for row in csv.reader(io.StringIO(record.decode("utf-8", "surrogateescape"))):
        if not row or not row[0] or "__pycache__" in row[0] or row[0].endswith(".pyc"):
            continue
        source = os.path.normpath(os.path.join(site_real, row[0]))
        if source.startswith(site_real + os.sep):
            rel = os.path.relpath(source, site_real)
            target = staging / "site" / rel
            top_level.add(rel.split(os.sep, 1)[0])
        elif source.startswith(scripts_real + os.sep):
            rel = os.path.relpath(source, scripts_real)
            target = staging / "bin" / rel
            scripts.add(rel)
        elif source.startswith(prefix_real + os.sep):
            target = staging / "data" / os.path.relpath(source, prefix_real)
        else:
            continue  # outside the prefix: nothing uv put there for us
        if not os.path.lexists(source):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(source, target)
    return top_level, scripts


def entries_json(entries: Iterable[Entry]) -> list[dict[str, object]]:
    return [entry.as_json() for entry in entries]


def entry_dirnames(data: Sequence[dict[str, object]]) -> list[str]:
    return [str(item["dir"]) for item in data]
