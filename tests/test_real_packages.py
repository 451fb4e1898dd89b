"""Real packages (numpy, pandas): behaviour that must hold whatever the storage design.

The wheels come from the ``real_wheelhouse`` (downloaded once into a cache outside the repo) and
uv reads nothing else (``offline_real_env``). Numpy's wheel is ~16 MB: each test builds as few
shared envs as it can. The wheelhouse itself is tested at the end, offline, with tiny wheels.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from realwheels import ENV_VAR, MANIFEST, Wheelhouse, WheelhouseError, ensure_wheelhouse

realpkgs = pytest.mark.realpkgs


def _ini(pytester: pytest.Pytester, *requires: str) -> None:
    lines = ", ".join(f'"{r}"' for r in requires)
    pytester.makepyprojecttoml(f"[tool.pytest.ini_options]\nisoenv_requires = [{lines}]\n")


def _need(wheelhouse: Wheelhouse, project: str, specifier: str = "") -> str:
    version = wheelhouse.newest(project, specifier)
    if version is None:
        pytest.skip(f"no {project}{specifier} wheel for this Python in {wheelhouse.path}")
    return str(version)


@realpkgs
def test_a_base_holding_pandas_imports_pandas_and_numpy(
    pytester: pytest.Pytester, offline_real_env: Path, real_wheelhouse: Wheelhouse
) -> None:
    pandas = _need(real_wheelhouse, "pandas")
    numpy = _need(real_wheelhouse, "numpy")  # the newest: pandas admits every numpy 2
    _ini(pytester, "pandas")
    pytester.makepyfile(
        f"""
        CODE = "import numpy, pandas; print(pandas.__version__, numpy.__version__, pandas.Series([1, 2]).sum())"

        def test_pandas(isoenv):
            assert isoenv.layer is None
            assert isoenv.run("python", "-c", CODE).stdout.split() == [{pandas!r}, {numpy!r}, "3"]

        def test_again(isoenv, isoenv_base):
            assert isoenv_base.packages["pandas"] == {pandas!r}
            assert isoenv.run("python", "-c", CODE).stdout.split() == [{pandas!r}, {numpy!r}, "3"]
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly")  # session mode, the default
    result.assert_outcomes(passed=2)


