"""Debugging a failed test: --isoenv-keep, the env section of its report, the count line."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pytest_isoenv import _cache_admin, _keep
from pytest_isoenv._keep import env_name
from pytest_isoenv._settings import keep_mode

SUITE = """
import pytest

def test_pass(isoenv):
    isoenv.run("python", "-c", "import iso_a")

@pytest.mark.isoenv(requires=["iso-b"])
def test_fail(isoenv):
    isoenv.install("iso-cli")
    assert False, "THE FAILURE"
"""


def _ini(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\nisoenv_requires = ["iso-a==1.0"]\n')


def _kept(cache_dir: Path) -> list[Path]:
    root = cache_dir / "v2" / "kept"
    return sorted(root.iterdir()) if root.exists() else []


def _run(python: Path, code: str) -> str:
    done = subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, check=False, env=_clean_env()
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}


@pytest.mark.parametrize("base", ["session", "cache"])
def test_keep_failed_keeps_the_failed_tests_env_usable_after_the_session(
    pytester: pytest.Pytester,
    offline_env: Path,
    base: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    _ini(pytester)
    pytester.makepyfile(SUITE)
    result = pytester.runpytest_subprocess(f"--isoenv-base={base}", "--isoenv-keep=failed")
    result.assert_outcomes(passed=1, failed=1)
    (kept,) = _kept(offline_env)
    # A long test id keeps its ends: where the test is, and its name.
    assert kept.name.startswith("test_keep_failed_kee")
    assert "_after_the_session.py_test_fail-" in kept.name
    result.stdout.fnmatch_lines(
        [
            f"isoenv: kept the env of *::test_fail: {kept}",
            "isoenv: in a kept env, run PATH/bin/python, or `source PATH/bin/activate`*",
        ]
    )
    assert not list(tmpdir.glob("pytest-isoenv-*")), "the session dir outlived the session"
    if base == "cache":  # pruned views: the kept env has its own copy
        shutil.rmtree(offline_env / "v2" / "bases")
        shutil.rmtree(offline_env / "v2" / "layers")
    python = kept / "bin" / "python"
    code = (
        "import iso_a, iso_b, iso_cli, sys; print(iso_a.__version__, iso_b.__version__, sys.prefix)"
    )
    assert _run(python, code) == f"1.0 1.0 {kept}"
    cli = subprocess.run(
        [str(kept / "bin" / "iso-cli")],
        check=False,
        capture_output=True,
        text=True,
        env=_clean_env(),
    )
    assert cli.stdout.split() == ["iso-cli", "1.0", str(kept), "iso-a", "1.0"], cli.stderr
    assert "test_fail" in (kept / "isoenv-kept.json").read_text()


def test_a_kept_env_can_be_activated_and_deactivated(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    _ini(pytester)
    pytester.makepyfile("def test_fail(isoenv):\n    assert False\n")
    pytester.runpytest_subprocess("--isoenv-keep=failed").assert_outcomes(failed=1)
    (kept,) = _kept(offline_env)
    script = (
        'before="$PATH"; . "$1/bin/activate"; '
        'python -c "import iso_a, sys; print(sys.prefix)"; echo "$VIRTUAL_ENV"; '
        'deactivate; [ "$PATH" = "$before" ] && echo restored; '
        'declare -F deactivate >/dev/null || echo gone; echo "${VIRTUAL_ENV:-unset}"'
    )
    done = subprocess.run(
        ["bash", "-c", script, "bash", str(kept)],
        capture_output=True,
        text=True,
        env=_clean_env(),
        check=True,
    )
    assert done.stdout.split("\n")[:5] == [str(kept), str(kept), "restored", "gone", "unset"]


def test_keep_all_keeps_every_env_and_none_keeps_none(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    _ini(pytester)
    pytester.makepyfile(SUITE)
    pytester.runpytest_subprocess().assert_outcomes(passed=1, failed=1)
    assert _kept(offline_env) == []
    result = pytester.runpytest_subprocess("--isoenv-keep=none")
    assert _kept(offline_env) == []
    result.stdout.no_fnmatch_line("*kept the env*")
    monkeypatch = pytest.MonkeyPatch()
    with monkeypatch.context() as patch:
        patch.setenv("PYTEST_ISOENV_KEEP", "all")
        result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1, failed=1)
    kept = _kept(offline_env)
    assert len(kept) == 2
    result.stdout.fnmatch_lines_random(
        ["isoenv: kept the env of *::test_pass: *", "isoenv: kept the env of *::test_fail: *"]
    )
    for path in kept:
        assert _run(path / "bin" / "python", "import iso_a; print(iso_a.__version__)") == "1.0"


@pytest.mark.parametrize(
    ("args", "env", "ini", "message"),
    [
        (["--isoenv-keep=sometimes"], None, None, "--isoenv-keep=sometimes: not one of *"),
        ([], "yes", None, "PYTEST_ISOENV_KEEP=yes: not one of none, failed, all"),
        ([], None, "always", "isoenv_keep = always: not one of none, failed, all"),
    ],
)
def test_a_bad_keep_value_is_a_usage_error(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: str | None,
    ini: str | None,
    message: str,
) -> None:
    monkeypatch.delenv("PYTEST_ISOENV_KEEP", raising=False)
    if env is not None:
        monkeypatch.setenv("PYTEST_ISOENV_KEEP", env)
    if ini is not None:
        pytester.makeini(f"[pytest]\nisoenv_keep = {ini}\n")
    pytester.makepyfile("def test_plain(): pass")  # no env needed: told all the same
    result = pytester.runpytest_subprocess(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])


@pytest.mark.parametrize(
    ("cli", "env", "ini", "expected"),
    [
        (None, None, None, "none"),
        ("failed", None, None, "failed"),
        (None, "all", None, "all"),
        (None, None, "failed", "failed"),
        (None, "all", "failed", "all"),  # the env var wins over the ini
        ("none", "all", "failed", "none"),  # the command line wins over both
        (None, "", "ALL ", "all"),  # an empty env var is unset; case and spaces do not count
    ],
)
def test_keep_setting_precedence(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    cli: str | None,
    env: str | None,
    ini: str | None,
    expected: str,
) -> None:
    monkeypatch.delenv("PYTEST_ISOENV_KEEP", raising=False)
    if env is not None:
        monkeypatch.setenv("PYTEST_ISOENV_KEEP", env)
    if ini is not None:
        pytester.makeini(f"[pytest]\nisoenv_keep = {ini}\n")
    config = pytester.parseconfigure(*([f"--isoenv-keep={cli}"] if cli else []))
    assert keep_mode(config) == expected


def test_kept_env_names_are_safe_and_bounded() -> None:
    assert env_name("tests/test_x.py::TestA::test_b[a/b c]") == "tests_test_x.py_TestA_test_b_a_b_c"
    long_one = env_name("tests/test_" + "x" * 200 + ".py::test_it[1]")
    other = env_name("tests/test_" + "x" * 201 + ".py::test_it[1]")
    assert len(long_one) == 80 and long_one != other
    assert long_one.startswith("tests_test_xxx") and long_one.endswith("xxx.py_test_it_1")


def test_a_failed_tests_report_describes_its_env(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    _ini(pytester)
    pytester.makepyfile(SUITE)
    result = pytester.runpytest_subprocess("--junitxml=out.xml")
    result.assert_outcomes(passed=1, failed=1)
    section = [
        "*- isoenv env -*",
        "env: */env-* (deleted after the test; --isoenv-keep=failed keeps it)",
        "python: cpython 3.* (*)",
        "base: *",
        "  requires: iso-a==1.0",
        "  holds: iso-a==1.0",
        "layer: *",
        "  requires: iso-b",
        "  adds: iso-b==1.0",
        "installed at run time: iso-cli",
        "  added: iso-cli==1.0",
    ]
    result.stdout.fnmatch_lines(["*THE FAILURE*", *section])
    assert result.stdout.str().count("- isoenv env -") == 1  # the passing test has none
    cases = {
        case.get("name"): case
        for case in ET.parse(pytester.path / "out.xml").iter("testcase")  # noqa: S314 - ours
    }
    assert cases["test_pass"].find("properties") is None
    (prop,) = cases["test_fail"].iter("property")
    assert prop.get("name") == "isoenv"
    value = prop.get("value", "")
    assert "  holds: iso-a==1.0" in value and "  adds: iso-b==1.0" in value
    assert "  added: iso-cli==1.0" in value


def test_a_teardown_failure_gets_the_section_and_keeps_the_env(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    _ini(pytester)
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        def broken_teardown():
            yield
            raise RuntimeError("THE TEARDOWN")

        def test_it(isoenv, broken_teardown):
            pass
        """
    )
    result = pytester.runpytest_subprocess("--isoenv-keep=failed", "--junitxml=out.xml")
    result.assert_outcomes(passed=1, errors=1)
    (kept,) = _kept(offline_env)
    result.stdout.fnmatch_lines(
        ["*- isoenv env -*", f"env: {kept} (kept: run its bin/python, or source its bin/activate)"]
    )
    assert _run(kept / "bin" / "python", "import iso_a; print(iso_a.__version__)") == "1.0"
    (prop,) = ET.parse(pytester.path / "out.xml").iter("property")  # noqa: S314 - ours
    assert str(kept) in prop.get("value", "")


