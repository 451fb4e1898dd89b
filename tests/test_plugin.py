"""The plugin's hooks and fixtures: activation, the base before the test loop, unittest, costs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from test_faults import SLOW_BACKEND, SLOW_PYPROJECT


def _ini(pytester: pytest.Pytester, *requires: str) -> None:
    lines = ", ".join(f'"{r}"' for r in requires)
    pytester.makepyprojecttoml(f"[tool.pytest.ini_options]\nisoenv_requires = [{lines}]\n")


# -- activation -------------------------------------------------------------------------------

ACTIVATION = """
import os
import pytest

HOST = {k: os.environ.get(k) for k in ("PATH", "VIRTUAL_ENV", "PYTHONPATH")}


@pytest.fixture(autouse=True)
def _host_environ_before_every_test():
    # autouse: set up before the test's own fixtures, so this sees what the last test left
    assert {k: os.environ.get(k) for k in HOST} == HOST


@pytest.fixture
def user_path(monkeypatch):
    monkeypatch.setenv("PATH", "/fixture/bin" + os.pathsep + os.environ["PATH"])


def test_monkeypatch_first(monkeypatch, isoenv):
    assert os.environ["VIRTUAL_ENV"] == str(isoenv.path)
    monkeypatch.setenv("PATH", "/user/bin" + os.pathsep + os.environ["PATH"])
    monkeypatch.setenv("VIRTUAL_ENV", "/user/venv")


def test_isoenv_first(isoenv, monkeypatch):
    monkeypatch.setenv("PATH", "/user/bin")
    monkeypatch.delenv("VIRTUAL_ENV")


def test_user_fixture_before(user_path, isoenv):
    assert os.environ["PATH"].split(os.pathsep)[:2] == [str(isoenv.bin), "/fixture/bin"]


def test_user_fixture_after(isoenv, user_path):
    assert os.environ["PATH"].split(os.pathsep)[:2] == ["/fixture/bin", str(isoenv.bin)]


@pytest.mark.isoenv
def test_marked_with_monkeypatch(monkeypatch):
    assert "pytest-isoenv" in os.environ["VIRTUAL_ENV"]
    monkeypatch.setenv("PATH", "/user/bin")


def test_last():
    pass
"""


def test_activation_unwinds_whatever_the_fixture_order(
    pytester: pytest.Pytester, offline_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", "/host/path")
    _ini(pytester)
    pytester.makepyfile(ACTIVATION)
    pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:xdist").assert_outcomes(passed=6)


# -- the base, before the test loop ------------------------------------------------------------


def _slow_project(root: Path, seconds: float) -> Path:
    root.mkdir()
    (root / "pyproject.toml").write_text(SLOW_PYPROJECT)
    backend = SLOW_BACKEND.replace(
        "    flag = os.environ.get", f"    time.sleep({seconds})\n    flag = os.environ.get"
    )
    assert backend != SLOW_BACKEND
    (root / "slow_backend.py").write_text(backend)
    return root


@pytest.mark.parametrize("workers", [None, "2"], ids=["no-xdist", "n2"])
def test_the_base_is_built_outside_the_first_tests_timeout(
    pytester: pytest.Pytester, offline_env: Path, workers: str | None
) -> None:
    _slow_project(pytester.path / "slow", 6)
    _ini(pytester, "./slow")
    pytester.makepyfile(
        """
        def test_first(isoenv):
            isoenv.run("python", "-c", "import iso_slow")

        def test_second(isoenv_base):
            pass
        """
    )
    xdist = ["-n", workers] if workers else ["-p", "no:xdist"]
    result = pytester.runpytest_subprocess("--timeout=3", *xdist)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["isoenv: base built in *"])


def test_a_session_without_env_tests_builds_nothing(
    pytester: pytest.Pytester, offline_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    _ini(pytester, "nope-zz")
    pytester.makepyfile(
        """
        import tempfile
        from pathlib import Path
        import pytest

        def test_plain():
            assert not list(Path(tempfile.gettempdir()).iterdir()), "a session dir was made"

        @pytest.fixture
        def isoenv_like():
            pass

        def test_other_fixture(isoenv_like):
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:xdist")
    result.assert_outcomes(passed=2)
    result.stdout.no_fnmatch_line("*isoenv:*")
    assert not list(tmpdir.iterdir()), "a session without env tests made a session dir"


