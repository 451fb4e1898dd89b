"""The base env: built once, cached by content, verified before reuse, never modified."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import UV, write_project

from pytest_isoenv._fingerprint import MANIFEST, full_fingerprint

TESTS = """
def test_a(isoenv):
    isoenv.run("python", "-c", "import iso_a")
"""


def _ini(pytester: pytest.Pytester, *requires: str) -> None:
    lines = ", ".join(json.dumps(r) for r in requires)
    pytester.makepyprojecttoml(f"[tool.pytest.ini_options]\nisoenv_requires = [{lines}]\n")


def _base_line(result: pytest.RunResult) -> str:
    lines = [line for line in result.outlines if line.startswith("isoenv: base")]
    assert len(lines) == 1, result.outlines
    return lines[0]


def test_help_has_an_isoenv_group_with_every_option(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(
        [
            "isolated Python environments (pytest-isoenv):",
            "*--isoenv-base=session|cache|PATH*",
            "*--isoenv-cache-dir=DIR*",
            "*--isoenv-no-index*",
            "*--isoenv-refresh*",
        ]
    )
    for key in ("isoenv_requires", "isoenv_base", "isoenv_cache_dir", "isoenv_no_index"):
        result.stdout.fnmatch_lines([f"  {key} *"])


def test_session_base_is_built_once_and_reported(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    _ini(pytester, "iso-a")
    pytester.makepyfile(TESTS + TESTS.replace("test_a", "test_b"))
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=2)
    assert "base built in " in _base_line(result)
    assert "(cpython " in _base_line(result) and "1 packages)" in _base_line(result)
    # Session mode builds its base afresh; only the distributions (and their bytecode) are
    # stored in the cache, to be linked again by later sessions.
    assert not (offline_env / "v2" / "bases").exists()
    stored = [p.name for p in (offline_env / "v2" / "dists").glob("iso-*") if p.is_dir()]
    assert len(stored) == 1 and stored[0].startswith("iso-a-2.0-")
    again = pytester.runpytest_subprocess()
    again.assert_outcomes(passed=2)
    assert "base built in " in _base_line(again)


def test_cache_mode_reuses_the_base_across_sessions(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    _ini(pytester, "iso-a", "iso-cli")
    pytester.makepyfile(TESTS + "\ndef test_cli(isoenv):\n    isoenv.run('iso-cli')\n")
    first = pytester.runpytest_subprocess("--isoenv-base=cache")
    first.assert_outcomes(passed=2)
    assert "base built" in _base_line(first)
    assert stat.S_IMODE(offline_env.stat().st_mode) == 0o700
    second = pytester.runpytest_subprocess("--isoenv-base=cache")
    second.assert_outcomes(passed=2)
    assert "base reused" in _base_line(second)
    assert str(offline_env) in _base_line(second)
    bases = [p for p in (offline_env / "v2" / "bases").iterdir() if p.is_dir()]
    assert len(bases) == 1
    manifest = json.loads((bases[0] / MANIFEST).read_text())
    assert manifest["fingerprint"] == full_fingerprint(bases[0]), "a test wrote into the base"


def test_ini_and_env_var_select_the_cache_too(pytester: pytest.Pytester, offline_env: Path) -> None:
    pytester.makepyprojecttoml(
        '[tool.pytest.ini_options]\nisoenv_requires = ["iso-a"]\nisoenv_base = "cache"\n'
        'isoenv_cache_dir = "my cache 🐸"\n'
    )
    pytester.makepyfile(TESTS)
    pytester.runpytest_subprocess().assert_outcomes(passed=1)
    # the env var (PYTEST_ISOENV_CACHE_DIR, set by offline_env) wins over the ini
    assert (offline_env / "v2" / "bases").is_dir()
    assert not (pytester.path / "my cache 🐸").exists()
    result = pytester.runpytest_subprocess(f"--isoenv-cache-dir={pytester.path / 'cli dir'}")
    result.assert_outcomes(passed=1)
    assert (pytester.path / "cli dir" / "v2" / "bases").is_dir()


@pytest.mark.parametrize(
    "change",
    ["requirement", "requirements-file", "local-project", "uv-setting", "no-change"],
)
def test_cache_key_covers_what_changes_the_base(
    pytester: pytest.Pytester, offline_env: Path, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    write_project(pytester.path / "local", "iso-local", "1.0", [], "X = 1\n")
    (pytester.path / "reqs.txt").write_text("iso-a==1.0\n")
    _ini(pytester, "-r reqs.txt", "./local")
    pytester.makepyfile(TESTS)
    assert "base built" in _base_line(pytester.runpytest_subprocess("--isoenv-base=cache"))
    if change == "requirement":
        _ini(pytester, "-r reqs.txt", "./local", "iso-cli")
    elif change == "requirements-file":
        (pytester.path / "reqs.txt").write_text("iso-a==2.0\n")
    elif change == "local-project":
        (pytester.path / "local" / "src" / "iso_local" / "__init__.py").write_text("X = 2\n")
    elif change == "uv-setting":
        monkeypatch.setenv("UV_PRERELEASE", "allow")
    second = _base_line(pytester.runpytest_subprocess("--isoenv-base=cache"))
    assert ("base reused" if change == "no-change" else "base built") in second


def test_editable_requirements_file_and_local_path_in_the_base(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    write_project(pytester.path / "editable proj", "iso-edit", "1.0", [], "X = 'first'\n")
    write_project(pytester.path / "plain", "iso-plain", "1.0", [], "Y = 1\n")
    (pytester.path / "reqs.txt").write_text("iso-a==2.0\n")
    _ini(pytester, "-e ./editable proj", "-r reqs.txt", "./plain")
    pytester.makepyfile(
        """
        from pathlib import Path

        def test_all_importable(isoenv, isoenv_base):
            code = "import iso_edit, iso_plain, iso_a; print(iso_edit.X, iso_plain.Y, iso_a.__version__)"
            assert isoenv.run("python", "-c", code).stdout.split() == ["first", "1", "2.0"]

        def test_editable_is_live(isoenv):
            init = Path("editable proj/src/iso_edit/__init__.py")
            init.write_text("X = 'second'\\n")
            out = isoenv.run("python", "-c", "import iso_edit; print(iso_edit.X)")
            assert out.stdout.strip() == "second"
        """
    )
    pytester.runpytest_subprocess("-p", "no:randomly").assert_outcomes(passed=2)


def test_an_existing_venv_is_used_read_only(pytester: pytest.Pytester, offline_env: Path) -> None:
    venv = pytester.path / "user venv"
    subprocess.run([UV, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    subprocess.run(
        [
            UV,
            "pip",
            "install",
            "--quiet",
            "--offline",
            "--python",
            str(venv / "bin" / "python"),
            "iso-a==1.0",
            "iso-cli",
        ],
        check=True,
    )
    before = full_fingerprint(venv)
    _ini(pytester, "iso-a")
    pytester.makepyfile(
        """
        import pytest

        def test_sees_it(isoenv):
            assert isoenv.run("iso-cli").stdout.split()[-1] == "1.0"

        @pytest.mark.isoenv(requires=["iso-a==2.0"])
        def test_layer_over_it(isoenv):
            assert isoenv.run("iso-cli").stdout.split()[-1] == "2.0"

        def test_install(isoenv):
            isoenv.install("iso-b")
        """
    )
    result = pytester.runpytest_subprocess(f"--isoenv-base={venv}")
    result.assert_outcomes(passed=3)
    assert f"base used read-only: {venv}" in _base_line(result)
    assert full_fingerprint(venv) == before, "the user's venv was modified"


def test_an_existing_venv_lacking_the_requirements_errors(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    venv = pytester.path / "bare"
    subprocess.run([UV, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    _ini(pytester, "iso-a")
    pytester.makepyfile(TESTS)
    result = pytester.runpytest_subprocess(f"--isoenv-base={venv}")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*is used read-only but lacks what isoenv_requires asks for: iso-a*"]
    )


def test_base_path_that_is_not_a_venv_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(TESTS)
    result = pytester.runpytest_subprocess("--isoenv-base=nowhere")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--isoenv-base=nowhere: not 'session', 'cache' or a venv*"])


def test_verbose_mode_shows_per_test_env_work(pytester: pytest.Pytester, offline_env: Path) -> None:
    _ini(pytester)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.isoenv(requires=["iso-a==2.0"])
        def test_layer(isoenv):
            pass

        def test_install(isoenv):
            isoenv.install("iso-b")
        """
    )
    quiet = pytester.runpytest_subprocess()
    quiet.assert_outcomes(passed=2)
    quiet.stdout.no_fnmatch_line("*layer built*")
    verbose = pytester.runpytest_subprocess("-v")
    verbose.stdout.fnmatch_lines(
        [
            "isoenv: base built in *",
            "isoenv: *::test_layer: layer built in *s for iso-a==2.0: iso-a==2.0",
            "isoenv: *::test_install: installed iso-a==1.0, iso-b==1.0",
        ]
    )


