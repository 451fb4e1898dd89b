"""The command line: ``python -m pytest_isoenv cache list|prune|clear`` manages the cache."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ._cache_admin import (
    Inventory,
    NotACache,
    PruneReport,
    Removed,
    cache_root,
    format_size,
    parse_size,
    prune,
    scan,
)
from ._settings import default_cache_dir

PROG = "python -m pytest_isoenv"
#: ``prune`` without --older-than or --max-size removes envs unused for this many days.
DEFAULT_DAYS = 30.0
_TITLES = {"base": "Bases", "layer": "Layers", "kept env": "Kept envs"}

CACHE_DIR_HELP = (
    "the cache directory (default: $PYTEST_ISOENV_CACHE_DIR, else the per-user default "
    "of --isoenv-base=cache)"
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return its exit code (0: done, 2: a usage error)."""
    args = _parser().parse_args(argv)
    cache_dir = _cache_dir(args.cache_dir)
    try:
        root = cache_root(cache_dir)
    except NotACache as error:
        print(f"{PROG} cache {args.action}: {error}", file=sys.stderr)
        return 2
    if root is None:
        print(f"No pytest-isoenv cache in {cache_dir} (nothing was cached there yet).")
        return 0
    if args.action == "list":
        _print_inventory(cache_dir, scan(root))
        return 0
    max_size = getattr(args, "max_size", None)
    if args.action == "clear":
        report = prune(root, everything=True)
    else:
        older_than = args.older_than
        if older_than is None and max_size is None:
            older_than = DEFAULT_DAYS
        report = prune(root, older_than=older_than, max_size=max_size)
    _print_report(cache_dir, report, max_size)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Manage what pytest-isoenv keeps on disk."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    cache = commands.add_parser(
        "cache",
        help="list or remove what --isoenv-base=cache keeps",
        description="List or remove the envs and distributions --isoenv-base=cache keeps. "
        "Nothing a running session uses is removed.",
    )
    actions = cache.add_subparsers(dest="action", required=True, metavar="ACTION")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--cache-dir", metavar="DIR", help=CACHE_DIR_HELP)
    actions.add_parser(
        "list",
        parents=[common],
        help="every cached env and distribution: what it holds, its size, its last use",
        description="List every cached env and stored distribution: what it holds, its size "
        "on disk and when a session last used it; then the totals.",
    )
    prune_parser = actions.add_parser(
        "prune",
        parents=[common],
        help="remove envs unused for a while, or the least recently used beyond a size",
        description="Remove the envs, and the stored distributions no cached env links, that "
        "no session used for DAYS days; then the least recently used of them until the cache "
        "fits in SIZE. With them go the distributions only they linked, their bytecode, and "
        f"what killed builds left behind. Without either option: --older-than {DEFAULT_DAYS:g}.",
    )
    prune_parser.add_argument(
        "--older-than",
        metavar="DAYS",
        type=_days,
        help="remove what no session used for DAYS days (a number, 0 or more)",
    )
    prune_parser.add_argument(
        "--max-size",
        metavar="SIZE",
        type=_size,
        help="then remove the least recently used until the cache takes at most SIZE "
        "(500M, 2G: K, M, G, T are powers of 1024)",
    )
    actions.add_parser(
        "clear",
        parents=[common],
        help="remove everything no running session uses",
        description="Remove every env, stored distribution and bytecode file no running "
        "session uses.",
    )
    return parser


def _days(text: str) -> float:
    try:
        days = float(text)
    except ValueError:
        days = -1.0
    if not days >= 0:  # also NaN
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days (0 or more)")
    return days


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _cache_dir(given: str | None) -> Path:
    text = given or os.environ.get("PYTEST_ISOENV_CACHE_DIR")
    if not text:
        return default_cache_dir()
    return Path(os.path.abspath(os.path.expanduser(text)))


# -- output ------------------------------------------------------------------------------------


def ago(when: float | None, now: float | None = None) -> str:
    """``when`` as "3 days ago" (None: "never")."""
    if when is None:
        return "never"
    seconds = max((time.time() if now is None else now) - when, 0.0)
    for unit, length in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= length:
            count = int(seconds // length)
            return f"{_plural(count, unit)} ago"
    return "just now"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _line(size: int, when: str, what: str) -> str:
    return f"  {format_size(size):>6}  {when:<22}  {what}"


def _print_inventory(cache_dir: Path, inventory: Inventory) -> None:
    from . import _usage  # noqa: PLC0415 - only for the "in use" column

    def in_use(path: Path) -> bool:
        if not _usage.inuse_file(path).exists():
            return False
        fd = _usage.try_exclusive(path)
        if fd is None:
            return True
        os.close(fd)
        return False

    busy = {env.path for env in inventory.envs if in_use(env.path)}
    print(f"Cache: {cache_dir}")
    for kind, title in _TITLES.items():
        envs = sorted(
            (env for env in inventory.envs if env.kind == kind), key=lambda e: -e.last_used
        )
        if not envs and kind == "kept env":
            continue
        print(f"\n{title} ({len(envs)}):")
        for env in envs:
            when = "in use now" if env.path in busy else f"used {ago(env.last_used)}"
            print(_line(env.size, when, env.describe()))
    print(f"\nStored distributions ({len(inventory.dists)}):")
    for dist in sorted(inventory.dists, key=lambda d: (d.name, d.version, str(d.path))):
        held = in_use(dist.path) or any(user.path in busy for user in dist.users)
        when = "in use now" if held else f"used {ago(dist.last_used)}"
        links = _plural(len(dist.users), "env") if dist.users else "no cached env links it"
        print(_line(dist.size, when, f"{dist.describe()} ({links})"))
    if inventory.leftovers:
        print(f"\nBuilds under way or interrupted ({len(inventory.leftovers)}):")
        for leftover in inventory.leftovers:
            started = f"started {ago(time.time() - leftover.age)}"
            print(_line(leftover.size, started, str(leftover.path.relative_to(inventory.root))))
    counted = sum(env.size for env in inventory.envs) + sum(d.size for d in inventory.dists)
    counted += sum(leftover.size for leftover in inventory.leftovers)
    counts = [
        _plural(sum(env.kind == kind for env in inventory.envs), kind) for kind in ("base", "layer")
    ]
    kept = sum(env.kind == "kept env" for env in inventory.envs)
    if kept:
        counts.append(_plural(kept, "kept env"))
    counts.append(_plural(len(inventory.dists), "stored distribution"))
    other = max(inventory.total - counted, 0)
    print(
        f"\nTotal: {', '.join(counts)}: {format_size(inventory.total)} "
        f"(other bytecode and files: {format_size(other)})"
    )


def _describe(item: Removed) -> str:
    used = f", last used {ago(item.last_used)}" if item.last_used is not None else ""
    return f"{item.what} {item.description} ({format_size(item.size)}{used})"


def _print_report(cache_dir: Path, report: PruneReport, max_size: int | None) -> None:
    for item in report.removed:
        print(f"removed {_describe(item)}")
    for item in report.in_use:
        print(f"kept {_describe(item)}: a running session uses it")
    done = f"freed {format_size(report.freed)}" if report.removed else "nothing removed"
    print(f"{done}; the cache takes {format_size(report.size_after)} now ({cache_dir})")
    if max_size is not None and report.size_after > max_size:
        print(f"still above {format_size(max_size)}: what is left is in use, or bytecode")


if __name__ == "__main__":
    sys.exit(main())
