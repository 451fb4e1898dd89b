"""The store of distributions, as a demanding user would probe it.

Namespace packages split across distributions, distributions with ``.pth`` files of their own,
console scripts, one version per name for ``importlib.metadata``, each distribution stored
once, concurrent and killed builds, waiting messages, an env rebuilt under a reader, and
bytecode. Every test runs real sessions (``pytester`` or ``Popen``) with real uv, offline,
against tiny wheels written here.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Mapping
from pathlib import Path

import pytest
import test_faults
from filelock import FileLock
from test_faults import SLOW_BACKEND, SLOW_PYPROJECT, Spawned

from pytest_isoenv._fingerprint import ENTRY_MANIFEST, full_fingerprint

PY_TAG = f"cpython-{sys.version_info[0]}{sys.version_info[1]}"

# The fault suite's fixtures: a held slow build, and sessions run with Popen.
private_uv_cache = test_faults.private_uv_cache
slow_flag = test_faults.slow_flag
spawned = test_faults.spawned


# -- wheels written by hand: full control over what lands in site-packages ---------------------


def _wheel(
    house: Path,
    name: str,
    version: str,
    files: Mapping[str, str | bytes],
    *,
    requires: tuple[str, ...] = (),
    scripts: dict[str, str] | None = None,
) -> Path:
    """Write a pure-Python wheel holding ``files`` (paths relative to site-packages)."""
    stem = f"{name.replace('-', '_')}-{version}"
    info = f"{stem}.dist-info"
    content: dict[str, bytes] = {
        path: text.encode() if isinstance(text, str) else text for path, text in files.items()
    }
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {req}\n" for req in requires)
    content[f"{info}/METADATA"] = metadata.encode()
    content[f"{info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: iso-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    if scripts:
        lines = "".join(f"{k} = {v}\n" for k, v in scripts.items())
        content[f"{info}/entry_points.txt"] = f"[console_scripts]\n{lines}".encode()
    record = []
    for path, data in content.items():
        hashed = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={hashed},{len(data)}")
    content[f"{info}/RECORD"] = ("\n".join([*record, f"{info}/RECORD,,"]) + "\n").encode()
    wheel = house / f"{stem}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in content.items():
            archive.writestr(path, data)
    return wheel


PKGUTIL_INIT = "__path__ = __import__('pkgutil').extend_path(__path__, __name__)\n"
PTH_HOOK = "import sys\nsys.iso_pth_runs = getattr(sys, 'iso_pth_runs', 0) + 1\n"
TOOL = textwrap.dedent("""\
    import sys
    def main():
        try:
            import iso_a
            a = iso_a.__version__
        except ImportError:
            a = "none"
        print("|".join(["iso-tool", sys.prefix, sys.executable, a]))
""")
BIG = 2 * 1024 * 1024  # bytes of iso-big's data file


@pytest.fixture(scope="session")
def store_house(wheelhouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The suite's wheelhouse plus wheels shaped for the store's corner cases."""
    house = tmp_path_factory.mktemp("store-house")
    for wheel in wheelhouse.iterdir():
        shutil.copy(wheel, house)
    for part in "abc":  # PEP 420: no isons/__init__.py; isons.deep is split too
        _wheel(
            house,
            f"iso-ns-{part}",
            "1.0",
            {
                f"isons/{part}/__init__.py": f"X = {part!r}\n",
                f"isons/deep/{part}/__init__.py": f"X = 'deep-{part}'\n",
            },
        )
    for part in "ab":  # pkgutil-style: every part ships the same isopk/__init__.py
        _wheel(
            house,
            f"iso-pk-{part}",
            "1.0",
            {"isopk/__init__.py": PKGUTIL_INIT, f"isopk/{part}/__init__.py": f"X = {part!r}\n"},
        )
    _wheel(
        house,
        "iso-pth",
        "1.0",
        {
            # a relative directory (to the site dir holding the .pth) and an import line
            "iso_pth.pth": "iso_pth_extra\nimport iso_pth_hook\n",
            "iso_pth_hook.py": PTH_HOOK,
            "iso_pth_extra/iso_pth_mod.py": "X = 'extra'\n",
        },
    )
    _wheel(house, "iso-tool", "1.0", {"iso_tool.py": TOOL}, scripts={"iso-tool": "iso_tool:main"})
    _wheel(house, "iso-single", "1.0", {"iso_single.py": "X = 'single'\n"})
    _wheel(
        house,
        "iso-big",
        "1.0",
        {"iso_big/__init__.py": "X = 'big'\n", "iso_big/data.bin": os.urandom(BIG)},
    )
    return house


