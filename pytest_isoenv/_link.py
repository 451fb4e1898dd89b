"""The link from one env's site-packages to others': the only place that writes it.

A ``.pth`` line ``import site; site.addsitedir(...)`` is used rather than a bare path line,
because only ``addsitedir`` also processes the ``.pth`` files inside the linked site-packages
(editable installs, namespace packages). The line must be idempotent: in a venv every ``.pth``
import line runs twice at start-up. The file name must not start with a dot (Python 3.13
skips those).

PEP 829 replaces import lines in ``.pth`` files by ``.start`` files naming a callable
(``module:callable``): Python 3.15 runs a ``<name>.start`` instead of the import lines of the
matching ``<name>.pth``, and Python 3.18 ignores import lines altogether. So an env on Python
3.15 or newer also gets ``_pytest_isoenv_link.start`` and the small module it names, which
does what the line does; older Pythons ignore both, and read the line.

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
START_FILE = "_pytest_isoenv_link.start"  # PEP 829: replaces the .pth file's import line
START_MODULE = "_pytest_isoenv_link"  # what it names: START_MODULE:start
#: The first Python that reads ``.start`` files.
START_FORM = (3, 15)
#: Everything the link writes into a site-packages directory.
LINK_NAMES = (LINK_FILE, START_FILE, f"{START_MODULE}.py")


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


def start_module(targets: Sequence[Path], pycache: Path | None = None) -> str:
    """The module a ``.start`` file names: :func:`link_line`'s steps, as a callable."""
    return (
        '"""The link of this env to others (PEP 829 form), written by pytest-isoenv."""\n'
        "import site\n"
        "import sys\n\n"
        f"TARGETS = {[str(path) for path in targets]!r}\n"
        f"PYCACHE = {None if pycache is None else str(pycache)!r}\n\n\n"
        "def start():\n"
        "    if PYCACHE is not None:\n"
        "        sys.pycache_prefix = sys.pycache_prefix or PYCACHE\n"
        "        sys.dont_write_bytecode = False\n"
        "    for path in TARGETS:\n"
        "        if path not in sys.path:\n"
        "            site.addsitedir(path)\n"
    )


def write_link(
    site_packages: Path,
    targets: Sequence[Path],
    pycache: Path | None = None,
    *,
    start: bool = False,
) -> None:
    """Make ``site_packages`` see the packages of ``targets``; the first one shadows the rest.

    ``start``: the env's Python reads ``.start`` files (PEP 829): they are written too.
    """
    if targets or pycache is not None:
        (site_packages / LINK_FILE).write_text(link_line(targets, pycache), encoding="utf-8")
        if start and targets:  # (a view's own link only sets the pycache: no module there)
            module = site_packages / f"{START_MODULE}.py"
            module.write_text(start_module(targets, pycache), encoding="utf-8")
            (site_packages / START_FILE).write_text(f"{START_MODULE}:start\n", encoding="utf-8")
