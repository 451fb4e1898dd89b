"""Coverage with pytest-cov: code run in derived envs joins the report, with no set-up."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

import coverage
import pytest
from conftest import write_project

# Line 14 (never) is the only one no test runs: 8 statements, 1 missed.
_MODULE = """\
def by_run():
    return "run"


def by_script():
    print("script")


def by_subprocess():
    return "subprocess"


def never():
    return "never"
"""

_TESTS = """
import subprocess

def test_run(isoenv):
    assert isoenv.run("python", "-c", "import iso_cov; print(iso_cov.by_run())").stdout == "run\\n"

def test_script(isoenv):
    # os.environ is the env's while the test runs: a plain subprocess finds its console script
    done = subprocess.run(["iso-cov"], capture_output=True, text=True, check=True)
    assert done.stdout == "script\\n"

def test_subprocess(isoenv):
    code = "import iso_cov; print(iso_cov.by_subprocess())"
    done = subprocess.run(
        [str(isoenv.python), "-c", code], env=isoenv.env, capture_output=True, text=True, check=True
    )
    assert (done.stdout, done.stderr) == ("subprocess\\n", "")  # the start-up hook is silent
"""


def _project(pytester: pytest.Pytester, *requires: str) -> None:
    write_project(
        pytester.path / "proj", "iso-cov", "1.0", [], _MODULE, {"iso-cov": "iso_cov:by_script"}
    )
    lines = ", ".join(f'"{r}"' for r in requires)
    pytester.makepyprojecttoml(f"[tool.pytest.ini_options]\nisoenv_requires = [{lines}]\n")


def _leftovers(path: Path) -> list[str]:
    return sorted(p.name for p in path.glob(".coverage.*"))


@pytest.mark.parametrize(
    "args",
    [
        pytest.param([], id="one-process"),
        pytest.param(["-n", "2"], id="xdist"),
        pytest.param(["bytecode"], id="bytecode-written"),
    ],
)
def test_code_run_in_envs_is_in_the_report(
    pytester: pytest.Pytester,
    offline_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
) -> None:
    if args == ["bytecode"]:  # as on users' machines: envs and the host write bytecode
        monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
        args = []
    _project(pytester, "-e ./proj")
    pytester.makepyfile(_TESTS)
    result = pytester.runpytest_subprocess("--cov=iso_cov", "--cov-report=term-missing", *args)
    result.assert_outcomes(passed=3)
    result.stdout.re_match_lines([r"proj/src/iso_cov/__init__\.py\s+8\s+1\s+88%\s+14$"])
    # The host's coverage does not warn that it saw nothing: the envs did.
    output = result.stdout.str() + result.stderr.str()
    assert "never imported" not in output
    assert "No data was collected" not in output
    assert _leftovers(pytester.path) == []
    assert (pytester.path / ".coverage").is_file()


def test_a_non_editable_install_is_reported_as_its_sources(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    """A marker's layer holds the project built and stored: its files map back to ``proj/src``.

    With ``--cov-branch`` too: the envs measure what the host measures.
    """
    _project(pytester)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.isoenv(requires=["./proj"])
        def test_layer(isoenv):
            assert "proj" not in isoenv.run("python", "-c", "import iso_cov; print(iso_cov.__file__)").stdout
            isoenv.run("python", "-c", "import iso_cov; iso_cov.by_run(); iso_cov.by_subprocess()")
            isoenv.run("iso-cov")
        """
    )
    result = pytester.runpytest_subprocess(
        "--cov=iso_cov", "--cov-branch", "--cov-report=term-missing"
    )
    result.assert_outcomes(passed=1)
    result.stdout.re_match_lines([r"^proj/src/iso_cov/__init__\.py\s+8\s+1\s+0\s+0\s+88%\s+14$"])
    assert _leftovers(pytester.path) == []