@pytest.fixture
def house_env(offline_env: Path, store_house: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``offline_env`` with uv finding the wheels of ``store_house``; returns the cache dir."""
    monkeypatch.setenv("UV_FIND_LINKS", str(store_house))
    return offline_env


# -- looking at the store --------------------------------------------------------------------


def _v2(cache_dir: Path) -> Path:
    return cache_dir / "v2"


def _entries(cache_dir: Path, prefix: str) -> list[Path]:
    """Published distribution entries ``<prefix>-*`` (not their ``.inuse`` files)."""
    dists = _v2(cache_dir) / "dists"
    return sorted(p for p in dists.glob(f"{prefix}-*") if p.is_dir())


def _garbage(cache_dir: Path) -> list[Path]:
    """Staging dirs left anywhere in the store (an install, a split or a build not finished)."""
    found: list[Path] = []
    for kind in ("dists", "bases", "layers"):
        root = _v2(cache_dir) / kind
        if root.is_dir():
            found += [p for p in root.iterdir() if ".tmp-" in p.name or ".install-" in p.name]
    return sorted(found)


def _assert_entries_verify(cache_dir: Path) -> None:
    dists = _v2(cache_dir) / "dists"
    for entry in dists.iterdir():
        if entry.is_dir() and not entry.name.startswith(".") and entry.name != "index":
            manifest = json.loads((entry / ENTRY_MANIFEST).read_text())
            assert manifest["fingerprint"] == full_fingerprint(entry), f"{entry} does not verify"


def _ini(root: Path, *requires: str) -> None:
    lines = ", ".join(json.dumps(r, ensure_ascii=False) for r in requires)
    (root / "pyproject.toml").write_text(
        f"[tool.pytest.ini_options]\nisoenv_requires = [{lines}]\n", encoding="utf-8"
    )


def _base_line(result: pytest.RunResult) -> str:
    return next(line for line in result.outlines if line.startswith("isoenv: base"))


def _du(root: Path) -> int:
    """Disk usage of ``root`` as ``du`` counts it: blocks, links not followed, inodes once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for directory, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames, "."] if directory else []:
            path = os.path.join(directory, name)
            info = os.lstat(path)
            if (info.st_dev, info.st_ino) in seen:
                continue
            seen.add((info.st_dev, info.st_ino))
            total += info.st_blocks * 512
    return total


# -- 1. namespace packages split across distributions ------------------------------------------

NAMESPACE_SUITE = """
import importlib.metadata, os
import pytest

def _xs(isoenv, mods):
    code = (
        "import importlib; "
        f"print(' '.join(importlib.import_module(m).X for m in {mods!r})); "
        "import isons; print(isons.__file__)"
    )
    return isoenv.run("python", "-c", code).stdout.split()

def _merged(view):
    isons = view.site_packages / "isons"
    # a real directory of the view linking each distribution's part, never one dist's dir
    assert isons.is_dir() and not isons.is_symlink()
    return sorted(os.listdir(isons))

def test_base(isoenv):
    assert _xs(isoenv, ["isons.a", "isons.b", "isons.deep.a", "isons.deep.b", "isopk.a", "isopk.b"]) == [
        "a", "b", "deep-a", "deep-b", "a", "b", "None"]
    assert _merged(isoenv.base) == ["a", "b", "deep"]

@pytest.mark.isoenv(requires=["iso-ns-c"])
def test_layer_adds_a_third_part(isoenv):
    assert _xs(isoenv, ["isons.a", "isons.b", "isons.c", "isons.deep.c", "isons.deep.a", "isopk.b"]) == [
        "a", "b", "c", "deep-c", "deep-a", "b", "None"]
    assert _merged(isoenv.layer) == ["a", "b", "c", "deep"]
    # the base's view is left as it was
    assert _merged(isoenv.base) == ["a", "b", "deep"]
"""

SPLIT_SUITE = """
import pytest

@pytest.mark.isoenv(requires=["iso-ns-b", "iso-pk-b"])
def test_parts_across_base_and_layer(isoenv):
    code = (
        "import importlib; "
        "print(' '.join(importlib.import_module(m).X for m in "
        "['isons.a', 'isons.b', 'isons.deep.a', 'isons.deep.b', 'isopk.a', 'isopk.b']))"
    )
    assert isoenv.run("python", "-c", code).stdout.split() == ["a", "b", "deep-a", "deep-b", "a", "b"]
    # the base alone has only its own part
    base = isoenv.run(isoenv.base.python, "-c", "import isons.b", check=False)
    assert base.returncode != 0 and "ModuleNotFoundError" in base.stderr

def test_base_alone(isoenv):
    out = isoenv.run("python", "-c", "import isons.a, isopk.a; print(isons.a.X, isopk.a.X)")
    assert out.stdout.split() == ["a", "a"]
"""


