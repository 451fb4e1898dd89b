"""Suite fixtures: a local wheelhouse of tiny projects, hermetic uv settings, leak guards."""

from __future__ import annotations

import ensurepip
import os
import shutil
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from realwheels import offline_real_env, real_uv_cache, real_wheelhouse  # noqa: F401 (fixtures)
from uv import find_uv_bin

UV = str(find_uv_bin())

# name, version, dependencies, module body, console scripts
_PROJECTS = [
    ("iso-a", "1.0", [], "__version__ = '1.0'\n", {}),
    ("iso-a", "2.0", [], "__version__ = '2.0'\n", {}),
    ("iso-b", "1.0", ["iso-a<2"], "import iso_a\n__version__ = '1.0'\n", {}),
    (
        "iso-cli",
        "1.0",
        [],
        textwrap.dedent("""\
            import sys
            def main():
                try:
                    import iso_a
                    a = iso_a.__version__
                except ImportError:
                    a = "none"
                print("iso-cli 1.0", sys.prefix, "iso-a", a)
        """),
        {"iso-cli": "iso_cli:main"},
    ),
]


def write_project(
    root: Path,
    name: str,
    version: str,
    deps: list[str],
    body: str,
    scripts: dict[str, str] | None = None,
) -> Path:
    """A minimal uv_build project (uv builds these itself: no network, no backend download)."""
    module = name.replace("-", "_")
    (root / "src" / module).mkdir(parents=True, exist_ok=True)
    (root / "src" / module / "__init__.py").write_text(body)
    lines = [
        "[project]",
        f'name = "{name}"',
        f'version = "{version}"',
        f"dependencies = {deps!r}".replace("'", '"'),
    ]
    if scripts:
        lines += ["[project.scripts]"] + [f'{k} = "{v}"' for k, v in scripts.items()]
    lines += [
        "[build-system]",
        'requires = ["uv_build>=0.9,<0.14"]',
        'build-backend = "uv_build"',
    ]
    (root / "pyproject.toml").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Wheels of the tiny test projects (and pip, from ensurepip), built once per session."""
    house = tmp_path_factory.mktemp("wheelhouse")
    sources = tmp_path_factory.mktemp("sources")
    for name, version, deps, body, scripts in _PROJECTS:
        project = write_project(sources / f"{name}-{version}", name, version, deps, body, scripts)
        subprocess.run(
            [UV, "build", "--wheel", "--offline", "--quiet", "--out-dir", str(house), str(project)],
            check=True,
            capture_output=True,
        )
    bundled = Path(ensurepip.__file__).parent / "_bundled"
    for wheel in bundled.glob("pip-*.whl"):
        shutil.copy(wheel, house)
    return house


@pytest.fixture(scope="session")
def uv_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uv cache for the suite: hermetic, and warm after the first test that installs."""
    return tmp_path_factory.mktemp("uv-cache")


@pytest.fixture
def offline_env(
    monkeypatch: pytest.MonkeyPatch, wheelhouse: Path, uv_cache: Path, tmp_path: Path
) -> Path:
    """Point uv (for pytester runs) at the local wheelhouse only; returns the isoenv cache dir."""
    for name in list(os.environ):
        if name.startswith(("UV_", "PYTEST_ISOENV_")) or name in ("PYTEST_ADDOPTS",):
            monkeypatch.delenv(name)
    monkeypatch.setenv("UV_FIND_LINKS", str(wheelhouse))
    monkeypatch.setenv("UV_CACHE_DIR", str(uv_cache))
    monkeypatch.setenv("PYTEST_ISOENV_NO_INDEX", "1")
    cache_dir = tmp_path / "isoenv-cache"
    monkeypatch.setenv("PYTEST_ISOENV_CACHE_DIR", str(cache_dir))
    return cache_dir


@pytest.fixture(autouse=True)
def _no_leaks() -> Iterator[None]:
    """Fail a test that leaves os.environ or the cwd changed: an isolation plugin must be isolated."""

    def environ() -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}

    before = environ()
    cwd = os.getcwd()
    yield
    assert environ() == before, "the test leaked changes to os.environ"
    assert os.getcwd() == cwd, "the test left the working directory changed"