def test_plain_cov_leaves_out_what_the_envs_installed(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    """``--cov`` alone measures the project, not the packages of the envs (nor the host's)."""
    _project(pytester, "-e ./proj", "iso-a==1.0")
    pytester.makepyfile(
        """
        def test_both(isoenv):
            isoenv.run("python", "-c", "import iso_a, iso_cov; iso_cov.by_run()")
        """
    )
    result = pytester.runpytest_subprocess("--cov", "--cov-report=term-missing")
    result.assert_outcomes(passed=1)
    result.stdout.re_match_lines([r"proj/src/iso_cov/__init__\.py\s+8\s+3\s+62%\s+6, 10, 14$"])
    result.stdout.no_fnmatch_line("*iso_a*")


@pytest.mark.parametrize(
    ("args", "measured"),
    [
        pytest.param([], False, id="no-cov"),
        pytest.param(["--cov=iso_cov", "--no-cov"], False, id="no-cov-wins"),
        pytest.param(["--cov=iso_cov"], True, id="cov"),
    ],
)
def test_envs_get_coverage_only_under_cov(
    pytester: pytest.Pytester,
    offline_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    measured: bool,
) -> None:
    for name in ("COVERAGE_PROCESS_START", "COVERAGE_PROCESS_CONFIG"):
        monkeypatch.delenv(name, raising=False)  # this suite may run under coverage itself
    _project(pytester, "-e ./proj")
    pytester.makepyfile(
        f"""
        def test_env(isoenv):
            variables = sorted(k for k in isoenv.env if k.startswith("COVERAGE_"))
            done = isoenv.run("python", "-c", "import coverage; print(coverage.__version__)", check=False)
            if {measured}:
                assert variables == ["COVERAGE_PROCESS_CONFIG"]
                assert done.stdout == "{coverage.__version__}\\n"  # the host's version
            else:
                assert variables == []
                assert "No module named 'coverage'" in done.stderr
        """
    )
    pytester.runpytest_subprocess(*args).assert_outcomes(passed=1)
    assert _leftovers(pytester.path) == []


def _host_coverage_wheel(dest: Path) -> Path:
    """A wheel of the host's installed coverage, packed again from its files (no download)."""
    from importlib import metadata

    dist = metadata.distribution("coverage")
    site = Path(str(dist.locate_file("")))
    info = f"coverage-{dist.version}.dist-info"
    tag = next(
        line.split(":", 1)[1].strip()
        for line in (site / info / "WHEEL").read_text().splitlines()
        if line.startswith("Tag:")
    )
    wheel = dest / f"coverage-{dist.version}-{tag}.whl"
    names = [
        str(name)
        for name in dist.files or ()
        if not str(name).startswith("..")
        and "__pycache__" not in str(name)
        and str(name) not in (f"{info}/RECORD", f"{info}/INSTALLER", f"{info}/REQUESTED")
    ]
    with zipfile.ZipFile(wheel, "w") as archive:
        record = []
        for name in names:
            data = (site / name).read_bytes()
            archive.writestr(name, data)
            hashed = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{name},sha256={hashed.decode()},{len(data)}")
        archive.writestr(f"{info}/RECORD", "\n".join([*record, f"{info}/RECORD,,"]) + "\n")
    return wheel


def test_an_env_with_its_own_coverage_keeps_it(
    pytester: pytest.Pytester,
    offline_env: Path,
    wheelhouse: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    house = tmp_path / "house"
    house.mkdir()
    for wheel in wheelhouse.iterdir():
        (house / wheel.name).symlink_to(wheel)
    _host_coverage_wheel(house)
    monkeypatch.setenv("UV_FIND_LINKS", str(house))
    _project(pytester, "-e ./proj", f"coverage=={coverage.__version__}")
    pytester.makepyfile(
        _TESTS
        + """
def test_its_own(isoenv):
    where = isoenv.run("python", "-c", "import coverage; print(coverage.__file__)").stdout
    assert where.startswith(str(isoenv.base.path))
"""
    )
    result = pytester.runpytest_subprocess("--cov=iso_cov", "--cov-report=term-missing")
    result.assert_outcomes(passed=4)
    result.stdout.re_match_lines([r"proj/src/iso_cov/__init__\.py\s+8\s+1\s+88%\s+14$"])
    assert _leftovers(pytester.path) == []


@pytest.mark.network
def test_envs_on_other_interpreters_are_measured(
    pytester: pytest.Pytester, offline_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """coverage for another interpreter comes from the index (its C tracer is per version)."""
    from test_python import OTHERS

    if not OTHERS:
        pytest.skip("needs a Python other than pytest's")
    monkeypatch.delenv("PYTEST_ISOENV_NO_INDEX")  # coverage for that Python: from PyPI
    _project(pytester, "-e ./proj")
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.isoenv(python={OTHERS[:2]!r})
        def test_run(isoenv):
            code = "import sys, iso_cov; print(sys.version_info[1], iso_cov.by_run())"
            assert isoenv.run("python", "-c", code).stdout.split()[1] == "run"
        """
    )
    result = pytester.runpytest_subprocess("--cov=iso_cov", "--cov-report=term-missing")
    result.assert_outcomes(passed=len(OTHERS[:2]))
    result.stdout.re_match_lines([r"proj/src/iso_cov/__init__\.py\s+8\s+3\s+62%\s+6, 10, 14$"])
    assert _leftovers(pytester.path) == []


@pytest.mark.parametrize(
    "args", [pytest.param([], id="one-process"), pytest.param(["-n", "2"], id="xdist")]
)
def test_inside_children_are_measured(
    pytester: pytest.Pytester, offline_env: Path, args: list[str]
) -> None:
    """The body of an ``inside=True`` test runs in a child of the env: measured too."""
    _project(pytester, "-e ./proj")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.isoenv(inside=True)
        def test_by_run():
            import iso_cov
            assert iso_cov.by_run() == "run"

        @pytest.mark.isoenv(inside=True)
        def test_by_subprocess():
            import iso_cov
            assert iso_cov.by_subprocess() == "subprocess"

        def test_ordinary_last():
            pass
        """
    )
    result = pytester.runpytest_subprocess("--cov=iso_cov", "--cov-report=term-missing", *args)
    result.assert_outcomes(passed=3)
    result.stdout.re_match_lines([r"proj/src/iso_cov/__init__\.py\s+8\s+2\s+75%\s+6, 14$"])
    assert _leftovers(pytester.path) == []