@pytest.mark.parametrize("base", ["session", "cache"])
def test_namespace_packages_split_across_distributions(
    pytester: pytest.Pytester, house_env: Path, base: str
) -> None:
    _ini(pytester.path, "iso-ns-a", "iso-ns-b", "iso-pk-a", "iso-pk-b")
    pytester.makepyfile(NAMESPACE_SUITE)
    for _ in range(2 if base == "cache" else 1):  # built, then reused
        pytester.runpytest_subprocess(f"--isoenv-base={base}").assert_outcomes(passed=2)
    _assert_entries_verify(house_env)


@pytest.mark.parametrize("base", ["session", "cache"])
def test_namespace_packages_split_across_base_and_layer(
    pytester: pytest.Pytester, house_env: Path, base: str
) -> None:
    _ini(pytester.path, "iso-ns-a", "iso-pk-a")
    pytester.makepyfile(SPLIT_SUITE)
    pytester.runpytest_subprocess(f"--isoenv-base={base}").assert_outcomes(passed=2)


# -- 2. a distribution with a .pth file of its own ---------------------------------------------

PTH_SUITE = """
import pytest

CODE = (
    "import sys, iso_pth_mod; "
    "print(sys.iso_pth_runs, iso_pth_mod.X, any(p.endswith('iso_pth_extra') for p in sys.path))"
)

def test_base(isoenv):
    runs, x, on_path = isoenv.run("python", "-c", CODE).stdout.split()
    assert int(runs) >= 1 and x == "extra" and on_path == "True"

@pytest.mark.isoenv(requires=["iso-a==2.0"])
def test_layer(isoenv):
    runs, x, on_path = isoenv.run("python", "-c", CODE).stdout.split()
    assert int(runs) >= 1 and x == "extra" and on_path == "True"

@pytest.mark.isoenv(requires=["iso-pth"])
def test_pth_dist_in_the_layer_only(isoenv):
    pass
"""

PTH_LAYER_SUITE = """
import pytest

@pytest.mark.isoenv(requires=["iso-pth"])
def test_pth_dist_in_the_layer(isoenv):
    out = isoenv.run("python", "-c", "import sys, iso_pth_mod; print(sys.iso_pth_runs)")
    assert int(out.stdout) >= 1
"""


@pytest.mark.parametrize("where", ["base", "layer"])
def test_a_distributions_own_pth_file_is_processed_in_derived_envs(
    pytester: pytest.Pytester, house_env: Path, where: str
) -> None:
    if where == "base":
        _ini(pytester.path, "iso-a==1.0", "iso-pth")
        pytester.makepyfile(PTH_SUITE)
        passed = 3
    else:
        _ini(pytester.path, "iso-a==1.0")
        pytester.makepyfile(PTH_LAYER_SUITE)
        passed = 1
    pytester.runpytest_subprocess("--isoenv-base=cache").assert_outcomes(passed=passed)


# -- 3. console scripts ----------------------------------------------------------------------

SCRIPTS_SUITE = """
import os, subprocess
import pytest

def _run(isoenv, name):
    line = isoenv.run(name).stdout.strip()
    if name == "iso-cli":  # "iso-cli 1.0 <sys.prefix> iso-a <version>"
        prefix, a = line[len("iso-cli 1.0 "):].rsplit(" iso-a ", 1)
        out = [name, prefix, "", a]
    else:
        out = line.split("|")
    # the derived env's interpreter runs it, whatever env the script came from
    assert out[1] == str(isoenv.path), out
    return out

def test_base_script(isoenv):
    assert _run(isoenv, "iso-cli")[-1] == "1.0"
    # a plain subprocess finds it on PATH (the test's env is active)
    plain = subprocess.run(["iso-cli"], capture_output=True, text=True, check=True)
    assert f" {isoenv.path} iso-a " in plain.stdout

@pytest.mark.isoenv(requires=["iso-tool", "iso-a==2.0"])
def test_layer_and_base_scripts(isoenv):
    out = _run(isoenv, "iso-tool")
    assert out[2] == str(isoenv.python) and out[-1] == "2.0"
    assert _run(isoenv, "iso-cli")[-1] == "2.0"  # the base's script sees the layer's iso-a

def test_scripts_see_what_the_test_installed(isoenv):
    isoenv.install("iso-a==2.0", "iso-tool")
    assert _run(isoenv, "iso-cli")[-1] == "2.0"
    assert _run(isoenv, "iso-tool")[-1] == "2.0"
"""


