"""Kept envs: a derived env moved out of the session, to debug in after it (--isoenv-keep).

A derived env links the site-packages of its view (its layer, or the base) through its
``.pth`` line. A session's views are deleted with the session directory, and a cached view
may be pruned, so the kept env gets its own copy of its view: a small tree of symbolic links
into the store of distributions (``dists/``, in the cache dir), and its ``.pth`` line is
rewritten to link the copy. The rest of the env moves as it is: its ``bin/python`` links the
real interpreter, ``pyvenv.cfg`` names the interpreter's directory, and its console scripts
find ``python`` next to themselves, so a moved env keeps working.

Layout: ``<cache dir>/v2/kept/<test>-<time>/`` is the env (``bin/python``, ``bin/activate``),
with ``view/`` (the copy of its view) and ``isoenv-kept.json`` (what it is) inside.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ._compose import mirror_bytecode
from ._link import START_FORM, write_link
from ._store import FORMAT_VERSION, secure_directory
from ._swap import remove_tree
from ._venv import bin_dir, site_packages

if TYPE_CHECKING:
    from ._derived import DerivedEnv

KEPT = "kept"
VIEW = "view"
MANIFEST = "isoenv-kept.json"
_NAME_LIMIT = 80  # characters of the test's id in a kept env's name


def kept_root(cache_dir: Path) -> Path:
    """Where kept envs go (made private on first use); ``IsoenvError`` if the cache is refused."""
    root = secure_directory(cache_dir) / f"v{FORMAT_VERSION}" / KEPT
    root.mkdir(parents=True, exist_ok=True)
    return root


def env_name(nodeid: str) -> str:
    """A directory name for the test ``nodeid``: its id made safe, shortened if long."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", nodeid).strip("._-") or "test"
    if len(name) > _NAME_LIMIT:  # both ends (the file, the test's name) and a digest for the rest
        middle = hashlib.sha256(nodeid.encode()).hexdigest()[:8]
        name = f"{name[:20]}-{middle}-{name[-(_NAME_LIMIT - 30) :]}"
    return name


def reserve(root: Path, nodeid: str) -> Path:
    """Make the (empty) directory the env of ``nodeid`` will be kept in, named for it now."""
    stem = f"{env_name(nodeid)}-{time.strftime('%Y%m%d-%H%M%S')}"
    for number in range(1, 1000):
        path = root / (stem if number == 1 else f"{stem}-{number}")
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:  # the same test kept twice within a second (a rerun)
            continue
        return path
    raise FileExistsError(f"{root / stem} (and 999 more) exist already")


def keep_env(
    env: DerivedEnv,
    dest: Path,
    nodeid: str,
    *,
    links: Sequence[Path],
    pycache: Path,
    dists: Path,
) -> None:
    """Move the derived ``env`` of test ``nodeid`` to the empty ``dest``; make it stand alone.

    ``links`` are the site-packages its ``.pth`` line links, ``pycache`` the bytecode prefix of
    every env, ``dists`` the store of distributions.
    """
    view = env.layer or env.base
    interpreter = view.interpreter
    _move(env.path, dest)
    if not view.external:  # a venv of yours outlives the session as it is
        copy = dest / VIEW
        shutil.copytree(view.path, copy, symlinks=True)
        links = [_moved(link, view.path, copy) for link in links]
        mirror_bytecode(site_packages(copy, interpreter), pycache)  # reuse compiled modules
    start = interpreter.version >= START_FORM
    write_link(site_packages(dest, interpreter), links, pycache, start=start)
    write_activate(dest, bin_dir(dest, interpreter))
    # The stored distributions it links: what pruning the store must leave alone.
    stored = {
        entry.path.name for shared in (env.base, env.layer) if shared for entry in shared.entries
    }
    stored.update(link.relative_to(dists).parts[0] for link in links if dists in link.parents)
    about = {
        "nodeid": nodeid,
        "kept_at": time.time(),
        "python": str(interpreter.executable),
        "base": list(env.base.requirements),
        "marker": list(env.requirements),
        "installed": list(env.installed),
        "dists": sorted(stored),
    }
    (dest / MANIFEST).write_text(json.dumps(about, indent=1, sort_keys=True), encoding="utf-8")
    # Bytecode of what the test installed was compiled for the old path: stale now.
    remove_tree(pycache / str(env.path).lstrip(os.sep))


def _move(source: Path, dest: Path) -> None:
    try:
        os.rename(source, dest)  # onto the empty directory reserved for it
    except OSError:  # another file system: copied, links as links, then deleted
        shutil.copytree(source, dest, symlinks=True, dirs_exist_ok=True)
        remove_tree(source)


def _moved(link: Path, old: Path, new: Path) -> Path:
    try:
        return new / link.relative_to(old)
    except ValueError:
        return link  # outside the view (a stored distribution, pip): there to stay


def write_activate(root: Path, scripts: Path) -> None:
    """A minimal ``bin/activate`` for bash and zsh: ``VIRTUAL_ENV``, ``PATH``, ``deactivate``.

    Derived envs have none (tests never source one); a kept env is for people, who do.
    """
    text = f"""\
# Source this file from bash or zsh: . {shlex.quote(str(scripts / "activate"))}
# (a pytest-isoenv kept env); run `deactivate` to leave it.
deactivate () {{
    if [ -n "${{_ISOENV_OLD_PATH+set}}" ]; then
        PATH="$_ISOENV_OLD_PATH"
        export PATH
        unset _ISOENV_OLD_PATH
    fi
    if [ -n "${{_ISOENV_OLD_PYTHONHOME+set}}" ]; then
        PYTHONHOME="$_ISOENV_OLD_PYTHONHOME"
        export PYTHONHOME
        unset _ISOENV_OLD_PYTHONHOME
    fi
    unset VIRTUAL_ENV
    hash -r 2>/dev/null
    if [ "${{1:-}}" != "nondestructive" ]; then
        unset -f deactivate
    fi
}}

deactivate nondestructive
VIRTUAL_ENV={shlex.quote(str(root))}
export VIRTUAL_ENV
_ISOENV_OLD_PATH="$PATH"
PATH={shlex.quote(str(scripts))}":$PATH"
export PATH
if [ -n "${{PYTHONHOME+set}}" ]; then
    _ISOENV_OLD_PYTHONHOME="$PYTHONHOME"
    unset PYTHONHOME
fi
hash -r 2>/dev/null
"""
    (scripts / "activate").write_text(text, encoding="utf-8")
