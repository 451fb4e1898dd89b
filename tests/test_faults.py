"""Faults: what happens to the cache, the locks and the next session when things go wrong.

Every test injects one fault into a real pytest session (a subprocess, as a user runs it) and
states the outcome: the fault is reported clearly, nothing half-built or damaged is ever used,
no env outlives its session, and the next session is healthy. Processes that must be killed
or run side by side are started with ``subprocess.Popen`` in their own process group.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import write_project
from filelock import FileLock

from pytest_isoenv._fingerprint import MANIFEST, full_fingerprint

# A PEP 517 backend kept in the project itself (no build requirements, so uv builds it
# offline): it waits while the file named by ISO_SLOW_FLAG exists, after creating
# "<flag>.building", so a test can kill or interrupt a session in the middle of an install.
SLOW_BACKEND = """\
import base64, hashlib, os, time, zipfile

NAME, VERSION = "iso_slow", "1.0"
DIST = NAME + "-" + VERSION + ".dist-info"
METADATA = "Metadata-Version: 2.1\\nName: iso-slow\\nVersion: 1.0\\n"
WHEEL = "Wheel-Version: 1.0\\nGenerator: slow\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"


def get_requires_for_build_wheel(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(directory, config_settings=None):
    os.makedirs(os.path.join(directory, DIST))
    for name, text in (("METADATA", METADATA), ("WHEEL", WHEEL)):
        with open(os.path.join(directory, DIST, name), "w") as handle:
            handle.write(text)
    return DIST


def build_wheel(directory, config_settings=None, metadata_directory=None):
    flag = os.environ.get("ISO_SLOW_FLAG")
    if flag:
        open(flag + ".building", "a").close()
        deadline = time.time() + 120
        while os.path.exists(flag) and time.time() < deadline:
            time.sleep(0.02)
    files = {NAME + "/__init__.py": "X = 1\\n", DIST + "/METADATA": METADATA, DIST + "/WHEEL": WHEEL}
    record = []
    for path, text in files.items():
        digest = hashlib.sha256(text.encode()).digest()
        encoded = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        record.append(path + ",sha256=" + encoded + "," + str(len(text.encode())))
    files[DIST + "/RECORD"] = "\\n".join(record + [DIST + "/RECORD,,"]) + "\\n"
    wheel = NAME + "-" + VERSION + "-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(directory, wheel), "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel
"""
SLOW_PYPROJECT = """\
[project]
name = "iso-slow"
version = "1.0"

[build-system]
requires = []
build-backend = "slow_backend"
backend-path = ["."]
"""

USES_BASE = """
def test_plain(isoenv):
    assert isoenv.run("python", "-c", "import iso_a; print(iso_a.__version__)").stdout == "1.0\\n"
"""


# -- helpers ---------------------------------------------------------------------------------


def _ini(root: Path, *requires: str) -> None:
    lines = ", ".join(json.dumps(r, ensure_ascii=False) for r in requires)
    (root / "pyproject.toml").write_text(
        f"[tool.pytest.ini_options]\nisoenv_requires = [{lines}]\n", encoding="utf-8"
    )


def _base_lines(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines if line.startswith("isoenv: base")]


def _slow_project(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text(SLOW_PYPROJECT)
    (root / "slow_backend.py").write_text(SLOW_BACKEND)
    return root


def _store(cache_dir: Path, kind: str) -> Path:
    return cache_dir / "v2" / kind


def _published(cache_dir: Path, kind: str) -> list[Path]:
    store = _store(cache_dir, kind)
    if not store.is_dir():
        return []
    return sorted(p for p in store.iterdir() if p.is_dir() and "." not in p.name)


def _half_built(cache_dir: Path) -> list[Path]:
    """Staging and trash dirs left in the stores (a build or a discard that did not finish)."""
    found: list[Path] = []
    for kind in ("bases", "layers"):
        store = _store(cache_dir, kind)
        if store.is_dir():
            found += [p for p in store.iterdir() if ".tmp-" in p.name or ".trash-" in p.name]
    return found


def _session_dirs(tmpdir: Path) -> list[Path]:
    return sorted(tmpdir.glob("pytest-isoenv-*"))


def _envs_below(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("pyvenv.cfg"))


def _assert_locks_free(cache_dir: Path) -> None:
    for kind in ("bases", "layers"):
        store = _store(cache_dir, kind)
        for lock_file in store.glob("*.lock") if store.is_dir() else ():
            lock = FileLock(str(lock_file))
            lock.acquire(timeout=0)  # raises filelock.Timeout if a dead session still held it
            lock.release()


def _content(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of the content (symlinks: their target), bytecode left out."""
    found: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if "__pycache__" in path.parts or rel in (MANIFEST, ".lock"):
            continue
        if path.is_symlink():
            found[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            found[rel] = "dir"
    return found


def _assert_verifies(env: Path) -> None:
    manifest = json.loads((env / MANIFEST).read_text())
    assert manifest["fingerprint"] == full_fingerprint(env), f"{env} changed after publication"


class Spawned:
    """pytest sessions run with Popen in their own process group (to kill or run side by side)."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, cwd: Path, *args: str, wrapper: tuple[str, ...] = ()) -> subprocess.Popen[str]:
        command = [*wrapper, sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]
        proc = subprocess.Popen(
            command,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    @staticmethod
    def finish(proc: subprocess.Popen[str], timeout: float = 120) -> pytest.RunResult:
        start = time.monotonic()
        out, _ = proc.communicate(timeout=timeout)
        return pytest.RunResult(proc.returncode, out.splitlines(), [], time.monotonic() - start)

    @staticmethod
    def wait_for(
        proc: subprocess.Popen[str], what: str, condition: Callable[[], bool], timeout: float = 60
    ) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if proc.poll() is not None:
                out = proc.stdout.read() if proc.stdout else ""
                pytest.fail(f"pytest ended ({proc.returncode}) before {what}:\n{out}")
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}")
            time.sleep(0.02)

    def kill_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()


@pytest.fixture
def spawned() -> Iterator[Spawned]:
    runner = Spawned()
    yield runner
    runner.kill_all()


@pytest.fixture
def tmpdir_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A private TMPDIR for the sessions under test: their session dirs (and envs) land here."""
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    return tmpdir


@pytest.fixture
def private_uv_cache(offline_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A uv cache for this test alone: for tests that kill uv, or whose fault could reach it."""
    cache = tmp_path / "uv-cache"
    monkeypatch.setenv("UV_CACHE_DIR", str(cache))
    return cache


@pytest.fixture
def slow_flag(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, private_uv_cache: Path
) -> Iterator[Path]:
    """While this file exists, building ``iso-slow`` waits; removed at the end in any case."""
    flag = tmp_path / "hold"
    flag.touch()
    monkeypatch.setenv("ISO_SLOW_FLAG", str(flag))
    yield flag
    flag.unlink(missing_ok=True)


def _building(flag: Path) -> Path:
    return Path(f"{flag}.building")


# -- a process killed in the middle of a build -----------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["base", "layer"])
def test_sigkill_mid_build_leaves_nothing_used_and_the_next_session_rebuilds(
    pytester: pytest.Pytester,
    offline_env: Path,
    tmpdir_env: Path,
    slow_flag: Path,
    spawned: Spawned,
    kind: str,
) -> None:
    _slow_project(pytester.path / "slow")
    store = _store(offline_env, "bases" if kind == "base" else "layers")
    if kind == "base":
        _ini(pytester.path, "iso-a==1.0", "./slow")
        mark = ""
    else:
        _ini(pytester.path, "iso-a==1.0")
        mark = '@pytest.mark.isoenv(requires=["./slow"])'
    pytester.makepyfile(
        f"""
        import pytest

        {mark}
        def test_uses_it(isoenv):
            shared = isoenv.layer if {kind == "layer"} else isoenv.base
            assert ".tmp-" not in str(shared.path) and shared.path.parent.name == "{store.name}"
            out = isoenv.run("python", "-c", "import iso_slow; print(iso_slow.__file__)").stdout
            assert out.startswith(str(shared.path))
        """
    )
    proc = spawned.start(pytester.path, "--isoenv-base=cache", "-v")
    spawned.wait_for(
        proc,
        f"the {kind} build to be under way",
        lambda: _building(slow_flag).exists() and bool(list(store.glob("*.tmp-*"))),
    )
    os.killpg(proc.pid, signal.SIGKILL)
    killed = spawned.finish(proc)
    assert killed.ret == -signal.SIGKILL
    half = list(store.glob("*.tmp-*"))
    assert len(half) == 1, "the fault was not injected mid-build"
    assert not _published(offline_env, "layers"), "a layer was published by a killed build"
    assert len(_published(offline_env, "bases")) == (1 if kind == "layer" else 0)
    # SIGKILL leaves the killed session's own session dir behind (the next run removes it)
    (killed_session,) = _session_dirs(tmpdir_env)
    assert not _envs_below(killed_session), "an env was made from a half-built shared env"

    slow_flag.unlink()
    result = pytester.runpytest_subprocess("--isoenv-base=cache", "-v")
    result.assert_outcomes(passed=1)
    if kind == "base":
        assert "base built" in _base_lines(result)[0]
    else:
        assert "base reused" in _base_lines(result)[0]
        result.stdout.fnmatch_lines(
            ["isoenv: *::test_uses_it: layer built in *s for */slow: iso-slow==1.0"]
        )
    assert not half[0].exists(), "the dead build's staging dir was not cleaned up"
    assert not _half_built(offline_env)
    _assert_locks_free(offline_env)
    for env in _published(offline_env, "bases") + _published(offline_env, "layers"):
        _assert_verifies(env)
    assert not _session_dirs(tmpdir_env), "session dirs (and their envs) leaked"


# -- two sessions at once --------------------------------------------------------------------

CONCURRENT_SUITE = """
import pytest

@pytest.mark.parametrize("n", range(4))
def test_plain(isoenv, n):
    assert isoenv.run("python", "-c", "import iso_a; print(iso_a.__version__)").stdout == "1.0\\n"

@pytest.mark.parametrize("n", range(4))
@pytest.mark.isoenv(requires=["iso-a==2.0"])
def test_layer(isoenv, n):
    assert isoenv.run("python", "-c", "import iso_a; print(iso_a.__version__)").stdout == "2.0\\n"
"""

ARRIVALS_CONFTEST = """
import os, pathlib

def pytest_configure(config):
    if hasattr(config, "workerinput"):
        pathlib.Path(os.environ["ISO_ARRIVALS"], str(os.getpid())).touch()
"""


@pytest.mark.slow
def test_two_sessions_with_two_workers_each_build_the_base_once(
    pytester: pytest.Pytester,
    offline_env: Path,
    tmpdir_env: Path,
    slow_flag: Path,
    spawned: Spawned,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    arrivals = tmp_path / "arrivals"
    arrivals.mkdir()
    monkeypatch.setenv("ISO_ARRIVALS", str(arrivals))
    _slow_project(pytester.path / "slow")
    _ini(pytester.path, "iso-a==1.0", "./slow")
    pytester.makeconftest(ARRIVALS_CONFTEST)
    pytester.makepyfile(CONCURRENT_SUITE)
    procs = [spawned.start(pytester.path, "--isoenv-base=cache", "-n", "2", "-v") for _ in "ab"]
    # hold the first build until all four workers are up, so the others meet it under way
    spawned.wait_for(
        procs[0],
        "four workers and a base build under way",
        lambda: len(list(arrivals.iterdir())) == 4 and _building(slow_flag).exists(),
    )
    slow_flag.unlink()
    results = [spawned.finish(proc) for proc in procs]
    for result in results:
        result.assert_outcomes(passed=8)
    lines = [line for result in results for line in result.outlines]
    assert len([line for line in lines if line.startswith("isoenv: base built")]) == 1
    assert len([line for line in lines if line.startswith("isoenv: base reused")]) == 1
    assert len([line for line in lines if "layer built" in line]) == 1
    assert len(_published(offline_env, "bases")) == 1
    assert len(_published(offline_env, "layers")) == 1
    assert not _half_built(offline_env)
    assert not _session_dirs(tmpdir_env), "envs leaked past the sessions"


# -- a cached env damaged after publication --------------------------------------------------


def _edit_manifest(env: Path, change: Callable[[dict[str, object]], None]) -> None:
    manifest = json.loads((env / MANIFEST).read_text())
    change(manifest)
    (env / MANIFEST).write_text(json.dumps(manifest))


def _upgrade_interpreter(manifest: dict[str, object]) -> None:
    identity = manifest["interpreter"]
    assert isinstance(identity, dict)
    identity["executable_mtime_ns"] += 1


def _set_home(env: Path, home: str) -> None:
    cfg = env / "pyvenv.cfg"
    lines = [
        f"home = {home}" if line.startswith("home") else line
        for line in cfg.read_text().splitlines()
    ]
    cfg.write_text("\n".join(lines) + "\n")


CORRUPTIONS: dict[str, tuple[Callable[[Path], object], str]] = {
    "file-removed": (
        lambda env: next(env.rglob("iso_a/__init__.py")).unlink(),
        "its stored distribution iso-a-1.0-* is missing or changed",
    ),
    "file-rewritten": (
        lambda env: next(env.rglob("iso_a/__init__.py")).write_text("__version__ = 'bad'\n"),
        "its stored distribution iso-a-1.0-* is missing or changed",
    ),
    "file-planted": (
        lambda env: (next(env.rglob("site-packages")) / "planted.py").write_text("x = 1\n"),
        "its files changed after it was built",
    ),
    "pyvenv-cfg-garbage": (
        lambda env: (env / "pyvenv.cfg").write_text("\0garbage"),
        "its pyvenv.cfg is broken (home = None",
    ),
    "pyvenv-cfg-missing": (lambda env: (env / "pyvenv.cfg").unlink(), "its pyvenv.cfg is missing"),
    "interpreter-moved": (
        lambda env: _set_home(env, "/nonexistent/python/bin"),
        "its pyvenv.cfg is broken (home = '/nonexistent/python/bin'",
    ),
    "interpreter-upgraded": (
        lambda env: _edit_manifest(env, _upgrade_interpreter),
        "its interpreter changed (built for",
    ),
    "interpreter-link-gone": (
        lambda env: next(env.glob("bin/python")).unlink(),
        "its interpreter * is gone",
    ),
    "manifest-missing": (
        lambda env: (env / MANIFEST).unlink(),
        "it is incomplete (no manifest)",
    ),
    "manifest-truncated": (
        lambda env: (env / MANIFEST).write_text('{"format": 1, "key'),
        "it is incomplete (no manifest)",
    ),
    "manifest-other-format": (
        lambda env: _edit_manifest(env, lambda m: m.update(format=0)),
        "its manifest is from another format or key",
    ),
}


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_a_cached_base_damaged_after_publication_is_rebuilt_and_the_session_says_why(
    pytester: pytest.Pytester, offline_env: Path, private_uv_cache: Path, corruption: str
) -> None:
    corrupt, reason = CORRUPTIONS[corruption]
    _ini(pytester.path, "iso-a==1.0", "iso-cli")
    pytester.makepyfile(USES_BASE + "\ndef test_cli(isoenv):\n    isoenv.run('iso-cli')\n")
    pytester.runpytest_subprocess("--isoenv-base=cache").assert_outcomes(passed=2)
    (base,) = _published(offline_env, "bases")
    before = _content(base)
    corrupt(base)
    result = pytester.runpytest_subprocess("--isoenv-base=cache")
    result.assert_outcomes(passed=2)
    (line,) = _base_lines(result)
    result.stdout.fnmatch_lines(
        [f"isoenv: base built in *s: {base} (*(previous one discarded: {reason}*"]
    )
    assert line.startswith("isoenv: base built")
    assert _published(offline_env, "bases") == [base]
    assert _content(base) == before
    _assert_verifies(base)
    assert not _half_built(offline_env)


def test_a_cached_layer_damaged_after_publication_is_rebuilt(
    pytester: pytest.Pytester, offline_env: Path, private_uv_cache: Path
) -> None:
    _ini(pytester.path, "iso-a==1.0")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.isoenv(requires=["iso-cli"])
        def test_cli(isoenv):
            assert isoenv.run("iso-cli").stdout.split()[-1] == "1.0"
        """
    )
    pytester.runpytest_subprocess("--isoenv-base=cache").assert_outcomes(passed=1)
    (layer,) = _published(offline_env, "layers")
    before = _content(layer)
    next(layer.rglob("iso_cli/__init__.py")).unlink()
    result = pytester.runpytest_subprocess("--isoenv-base=cache", "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "isoenv: *::test_cli: layer built in *s for iso-cli: iso-cli==1.0 (previous one discarded: *)"
        ]
    )
    assert _content(layer) == before
    _assert_verifies(layer)


# -- a test that changes a shared env --------------------------------------------------------

MARKER = "isoenv-planted-by-a-test"

MODIFYING_SUITE = """
import os, pytest

IMPORT = "import iso_a; print(iso_a.__version__)"
WHEELS = {wheels!r}
PIP = {pip!r}  # pip, run by whichever python is given: no pip in the base

def test_imports_write_no_bytecode_into_the_base(isoenv):
    assert "PYTHONDONTWRITEBYTECODE" not in os.environ
    isoenv.run("python", "-c", "import iso_a, iso_cli")

def test_writes_a_new_file_into_the_base(isoenv):
    (isoenv.base.site_packages / "planted.py").write_text("x = 1\\n")

def test_rewrites_a_base_file_in_place(isoenv):
    (isoenv.base.site_packages / "iso_a" / "__init__.py").write_text("# {marker}\\n__version__ = 'x'\\n")

def test_pip_install_aimed_at_the_base(isoenv):
    isoenv.run(isoenv.base.python, PIP, "install", "--no-index", "--find-links", WHEELS, "iso-b")

def test_pip_uninstall_in_the_derived_env_cannot_reach_the_base(isoenv):
    done = isoenv.run("python", PIP, "uninstall", "-y", "iso-a", check=False)
    assert "outside environment" in done.stdout + done.stderr
    assert isoenv.run("python", "-c", IMPORT).stdout == "1.0\\n"

def test_pip_uninstall_aimed_at_the_base_finds_nothing_it_may_remove(isoenv):
    # the base links its distributions from the store: pip sees no files of its own to remove
    done = isoenv.run(isoenv.base.python, PIP, "uninstall", "-y", "iso-a")
    assert "No files were found to uninstall" in done.stdout + done.stderr
    assert isoenv.run("python", "-c", IMPORT).stdout == "1.0\\n"

@pytest.mark.isoenv(requires=["iso-b"])
def test_writes_a_new_file_into_the_layer(isoenv):
    (isoenv.layer.site_packages / "planted.py").write_text("x = 1\\n")

@pytest.mark.isoenv(requires=["iso-b"])
def test_uv_install_aimed_at_the_layer(isoenv):
    isoenv.run("uv", "pip", "install", "--offline", "--python", isoenv.layer.python, "iso-cli")

def test_base_is_whole_afterwards(isoenv):
    assert isoenv.run("python", "-c", IMPORT).stdout == "1.0\\n"
    assert sorted(isoenv.base.packages) == ["iso-a", "iso-cli"]
    assert not (isoenv.base.site_packages / "planted.py").exists()

@pytest.mark.isoenv(requires=["iso-b"])
def test_layer_is_whole_afterwards(isoenv):
    assert sorted(isoenv.layer.packages) == ["iso-b"]
    assert not (isoenv.layer.site_packages / "planted.py").exists()
"""


@pytest.mark.slow
def test_a_test_that_changes_a_shared_env_fails_saying_what_and_the_env_is_unchanged(
    pytester: pytest.Pytester,
    offline_env: Path,
    wheelhouse: Path,
    private_uv_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # bytecode writing on (this machine sets PYTHONDONTWRITEBYTECODE): importing from the base
    # must not write into it, because the base is byte-compiled when it is built
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    _ini(pytester.path, "iso-a==1.0", "iso-cli")
    pytester.makepyfile(
        test_build="import pytest\n\n"
        "@pytest.mark.isoenv(requires=['iso-b'])\ndef test_build(isoenv):\n    pass\n"
    )
    pytester.runpytest_subprocess("--isoenv-base=cache").assert_outcomes(passed=1)
    (base,) = _published(offline_env, "bases")
    (layer,) = _published(offline_env, "layers")
    before = {base: _content(base), layer: _content(layer)}

    (pip_wheel,) = wheelhouse.glob("pip-*.whl")
    with zipfile.ZipFile(pip_wheel) as archive:  # pip runs from a directory with any python
        archive.extractall(tmp_path / "pip")
    suite = MODIFYING_SUITE.format(wheels=str(wheelhouse), pip=f"{tmp_path}/pip/pip", marker=MARKER)
    pytester.makepyfile(test_modify=suite)
    result = pytester.runpytest_subprocess(
        "--isoenv-base=cache", "-p", "no:randomly", "test_modify.py"
    )
    result.assert_outcomes(passed=5, failed=5)
    dists = offline_env / "v2" / "dists"
    result.stdout.fnmatch_lines(
        [
            "*_ test_writes_a_new_file_into_the_base _*",
            f"isoenv: the test changed the shared base env {base} (undone):",
            f"  added {base}/*/site-packages/planted.py",
            "*_ test_rewrites_a_base_file_in_place _*",
            f"isoenv: the test changed the shared base env {base} (it will be rebuilt):",
            f"  modified {dists}/iso-a-1.0-*/site/iso_a/__init__.py",
            "*_ test_pip_install_aimed_at_the_base _*",
            f"isoenv: the test changed the shared base env {base} (undone):",
            f"  added {base}/*/site-packages/iso_b",
            "*_ test_writes_a_new_file_into_the_layer _*",
            f"isoenv: the test changed the shared layer {layer} (undone):",
            f"  added {layer}/*/site-packages/planted.py",
            "*_ test_uv_install_aimed_at_the_layer _*",
            # uv writes through the layer's links into the store: the base's copy is stored anew
            f"isoenv: the test changed the shared base env {base} (it will be rebuilt):",
            f"  replaced {dists}/iso-cli-1.0-*/site/iso_cli/__init__.py",
        ]
    )
    for env in (base, layer):
        assert _content(env) == before[env], f"{env} differs from what was published"
        _assert_verifies(env)
    poisoned = [
        p for p in private_uv_cache.rglob("*.py") if MARKER in p.read_text(errors="replace")
    ]
    assert not poisoned, "a test's write reached uv's cache through a hard link"


XDIST_SUITE = """
import shutil, time, pytest

def test_damages_the_base(isoenv):
    time.sleep(0.2)  # the other worker is running tests by now
    if {removes}:
        shutil.rmtree((isoenv.base.site_packages / "iso_a").resolve())
    else:
        (isoenv.base.site_packages / "planted.py").write_text("x = 1\\n")

@pytest.mark.parametrize("n", range(24))
def test_uses_the_base(isoenv, n):
    isoenv.run("python", "-c", "pass")
"""


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["removes", "adds"])
def test_with_xdist_a_test_that_damages_the_base_fails_and_the_damage_does_not_spread(
    pytester: pytest.Pytester, offline_env: Path, damage: str
) -> None:
    # Both workers see the damage, and the guard cannot tell which process did it. A removal:
    # the culprit fails; the other worker may blame the test it ran meanwhile (and rebuild
    # too), then sees the culprit's rebuild. An addition: whoever sees it first undoes it;
    # nobody rebuilds. Bounded, where before every later test of both workers failed, each
    # rebuilding the base again.
    _ini(pytester.path, "iso-a==1.0")
    pytester.makepyfile(test_build=USES_BASE)
    pytester.runpytest_subprocess("--isoenv-base=cache").assert_outcomes(passed=1)
    (base,) = _published(offline_env, "bases")
    before = _content(base)
    pytester.makepyfile(test_xdist=XDIST_SUITE.format(removes=damage == "removes"))
    result = pytester.runpytest_subprocess("--isoenv-base=cache", "-n", "2", "test_xdist.py")
    outcomes = result.parseoutcomes()
    builds = [line for line in result.outlines if line.startswith("isoenv: base built")]
    if damage == "removes":
        assert outcomes["passed"] >= 22 and outcomes.get("failed", 0) <= 3, result.outlines
        result.stdout.fnmatch_lines(
            [
                "*_ test_damages_the_base _*",
                "isoenv: the test changed the shared base env *",
                "FAILED test_xdist.py::test_damages_the_base*",
            ]
        )
        assert 1 <= len(builds) <= 2
    else:
        assert outcomes["passed"] >= 23 and outcomes.get("failed", 0) <= 2, result.outlines
        result.stdout.fnmatch_lines(
            [
                f"isoenv: the test changed the shared base env {base} (undone):",
                f"  added {base}/*/site-packages/planted.py",
            ]
        )
        assert not builds
    assert _content(base) == before
    _assert_verifies(base)
    again = pytester.runpytest_subprocess("--isoenv-base=cache", "-n", "2", "test_build.py")
    again.assert_outcomes(passed=1)
    assert _base_lines(again)[0].startswith("isoenv: base reused")


# -- Ctrl-C ----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["test", "layer-install", "runtime-install"])
def test_ctrl_c_removes_envs_releases_locks_and_the_next_session_is_healthy(
    pytester: pytest.Pytester,
    offline_env: Path,
    tmpdir_env: Path,
    slow_flag: Path,
    spawned: Spawned,
    tmp_path: Path,
    moment: str,
) -> None:
    note = tmp_path / "env-path.txt"
    _slow_project(pytester.path / "slow")
    _ini(pytester.path, "iso-a==1.0")
    pytester.makepyfile(
        f"""
        import os, time, pytest

        def _note(env):  # atomically: the outer test acts as soon as the note exists
            with open({str(note)!r} + ".tmp", "w") as handle:
                handle.write(str(env.path))
            os.replace({str(note)!r} + ".tmp", {str(note)!r})

        def test_during_test(isoenv):
            _note(isoenv)
            while os.path.exists({str(slow_flag)!r}):
                time.sleep(0.02)

        @pytest.mark.isoenv(requires=["./slow"])
        def test_during_layer_install(isoenv):
            isoenv.run("python", "-c", "import iso_slow")

        def test_during_runtime_install(isoenv):
            _note(isoenv)
            isoenv.install("./slow")
            isoenv.run("python", "-c", "import iso_slow")
        """
    )
    selected = "during_" + moment.replace("-", "_")
    proc = spawned.start(pytester.path, "--isoenv-base=cache", "-k", selected, "-p", "no:xdist")
    layers = _store(offline_env, "layers")

    def under_way() -> bool:
        if moment == "test":
            return note.exists()
        if moment == "layer-install":
            return _building(slow_flag).exists() and bool(list(layers.glob("*.tmp-*")))
        return _building(slow_flag).exists() and note.exists()

    spawned.wait_for(proc, f"the {moment} to be under way", under_way)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends to the foreground group
    result = spawned.finish(proc, timeout=60)
    assert result.ret == pytest.ExitCode.INTERRUPTED, result.outlines
    result.stdout.fnmatch_lines(["*KeyboardInterrupt*"])
    assert not _session_dirs(tmpdir_env), "the interrupted session left its envs behind"
    if note.exists():
        assert not Path(note.read_text()).exists()
    assert not _half_built(offline_env)
    _assert_locks_free(offline_env)
    assert not _published(offline_env, "layers")

    slow_flag.unlink()
    again = pytester.runpytest_subprocess("--isoenv-base=cache", "-p", "no:xdist")
    again.assert_outcomes(passed=3)
    assert _base_lines(again)[0].startswith("isoenv: base reused")
    assert not _half_built(offline_env)
    assert not _session_dirs(tmpdir_env)


# -- no space, no write access ---------------------------------------------------------------


@pytest.mark.parametrize("where", ["a-file", "inside-a-file"])
def test_a_cache_dir_that_cannot_be_created_is_a_clear_error(
    pytester: pytest.Pytester, offline_env: Path, tmp_path: Path, where: str
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory\n")
    cache_dir = blocker if where == "a-file" else blocker / "cache"
    _ini(pytester.path, "iso-a==1.0")
    pytester.makepyfile(USES_BASE + "\ndef test_without_env():\n    pass\n")
    result = pytester.runpytest_subprocess("--isoenv-base=cache", f"--isoenv-cache-dir={cache_dir}")
    result.assert_outcomes(passed=1, errors=1)
    errno = "File exists" if where == "a-file" else "Not a directory"
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of test_plain*",
            f"isoenv: the isoenv base env could not be prepared: cannot use cache dir {cache_dir}: *{errno}*",
        ]
    )
    assert blocker.read_text() == "not a directory\n"


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """Mount a tmpfs (with the given options) for the test; skip where mounting is not allowed."""
    mounted: list[Path] = []

    def mount(options: str) -> Path:
        point = tmp_path / f"mnt{len(mounted)}"
        point.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(point)
        return point

    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)


