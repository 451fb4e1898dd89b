"""The rdkit story against the real package index (PyPI): marked ``network``.

Deselect with ``-m "not network"`` on a machine without access to the index.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.network


@pytest.fixture
def online_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The user's own uv settings (default index, default uv cache), a private isoenv cache."""
    monkeypatch.delenv("PYTEST_ISOENV_NO_INDEX", raising=False)
    monkeypatch.delenv("UV_OFFLINE", raising=False)
    cache_dir = tmp_path / "isoenv-cache"
    monkeypatch.setenv("PYTEST_ISOENV_CACHE_DIR", str(cache_dir))
    return cache_dir


def test_rdkit_layer_is_installed_once_and_shared(
    pytester: pytest.Pytester, online_env: Path
) -> None:
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\nisoenv_requires = ["six"]\n')
    pytester.makepyfile(
        """
        import pytest

        ATOMS = "from rdkit import Chem; print(Chem.MolFromSmiles('CC').GetNumAtoms())"

        @pytest.mark.isoenv(requires=["rdkit"])
        @pytest.mark.parametrize("n", range(3))
        def test_molecule(isoenv, n):
            assert isoenv.run("python", "-c", ATOMS).stdout.strip() == "2"
            assert "rdkit" in isoenv.layer.packages
            assert "rdkit" not in isoenv.base.packages

        def test_base_has_no_rdkit(isoenv):
            assert isoenv.run("python", "-c", "import six, rdkit", check=False).returncode == 1
        """
    )
    first = pytester.runpytest_subprocess("--isoenv-base=cache", "-v")
    first.assert_outcomes(passed=4)
    assert len([line for line in first.outlines if "layer built" in line]) == 1
    second = pytester.runpytest_subprocess("--isoenv-base=cache", "-v")
    second.assert_outcomes(passed=4)
    second.stdout.fnmatch_lines(["isoenv: base reused*", "*layer reused*rdkit*"])


def test_a_package_that_does_not_exist_on_the_index(
    pytester: pytest.Pytester, online_env: Path
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.isoenv(requires=["pytest-isoenv-no-such-package-zz"])
        def test_missing():
            pass

        def test_fine(isoenv):
            isoenv.run("python", "-c", "pass")
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*pytest-isoenv-no-such-package-zz was not found in the package registry*"]
    )
