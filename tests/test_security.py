"""Security: a private cache dir nobody else can plant envs in, and no host settings leaking.

The persistent cache holds interpreters' site-packages that tests run: whoever can write into it
can run code in every test. It is created private (0700) and refused, with a message saying
why, when it belongs to someone else or anyone may write into it. Every process pytest-isoenv
starts (uv, the interpreters uv starts, the derived envs' pythons) runs without the host's
``PYTHONPATH``/``PYTHONHOME`` and without user site-packages.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest
from test_faults import SLOW_BACKEND, SLOW_PYPROJECT

NOBODY = 65534
TESTS = """
def test_uses_the_cache(isoenv):
    isoenv.run("python", "-c", "import iso_a")

def test_without_env():
    pass
"""

needs_root = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="chown to another user needs root"
)


def _ini(pytester: pytest.Pytester, *requires: str) -> None:
    lines = ", ".join(f'"{r}"' for r in requires)
    pytester.makepyprojecttoml(f"[tool.pytest.ini_options]\nisoenv_requires = [{lines}]\n")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("state", ["new-nested", "existing-0755", "existing-group-writable"])
def test_the_cache_dir_is_private(
    pytester: pytest.Pytester, offline_env: Path, tmp_path: Path, state: str
) -> None:
    cache_dir = tmp_path / "a" / "b" / "cache"
    if state != "new-nested":
        cache_dir.mkdir(parents=True)
        cache_dir.chmod(0o755 if state == "existing-0755" else 0o770)
    _ini(pytester, "iso-a==1.0")
    pytester.makepyfile(TESTS)
    result = pytester.runpytest_subprocess("--isoenv-base=cache", f"--isoenv-cache-dir={cache_dir}")
    result.assert_outcomes(passed=2)
    assert _mode(cache_dir) == 0o700
    assert cache_dir.stat().st_uid == os.getuid()
    (base,) = [p for p in (cache_dir / "v2" / "bases").iterdir() if p.is_dir()]
    assert base.stat().st_uid == os.getuid()


def _refused(pytester: pytest.Pytester, cache_dir: Path, why: str) -> None:
    _ini(pytester, "iso-a==1.0")
    pytester.makepyfile(TESTS)
    result = pytester.runpytest_subprocess("--isoenv-base=cache", f"--isoenv-cache-dir={cache_dir}")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of test_uses_the_cache*",
            f"isoenv: the isoenv base env could not be prepared: refusing cache dir {cache_dir}: {why}",
        ]
    )


@needs_root
@pytest.mark.parametrize("how", ["the-dir", "a-symlink-to-it"])
def test_a_cache_dir_owned_by_another_user_is_refused(
    pytester: pytest.Pytester, offline_env: Path, tmp_path: Path, how: str
) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, NOBODY, NOBODY)
    cache_dir = theirs
    if how == "a-symlink-to-it":
        cache_dir = tmp_path / "mine"
        cache_dir.symlink_to(theirs)
    _refused(
        pytester,
        cache_dir,
        f"it is owned by uid {NOBODY}, not by you (uid {os.getuid()}); another user could "
        "plant envs your tests would run",
    )
    assert list(theirs.iterdir()) == [], "something was written into another user's dir"
    assert theirs.stat().st_uid == NOBODY
    assert _mode(theirs) == 0o700


@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o707])
def test_a_world_writable_cache_dir_is_refused(
    pytester: pytest.Pytester, offline_env: Path, tmp_path: Path, mode: int
) -> None:
    cache_dir = tmp_path / "open cache"
    cache_dir.mkdir()
    cache_dir.chmod(mode)
    _refused(
        pytester,
        cache_dir,
        "it is world-writable, so anyone could plant envs your tests would run; "
        "use a private directory (chmod 700)",
    )
    assert list(cache_dir.iterdir()) == []
    assert _mode(cache_dir) == mode, "a refused dir must be left as it was"
    # the session base (the default) does not use the cache dir at all
    result = pytester.runpytest_subprocess(f"--isoenv-cache-dir={cache_dir}")
    result.assert_outcomes(passed=2)
    assert list(cache_dir.iterdir()) == []


# Every python started under the inner session that imports these writes a line to CANARY:
# sitecustomize (found through PYTHONPATH) and usercustomize (found in the user site of
# PYTHONUSERBASE). Only the inner pytest itself, whose own environment it is, may show up.
CANARY_MODULE = """
import os, sys
if os.path.realpath(sys.prefix) != {host_prefix!r}:
    with open({canary!r}, "a") as handle:
        handle.write("{name} in " + sys.executable + " " + repr(sys.argv[:2]) + "\\n")
"""

LEAK_CONFTEST = """
import os