@pytest.mark.parametrize("workers", [None, "2"], ids=["no-xdist", "n2"])
def test_a_base_that_cannot_be_built_is_told_once(
    pytester: pytest.Pytester, offline_env: Path, workers: str | None
) -> None:
    _ini(pytester, "nope-zz")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("n", range(4))
        def test_env(isoenv, n):
            pass

        def test_base(isoenv_base):
            pass

        @pytest.mark.isoenv(requires=["iso-a"])
        def test_marked():
            pass

        def test_no_env():
            pass
        """
    )
    xdist = ["-n", workers] if workers else ["-p", "no:xdist"]
    result = pytester.runpytest_subprocess(*xdist)
    result.assert_outcomes(passed=1, errors=6)
    told = [line for line in result.outlines if "could not install nope-zz" in line]
    assert len(told) == 1, result.outlines
    assert told[0].startswith("isoenv: the isoenv base env could not be prepared: ")
    shorts = [
        line
        for line in result.outlines
        if line == "isoenv: the base env could not be built; see the isoenv summary"
    ]
    assert len(shorts) == 6, result.outlines


# -- the marker on every kind of item -----------------------------------------------------------


def test_a_marked_unittest_testcase_gets_its_env_and_requirements(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    _ini(pytester, "iso-a==1.0")
    pytester.makepyfile(
        """
        import os, subprocess, unittest
        from pathlib import Path
        import pytest

        CODE = "import iso_a, sys; print(iso_a.__version__, sys.prefix)"

        @pytest.mark.isoenv(requires=["iso-a==2.0", "iso-cli"])
        class TestMarked(unittest.TestCase):
            def test_env(self):
                out = subprocess.run(["python", "-c", CODE], capture_output=True, text=True, check=True)
                assert out.stdout.split() == ["2.0", os.environ["VIRTUAL_ENV"]]
                assert self.isoenv.path == Path(os.environ["VIRTUAL_ENV"])
                assert self.isoenv.run("iso-cli").stdout.split()[-1] == "2.0"

        class TestMethodMarked(unittest.TestCase):
            @pytest.mark.isoenv
            def test_env(self):
                out = subprocess.run(["python", "-c", CODE], capture_output=True, text=True, check=True)
                assert out.stdout.split() == ["1.0", os.environ["VIRTUAL_ENV"]]

            def test_unmarked(self):
                assert not hasattr(self, "isoenv")
        """
    )
    pytester.runpytest_subprocess("-p", "no:xdist").assert_outcomes(passed=3)


def test_a_static_mistake_on_a_unittest_marker_fails_collection(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    pytester.makepyfile(
        """
        import unittest
        import pytest

        class TestCase(unittest.TestCase):
            @pytest.mark.isoenv(requires=["!!"])
            def test_bad(self):
                pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:xdist")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*In test_bad: invalid isoenv marker: invalid requirement '!!'*"])


def test_unmarked_tests_carry_no_isoenv_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        def test_plain(request):
            assert not [name for name in request.fixturenames if "isoenv" in name]

        @pytest.mark.parametrize("x", [1, pytest.param(2, marks=pytest.mark.isoenv)])
        def test_param(request, x):
            assert ("isoenv" in request.fixturenames) == (x == 2)
        """
    )
    pytester.runpytest_subprocess("-p", "no:xdist").assert_outcomes(passed=3)


# -- run() and install() -------------------------------------------------------------------------


def test_run_passes_input_and_stdin(pytester: pytest.Pytester, offline_env: Path) -> None:
    _ini(pytester)
    pytester.makepyfile(
        """
        import subprocess

        ECHO = "import sys; print(sys.stdin.read().upper())"

        def test_input(isoenv):
            assert isoenv.run("python", "-c", ECHO, input="hello").stdout == "HELLO\\n"

        def test_stdin(isoenv, tmp_path):
            (tmp_path / "in.txt").write_text("from a file")
            with open(tmp_path / "in.txt") as handle:
                assert isoenv.run("python", "-c", ECHO, stdin=handle).stdout == "FROM A FILE\\n"

        def test_no_stdin_by_default(isoenv):
            assert isoenv.run("python", "-c", ECHO).stdout == "\\n"
        """
    )
    pytester.runpytest_subprocess("-p", "no:xdist").assert_outcomes(passed=3)


def test_failures_of_run_and_install_point_at_the_tests_line(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    _ini(pytester)
    pytester.makepyfile(
        """
        def test_run(isoenv):
            isoenv.run("python", "-c", "raise SystemExit(3)")  # THE RUN LINE

        def test_install(isoenv):
            isoenv.install("nope-zz")  # THE INSTALL LINE
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:xdist")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            ">*# THE RUN LINE",
            "E*RunError: Command * returned non-zero exit status 3.",
            ">*# THE INSTALL LINE",
            "E*InstallError: could not install nope-zz:",
        ]
    )
    for module in ("_derived.py", "_session.py", "_uv.py"):
        result.stdout.no_fnmatch_line(f"*pytest_isoenv/{module}*")


# -- what it costs where it is not used ------------------------------------------------------------


def test_quiet_quiet_prints_no_isoenv_lines(pytester: pytest.Pytester, offline_env: Path) -> None:
    _ini(pytester, "iso-a")
    pytester.makepyfile("def test_env(isoenv): pass")
    result = pytester.runpytest_subprocess("-p", "no:xdist", "-qq")
    assert result.ret == pytest.ExitCode.OK
    assert result.outlines and not [line for line in result.outlines if "isoenv" in line]
    result = pytester.runpytest_subprocess("-p", "no:xdist", "-q")
    result.stdout.fnmatch_lines(["isoenv: base *"])


def test_reruns_do_not_repeat_summary_lines(pytester: pytest.Pytester, offline_env: Path) -> None:
    _ini(pytester, "iso-a==1.0")
    pytester.makepyfile(
        """
        import pytest

        ATTEMPTS = []

        @pytest.mark.isoenv(requires=["iso-cli"])
        def test_flaky(isoenv):
            isoenv.install("iso-b")
            ATTEMPTS.append(1)
            assert len(ATTEMPTS) == 3
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:xdist", "-v", "--reruns=2")
    outcomes = result.parseoutcomes()
    assert (outcomes["passed"], outcomes["rerun"]) == (1, 2), outcomes
    lines = [line for line in result.outlines if line.startswith("isoenv: ")]
    assert len(lines) == len(set(lines)), lines
    assert any("installed" in line for line in lines), lines


def test_the_plugin_imports_nothing_heavy_until_an_env_is_needed() -> None:
    import subprocess

    heavy = ("packaging", "filelock", "pytest_isoenv._session", "pytest_isoenv._uv")
    code = (
        "import sys, pytest_isoenv.plugin, pytest_isoenv\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r} or m in {heavy!r}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