BYTECODE_SUITE = """
import os, sys
import pytest

IMPORT = "import iso_a, iso_cli; print(iso_a.__file__)"

@pytest.mark.parametrize("flags", [[], ["-O"], ["-OO"]], ids=["plain", "O", "OO"])
def test_base(isoenv, flags):
    isoenv.run("python", *flags, "-c", IMPORT)

@pytest.mark.parametrize("flags", [[], ["-O"], ["-OO"]], ids=["plain", "O", "OO"])
@pytest.mark.isoenv(requires=["iso-b"])
def test_layer(isoenv, flags):
    isoenv.run("python", *flags, "-c", IMPORT + "; import iso_b")
    isoenv.run(isoenv.layer.python, *flags, "-c", IMPORT)
"""


@pytest.mark.parametrize("dont_write", ["1", None], ids=["DONTWRITEBYTECODE", "writing"])
def test_bytecode_goes_to_the_stores_prefix_never_into_a_shared_env(
    pytester: pytest.Pytester, offline_env: Path, monkeypatch: pytest.MonkeyPatch, dont_write: str
) -> None:
    # Users' machines write bytecode (this one sets PYTHONDONTWRITEBYTECODE): importing from a
    # shared env, with -O or -OO too, never writes into it and is never flagged as a change;
    # the bytecode lands once in the store's prefix, shared by every env holding the package.
    if dont_write:
        monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", dont_write)
    else:
        monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    monkeypatch.setenv("PYTHONOPTIMIZE", "2")  # the first build runs optimised: no poison
    _ini(pytester, "iso-a==1.0", "iso-cli")
    pytester.makepyfile(BYTECODE_SUITE)
    pytester.runpytest_subprocess("--isoenv-base=cache").assert_outcomes(passed=6)
    monkeypatch.delenv("PYTHONOPTIMIZE")
    result = pytester.runpytest_subprocess("--isoenv-base=cache")
    result.assert_outcomes(passed=6)
    assert "base reused" in _base_line(result)
    store = offline_env / "v2"
    shared = [p for kind in ("bases", "layers", "dists") for p in (store / kind).rglob("*")]
    assert not [p for p in shared if p.name == "__pycache__" or p.suffix == ".pyc"]
    (iso_a,) = [p for p in (store / "dists").glob("iso-a-1.0-*") if p.is_dir()]
    cached = store / "pycache" / str(iso_a).lstrip("/") / "site" / "iso_a"
    tags = sorted(p.name.split(".", 1)[1] for p in cached.glob("__init__.*.pyc"))
    assert len(tags) == 3 and any("opt-1" in t for t in tags) and any("opt-2" in t for t in tags)