@pytest.mark.parametrize("base", ["session", "cache"])
def test_console_scripts_of_base_and_layer_run_with_the_derived_interpreter(
    pytester: pytest.Pytester,
    house_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    base: str,
) -> None:
    spaced = pytester.path / "a project dir"
    spaced.mkdir()
    _ini(spaced, "iso-a==1.0", "iso-cli")
    (spaced / "test_scripts.py").write_text(SCRIPTS_SUITE)
    tmpdir = tmp_path / "a tmp dir"
    tmpdir.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    cache = tmp_path / "a cache dir"
    monkeypatch.setenv("PYTEST_ISOENV_CACHE_DIR", str(cache))
    with monkeypatch.context() as inside:
        inside.chdir(spaced)
        for _ in range(2):  # built, then reused (from the cache, or by a fresh session base)
            result = pytester.runpytest_subprocess(
                f"--isoenv-base={base}", "-p", "no:cacheprovider"
            )
            result.assert_outcomes(passed=3)
    assert str(cache if base == "cache" else tmpdir) in _base_line(result)
    # distributions with scripts are stored once too, whichever session installed them first
    _assert_stored_once(cache, "iso-cli-1.0", "iso-tool-1.0", "iso-a-1.0", "iso-a-2.0")


# -- 4. importlib.metadata sees one version per name -------------------------------------------

METADATA_SUITE = """
import pytest

CODE = (
    "import importlib.metadata as m; "
    "print(m.version('iso-a'), len([d for d in m.distributions() if d.metadata['Name'] == 'iso-a']), "
    "len([d for d in m.distributions() if d.metadata['Name'] == 'iso-cli']))"
)

def test_base(isoenv):
    assert isoenv.run("python", "-c", CODE).stdout.split() == ["1.0", "1", "1"]

@pytest.mark.isoenv(requires=["iso-a==2.0"])
def test_layer_moves_a_base_package(isoenv):
    assert isoenv.run("python", "-c", CODE).stdout.split() == ["2.0", "1", "1"]
    assert isoenv.packages()["iso-a"] == "2.0"
    # the layer's own interpreter sees the same single version
    assert isoenv.run(isoenv.layer.python, "-c", CODE).stdout.split() == ["2.0", "1", "1"]
    # and uv, asked about the layer, finds nothing to change for iso-a==2.0
    assert isoenv.install("iso-a==2.0") == []
"""


def test_importlib_metadata_sees_one_version_per_name(
    pytester: pytest.Pytester, house_env: Path
) -> None:
    _ini(pytester.path, "iso-a==1.0", "iso-cli")
    pytester.makepyfile(METADATA_SUITE)
    pytester.runpytest_subprocess("--isoenv-base=cache").assert_outcomes(passed=2)


# -- 5. each distribution stored once ----------------------------------------------------------

SHARED_SUITE = """
import pytest

CODE = "import iso_big, os; print(iso_big.X, os.path.getsize(os.path.join(os.path.dirname(iso_big.__file__), 'data.bin')))"

@pytest.mark.isoenv(requires=["iso-big", "iso-a==1.0", "iso-cli"])
def test_one(isoenv):
    assert isoenv.run("python", "-c", CODE).stdout.split() == ["big", "{big}"]
    isoenv.run("iso-cli")

@pytest.mark.isoenv(requires=["iso-big", "iso-b"])
def test_two(isoenv):
    assert isoenv.run("python", "-c", CODE + "; import iso_b, iso_a; print(iso_a.__version__)").stdout.split() == ["big", "{big}", "1.0"]

@pytest.mark.isoenv(requires=["iso-big", "iso-a==1.0"])
def test_three(isoenv):
    assert isoenv.run("python", "-c", CODE).stdout.split() == ["big", "{big}"]
"""