def test_the_summary_counts_env_work_and_quiet_quiet_hides_it(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    _ini(pytester)
    pytester.makepyfile(SUITE)
    args = ["-p", "no:xdist", "--isoenv-keep=failed", "--isoenv-base=cache"]
    result = pytester.runpytest_subprocess(*args)
    result.stdout.fnmatch_lines(
        ["isoenv: 1 base built (*s), 1 new layer (*s), 1 install (*s), 2 derived envs"]
    )
    again = pytester.runpytest_subprocess(*args)
    again.stdout.fnmatch_lines(
        ["isoenv: 1 base reused, 1 reused layer, 1 install (*s), 2 derived envs"]
    )
    quiet = pytester.runpytest_subprocess(*args, "-qq")
    assert quiet.ret == pytest.ExitCode.TESTS_FAILED  # -qq prints no outcome line to parse
    assert not [line for line in quiet.outlines if line.startswith("isoenv:")], quiet.outlines
    assert len(_kept(offline_env)) == 3


def test_a_failure_to_keep_is_told_even_with_quiet_quiet(
    pytester: pytest.Pytester, offline_env: Path, tmp_path: Path
) -> None:
    _ini(pytester)
    refused = tmp_path / "open-to-all"
    refused.mkdir()
    refused.chmod(0o777)  # the cache dir is refused; session envs still work without it
    pytester.makepyfile("def test_fail(isoenv):\n    assert False\n")
    result = pytester.runpytest_subprocess(
        "-qq", "--isoenv-keep=failed", f"--isoenv-cache-dir={refused}"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "env: */env-* (could not keep the env of *::test_fail: refusing cache dir *)",
            "isoenv: could not keep the env of *::test_fail: refusing cache dir *world-writable*",
        ]
    )
    assert not list(refused.iterdir())