def _remount(point: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(point)], check=True)


@pytest.mark.slow
def test_a_full_disk_is_a_clear_error_and_leaves_no_half_built_env(
    pytester: pytest.Pytester, offline_env: Path, tmpfs: Callable[[str], Path]
) -> None:
    # pip does not fit in 1 MiB, and the disk fills up in the middle of copying it, with
    # part of its files (maybe its metadata) in place: no second attempt may build on that
    disk = tmpfs("size=1m,mode=0700")
    cache_dir = disk / "cache"
    _ini(pytester.path, "iso-a==1.0", "pip")
    pytester.makepyfile(USES_BASE)
    full = pytester.runpytest_subprocess("--isoenv-base=cache", f"--isoenv-cache-dir={cache_dir}")
    full.assert_outcomes(errors=1)
    full.stdout.fnmatch_lines(
        [
            "isoenv: the isoenv base env could not be prepared: could not install iso-a==1.0, pip*:",
            "*No space left on device*",
        ]
    )
    assert not _half_built(cache_dir)
    assert not _published(cache_dir, "bases")
    _assert_locks_free(cache_dir)
    _remount(disk, "size=64m")
    result = pytester.runpytest_subprocess("--isoenv-base=cache", f"--isoenv-cache-dir={cache_dir}")
    result.assert_outcomes(passed=1)
    assert _base_lines(result)[0].startswith("isoenv: base built")