def test_each_distribution_is_stored_once_and_layers_are_symlink_trees(
    pytester: pytest.Pytester, house_env: Path
) -> None:
    _ini(pytester.path, "iso-tool")
    pytester.makepyfile(SHARED_SUITE.replace("{big}", str(BIG)))
    result = pytester.runpytest_subprocess("--isoenv-base=cache", "-v")
    result.assert_outcomes(passed=3)
    assert len([line for line in result.outlines if "layer built" in line]) == 3
    assert len(_entries(house_env, "iso-big-1.0")) == 1
    assert len(_entries(house_env, "iso-a-1.0")) == 1
    layers = sorted(p for p in (_v2(house_env) / "layers").iterdir() if "." not in p.name)
    assert len(layers) == 3
    for layer in layers:
        site = next(layer.glob("lib/python*/site-packages"))
        for name in os.listdir(site):
            path = site / name
            # every distribution's names are links into the store; only the link file is ours
            assert path.is_symlink() or name == "_pytest_isoenv_link.pth", path
            if path.is_symlink():
                assert str(_v2(house_env) / "dists") in os.readlink(path), path
    (big,) = _entries(house_env, "iso-big-1.0")
    stored = _du(big)
    assert stored >= BIG
    costs = [_du(layer) for layer in layers]
    dists = _du(_v2(house_env) / "dists") - sum(map(_du, _entries(house_env, "pip")))
    print("du: iso-big entry", stored, "layers", costs, "dists but pip", dists)
    # three layers holding a 2 MiB distribution cost far less than one more copy of it
    assert sum(costs) < BIG / 4, costs
    assert dists < 2 * BIG
    _assert_entries_verify(house_env)


# -- 6. concurrent first use of one distribution -----------------------------------------------