def test_keep_and_counts_under_xdist(
    pytester: pytest.Pytester, offline_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    _ini(pytester)
    pytester.makepyfile(
        SUITE
        + """
@pytest.mark.parametrize("n", range(4))
def test_more(isoenv, n):
    pass
"""
    )
    result = pytester.runpytest_subprocess("-n", "2", "--isoenv-keep=failed")
    result.assert_outcomes(passed=5, failed=1)
    result.stdout.fnmatch_lines(["created: 2/2 workers"])
    (kept,) = _kept(offline_env)
    lines = [line for line in result.outlines if line.startswith("isoenv: kept the env of")]
    assert lines == [
        f"isoenv: kept the env of test_keep_and_counts_under_xdist.py::test_fail: {kept}"
    ]
    result.stdout.fnmatch_lines(
        ["isoenv: 1 base built (*s), 1 new layer (*s), *1 install (*s), 6 derived envs"]
    )
    result.stdout.fnmatch_lines(["*- isoenv env -*", f"env: {kept} (kept: *"])
    assert _run(kept / "bin" / "python", "import iso_b; print(iso_b.__version__)") == "1.0"
    assert not list(tmpdir.glob("pytest-isoenv-*"))


def test_an_env_on_another_file_system_is_copied_links_and_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "env"
    (source / "bin").mkdir(parents=True)
    (source / "bin" / "python").symlink_to(sys.executable)
    (source / "pyvenv.cfg").write_text("home = /usr/bin\n")
    dest = tmp_path / "kept"
    dest.mkdir()

    def cross_device(src: object, dst: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "rename", cross_device)
    _keep._move(source, dest)
    assert not source.exists()
    assert os.readlink(dest / "bin" / "python") == sys.executable
    assert (dest / "pyvenv.cfg").read_text() == "home = /usr/bin\n"


def test_pruning_the_views_and_their_distributions_spares_what_a_kept_env_links(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    _ini(pytester)
    pytester.makepyfile(SUITE)
    result = pytester.runpytest_subprocess("--isoenv-base=cache", "--isoenv-keep=failed")
    result.assert_outcomes(passed=1, failed=1)
    (kept,) = _kept(offline_env)
    root = offline_env / "v2"
    # Everything but the kept env was last used 40 days ago.
    old = time.time() - 40 * 86400
    for kind in ("bases", "layers", "dists"):
        for path in (root / kind).iterdir():
            if path.name.endswith(".inuse"):
                os.utime(path, (old, old))
    prune = subprocess.run(
        [sys.executable, "-m", "pytest_isoenv", "cache", "prune", "--older-than", "30"],
        capture_output=True,
        text=True,
        check=True,
        env={**_clean_env(), "PYTEST_ISOENV_CACHE_DIR": str(offline_env)},
    )
    assert "removed base" in prune.stdout and "removed layer" in prune.stdout, prune.stdout
    assert not [p for p in (root / "bases").iterdir() if not p.name.endswith((".inuse", ".lock"))]
    code = "import iso_a, iso_b; print(iso_a.__version__, iso_b.__version__)"
    assert _run(kept / "bin" / "python", code) == "1.0 1.0"
    assert _keep.VIEW == _cache_admin.KEPT_VIEW
