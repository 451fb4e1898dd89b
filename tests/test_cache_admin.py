"""Cache management: ``python -m pytest_isoenv cache list|prune|clear`` and the daily prune.

Caches are made by real sessions (``--isoenv-base=cache``, offline on the local wheelhouse).
An env's last use is the mtime of its ``.inuse`` file, set back here with ``os.utime``; a
session that is still running is a ``subprocess.Popen`` whose test waits for a flag file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

DAY = 86400.0

# A test that says it started, then waits for a flag file before using its env again.
WAITING_TEST = """\
import os, pathlib, time

def test_waits(isoenv):
    pathlib.Path(os.environ["ISO_STARTED"]).touch()
    deadline = time.monotonic() + 120
    while not pathlib.Path(os.environ["ISO_GO"]).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "1.0" in isoenv.run("python", "-c", "import iso_a; print(iso_a.__version__)").stdout
    assert isoenv.run("pip", "--version").stdout.startswith("pip ")
"""


def _project(pytester: pytest.Pytester, *, prune_after: str = "0") -> None:
    """A project whose base holds iso-a 1.0, with tests for two layers and a waiting test."""
    (pytester.path / "pyproject.toml").write_text(
        "[tool.pytest.ini_options]\n"
        'isoenv_requires = ["iso-a==1.0"]\n'
        f'isoenv_prune_after = "{prune_after}"\n',
        encoding="utf-8",
    )
    pytester.makepyfile(
        test_cli="""
            import pytest

            @pytest.mark.isoenv(requires=["iso-cli"])
            def test_cli(isoenv):
                assert "iso-cli 1.0" in isoenv.run("iso-cli").stdout
        """,
        test_a2="""
            import pytest

            @pytest.mark.isoenv(requires=["iso-a==2.0"])
            def test_a2(isoenv):
                assert "2.0" in isoenv.run("python", "-c", "import iso_a; print(iso_a.__version__)").stdout
        """,
        test_base="""
            def test_base(isoenv):
                isoenv.run("python", "-c", "import iso_a")
        """,
        test_waits=WAITING_TEST,
    )


def _session(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    result = pytester.runpytest_subprocess("--isoenv-base=cache", "-p", "no:cacheprovider", *args)
    assert result.ret == 0, result.stdout.str()
    return result


def _cli(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.run(sys.executable, "-m", "pytest_isoenv", "cache", *args)


def _envs(cache: Path, kind: str) -> dict[str, Path]:
    """Published envs of ``kind`` by their requirements (``"iso-cli"``)."""
    found: dict[str, Path] = {}
    store = cache / "v2" / kind
    for path in sorted(store.iterdir()) if store.is_dir() else []:
        manifest = path / "isoenv-manifest.json"
        if path.is_dir() and manifest.is_file():
            requirements = json.loads(manifest.read_text(encoding="utf-8"))["requirements"]
            found[", ".join(requirements)] = path
    return found


def _dists(cache: Path) -> list[str]:
    """Stored distributions by ``name-version``."""
    store = cache / "v2" / "dists"
    found = store.iterdir() if store.is_dir() else []
    return sorted(
        p.name.rsplit("-", 1)[0]
        for p in found
        if p.is_dir() and p.name != "index" and not p.name.startswith(".")
    )


def _used(env: Path, days_ago: float) -> None:
    when = time.time() - days_ago * DAY
    os.utime(env.with_name(env.name + ".inuse"), (when, when))


def _mirror(cache: Path, path: Path) -> Path:
    return cache / "v2" / "pycache" / str(path).lstrip(os.sep)


class Running:
    """A session that holds its envs until ``finish``: its test waits for a flag file."""

    def __init__(self, pytester: pytest.Pytester, *args: str) -> None:
        self.started = pytester.path / "started"
        self.go = pytester.path / "go"
        env = dict(os.environ, ISO_STARTED=str(self.started), ISO_GO=str(self.go))
        command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--isoenv-base=cache"]
        self.proc = subprocess.Popen(
            [*command, *args],
            cwd=pytester.path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while not self.started.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                out = self.proc.communicate()[0] if self.proc.poll() is not None else ""
                pytest.fail(f"the running session did not start its test:\n{out}")
            time.sleep(0.02)

    def finish(self) -> str:
        self.go.touch()
        out, _ = self.proc.communicate(timeout=120)
        assert self.proc.returncode == 0, out
        return out

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.communicate()


@pytest.fixture
def running(pytester: pytest.Pytester) -> Iterator[list[Running]]:
    sessions: list[Running] = []
    yield sessions
    for session in sessions:
        session.kill()


# -- list --------------------------------------------------------------------------------------


def test_list_shows_the_bases_and_layers_with_their_packages(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    _project(pytester)
    _session(pytester, "test_cli.py")

    result = _cli(pytester, "list")

    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            f"Cache: {offline_env}",
            "",
            "Bases (1):",
            "* used *  iso-a==1.0: iso-a 1.0",
            "",
            "Layers (1):",
            "* used *  iso-cli: iso-cli 1.0 (and 1 from its base)",
            "",
            "Stored distributions (3):",
            "* used *  iso-a 1.0 (2 envs)",
            "* used *  iso-cli 1.0 (1 env)",
            "* used *  pip * (no cached env links it)",
            "",
            "Total: 1 base, 1 layer, 3 stored distributions: *[0-9][KM] (other bytecode and files:*)",
        ],
        consecutive=True,
    )
    keys = [p.name for kind in ("bases", "layers") for p in _envs(offline_env, kind).values()]
    assert len(keys) == 2 and not any(key in result.stdout.str() for key in keys)


def test_list_and_prune_say_when_there_is_no_cache_yet(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    for action in ("list", "prune", "clear"):
        result = _cli(pytester, action)
        assert result.ret == 0
        result.stdout.fnmatch_lines([f"No pytest-isoenv cache in {offline_env} *"])
    assert not offline_env.exists()


# -- prune -------------------------------------------------------------------------------------


def test_prune_older_than_spares_what_a_running_session_uses(
    pytester: pytest.Pytester, offline_env: Path, running: list[Running]
) -> None:
    _project(pytester)
    _session(pytester, "test_cli.py")
    layer = _envs(offline_env, "layers")["iso-cli"]
    assert _mirror(offline_env, layer).exists()
    session = Running(pytester, "test_waits.py")
    running.append(session)
    base = _envs(offline_env, "bases")["iso-a==1.0"]
    _used(base, days_ago=40)  # its last use says old, but a session is using it
    _used(layer, days_ago=40)
    (pip,) = [p for p in (offline_env / "v2" / "dists").glob("pip-*") if p.is_dir()]
    _used(pip, days_ago=40)  # no cached env links it: only the session holds it
    dists = offline_env / "v2" / "dists"
    old_leftover, new_leftover = dists / ".install-99999999-old", dists / ".tmp-99999999-new"
    old_leftover.mkdir()
    new_leftover.mkdir()
    two_hours_ago = time.time() - 7200
    os.utime(old_leftover, (two_hours_ago, two_hours_ago))

    listed = _cli(pytester, "list")
    listed.stdout.fnmatch_lines(["Bases (1):", "* in use now *iso-a==1.0: iso-a 1.0"])

    result = _cli(pytester, "prune", "--older-than", "30")

    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines_random(
        [
            "removed layer iso-cli: iso-cli 1.0 (and 1 from its base) (*, last used 40 days ago)",
            "removed stored distribution iso-cli 1.0 (*)",
            "removed leftover .install-99999999-old (*)",
            "kept base iso-a==1.0: iso-a 1.0 (*, last used 40 days ago): a running session uses it",
            "kept stored distribution pip * (*, last used 40 days ago): a running session uses it",
            "freed *; the cache takes * now (*)",
        ]
    )
    assert list(_envs(offline_env, "layers")) == []
    assert not layer.exists() and not _mirror(offline_env, layer).exists()
    assert list(_envs(offline_env, "bases")) == ["iso-a==1.0"]
    assert [d for d in _dists(offline_env) if not d.startswith("pip-")] == ["iso-a-1.0"]
    assert not old_leftover.exists() and new_leftover.exists()
    session.finish()  # its base still works

    result = _cli(pytester, "prune", "--older-than", "30")

    result.stdout.fnmatch_lines_random(
        ["removed base iso-a==1.0: *", "removed stored distribution pip *"]
    )
    assert _dists(offline_env) == []


def test_prune_max_size_removes_the_least_recently_used_first(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    from pytest_isoenv._cache_admin import scan

    _project(pytester)
    _session(pytester, "test_cli.py", "test_a2.py")
    layers = _envs(offline_env, "layers")
    base = _envs(offline_env, "bases")["iso-a==1.0"]
    _used(layers["iso-cli"], days_ago=5)
    _used(layers["iso-a==2.0"], days_ago=3)
    _used(base, days_ago=1)
    total = scan(offline_env / "v2").total

    result = _cli(pytester, "prune", "--max-size", str(total - 1))

    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "removed layer iso-cli: * (*, last used 5 days ago)",
            "removed stored distribution iso-cli 1.0 (*)",
            "freed *; the cache takes * now (*)",
        ],
        consecutive=True,
    )
    assert sorted(_envs(offline_env, "layers")) == ["iso-a==2.0"]
    assert list(_envs(offline_env, "bases")) == ["iso-a==1.0"]

    result = _cli(pytester, "prune", "--max-size", "1K")

    result.stdout.fnmatch_lines(
        [
            "removed layer iso-a==2.0: iso-a 2.0 (*, last used 3 days ago)",
            "removed stored distribution iso-a 2.0 (*)",
            "removed base iso-a==1.0: iso-a 1.0 (*, last used 1 day ago)",
            "removed stored distribution iso-a 1.0 (*)",
        ],
        consecutive=True,
    )
    assert _envs(offline_env, "bases") == {} and _envs(offline_env, "layers") == {}
    result.stdout.fnmatch_lines(["still above 1.0K: *"])


def test_prune_removes_nothing_a_session_used_recently(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    _project(pytester)
    _session(pytester, "test_cli.py")

    result = _cli(pytester, "prune")  # the default: --older-than 30

    assert result.ret == 0
    result.stdout.fnmatch_lines(["nothing removed; the cache takes * now (*)"])
    assert list(_envs(offline_env, "layers")) == ["iso-cli"]
    assert len(_dists(offline_env)) == 3


def test_an_env_kept_in_the_cache_keeps_the_layer_it_links(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    from pytest_isoenv._link import link_line

    _project(pytester)
    _session(pytester, "test_cli.py")
    layer = _envs(offline_env, "layers")["iso-cli"]
    _used(layer, days_ago=40)
    # A test's env kept after its session (as a venv linking the layer through a .pth line).
    (layer_packages,) = layer.glob("lib/*/site-packages")
    kept = offline_env / "v2" / "kept" / "test_cli-1"
    packages = kept / layer_packages.relative_to(layer)
    (packages / "extra-3.0.dist-info").mkdir(parents=True)
    (packages / "_pytest_isoenv_link.pth").write_text(link_line([layer_packages]))

    listed = _cli(pytester, "list")

    listed.stdout.fnmatch_lines(["Kept envs (1):", "* used *  no requirements: extra 3.0"])

    result = _cli(pytester, "prune", "--older-than", "30")

    assert "removed layer" not in result.stdout.str()
    assert layer.exists()

    long_ago = time.time() - 40 * DAY
    os.utime(kept, (long_ago, long_ago))
    result = _cli(pytester, "prune", "--older-than", "30")

    result.stdout.fnmatch_lines(
        ["removed kept env no requirements: extra 3.0 (*)", "removed layer iso-cli: *"]
    )
    assert not kept.exists() and not layer.exists()


def test_clear_removes_everything_not_in_use(
    pytester: pytest.Pytester, offline_env: Path, running: list[Running]
) -> None:
    _project(pytester)
    _session(pytester, "test_cli.py", "test_a2.py")
    session = Running(pytester, "test_waits.py")
    running.append(session)

    result = _cli(pytester, "clear")

    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines_random(
        [
            "removed layer iso-cli: *",
            "removed layer iso-a==2.0: *",
            "removed stored distribution iso-cli 1.0 (*)",
            "removed stored distribution iso-a 2.0 (*)",
            "kept base iso-a==1.0: *: a running session uses it",
            "kept stored distribution pip * (*): a running session uses it",
        ]
    )
    assert list(_envs(offline_env, "bases")) == ["iso-a==1.0"]
    assert _envs(offline_env, "layers") == {}
    assert [d.split("-")[0] for d in _dists(offline_env)] == ["iso", "pip"]
    session.finish()  # its pip (linked by no cached env, held by the session) was kept

    result = _cli(pytester, "clear")

    result.stdout.fnmatch_lines(["removed base iso-a==1.0: *", "freed *"])
    assert _envs(offline_env, "bases") == {} and _dists(offline_env) == []
    v2 = offline_env / "v2"
    leftovers = [p for p in v2.rglob("*") if p.is_file() or p.is_symlink()]
    assert [p.name for p in leftovers if not p.name.startswith(".")] == []
    listed = _cli(pytester, "list")
    listed.stdout.fnmatch_lines(["Total: 0 bases, 0 layers, 0 stored distributions: *"])
    # And the cache still works.
    _session(pytester, "test_cli.py")


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="reads Linux's /proc/locks")
def test_a_session_waiting_for_an_env_being_removed_holds_the_new_one(tmp_path: Path) -> None:
    from pytest_isoenv import _usage

    env = tmp_path / "layers" / "key"
    env.parent.mkdir()
    inuse = _usage.inuse_file(env)
    pruner = _usage.try_exclusive(env)
    assert pruner is not None
    session = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from pytest_isoenv import _usage; import pathlib, sys; "
            f"_usage.hold(pathlib.Path({str(env)!r})); print('held', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        # Wait until the session is blocked on the file the pruner holds, then delete it.
        inode = f":{inuse.stat().st_ino} "
        deadline = time.monotonic() + 60
        while not any(
            "->" in line and inode in line for line in Path("/proc/locks").read_text().splitlines()
        ):
            assert session.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        inuse.unlink()
        os.close(pruner)
        assert session.stdout is not None and session.stdout.readline() == "held\n"

        assert _usage.try_exclusive(env) is None  # the next prune sees the session's hold
    finally:
        session.kill()
        session.communicate()


# -- the daily prune ---------------------------------------------------------------------------


def test_sessions_prune_the_cache_at_most_once_a_day(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    _project(pytester, prune_after="10")
    first = _session(pytester, "test_cli.py")
    first.stdout.fnmatch_lines([f"isoenv: cache {offline_env}: *[0-9][KM]"])
    layer = _envs(offline_env, "layers")["iso-cli"]
    stamp = offline_env / "v2" / ".last-prune"
    assert stamp.is_file()
    _used(layer, days_ago=20)

    second = _session(pytester, "test_base.py")  # pruned less than a day ago: not again

    assert "pruned" not in second.stdout.str()
    assert layer.exists()

    yesterday = time.time() - DAY - 60
    os.utime(stamp, (yesterday, yesterday))
    off = _session(pytester, "test_base.py", "-o", "isoenv_prune_after=0")

    assert "pruned" not in off.stdout.str()
    assert layer.exists()

    third = _session(pytester, "test_base.py", "-n", "2")

    third.stdout.fnmatch_lines(
        [f"isoenv: cache {offline_env}: * (pruned today: * freed, 1 env unused for 10 days)"]
    )
    assert len([line for line in third.outlines if line.startswith("isoenv: cache")]) == 1
    assert not layer.exists()
    assert list(_envs(offline_env, "bases")) == ["iso-a==1.0"]
    assert time.time() - stamp.stat().st_mtime < DAY


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-size", "12Q"], "*argument --max-size: '12Q' is not a size (examples: 500M, 2G*"),
        (["--max-size=-5M"], "*argument --max-size: '-5M' is not a size*"),
        (["--max-size", ""], "*argument --max-size: '' is not a size*"),
        (["--older-than", "soon"], "*argument --older-than: 'soon' is not a number of days*"),
        (["--older-than=-1"], "*argument --older-than: '-1' is not a number of days*"),
    ],
)
def test_bad_sizes_and_days_are_usage_errors(
    pytester: pytest.Pytester, offline_env: Path, args: list[str], message: str
) -> None:
    result = _cli(pytester, "prune", *args)

    assert result.ret == 2
    result.stderr.fnmatch_lines([message])


def test_a_directory_that_is_not_a_cache_is_refused(pytester: pytest.Pytester) -> None:
    mine = pytester.path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")

    for action in ("list", "prune", "clear"):
        result = _cli(pytester, action, "--cache-dir", str(mine))
        assert result.ret == 2
        result.stderr.fnmatch_lines(
            [f"*cache {action}: {mine} is not a pytest-isoenv cache: it has no v2/ *"]
        )
    assert (mine / "notes.txt").read_text() == "keep me"


def test_a_bad_prune_after_is_a_usage_error(pytester: pytest.Pytester, offline_env: Path) -> None:
    _project(pytester, prune_after="weekly")

    result = pytester.runpytest_subprocess("--isoenv-base=cache")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: isoenv_prune_after: 'weekly' is not a number of days (0 or more; 0 never prunes)"]
    )
