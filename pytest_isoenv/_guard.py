"""The guard on shared envs: after a test, did anything the test could reach change?

It watches the views a test reads (their ``site-packages`` and ``bin``) and the stored
distributions they link, with one snapshot per process and view (``_fingerprint``). What a
test added is removed at once; anything else is handed back to the caller as damaged, to be
rebuilt. A venv of yours (``--isoenv-base=PATH``) is only reported: nothing in it is touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ._fingerprint import DirectorySnapshot
from ._shared_env import SharedEnv

_SHOWN = 20  # changes listed per env in a test's failure


@dataclass
class Guard:
    """Snapshots of the shared envs this process's tests read."""

    _snapshots: dict[Path, DirectorySnapshot] = field(default_factory=dict)

    def watch(self, envs: Sequence[SharedEnv | None]) -> None:
        """Take a snapshot of each env not watched yet (the first test that reads it)."""
        for shared in envs:
            if shared is not None and shared.path not in self._snapshots:
                roots = [shared.site_packages, shared.bin]
                for entry in shared.entries:
                    roots += [entry.site, entry.bin]
                self._snapshots[shared.path] = DirectorySnapshot.take(roots)

    def check(
        self, envs: Sequence[SharedEnv | None]
    ) -> tuple[list[str], list[tuple[SharedEnv, list[str]]]]:
        """What changed in ``envs`` since their snapshots: a line per env for the test's
        failure, and the envs that must be rebuilt, with their changes."""
        problems: list[str] = []
        damaged: list[tuple[SharedEnv, list[str]]] = []
        for shared in envs:
            snapshot = self._snapshots.get(shared.path) if shared is not None else None
            if shared is None or snapshot is None:
                continue
            changes = snapshot.changes()
            if not changes:
                continue
            listed = "\n  ".join(changes[:_SHOWN])
            if shared.external:  # a venv of yours: reported, never touched
                self._snapshots[shared.path] = DirectorySnapshot.take(snapshot.roots)
                problems.append(
                    f"the test changed {shared.describe()} (left as it is):\n  {listed}"
                )
                continue
            restored = snapshot.undo_additions()
            del self._snapshots[shared.path]  # taken again by the next test that reads it
            if not restored:
                damaged.append((shared, changes))
            fate = "undone" if restored else "it will be rebuilt"
            kind = "base env" if shared.kind == "base" else "layer"
            problems.append(
                f"the test changed the shared {kind} {shared.path} ({fate}):\n  {listed}"
            )
        return problems, damaged
