"""``--isoenv-base=PATH``: the user's own venv, checked by reading it and never written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import UV, write_project

from pytest_isoenv._fingerprint import full_fingerprint


def _venv(path: Path, *install: str, no_deps: bool = False) -> Path:
    subprocess.run([UV, "venv", "--quiet", "--python", sys.executable, str(path)], check=True)
    if install:
        python = str(path / "bin" / "python")
        extra = ["--no-deps"] if no_deps else []
        subprocess.run(
            [UV, "pip", "install", "--quiet", "--offline", "--python", python, *extra, *install],
            check=True,
        )
    # uv's own lock file: a venv made with `python -m venv` has none, and none may appear
    (path / ".lock").unlink(missing_ok=True)
    return path


def _state(venv: Path) -> tuple[str, list[str]]:
    """Every entry of the venv (the lock file uv writes included) and its fingerprint."""
    names = sorted(
        os.path.relpath(os.path.join(d, n), venv) for d, ds, fs in os.walk(venv) for n in ds + fs
    )
    return full_fingerprint(venv), names


def _ini(pytester: pytest.Pytester, *requires: str) -> None:
    lines = ", ".join(f'"{r}"' for r in requires)
    pytester.makepyprojecttoml(f"[tool.pytest.ini_options]\nisoenv_requires = [{lines}]\n")


def test_a_user_venv_without_isoenv_requires(
    pytester: pytest.Pytester, offline_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # as on users' machines: Python writes bytecode next to what it imports, and uv does not
    # byte-compile what it installs
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    venv = _venv(pytester.path / "user venv", "iso-a==1.0")
    before = _state(venv)
    pytester.makepyfile(
        """
        import pytest

        def test_sees_it(isoenv):
            assert isoenv.run("python", "-c", "import iso_a; print(iso_a.__version__)").stdout == "1.0\\n"

        def test_base(isoenv_base):
            assert isoenv_base.packages == {"iso-a": "1.0"}

        @pytest.mark.isoenv(requires=["iso-a==2.0"])
        def test_layer(isoenv):
            assert isoenv.run("python", "-c", "import iso_a; print(iso_a.__version__)").stdout == "2.0\\n"

        def test_install(isoenv):
            isoenv.install("iso-cli")
        """
    )
    result = pytester.runpytest_subprocess(f"--isoenv-base={venv}", "-p", "no:xdist")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines([f"isoenv: base used read-only: {venv} *"])
    assert _state(venv) == before, "the user's venv was written"


def test_a_user_venv_with_local_and_editable_projects_is_accepted(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    write_project(pytester.path / "edit proj", "iso-edit", "1.0", [], "X = 'edit'\n")
    write_project(pytester.path / "plain", "iso-plain", "1.0", ["iso-a>=1"], "Y = 'plain'\n")
    (pytester.path / "reqs").mkdir()
    (pytester.path / "reqs" / "base.txt").write_text(
        "# the project's own\n-r more.txt\n-c constraints.txt\n--index-url https://example.invalid\n"
        "iso-b>=1.0 ; python_version >= '3'\n-e ../edit proj\n"
    )
    (pytester.path / "reqs" / "more.txt").write_text("iso-a >=1, <2\n")
    venv = _venv(
        pytester.path / "user venv",
        "iso-b",
        "-e",
        str(pytester.path / "edit proj"),
        str(pytester.path / "plain"),
    )
    before = _state(venv)
    _ini(
        pytester,
        "-e ./edit proj",
        "./plain",
        "-r reqs/base.txt",
        "iso-a[missing-extra-is-fine]==1.*",
    )
    pytester.makepyfile(
        """
        def test_sees_it(isoenv):
            code = "import iso_edit, iso_plain, iso_b; print(iso_edit.X, iso_plain.Y)"
            assert isoenv.run("python", "-c", code).stdout.split() == ["edit", "plain"]
        """
    )
    result = pytester.runpytest_subprocess(f"--isoenv-base={venv}", "-p", "no:xdist")
    result.assert_outcomes(passed=1)
    assert _state(venv) == before, "the user's venv was written"


@pytest.mark.parametrize(
    ("requires", "message"),
    [
        pytest.param(["iso-a>=2"], "iso-a>=2 (1.0 is installed)", id="version"),
        pytest.param(["iso-cli"], "iso-cli", id="absent"),
        pytest.param(["-e ./plain"], "an editable install of */plain", id="not-editable"),
        pytest.param(["./other"], "*/other", id="other-path"),
        pytest.param(["iso-b"], "iso-a<2, required by iso-b 1.0", id="dependency"),
        pytest.param(["-r r.txt"], "iso-cli==1.0", id="requirements-file"),
    ],
)
def test_a_user_venv_lacking_what_is_asked_is_refused_naming_it(
    pytester: pytest.Pytester, offline_env: Path, requires: list[str], message: str
) -> None:
    write_project(pytester.path / "plain", "iso-plain", "1.0", [], "Y = 1\n")
    (pytester.path / "r.txt").write_text("iso-plain\niso-cli==1.0\n")
    venv = _venv(pytester.path / "user venv", "iso-b", str(pytester.path / "plain"), no_deps=True)
    if "iso-b" not in requires:
        subprocess.run(
            [
                UV,
                "pip",
                "install",
                "-q",
                "--offline",
                "--python",
                str(venv / "bin" / "python"),
                "iso-a==1.0",
            ],
            check=True,
        )
        (venv / ".lock").unlink()
    before = _state(venv)
    _ini(pytester, *requires)
    pytester.makepyfile("def test_env(isoenv): pass")
    result = pytester.runpytest_subprocess(f"--isoenv-base={venv}", "-p", "no:xdist")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            f"isoenv: *--isoenv-base={venv} is used read-only but lacks what isoenv_requires asks for: {message}"
        ]
    )
    assert _state(venv) == before, "the user's venv was written"
