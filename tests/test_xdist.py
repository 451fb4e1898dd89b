"""The same suite with and without pytest-xdist: one base build, every worker uses it."""

from __future__ import annotations

from pathlib import Path

import pytest

SUITE = """
import pytest

@pytest.mark.parametrize("n", range(4))
def test_plain(isoenv, n):
    assert isoenv.run("python", "-c", "import iso_a; print(iso_a.__version__)").stdout == "1.0\\n"

@pytest.mark.parametrize("n", range(4))
@pytest.mark.isoenv(requires=["iso-a==2.0"])
def test_layer(isoenv, n):
    assert isoenv.run("python", "-c", "import iso_a; print(iso_a.__version__)").stdout == "2.0\\n"
"""


@pytest.mark.parametrize("workers", [None, "2"], ids=["no-xdist", "n2"])
@pytest.mark.parametrize("base", ["session", "cache"])
def test_suite_runs_with_and_without_xdist(
    pytester: pytest.Pytester,
    offline_env: Path,
    workers: str | None,
    base: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\nisoenv_requires = ["iso-a==1.0"]\n')
    pytester.makepyfile(SUITE)
    args = [f"--isoenv-base={base}", "-v"] + (["-n", workers] if workers else ["-p", "no:xdist"])
    result = pytester.runpytest_subprocess(*args)
    result.assert_outcomes(passed=8)
    base_lines = [line for line in result.outlines if line.startswith("isoenv: base")]
    assert len(base_lines) == 1 and "base built" in base_lines[0], result.outlines
    layer_builds = [line for line in result.outlines if "layer built" in line]
    assert len(layer_builds) == 1, "the layer must be built once, not per test or per worker"
    if workers:
        result.stdout.fnmatch_lines(["*gw0*", "*gw1*"])
    assert not list(tmpdir.glob("pytest-isoenv-*")), "envs leaked past the session"
