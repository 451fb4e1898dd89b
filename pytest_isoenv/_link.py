"""The link from one env's site-packages to others': the only place that writes it.

A ``.pth`` line ``import site; site.addsitedir(...)`` is used rather than a bare path line,
because only ``addsitedir`` also processes the ``.pth`` files inside the linked site-packages
(editable installs, namespace packages). The line must be idempotent: in a venv every ``.pth``
import line runs twice at start-up. The file name must not start with a dot (Python 3.13
skips those). Python 3.15 deprecates import lines in ``.pth`` files (PEP 829); the ``.start``
form will be added here when it lands.

The same line sends bytecode to the store's private ``sys.pycache_prefix`` (unless the user
chose one), so no test ever writes ``__pycache__`` into a shared env, and what one test compiled
is reused by the next (see ``_compose.mirror_bytecode``). It writes there even under
``PYTHONDONTWRITEBYTECODE``: that variable keeps ``__pycache__`` out of source trees, and this
cache is in none.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

LINK_FILE = "_pytest_isoenv_link.pth"


def link_line(targets: Sequence[Path], pycache: Path | None = None) -> str:
    """The ``.pth`` line that appends ``targets`` (in order) to ``sys.path`` once.

    No comprehension: ``site`` runs the line with ``exec`` in a function scope, and a
    comprehension's own scope would not see the names the line imports (before Python 3.12).
    """
    steps = [f"{path!r} in sys.path or site.addsitedir({path!r})" for path in map(str, targets)]
    if pycache is not None:
        steps.insert(
            0,
            f"sys.pycache_prefix = sys.pycache_prefix or {str(pycache)!r}; "
            "sys.dont_write_bytecode = False",
        )
    return "import site, sys; " + "; ".join(steps) + "\n"


def write_link(site_packages: Path, targets: Sequence[Path], pycache: Path | None = None) -> None:
    """Make ``site_packages`` see the packages of ``targets``; the first one shadows the rest."""
    if targets or pycache is not None:
        (site_packages / LINK_FILE).write_text(link_line(targets, pycache), encoding="utf-8")
