"""Other interpreters: ``python=`` on the marker, ``isoenv_python``, discovery, the matrix."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_isoenv._discovery import find, pyenv_root

HOST = f"{sys.version_info[0]}.{sys.version_info[1]}"


def _installed(*versions: str) -> list[str]:
    """Those of ``versions`` this machine has (pyenv's, on PATH, uv-managed)."""
    found = []
    for version in versions:
        try:
            if find(version, Path.cwd(), None) is not None:
                found.append(version)
        except Exception:  # noqa: S112 - too old, broken: not usable here
            continue
    return found


# Python 3.9-3.13 as env interpreters, whichever of them this machine has (pyenv here).
OTHERS = [v for v in _installed("3.9", "3.10", "3.12", "3.13") if v != HOST]
needs_two = pytest.mark.skipif(len(OTHERS) < 2, reason="needs two Pythons other than pytest's")


def _version_check(spec_version: str) -> str:
    return f"""
        out = isoenv.run("python", "-c", "import sys, iso_a; print(sys.version_info[:2], iso_a.__version__)")
        assert out.stdout.strip() == "{tuple(map(int, spec_version.split(".")))} 1.0"
    """


@needs_two
def test_a_python_list_runs_the_test_once_per_interpreter(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    """Python 3.9-3.13 (those installed) as env interpreters under one pytest."""
    first = OTHERS[0]
    pytester.makepyfile(
        f"""
        import sys
        import pytest

        @pytest.mark.isoenv(requires=["iso-a==1.0"], python={OTHERS!r})
        def test_x(isoenv, request):
            spec = request.node.name.partition("[py")[2].rstrip("]")
            out = isoenv.run("python", "-c",
                "import sys, iso_a; print(sys.version_info[0], sys.version_info[1], iso_a.__version__)")
            major, minor, version = out.stdout.split()
            assert f"{{major}}.{{minor}}" == spec
            assert version == "1.0"
            assert isoenv.base.interpreter.version_text.startswith(spec + ".")
            # pip in the env is the env's interpreter's, and installs there
            pip = isoenv.run("pip", "--version").stdout
            assert f"(python {{spec}})" in pip, pip
            isoenv.run("pip", "install", "-q", "--no-index", "--find-links",
                       isoenv.env["UV_FIND_LINKS"], "iso-cli")
            assert isoenv.which("iso-cli").startswith(str(isoenv.bin))
            assert (isoenv.site_packages / "iso_cli").is_dir()
            assert isoenv.site_packages.parent.name == f"python{{spec}}"

        @pytest.mark.isoenv(python="{first}")
        def test_one(isoenv):
            out = isoenv.run("python", "-c", "import sys; print(sys.version_info[:2])").stdout
            assert out.strip() == "{tuple(map(int, first.split(".")))}"
            assert sys.version_info[:2] == {sys.version_info[:2]}  # the body: pytest's own
        """
    )
    result = pytester.runpytest_subprocess("-v", "--strict-markers")
    result.assert_outcomes(passed=len(OTHERS) + 1)
    result.stdout.fnmatch_lines_random([f"*test_x[[]py{v}[]] PASSED*" for v in OTHERS])
    result.stdout.fnmatch_lines(["*::test_one PASSED*"])
    # one base per interpreter, each named
    result.stdout.fnmatch_lines_random(
        [f"isoenv: base built in *(cpython {v}.*, 0 packages)" for v in OTHERS]
    )
    n = len(OTHERS)
    result.stdout.fnmatch_lines(
        [f"isoenv: {n} bases built (*s), {n} new layers (*s), {n + 1} derived envs"]
    )


@needs_two
def test_isoenv_python_sets_the_default_and_a_comma_list_makes_a_matrix(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    first, second = OTHERS[:2]
    pytester.makepyprojecttoml(
        f"""
        [tool.pytest.ini_options]
        isoenv_requires = ["iso-a==1.0"]
        isoenv_python = "{first}, {second}"
        """
    )
    pytester.makepyfile(
        f"""
        import pytest

        def version(isoenv):
            return isoenv.run("python", "-c", "import sys; print(*sys.version_info[:2])").stdout.split()

        def test_fixture(isoenv):
            assert ".".join(version(isoenv)) in ("{first}", "{second}")

        @pytest.mark.isoenv(python="{HOST}")
        def test_own(isoenv):  # the marker's python= wins
            assert ".".join(version(isoenv)) == "{HOST}"

        def test_plain():  # no env, no matrix
            pass

        def test_base(isoenv_base):  # the first interpreter's base
            assert isoenv_base.interpreter.version_text.startswith("{first}.")
        """
    )
    result = pytester.runpytest_subprocess("-v")
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines_random(
        [f"*::test_fixture[[]py{first}[]] PASSED*", f"*::test_fixture[[]py{second}[]] PASSED*"]
    )
    result.stdout.fnmatch_lines(["*::test_own PASSED*", "*::test_plain PASSED*"])
    # the command line wins over the ini file; a single interpreter makes no matrix
    result = pytester.runpytest_subprocess("-v", f"--isoenv-python={second}", "-k", "fixture")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*::test_fixture PASSED*"])
    # the environment variable, between the two
    os.environ["PYTEST_ISOENV_PYTHON"] = first
    try:
        result = pytester.runpytest_subprocess("-v", "-k", "base")
    finally:
        del os.environ["PYTEST_ISOENV_PYTHON"]
    result.assert_outcomes(passed=1)


def test_a_missing_interpreter_skips_or_errors(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.isoenv(python=["{HOST}", "3.99"])
        def test_x(isoenv):
            pass
        """
    )
    result = pytester.runpytest_subprocess("-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED*isoenv: no interpreter python='3.99' is installed"])
    result = pytester.runpytest_subprocess("--isoenv-python-missing=error")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*isoenv: no interpreter python='3.99' is installed (--isoenv-python-missing=error)"]
    )
    pytester.makeini("[pytest]\nisoenv_python_missing = error\n")
    pytester.runpytest_subprocess().assert_outcomes(passed=1, errors=1)
    result = pytester.runpytest_subprocess("--isoenv-python-missing=never")
    result.stderr.fnmatch_lines(["*--isoenv-python-missing=never: not one of skip, error"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR


@pytest.mark.parametrize("version", ["2.7", "3.6", "3.7"])
def test_an_interpreter_too_old_is_a_clear_error(
    pytester: pytest.Pytester, offline_env: Path, version: str
) -> None:
    root = pyenv_root(os.environ) / "versions"
    if not any(root.glob(f"{version}.*")):
        pytest.skip(f"no pyenv Python {version} here")
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.isoenv(python="{version}")
        def test_old(isoenv):
            pass

        def test_after():
            pass
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [f"*isoenv: python='{version}' is * pytest-isoenv cannot build an env on*3.8 or newer*"]
    )


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        pytest.param('python="3.x"', "*python='3.x': '3.x' is not an interpreter spec*", id="junk"),
        pytest.param("python=3.12", "*python=3.12: 3.12 is not an interpreter spec*", id="float"),
        pytest.param("python=[]", "*python=[[][]]: [[][]] must name distinct*", id="empty"),
        pytest.param('python=["3.12", "3.12"]', "*must name distinct interpreters*", id="twice"),
        pytest.param('python=["3.12", "py3.12"]', "*must name distinct interpreters*", id="same"),
    ],
)
def test_a_bad_python_spec_fails_collection(
    pytester: pytest.Pytester, marker: str, message: str
) -> None:
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.isoenv({marker})
        def test_bad():
            pass
        """
    )
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["In test_bad: invalid isoenv marker: *" + message.lstrip("*")])


def test_a_bad_isoenv_python_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_plain(): pass")
    result = pytester.runpytest_subprocess("--isoenv-python=3.12,banana")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--isoenv-python=3.12,banana: 'banana' is not an interpreter*"])


@needs_two
def test_pyenv_versions_are_found_without_being_activated(
    pytester: pytest.Pytester, offline_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pyenv runs only the versions it was told of; pytest-isoenv finds the others too."""
    pyenv = pyenv_root(os.environ)
    if not (pyenv / "versions").is_dir():
        pytest.skip("no pyenv here")
    version = OTHERS[0]
    monkeypatch.delenv("PYENV_VERSION", raising=False)
    monkeypatch.delenv("PYENV_ROOT", raising=False)  # as under tox: its shims on PATH say
    # Only pyenv's shims on PATH (no pythonX.Y elsewhere), pyenv told of another version.
    (pytester.path / ".python-version").write_text(f"{OTHERS[1]}\n")
    shims = pyenv / "shims"
    monkeypatch.setenv("PATH", os.pathsep.join([str(shims), "/usr/bin", "/bin"]))
    if shutil.which(f"python{version}"):
        shim = subprocess.run([f"python{version}", "-V"], capture_output=True, check=False)
        assert shim.returncode != 0, "pyenv's shim of an inactive version should not run"
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.isoenv(python="{version}")
        def test_x(isoenv):
            out = isoenv.run("python", "-c", "import sys; print(*sys.version_info[:2])").stdout
            assert out.split() == "{version}".split(".")
        """
    )
    pytester.runpytest_subprocess().assert_outcomes(passed=1)


@needs_two
def test_bases_per_interpreter_are_cached_and_xdist_shares_them(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    first, second = OTHERS[:2]
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\nisoenv_requires = ["iso-a"]\n')
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.parametrize("n", range(3))
        @pytest.mark.isoenv(python=["{first}", "{second}"], requires=["iso-b"])
        def test_x(isoenv, n):
            # iso-b needs iso-a<2: the layer moves the base's iso-a 2.0 to 1.0, per interpreter
            out = isoenv.run("python", "-c", "import iso_a, iso_b; print(iso_a.__version__)")
            assert out.stdout.strip() == "1.0"
        """
    )
    result = pytester.runpytest_subprocess("-n", "2", "--isoenv-base=cache")
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["isoenv: 2 bases built (*s), * 6 derived envs"])
    result = pytester.runpytest_subprocess("-n", "2", "--isoenv-base=cache")
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["isoenv: 2 bases reused, * 6 derived envs"])


def test_a_user_venv_base_serves_only_its_own_interpreter(
    pytester: pytest.Pytester, offline_env: Path, tmp_path: Path
) -> None:
    others = [v for v in _installed("3.12", "3.13", "3.10") if v != HOST]
    if not others:
        pytest.skip("needs a Python other than pytest's")
    venv = tmp_path / "user-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.isoenv(python="{others[0]}")
        def test_other(isoenv):
            pass

        def test_default(isoenv):
            pass
        """
    )
    result = pytester.runpytest_subprocess(f"--isoenv-base={venv}")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*--isoenv-base=* is a venv of *; an env on * needs*"])


def test_an_interpreter_by_path_relative_to_the_rootdir_or_broken(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    if not OTHERS:
        pytest.skip("needs a Python other than pytest's")
    executable = find(OTHERS[0], Path.cwd(), None)
    assert executable is not None
    (pytester.path / "pythons").mkdir()
    (pytester.path / "pythons" / "mine").symlink_to(executable)
    broken = pytester.path / "pythons" / "broken"
    broken.write_text("#!/bin/sh\necho 'this is not python' >&2\nexit 3\n")
    broken.chmod(0o755)
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.isoenv(python="pythons/mine")
        def test_mine(isoenv):
            out = isoenv.run("python", "-c", "import sys; print(*sys.version_info[:2])").stdout
            assert out.split() == "{OTHERS[0]}".split(".")

        @pytest.mark.isoenv(python="pythons/broken")
        def test_broken(isoenv):
            pass
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*isoenv: python='*/pythons/broken' cannot be used:*not python*"])


def _inside_on(pytester: pytest.Pytester, versions: list[str]) -> None:
    pytester.makepyfile(
        f"""
        import sys
        import pytest

        try:
            import iso_a
        except ImportError:
            iso_a = None

        @pytest.mark.isoenv(requires=["iso-a==1.0"], python={versions!r}, inside=True)
        def test_inside(request):
            spec = request.node.name.partition("[py")[2].rstrip("]")
            assert "%d.%d" % sys.version_info[:2] == spec
            assert iso_a.__version__ == "1.0"

        @pytest.mark.isoenv(python={versions!r}, inside=True)
        def test_fails(request):
            assert sys.version_info[:2] == (2, 0)
        """
    )
    result = pytester.runpytest_subprocess("-v")
    result.assert_outcomes(passed=len(versions), failed=len(versions))
    result.stdout.fnmatch_lines_random([f"*test_inside[[]py{v}[]] PASSED*" for v in versions])
    # the assertion detail, rewritten by the child's pytest on that interpreter
    major, minor = versions[0].split(".")
    result.stdout.fnmatch_lines(
        [
            f"E       *assert ({major}, {minor}) == (2, 0)",
            "E*At index 0 diff: 3 != 2",
        ]
    )


def test_inside_on_other_interpreters(pytester: pytest.Pytester, offline_env: Path) -> None:
    """The host's pytest is copied for interpreters it supports (pure Python): offline."""
    versions = [v for v in OTHERS if tuple(map(int, v.split("."))) >= sys.version_info[:2]]
    if not versions:
        pytest.skip("needs a Python newer than pytest's")
    _inside_on(pytester, versions[:2])


@pytest.mark.network
def test_inside_on_older_interpreters(
    pytester: pytest.Pytester, offline_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pytest (and tomli, exceptiongroup) for an older interpreter come from the index."""
    versions = [v for v in OTHERS if tuple(map(int, v.split("."))) < sys.version_info[:2]]
    if not versions:
        pytest.skip("needs a Python older than pytest's")
    monkeypatch.delenv("PYTEST_ISOENV_NO_INDEX")
    _inside_on(pytester, versions[:2])
    # Stored: the next session needs no index for them (the index is out of reach).
    for variable in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(variable, "http://127.0.0.1:9")
    _inside_on(pytester, versions[:2])


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(
            """
            import unittest
            import pytest

            @pytest.mark.isoenv(python=["3.12", "3.13"])
            class TestCase(unittest.TestCase):
                def test_x(self):
                    pass
            """,
            id="unittest",
        ),
        pytest.param(
            """
            import pytest

            @pytest.mark.parametrize("v", [
                pytest.param(1, marks=pytest.mark.isoenv(python=["3.12", "3.13"])),
            ])
            def test_x(v):
                pass
            """,
            id="param-marks",
        ),
    ],
)
def test_a_python_list_that_cannot_parametrize_fails_collection(
    pytester: pytest.Pytester, source: str
) -> None:
    pytester.makepyfile(source)
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        ["In test_x*: invalid isoenv marker: a python=[[]...[]] list runs a test once per *"]
    )


def test_a_default_list_on_a_unittest_method_warns(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import unittest
        import pytest

        @pytest.mark.isoenv()
        class TestCase(unittest.TestCase):
            def test_x(self):
                pass
        """
    )
    result = pytester.runpytest_subprocess("--isoenv-python=3.98,3.99", "-rs")
    result.assert_outcomes(skipped=1, warnings=1)
    result.stdout.fnmatch_lines(["*IsoenvWarning: *::test_x runs on 3.98 only: *"])


@pytest.mark.parametrize(
    "setting",
    [
        'isoenv_python = ["3.98", "3.99"]',
        'isoenv_python = "3.98, 3.99"',
        'isoenv_python = "3.98 3.99"',
        'isoenv_python = """\n3.98\n3.99\n"""',
    ],
)
def test_isoenv_python_in_every_form(pytester: pytest.Pytester, setting: str) -> None:
    pytester.makepyprojecttoml(f"[tool.pytest.ini_options]\n{setting}\n")
    pytester.makepyfile("def test_x(isoenv): pass")
    result = pytester.runpytest_subprocess("--co", "-q", "-W", "error")
    result.stdout.fnmatch_lines(["*::test_x[[]py3.98[]]", "*::test_x[[]py3.99[]]"])