# The host's Python settings as the session sees them: after pytest started, so only what
# the plugin hands on to its subprocesses can carry them.
os.environ["PYTHONPATH"] = {pythonpath!r}
os.environ["PYTHONHOME"] = "/nonexistent/python-home"
os.environ["PYTHONUSERBASE"] = {userbase!r}
os.environ.pop("PYTHONNOUSERSITE", None)
"""

LEAK_SUITE = """
import json, os, subprocess, sys
import pytest

SHOW = (
    "import json, os, site, sys; print(json.dumps([os.environ.get('PYTHONPATH'), "
    "os.environ.get('PYTHONHOME'), os.environ.get('PYTHONNOUSERSITE'), "
    "sys.flags.no_user_site, site.ENABLE_USER_SITE, sys.path]))"
)

def _check(out, leak):
    pythonpath, pythonhome, nousersite, no_user_site, user_site, path = json.loads(out)
    assert (pythonpath, pythonhome, nousersite) == (None, None, "1")
    assert no_user_site and not user_site
    assert leak not in path

def test_env_of_a_test(isoenv):
    leak = {pythonpath!r}
    for environ in (isoenv.env, os.environ):
        assert "PYTHONPATH" not in environ and "PYTHONHOME" not in environ
        assert environ["PYTHONNOUSERSITE"] == "1"
    _check(isoenv.run("python", "-c", SHOW).stdout, leak)
    _check(subprocess.run(["python", "-c", SHOW], capture_output=True, text=True, check=True).stdout, leak)
    _check(isoenv.run(isoenv.base.python, "-c", SHOW).stdout, leak)

@pytest.mark.isoenv(requires=["./slow", "iso-b"])
def test_layer_built_by_uv(isoenv):
    isoenv.run("python", "-c", "import iso_slow, iso_b")

def test_install_at_run_time(isoenv):
    isoenv.install("iso-cli")
    isoenv.run("iso-cli")
"""


def test_subprocesses_get_no_pythonpath_no_pythonhome_and_no_user_site(
    pytester: pytest.Pytester, offline_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    canary = tmp_path / "canary.txt"
    host_prefix = os.path.realpath(sys.prefix)
    leak = tmp_path / "pythonpath"
    leak.mkdir()
    (leak / "sitecustomize.py").write_text(
        CANARY_MODULE.format(host_prefix=host_prefix, canary=str(canary), name="sitecustomize")
    )
    userbase = tmp_path / "userbase"
    user_site = userbase / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    (user_site / "site-packages").mkdir(parents=True)
    (user_site / "site-packages" / "usercustomize.py").write_text(
        CANARY_MODULE.format(host_prefix=host_prefix, canary=str(canary), name="usercustomize")
    )
    slow = pytester.path / "slow"  # built by a Python build backend that uv runs
    slow.mkdir()
    (slow / "pyproject.toml").write_text(SLOW_PYPROJECT)
    (slow / "slow_backend.py").write_text(SLOW_BACKEND)
    monkeypatch.delenv("ISO_SLOW_FLAG", raising=False)
    # the base is built with uv byte-compiling it: uv runs the real interpreter for that
    _ini(pytester, "iso-a==1.0", "./slow")
    pytester.makeconftest(LEAK_CONFTEST.format(pythonpath=str(leak), userbase=str(userbase)))
    pytester.makepyfile(LEAK_SUITE.format(pythonpath=str(leak)))
    result = pytester.runpytest_subprocess("-p", "no:xdist")
    result.assert_outcomes(passed=3)
    leaks = canary.read_text() if canary.exists() else ""
    assert leaks == "", f"host Python settings reached a subprocess:\n{leaks}"


@needs_root
@pytest.mark.parametrize("owner", ["someone-else", "me"])
def test_a_symlinked_cache_dir_is_followed_only_when_the_link_is_yours(
    pytester: pytest.Pytester, offline_env: Path, tmp_path: Path, owner: str
) -> None:
    mine = tmp_path / "my dir"
    mine.mkdir()
    mine.chmod(0o755)
    link = tmp_path / "cache link"
    link.symlink_to(mine)
    if owner == "me":
        _ini(pytester, "iso-a==1.0")
        pytester.makepyfile(TESTS)
        result = pytester.runpytest_subprocess("--isoenv-base=cache", f"--isoenv-cache-dir={link}")
        result.assert_outcomes(passed=2)
        assert _mode(mine) == 0o700
        assert (mine / "v2" / "bases").is_dir()
        return
    # Someone else's link in a shared place could be pointed anywhere, at any time: refused,
    # and nothing is changed or written through it, even where it leads to a dir of yours.
    os.lchown(link, NOBODY, NOBODY)
    _refused(
        pytester,
        link,
        f"it is a symbolic link owned by uid {NOBODY}, not by you (uid {os.getuid()}); "
        "whoever owns it could point it at envs your tests would run",
    )
    assert _mode(mine) == 0o755
    assert list(mine.iterdir()) == []