@pytest.mark.slow
def test_a_read_only_cache_dir_serves_what_it_holds_and_refuses_new_builds_clearly(
    pytester: pytest.Pytester, offline_env: Path, tmpfs: Callable[[str], Path]
) -> None:
    disk = tmpfs("size=64m,mode=0700")
    _ini(pytester.path, "iso-a==1.0")
    pytester.makepyfile(
        USES_BASE
        + "\nimport pytest\n\n@pytest.mark.isoenv(requires=['iso-cli'])\n"
        + "def test_layer(isoenv):\n    isoenv.run('iso-cli')\n"
    )
    args = ("--isoenv-base=cache", f"--isoenv-cache-dir={disk}", "-v")
    pytester.runpytest_subprocess(*args).assert_outcomes(passed=2)
    before = {env: _content(env) for env in _published(disk, "bases") + _published(disk, "layers")}
    _remount(disk, "ro")
    warm = pytester.runpytest_subprocess(*args)
    warm.assert_outcomes(passed=2)
    assert _base_lines(warm)[0].startswith("isoenv: base reused")
    warm.stdout.fnmatch_lines(["*layer reused*"])
    assert {env: _content(env) for env in before} == before
    _ini(pytester.path, "iso-a==2.0")  # a new key: needs a build the read-only cache cannot take
    cold = pytester.runpytest_subprocess(*args)
    cold.assert_outcomes(errors=2)
    cold.stdout.fnmatch_lines(
        ["isoenv: the isoenv base env could not be prepared: *Read-only file system*"]
    )


