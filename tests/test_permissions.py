"""As a user who is not root, shared envs cannot be changed at all: their trees are read-only."""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
from test_session_dir import _PYTHONPATH, NOBODY, SYSTEM_PYTHON, needs_root, nobody_dirs

__all__ = ["nobody_dirs"]  # the fixture, used by name below

SUITE = """
import os, subprocess
import pytest

LINKS = os.environ["UV_FIND_LINKS"]

def test_cannot_write_through_the_links(isoenv, isoenv_base):
    with pytest.raises(PermissionError):
        (isoenv_base.site_packages / "iso_a" / "__init__.py").write_text("x = 1")
    with pytest.raises(PermissionError):
        (isoenv_base.site_packages / "planted.py").write_text("x = 1")
    # uv and pip aimed at the base: refused by the file system, not only reported afterwards
    done = isoenv.run(
        "uv", "pip", "install", "--python", str(isoenv_base.python), "--offline",
        "--no-index", "--find-links", LINKS, "--reinstall", "iso-a==1.0", check=False,
    )
    assert done.returncode != 0, done.stdout
    # its own env is the test's to change
    isoenv.run("pip", "install", "--no-index", "--find-links", LINKS, "iso-b")
    assert isoenv.packages()["iso-b"] == "1.0"

def test_the_base_is_whole_afterwards(isoenv):
    out = isoenv.run("python", "-c", "import iso_a; print(iso_a.__version__)").stdout
    assert out == "1.0\\n"
"""


@needs_root
@pytest.mark.skipif(
    SYSTEM_PYTHON is None, reason="needs a Python and pytest the user nobody can run"
)
def test_an_unprivileged_user_cannot_change_a_shared_env(
    nobody_dirs: tuple[Path, Path], wheelhouse: Path
) -> None:
    project, tmpdir = nobody_dirs
    links = project / "wheels"
    links.mkdir()
    for wheel in wheelhouse.glob("*.whl"):
        shutil.copy(wheel, links)
    (project / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\nisoenv_requires = ["iso-a==1.0"]\n'
    )
    (project / "test_ro.py").write_text(textwrap.dedent(SUITE))
    subprocess.run(["chown", "-R", "nobody:nogroup", str(project)], check=True)
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PYTEST_"))}
    environ.update(
        TMPDIR=str(tmpdir),
        HOME=str(tmpdir),
        PYTHONPATH=_PYTHONPATH,
        UV_FIND_LINKS=str(links),
        UV_CACHE_DIR=str(tmpdir / "uv-cache"),
        PYTEST_ISOENV_NO_INDEX="1",
    )
    environ.pop("PYTHONDONTWRITEBYTECODE", None)  # as on users' machines
    assert SYSTEM_PYTHON is not None
    for mode in ("session", "cache"):
        done = subprocess.run(
            [
                *NOBODY,
                SYSTEM_PYTHON,
                "-m",
                "pytest",
                "-p",
                "no:cacheprovider",
                "-p",
                "no:xdist",
                "-p",
                "no:randomly",
                f"--isoenv-base={mode}",
                "test_ro.py",
            ],
            cwd=project,
            env=environ,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "2 passed" in done.stdout