def test_rebuild_builds_the_base_and_layers_again_once(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    _ini(pytester, "iso-a==1.0")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.isoenv(requires=["iso-b"])
        @pytest.mark.parametrize("n", range(4))
        def test_layer(isoenv, n):
            isoenv.run("python", "-c", "import iso_a, iso_b")
        """
    )
    pytester.runpytest_subprocess("--isoenv-base=cache").assert_outcomes(passed=4)
    reused = pytester.runpytest_subprocess("--isoenv-base=cache", "-v")
    reused.assert_outcomes(passed=4)
    assert "base reused" in _base_line(reused)
    assert not [line for line in reused.outlines if "layer built" in line]
    for how in (["--isoenv-rebuild", "-v"], ["-n", "2", "-v"]):
        env = {"PYTEST_ISOENV_REBUILD": "1"} if "-n" in how else {}
        with pytest.MonkeyPatch.context() as patch:
            for key, value in env.items():
                patch.setenv(key, value)
            result = pytester.runpytest_subprocess("--isoenv-base=cache", *how)
        result.assert_outcomes(passed=4)
        result.stdout.fnmatch_lines(
            ["isoenv: base built * (previous one discarded: a rebuild was asked for*"]
        )
        layers = [line for line in result.outlines if "layer built" in line]
        assert len(layers) == 1, layers  # once, by whichever worker came first


def test_refresh_resolves_the_base_again(
    pytester: pytest.Pytester, offline_env: Path, wheelhouse: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    links = pytester.path / "links"
    links.mkdir()
    for wheel in wheelhouse.glob("iso_a-1.0-*.whl"):
        shutil.copy(wheel, links)
    monkeypatch.setenv("UV_FIND_LINKS", str(links))
    _ini(pytester, "iso-a")
    pytester.makepyfile(
        """
        def test_version(isoenv, request):
            print("ISO-A", isoenv.base.packages["iso-a"])
        """
    )
    first = pytester.runpytest_subprocess("--isoenv-base=cache", "-s")
    first.stdout.fnmatch_lines(["*ISO-A 1.0"])
    for wheel in wheelhouse.glob("iso_a-2.0-*.whl"):
        shutil.copy(wheel, links)
    cached = pytester.runpytest_subprocess("--isoenv-base=cache", "-s")
    cached.stdout.fnmatch_lines(["*ISO-A 1.0"])  # a new release alone does not rebuild
    fresh = pytester.runpytest_subprocess("--isoenv-base=cache", "--isoenv-refresh", "-s")
    fresh.stdout.fnmatch_lines(["*ISO-A 2.0"])
    assert "base built" in _base_line(fresh)