# RLIMIT_FSIZE makes any write past the limit fail (EFBIG, or SIGXFSZ for programs that do not
# ignore it): a portable stand-in for a full disk that needs no root and no mount.
FSIZE_WRAPPER = (
    "import os, resource, sys;"
    "resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), int(sys.argv[1])));"
    "os.execv(sys.argv[2], sys.argv[2:])"
)


def test_a_file_size_limit_is_a_clear_error_and_leaves_no_half_built_env(
    pytester: pytest.Pytester, offline_env: Path, private_uv_cache: Path, spawned: Spawned
) -> None:
    big = "DATA = '" + "x" * 100_000 + "'\n"  # installs a file far above the limit
    write_project(pytester.path / "big", "iso-big", "1.0", [], big)
    _ini(pytester.path, "iso-a==1.0", "./big")
    pytester.makepyfile(USES_BASE)
    proc = spawned.start(
        pytester.path,
        "--isoenv-base=cache",
        wrapper=(sys.executable, "-c", FSIZE_WRAPPER, str(32 * 1024)),
    )
    limited = spawned.finish(proc)
    limited.assert_outcomes(errors=1)
    limited.stdout.fnmatch_lines(
        [
            "isoenv: the isoenv base env could not be prepared: could not install iso-a==1.0, */big:",
            "uv was killed by SIGXFSZ (a file grew past the file size limit, ulimit -f)",
        ]
    )
    assert not _half_built(offline_env)
    assert not _published(offline_env, "bases")
    result = pytester.runpytest_subprocess("--isoenv-base=cache")
    result.assert_outcomes(passed=1)
    assert _base_lines(result)[0].startswith("isoenv: base built")