@realpkgs
def test_an_older_numpy_than_the_base_allows_brings_an_older_pandas_into_the_layer(
    pytester: pytest.Pytester, offline_real_env: Path, real_wheelhouse: Wheelhouse
) -> None:
    _need(real_wheelhouse, "pandas", ">=3")  # needs numpy>=2
    old_numpy = _need(real_wheelhouse, "numpy", "<2")
    old_pandas = _need(real_wheelhouse, "pandas", "<3")
    _ini(pytester, "pandas")
    pytester.makepyfile(
        f"""
        import pytest

        CODE = "import numpy, pandas; print(numpy.__version__, pandas.__version__, pandas.Series([1.5]).sum())"

        @pytest.mark.isoenv(requires=["numpy<2"])
        def test_old_numpy(isoenv):
            assert isoenv.run("python", "-c", CODE).stdout.split() == [{old_numpy!r}, {old_pandas!r}, "1.5"]

        def test_the_base_keeps_pandas_3(isoenv):
            numpy, pandas, total = isoenv.run("python", "-c", CODE).stdout.split()
            assert numpy.startswith("2.") and pandas.startswith("3.") and total == "1.5"
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=2)


@realpkgs
def test_three_requirement_sets_sharing_numpy(
    pytester: pytest.Pytester, offline_real_env: Path, real_wheelhouse: Wheelhouse
) -> None:
    numpy = _need(real_wheelhouse, "numpy")
    pytester.makepyfile(
        f"""
        import pytest

        def imports(env, *modules):
            code = "import importlib, sys\\nfor m in sys.argv[1:]:\\n    try: importlib.import_module(m); print(m)\\n    except ImportError: pass"
            return env.run("python", "-c", code, *modules).stdout.split()

        @pytest.mark.isoenv(requires=["numpy", "attrs"])
        def test_numpy_attrs(isoenv):
            assert imports(isoenv, "numpy", "attrs", "iniconfig") == ["numpy", "attrs"]
            assert isoenv.run("python", "-c", "import numpy; print(numpy.__version__)").stdout.strip() == {numpy!r}

        @pytest.mark.isoenv(requires=["numpy", "iniconfig"])
        def test_numpy_iniconfig(isoenv):
            assert imports(isoenv, "numpy", "attrs", "iniconfig") == ["numpy", "iniconfig"]

        @pytest.mark.isoenv(requires=["numpy"])
        def test_numpy(isoenv):
            assert imports(isoenv, "numpy", "attrs", "iniconfig") == ["numpy"]
        """
    )
    # In the persistent cache dir, so that what the three sets cost on disk can be measured.
    result = pytester.runpytest_subprocess("-p", "no:randomly", "--isoenv-base=cache")
    result.assert_outcomes(passed=3)
    assert offline_real_env.is_dir()


HOST_PIP = """\
#!/bin/sh
# Stands for the host's pip, first on PATH after the test's env: it must never be reached.
echo "$@" >> {log}
echo "the host's pip was run" >&2
exit 1
"""


@realpkgs
def test_pip_install_run_by_a_test_installs_into_its_env_alone(
    pytester: pytest.Pytester,
    offline_real_env: Path,
    real_wheelhouse: Wheelhouse,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    six = _need(real_wheelhouse, "six")
    host = tmp_path / "host-bin"
    host.mkdir()
    log = tmp_path / "host-pip.log"
    (host / "pip").write_text(HOST_PIP.format(log=log))
    (host / "pip").chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", f"{host}{os.pathsep}{os.environ['PATH']}")
    _ini(pytester, "attrs")  # a base without pip
    pytester.makepyfile(
        f"""
        import subprocess

        WHEELS = {str(real_wheelhouse.path)!r}
        SIX = "import six; print(six.__version__, six.__file__)"

        def check_six(isoenv):
            version, path = isoenv.run("python", "-c", SIX).stdout.split()
            assert version == {six!r}
            assert path.startswith(str(isoenv.site_packages))

        def test_pip_by_name_in_a_subprocess(isoenv):
            done = subprocess.run(["pip", "install", "--no-index", "--find-links", WHEELS, "six"],
                                  capture_output=True, text=True)
            assert done.returncode == 0, done.stdout + done.stderr
            check_six(isoenv)

        def test_pip_with_run(isoenv):
            isoenv.run("pip", "install", "--no-index", "--find-links", WHEELS, "six")
            check_six(isoenv)

        def test_the_next_test_has_no_six(isoenv, isoenv_base):
            assert isoenv.run("python", "-c", "import six", check=False).returncode == 1
            assert "six" not in isoenv_base.packages
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    assert not log.exists(), f"the host's pip was run: {log.read_text()}"
    result.assert_outcomes(passed=3)


@realpkgs
def test_python_dash_o_importing_numpy_is_not_a_change_to_the_base(
    pytester: pytest.Pytester,
    offline_real_env: Path,
    real_wheelhouse: Wheelhouse,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _need(real_wheelhouse, "numpy")
    # Users' machines write bytecode; `python -O` writes *.opt-1.pyc, which the build did not.
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    _ini(pytester, "numpy")
    pytester.makepyfile(
        """
        def test_optimized_import(isoenv):
            assert isoenv.run("python", "-O", "-c", "import numpy; print(__debug__)").stdout == "False\\n"

        def test_plain_import_afterwards(isoenv):
            isoenv.run("python", "-c", "import numpy")
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    assert "isoenv: the test changed the shared" not in result.stdout.str()
    result.assert_outcomes(passed=2)


# -- the wheelhouse itself (tiny local wheels stand for the index) ----------------------------

TINY = (("iso-a==1.0",), ("iso-b",))


@pytest.fixture
def tiny_index(monkeypatch: pytest.MonkeyPatch, wheelhouse: Path) -> Path:
    """pip download reads the tiny wheelhouse only."""
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheelhouse))
    monkeypatch.delenv(ENV_VAR, raising=False)
    return wheelhouse


def test_the_wheelhouse_is_downloaded_once_and_reused(
    tiny_index: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    location = tmp_path / "cache" / "wheelhouse"
    first = ensure_wheelhouse(location, TINY)
    assert first.path == location
    assert [str(v) for v in first.versions("iso-a")] == ["1.0"]
    assert first.newest("iso-b", "<2") is not None
    assert first.wheel("iso_b").name.startswith("iso_b-1.0-")
    mtime = (location / MANIFEST).stat().st_mtime_ns
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "nowhere"))  # a download would fail now
    assert ensure_wheelhouse(location, TINY) == first
    assert (location / MANIFEST).stat().st_mtime_ns == mtime
    assert sorted(p.name for p in location.parent.iterdir()) == ["wheelhouse", "wheelhouse.lock"]


def test_a_damaged_wheelhouse_is_downloaded_again(tiny_index: Path, tmp_path: Path) -> None:
    location = tmp_path / "wheelhouse"
    ensure_wheelhouse(location, TINY).wheel("iso-a").unlink()
    assert ensure_wheelhouse(location, TINY).wheel("iso-a").is_file()


def test_concurrent_sessions_share_one_download(tiny_index: Path, tmp_path: Path) -> None:
    location = tmp_path / "wheelhouse"
    code = (
        "import sys, realwheels; "
        f"print(realwheels.ensure_wheelhouse(realwheels.Path(sys.argv[1]), {TINY!r}).path)"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(location)], env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    outputs = [run.communicate(timeout=120)[0].strip() for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0]
    assert outputs == [str(location)] * 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wheelhouse", "wheelhouse.lock"]
    assert len(list(location.glob("*.whl"))) == 2


def test_a_directory_of_wheels_made_by_hand_is_used_as_it_is(
    tiny_index: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    by_hand = tmp_path / "mine"
    by_hand.mkdir()
    (wheel,) = tiny_index.glob("iso_a-2.0-*.whl")
    (by_hand / wheel.name).write_bytes(wheel.read_bytes())
    monkeypatch.setenv(ENV_VAR, str(by_hand))
    house = ensure_wheelhouse()
    assert house.path == by_hand
    assert [str(v) for v in house.versions("iso-a")] == ["2.0"]
    assert not (by_hand / MANIFEST).exists()


def test_a_failed_download_says_what_and_how_to_go_on(tiny_index: Path, tmp_path: Path) -> None:
    with pytest.raises(WheelhouseError) as failure:
        ensure_wheelhouse(tmp_path / "wheelhouse", (("iso-a==1.0",), ("iso-zz-missing",)))
    message = str(failure.value)
    assert "could not download the real wheels iso-zz-missing" in message
    assert ENV_VAR in message and "-m 'not realpkgs'" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wheelhouse.lock"]