def _slow_project(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text(SLOW_PYPROJECT)
    (root / "slow_backend.py").write_text(SLOW_BACKEND)
    return root


def _installs(cache_dir: Path) -> list[Path]:
    dists = _v2(cache_dir) / "dists"
    return sorted(p for p in dists.glob(".install-*") if p.is_dir()) if dists.is_dir() else []


def _building(flag: Path) -> bool:
    return Path(f"{flag}.building").exists()


TWO_LAYERS_SUITE = """
import pytest

CODE = "import iso_slow, iso_a; print(iso_a.__version__)"

@pytest.mark.xdist_group("one")
@pytest.mark.isoenv(requires=["./slow", "iso-a==1.0"])
def test_one(isoenv):
    assert isoenv.run("python", "-c", CODE).stdout == "1.0\\n"

@pytest.mark.xdist_group("two")
@pytest.mark.isoenv(requires=["./slow", "iso-b"])
def test_two(isoenv):
    assert isoenv.run("python", "-c", CODE + "; import iso_b").stdout == "1.0\\n"
"""

SLOW_BASE_SUITE = """
import pytest

@pytest.mark.parametrize("n", range(3))
def test_base(isoenv, n):
    assert isoenv.run("python", "-c", "import iso_slow, iso_a; print(iso_a.__version__)").stdout == "1.0\\n"
"""


def _assert_stored_once(cache_dir: Path, *prefixes: str) -> None:
    for prefix in prefixes:
        found = _entries(cache_dir, prefix)
        assert len(found) == 1, f"{prefix} stored {len(found)} times: {found}"
    assert not _garbage(cache_dir), _garbage(cache_dir)
    _assert_entries_verify(cache_dir)


@pytest.mark.slow
def test_two_workers_storing_one_distribution_at_once_store_it_once(
    pytester: pytest.Pytester, house_env: Path, slow_flag: Path, spawned: Spawned
) -> None:
    _slow_project(pytester.path / "slow")
    _ini(pytester.path, "iso-cli")
    pytester.makepyfile(TWO_LAYERS_SUITE)
    proc = spawned.start(pytester.path, "--isoenv-base=cache", "-n", "2", "--dist", "loadgroup")
    layers = _v2(house_env) / "layers"
    # both layers are being built, both installs are under way: neither found iso-a stored
    spawned.wait_for(
        proc,
        "two layer builds installing at once",
        lambda: len(list(layers.glob("*.tmp-*"))) == 2 and len(_installs(house_env)) == 2,
    )
    slow_flag.unlink()
    spawned.finish(proc).assert_outcomes(passed=2)
    _assert_stored_once(house_env, "iso-slow-1.0", "iso-a-1.0", "iso-b-1.0")


@pytest.mark.slow
def test_two_sessions_storing_one_distribution_at_once_store_it_once(
    pytester: pytest.Pytester, house_env: Path, slow_flag: Path, spawned: Spawned
) -> None:
    # session bases live in each session's own directory: nothing but the store is shared
    _slow_project(pytester.path / "slow")
    _ini(pytester.path, "iso-a==1.0", "./slow")
    pytester.makepyfile(SLOW_BASE_SUITE)
    procs = [spawned.start(pytester.path, "-p", "no:xdist") for _ in "ab"]
    spawned.wait_for(
        procs[0], "two base builds installing at once", lambda: len(_installs(house_env)) == 2
    )
    slow_flag.unlink()
    for proc in procs:
        result = spawned.finish(proc)
        result.assert_outcomes(passed=3)
        assert "base built" in _base_line(result)
    _assert_stored_once(house_env, "iso-slow-1.0", "iso-a-1.0")


# -- 7. a build killed while uv installs into the store ----------------------------------------


@pytest.mark.slow
def test_a_build_killed_while_installing_publishes_nothing_half_written(
    pytester: pytest.Pytester, house_env: Path, slow_flag: Path, spawned: Spawned
) -> None:
    _slow_project(pytester.path / "slow")
    _ini(pytester.path, "iso-a==1.0", "./slow")
    pytester.makepyfile(SLOW_BASE_SUITE)
    proc = spawned.start(pytester.path, "--isoenv-base=cache")
    spawned.wait_for(
        proc,
        "uv installing into the store",
        lambda: _building(slow_flag) and len(_installs(house_env)) == 1,
    )
    (install,) = _installs(house_env)
    os.killpg(proc.pid, signal.SIGKILL)
    assert spawned.finish(proc).ret == -signal.SIGKILL
    assert not _entries(house_env, "iso-slow"), "a killed install was published"
    _assert_entries_verify(house_env)  # whatever was published before is whole

    slow_flag.unlink()
    result = pytester.runpytest_subprocess("--isoenv-base=cache")
    result.assert_outcomes(passed=3)
    assert "base built" in _base_line(result)
    _assert_stored_once(house_env, "iso-slow-1.0", "iso-a-1.0")
    assert not install.exists(), "the killed session's staging prefix was left in the store"


# -- 8. waiting says so ------------------------------------------------------------------------


def _start_logged(spawned: Spawned, cwd: Path, log: Path, *args: str) -> subprocess.Popen[str]:
    """A session like ``spawned.start``'s, whose output (stdout and stderr) goes to ``log``."""
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    spawned.procs.append(proc)
    return proc


def _finish_logged(proc: subprocess.Popen[str], log: Path) -> pytest.RunResult:
    proc.wait(timeout=120)
    return pytest.RunResult(proc.returncode, log.read_text().splitlines(), [], 0.0)


def _said(log: Path, pattern: str) -> bool:
    """A line of ``log`` matches ``pattern`` (``fnmatch``)."""
    return log.exists() and any(
        fnmatch.fnmatch(line, pattern) for line in log.read_text().splitlines()
    )


@pytest.mark.slow
def test_a_session_waiting_for_another_ones_base_build_says_so_then_reuses_it(
    pytester: pytest.Pytester,
    house_env: Path,
    slow_flag: Path,
    spawned: Spawned,
    tmp_path: Path,
) -> None:
    _slow_project(pytester.path / "slow")
    _ini(pytester.path, "iso-a==1.0", "./slow")
    pytester.makepyfile(SLOW_BASE_SUITE)
    a_log, b_log = tmp_path / "a.log", tmp_path / "b.log"
    a = _start_logged(spawned, pytester.path, a_log, "--isoenv-base=cache")
    spawned.wait_for(a, "A building the base", lambda: _building(slow_flag))
    b = _start_logged(spawned, pytester.path, b_log, "--isoenv-base=cache")
    what = "the base env (iso-a==1.0, */slow)"  # a local path is shown resolved
    waiting = (
        f"isoenv: waiting for pid {a.pid} on {socket.gethostname()} building {what} (*s so far)"
    )
    spawned.wait_for(b, "B saying what it waits for", lambda: _said(b_log, waiting))
    # A, building for more than a second, has said so too (outside pytest's capture)
    spawned.wait_for(
        a,
        "A saying it builds",
        lambda: _said(a_log, f"isoenv: building {what} (*s so far)"),
    )
    slow_flag.unlink()
    first, second = _finish_logged(a, a_log), _finish_logged(b, b_log)
    first.assert_outcomes(passed=3)
    second.assert_outcomes(passed=3)
    assert "base built" in _base_line(first)
    assert "base reused" in _base_line(second)
    first.stdout.fnmatch_lines([f"isoenv: building {what}: done in *s"])


@pytest.mark.slow
def test_under_xdist_a_slow_base_build_and_the_wait_for_it_say_so(
    pytester: pytest.Pytester,
    house_env: Path,
    slow_flag: Path,
    spawned: Spawned,
    tmp_path: Path,
) -> None:
    _slow_project(pytester.path / "slow")
    _ini(pytester.path, "iso-a==1.0", "./slow")
    pytester.makepyfile(SLOW_BASE_SUITE)
    log = tmp_path / "n2.log"
    proc = _start_logged(spawned, pytester.path, log, "--isoenv-base=cache", "-n", "2")
    what = "the base env (iso-a==1.0, */slow)"
    building = f"isoenv: building {what} (*s so far)"
    waiting = f"isoenv: waiting for pid * on {socket.gethostname()} building {what} (*s so far)"
    spawned.wait_for(proc, "a worker saying it builds", lambda: _said(log, building))
    spawned.wait_for(proc, "the other worker saying it waits", lambda: _said(log, waiting))
    slow_flag.unlink()
    result = _finish_logged(proc, log)
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines([f"isoenv: building {what}: done in *s"])


# -- 9. a cached env rebuilt by another session while this one reads it --------------------------


@pytest.mark.slow
@pytest.mark.parametrize("meanwhile", ["vanished", "files-vanishing"])
def test_a_session_finding_the_base_being_rebuilt_waits_for_it(
    pytester: pytest.Pytester,
    house_env: Path,
    spawned: Spawned,
    tmp_path: Path,
    meanwhile: str,
) -> None:
    _ini(pytester.path, "iso-a==1.0", "iso-cli")
    pytester.makepyfile(test_faults.USES_BASE)
    pytester.runpytest_subprocess("--isoenv-base=cache").assert_outcomes(passed=1)
    bases = _v2(house_env) / "bases"
    (base,) = (p for p in bases.iterdir() if "." not in p.name)
    aside = tmp_path / "aside"
    # Another session rebuilding it: it holds the lock while the env is gone or half there.
    with FileLock(str(bases / f"{base.name}.lock")):
        os.rename(base, aside)
        if meanwhile == "files-vanishing":
            shutil.copytree(aside, base, symlinks=True)
            shutil.rmtree(next(base.glob("lib/python*/site-packages")))
        log = tmp_path / "reader.log"
        proc = _start_logged(spawned, pytester.path, log, "--isoenv-base=cache")
        spawned.wait_for(proc, "the reader waiting", lambda: _said(log, "isoenv: waiting for *"))
        shutil.rmtree(base, ignore_errors=True)
        os.rename(aside, base)  # published again, whole
    result = _finish_logged(proc, log)
    result.assert_outcomes(passed=1)
    assert "base reused" in _base_line(result)


# -- 10. bytecode ------------------------------------------------------------------------------

BYTECODE_SUITE = """
import os, sys
import pytest

CODE = "import iso_a, isons.a, iso_single"

def _no_bytecode(*roots):
    for root in roots:
        for directory, dirs, files in os.walk(root):
            assert "__pycache__" not in dirs and not [f for f in files if f.endswith(".pyc")], directory

def test_base(isoenv):
    isoenv.run("python", "-c", CODE)
    isoenv.run("python", "-O", "-c", CODE)
    _no_bytecode(isoenv.base.path, isoenv.path)

@pytest.mark.isoenv(requires=["iso-tool"])
def test_layer(isoenv):
    isoenv.run("python", "-c", CODE + ", iso_tool")
    _no_bytecode(isoenv.base.path, isoenv.layer.path, isoenv.path)
"""


def _pycs(root: Path) -> dict[str, int]:
    return {
        str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*.pyc") if p.is_file()
    }


@pytest.mark.parametrize("base", ["session", "cache"])
@pytest.mark.parametrize("dont_write", ["1", None], ids=["DONTWRITEBYTECODE", "writing"])
def test_a_second_session_imports_the_bytecode_the_first_one_wrote(
    pytester: pytest.Pytester,
    house_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    base: str,
    dont_write: str | None,
) -> None:
    if dont_write:
        monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", dont_write)
    else:
        monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    _ini(pytester.path, "iso-a==1.0", "iso-ns-a", "iso-single")
    pytester.makepyfile(BYTECODE_SUITE)
    pytester.runpytest_subprocess(f"--isoenv-base={base}").assert_outcomes(passed=2)
    pycache = _v2(house_env) / "pycache"
    (iso_a,) = _entries(house_env, "iso-a-1.0")
    (ns_a,) = _entries(house_env, "iso-ns-a-1.0")
    shared = [
        pycache / str(iso_a).lstrip("/") / "site" / "iso_a" / f"__init__.{PY_TAG}.pyc",
        pycache / str(iso_a).lstrip("/") / "site" / "iso_a" / f"__init__.{PY_TAG}.opt-1.pyc",
        pycache / str(ns_a).lstrip("/") / "site" / "isons" / "a" / f"__init__.{PY_TAG}.pyc",
    ]
    for pyc in shared:
        assert pyc.is_file(), f"{pyc} was not written"
    first = _pycs(pycache)
    pytester.runpytest_subprocess(f"--isoenv-base={base}").assert_outcomes(passed=2)
    second = _pycs(pycache)
    for pyc in shared:  # read, not written again
        rel = str(pyc.relative_to(pycache))
        assert second[rel] == first[rel], f"{rel} was compiled again"
    if base == "cache":  # every module, single files too, was compiled once
        assert {k: v for k, v in second.items() if k in first} == first
    for kind in ("dists", "bases", "layers"):
        root = _v2(house_env) / kind
        found = [p for p in root.rglob("*") if p.name == "__pycache__" or p.suffix == ".pyc"]
        assert not found, found


def test_the_sweep_deletes_staging_dirs_of_dead_processes_only(tmp_path: Path) -> None:
    from pytest_isoenv._dists import DistStore

    store = DistStore(tmp_path / "dists")
    with store.staging("install") as live:
        live.mkdir()
        (live / "half-installed").write_text("x")
        dead = [store.root / ".install-1-dead", store.root / ".tmp-1-dead"]
        for path in dead:
            path.mkdir()
        (store.root / ".tmp-2-gone.inuse").touch()  # its process died after deleting the dir
        (store.root / "iso-a-1.0-abc").mkdir()  # a published entry: never touched
        DistStore(store.root).sweep()  # another process
        assert live.is_dir(), "a live process's staging dir was swept"
        assert not [p for p in dead if p.exists()]
        assert sorted(p.name for p in store.root.iterdir()) == [
            live.name,
            f"{live.name}.inuse",
            "iso-a-1.0-abc",
        ]
    assert sorted(p.name for p in store.root.iterdir()) == ["iso-a-1.0-abc"]


# -- known gaps (strict xfail: each turns into a failure the day it is fixed) ------------------

DATA_SUITE = """
import os, sys

CODE = "import os, sys; print(os.path.exists(os.path.join(sys.prefix, 'share', 'iso-data', 'hello.txt')))"

def test_data_files(isoenv):
    assert isoenv.run(isoenv.base.python, "-c", CODE).stdout == "True\\n"
    assert isoenv.run("python", "-c", CODE).stdout == "True\\n"
"""


@pytest.mark.xfail(
    reason="a wheel's .data/data files (share/jupyter/..., etc/...) are stored in the entry's "
    "data/ but linked into no view: neither the base nor a derived env has them under sys.prefix"
)
def test_data_files_of_a_distribution_are_under_the_envs_prefix(
    pytester: pytest.Pytester, house_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    house = tmp_path / "house"
    shutil.copytree(os.environ["UV_FIND_LINKS"], house)
    data = {"iso_data.py": "X = 1\n", "iso_data-1.0.data/data/share/iso-data/hello.txt": "hi\n"}
    _wheel(house, "iso-data", "1.0", data)
    monkeypatch.setenv("UV_FIND_LINKS", str(house))
    _ini(pytester.path, "iso-data")
    pytester.makepyfile(DATA_SUITE)
    pytester.runpytest_subprocess().assert_outcomes(passed=1)


FDS_SUITE = """
import os

def test_fds(isoenv):
    fds = [os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
           if os.path.exists(f"/proc/self/fd/{fd}")]
    held = [fd for fd in fds if fd.endswith(".inuse")]
    # the base view, maybe a layer: not one per distribution (macOS allows 256 in all)
    assert len(held) <= 3, held
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
@pytest.mark.xfail(
    reason="a session holds one open file (a shared lock on <entry>.inuse) per stored "
    "distribution it uses, for its whole life: a 300-package base exhausts macOS's default "
    "limit of 256 open files, Linux's 1024 at about a thousand"
)
def test_a_session_holds_a_bounded_number_of_files_open(
    pytester: pytest.Pytester, house_env: Path
) -> None:
    _ini(pytester.path, "iso-a==1.0", "iso-cli", "iso-tool", "iso-single", "iso-ns-a", "iso-ns-b")
    pytester.makepyfile(FDS_SUITE)
    pytester.runpytest_subprocess("--isoenv-base=cache").assert_outcomes(passed=1)