# -- the network gone ------------------------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def find_links_server(wheelhouse: Path) -> Iterator[tuple[str, Callable[[], None]]]:
    """An HTTP server with the wheelhouse as a find-links page; the callable takes it down."""
    handler = functools.partial(_QuietHandler, directory=str(wheelhouse))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    stopped = False

    def stop() -> None:
        nonlocal stopped
        if not stopped:
            server.shutdown()
            server.server_close()
            stopped = True

    yield f"http://127.0.0.1:{server.server_address[1]}/", stop
    stop()


NETWORK_SUITE = """
import pytest

def test_needs_nothing_new(isoenv):
    assert isoenv.run("python", "-c", "import iso_a; print(iso_a.__version__)").stdout == "1.0\\n"

@pytest.mark.isoenv(requires=["iso-cli"])
def test_cached_layer(isoenv):
    isoenv.run("iso-cli")

@pytest.mark.isoenv(requires=["iso-b"])
def test_needs_an_install(isoenv):
    pass
"""


@pytest.mark.parametrize("gone", ["server-down", "uv-offline"])
def test_without_the_network_tests_that_need_nothing_new_pass_and_the_others_say_why(
    pytester: pytest.Pytester,
    offline_env: Path,
    find_links_server: tuple[str, Callable[[], None]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    gone: str,
) -> None:
    url, stop = find_links_server
    monkeypatch.setenv("UV_FIND_LINKS", url)
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache-online"))
    _ini(pytester.path, "iso-a==1.0")
    pytester.makepyfile(NETWORK_SUITE)
    online = pytester.runpytest_subprocess("--isoenv-base=cache", "-k", "not install")
    online.assert_outcomes(passed=2, deselected=1)

    stop()
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache-cold"))
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")
    if gone == "uv-offline":
        monkeypatch.setenv("UV_OFFLINE", "1")
    result = pytester.runpytest_subprocess("--isoenv-base=cache")
    result.assert_outcomes(passed=2, errors=1)
    assert _base_lines(result)[0].startswith("isoenv: base reused")
    reason = "*Connection refused*" if gone == "server-down" else "*network was disabled*"
    result.stdout.fnmatch_lines(
        ["*ERROR at setup of test_needs_an_install*", "isoenv: could not install iso-b:", reason]
    )


def test_an_unreachable_index_errors_the_tests_that_need_it_in_setup(
    pytester: pytest.Pytester, offline_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("UV_FIND_LINKS", "PYTEST_ISOENV_NO_INDEX"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("UV_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache-cold"))
    pytester.makepyfile(
        """
        import pytest

        def test_needs_nothing(isoenv):
            isoenv.run("python", "-c", "pass")

        @pytest.mark.isoenv(requires=["iso-a"])
        def test_needs_an_install(isoenv):
            pass
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of test_needs_an_install*",
            "isoenv: could not install iso-a:",
            "*http://127.0.0.1:9/simple/iso-a/*",
            "*Connection refused*",
        ]
    )


# -- bad input: each a clear error naming the test and the value ------------------------------


@pytest.mark.parametrize("where", ["marker", "base"])
def test_a_requirements_file_that_does_not_exist(
    pytester: pytest.Pytester, offline_env: Path, where: str
) -> None:
    missing = pytester.path / "missing.txt"
    if where == "base":
        _ini(pytester.path, "-r missing.txt")
        pytester.makepyfile(
            "def test_uses(isoenv):\n    pass\n\ndef test_without_env():\n    pass\n"
        )
        intro = (
            f"isoenv: the isoenv base env could not be prepared: could not install -r {missing}:"
        )
    else:
        _ini(pytester.path)
        pytester.makepyfile(
            """
            import pytest

            @pytest.mark.isoenv(requires=["-r missing.txt"])
            def test_uses(isoenv):
                pass

            def test_without_env(isoenv):
                pass
            """
        )
        intro = f"isoenv: could not install -r {missing}:"
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at setup of test_uses*", intro, "*not found*missing.txt*"])


@pytest.mark.parametrize("target", ["not-a-project", "nowhere"])
def test_a_local_path_that_is_not_a_project(
    pytester: pytest.Pytester, offline_env: Path, target: str
) -> None:
    (pytester.path / "not-a-project").mkdir()
    (pytester.path / "not-a-project" / "README.txt").write_text("just a directory\n")
    _ini(pytester.path)
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.isoenv(requires=["./{target}"])
        def test_uses(isoenv):
            pass

        def test_other(isoenv):
            pass
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1, errors=1)
    why = "*does not appear to be a Python project*" if target != "nowhere" else "*not found*"
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of test_uses*",
            f"isoenv: could not install {pytester.path / target}:",
            why,
        ]
    )


@pytest.mark.parametrize("what", ["a-directory", "a-file", "missing"])
def test_an_isoenv_base_path_that_is_not_a_venv_is_a_usage_error(
    pytester: pytest.Pytester, what: str
) -> None:
    target = pytester.path / "target dir"
    if what == "a-directory":
        target.mkdir()
        (target / "bin").mkdir()
    elif what == "a-file":
        target.write_text("not a venv\n")
    pytester.makepyfile(USES_BASE)
    result = pytester.runpytest_subprocess(f"--isoenv-base={target}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"*--isoenv-base={target}: not 'session', 'cache' or a venv ({target} has no pyvenv.cfg)*"]
    )


@pytest.mark.parametrize("python", ["missing", "broken"])
def test_an_isoenv_base_venv_without_a_working_python_is_a_clear_error(
    pytester: pytest.Pytester, offline_env: Path, python: str
) -> None:
    venv = pytester.path / "fake venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    if python == "broken":
        (venv / "bin" / "python").write_text("#!/bin/sh\necho 'not python' >&2\nexit 3\n")
        (venv / "bin" / "python").chmod(0o755)
    pytester.makepyfile(USES_BASE + "\ndef test_without_env():\n    pass\n")
    result = pytester.runpytest_subprocess(f"--isoenv-base={venv}")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of test_plain*",
            f"isoenv: the isoenv base env could not be prepared: *{venv}/bin/python*",
        ]
    )
    result.stdout.no_fnmatch_line("*CalledProcessError*")
    result.stdout.no_fnmatch_line("*Traceback*")


FROG_SUITE = """
import pytest

def test_base(isoenv):
    assert "🐸 tmp dir" in str(isoenv.path)
    assert isoenv.run("iso-frog").stdout == f"frog {isoenv.path}\\n"
    code = "import iso_a, iso_edit; print(iso_a.__version__, iso_edit.X)"
    assert isoenv.run("python", "-c", code).stdout.split() == ["1.0", "edit"]

@pytest.mark.isoenv(requires=["./layer 🐸"])
def test_layer(isoenv):
    assert isoenv.run("python", "-c", "import iso_layer; print(iso_layer.X)").stdout == "layer\\n"

def test_install(isoenv):
    isoenv.install("./layer 🐸")
    assert isoenv.run("python", "-c", "import iso_layer; print(iso_layer.X)").stdout == "layer\\n"
"""


def test_paths_with_spaces_and_non_ascii_characters(
    pytester: pytest.Pytester, offline_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    frog = pytester.path / "🐸 dir"
    main = "import sys\ndef main():\n    print('frog', sys.prefix)\n"
    write_project(frog / "🐸 proj", "iso-frog", "1.0", [], main, {"iso-frog": "iso_frog:main"})
    write_project(frog / "🐸 editable", "iso-edit", "1.0", [], "X = 'edit'\n")
    write_project(frog / "layer 🐸", "iso-layer", "1.0", [], "X = 'layer'\n")
    (frog / "🐸 reqs.txt").write_text("iso-a==1.0\n", encoding="utf-8")
    _ini(frog, "-r 🐸 reqs.txt", "./🐸 proj", "-e ./🐸 editable")
    (frog / "test_frog.py").write_text(FROG_SUITE, encoding="utf-8")
    tmpdir = tmp_path / "🐸 tmp dir"
    tmpdir.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    cache_dir = tmp_path / "🐸 cache dir"
    args = ("--isoenv-base=cache", f"--isoenv-cache-dir={cache_dir}", "-p", "no:cacheprovider")
    # A context of its own: on pytest 7, pytester shares the test's monkeypatch and restores
    # the working directory before it is undone.
    with monkeypatch.context() as in_frog:
        in_frog.chdir(frog)
        first = pytester.runpytest_subprocess(*args)
        second = pytester.runpytest_subprocess(*args)
    first.assert_outcomes(passed=3)
    assert _base_lines(first)[0].startswith("isoenv: base built in ")
    assert str(cache_dir) in _base_lines(first)[0]
    second.assert_outcomes(passed=3)
    assert _base_lines(second)[0].startswith("isoenv: base reused")
    assert not _session_dirs(tmpdir)


def test_a_marker_with_300_requirements(pytester: pytest.Pytester, offline_env: Path) -> None:
    requires = [f"iso-a>=0.{i}" for i in range(300)]
    _ini(pytester.path)
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.isoenv(requires={requires!r})
        def test_many(isoenv):
            assert len(isoenv.requirements) == 300
            assert isoenv.layer.packages == {{"iso-a": "2.0"}}
            assert isoenv.run("python", "-c", "import iso_a; print(iso_a.__version__)").stdout == "2.0\\n"

        @pytest.mark.isoenv(requires={[*requires, "iso-zz-missing"]!r})
        def test_many_and_one_missing(isoenv):
            pass
        """
    )
    result = pytester.runpytest_subprocess("-v")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of test_many_and_one_missing*",
            "isoenv: could not install iso-a>=0.0, *, iso-zz-missing:",
            "*iso-zz-missing was not found*",
            "isoenv: *::test_many: layer built in *s for iso-a>=0.0, iso-a>=0.1, *: iso-a==2.0",
        ]
    )


def test_requirement_strings_with_shell_metacharacters_never_reach_a_shell(
    pytester: pytest.Pytester, offline_env: Path, tmp_path: Path
) -> None:
    canary = tmp_path / "pwned"
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep").write_text("keep\n")
    (pytester.path / "reqs.txt").write_text("iso-a==1.0\n")
    strings = [
        f"./x; touch {canary}",
        f"./$(touch {canary})",
        f"./`touch {canary}`",
        f"./x && touch {canary} || rm -rf {victim}",
        f"-r reqs.txt; touch {canary}",
        f"-e ./x | touch {canary}",
        f"iso-a @ file:///tmp/$(touch%20{canary})",
        f"file:///tmp/x.whl;touch {canary}",
        f"./x\ntouch {canary}",
    ]
    _ini(pytester.path, f"./base; touch {canary}")
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.parametrize("n", [
            pytest.param(n, marks=pytest.mark.isoenv(requires=[text]))
            for n, text in enumerate({strings!r})
        ])
        def test_meta(n):
            pass
        """
    )
    base = pytester.runpytest_subprocess("--isoenv-base=cache")
    assert not canary.exists(), "a requirement string reached a shell"
    base.assert_outcomes(errors=len(strings))
    base.stdout.fnmatch_lines(
        [
            "*ERROR at setup of test_meta[[]0[]]*",
            f"isoenv: the isoenv base env could not be prepared: could not install *base; touch {canary}:",
        ]
    )
    _ini(pytester.path)
    result = pytester.runpytest_subprocess("--isoenv-base=cache")
    assert not canary.exists(), "a requirement string reached a shell"
    assert (victim / "keep").read_text() == "keep\n"
    result.assert_outcomes(errors=len(strings))
    expected = []
    for n, text in enumerate(strings):
        first, *more = text.split("\n")  # the message shows a newline as it is
        expected += [
            f"*ERROR at setup of test_meta[[]{n}[]]*",
            f"isoenv: could not install *{first.rsplit('/', 1)[1]}" + ("" if more else ":"),
            *(f"{line}:" for line in more),
        ]
    result.stdout.fnmatch_lines(expected)


def test_requirements_with_a_slash_that_are_not_paths_are_not_taken_for_paths(
    pytester: pytest.Pytester, offline_env: Path, wheelhouse: Path, tmp_path: Path
) -> None:
    victim = tmp_path / "victim"
    wheel_url = (wheelhouse / "iso_a-2.0-py3-none-any.whl").as_uri()
    _ini(pytester.path)
    pytester.makepyfile(
        test_valid=f"""
        import pytest

        @pytest.mark.isoenv(requires=['iso-a>=1; platform_release != "x/y"'])
        def test_marker_with_a_slash(isoenv):
            assert isoenv.layer.packages == {{"iso-a": "2.0"}}

        @pytest.mark.isoenv(requires=['iso-a>=1; os_name == "{victim}"'])
        def test_false_marker_with_a_slash(isoenv):
            assert isoenv.layer is None

        @pytest.mark.isoenv(requires=[{wheel_url!r}])
        def test_url(isoenv):
            assert isoenv.layer.packages == {{"iso-a": "2.0"}}
        """,
        test_invalid=f"""
        import pytest

        @pytest.mark.isoenv(requires=["iso-a; rm -rf {victim}"])
        def test_invalid():
            pass
        """,
    )
    result = pytester.runpytest_subprocess("--continue-on-collection-errors")
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR collecting test_invalid.py*",
            f"*In test_invalid: invalid isoenv marker: invalid requirement 'iso-a; rm -rf {victim}'*",
        ]
    )


def test_the_plugin_never_runs_a_shell() -> None:
    import pytest_isoenv

    sources = sorted(Path(pytest_isoenv.__file__).parent.glob("*.py"))
    assert len(sources) > 10
    for source in sources:
        text = source.read_text(encoding="utf-8")
        for needle in ("shell=", "os.system(", "os.popen(", "getoutput(", "getstatusoutput("):
            assert needle not in text, f"{source.name} uses {needle}"
