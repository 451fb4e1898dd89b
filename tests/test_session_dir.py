"""Session directories: owned through a file lock, made at first need, deleted whatever they hold.

A run deletes the session directories of killed runs; a live run's directory is never
deleted, even when that run is in another PID namespace (a container or sandbox sharing the
temporary directory), where its process id means nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_isoenv._session_dir import LOCK, _host

needs_root = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0,
    reason="needs root: a new PID namespace, and setpriv to another user",
)
NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def _session_dirs(tmpdir: Path) -> list[Path]:
    return sorted(tmpdir.glob("pytest-isoenv-*"))


def _wait_for(path: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while not path.exists():
        assert proc.poll() is None, "the run ended before its test started"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def _free_pid() -> int:
    """A process id no process of this namespace has (nor the one after it)."""
    for pid in range(30000, 1000, -7):
        if not os.path.exists(f"/proc/{pid}") and not os.path.exists(f"/proc/{pid + 1}"):
            return pid
    raise AssertionError("no free pid")


@needs_root
@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare(1)")
def test_a_live_run_in_another_pid_namespace_keeps_its_session_dir(
    pytester: pytest.Pytester, offline_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    started, release = tmp_path / "started", tmp_path / "release"
    pytester.makepyfile(
        test_holder=f"""
        import os, time
        from pathlib import Path

        def test_hold(isoenv):
            Path({str(started)!r}).write_text(str(os.getpid()))
            deadline = time.monotonic() + 120
            while not Path({str(release)!r}).exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert isoenv.path.is_dir(), "the env was deleted under the running test"
        """,
        test_other="def test_other(isoenv): pass",
    )
    # In a new PID namespace whose next pid is one this namespace does not have: the pid in
    # the holder's session dir name names no process here.
    pid = _free_pid()
    script = (
        f"echo {pid} > /proc/sys/kernel/ns_last_pid && "
        f"{sys.executable} -m pytest -p no:cacheprovider -p no:xdist test_holder.py"
    )
    holder = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", script],
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for(started, holder)
        (held,) = _session_dirs(tmpdir)
        assert f"-{started.read_text()}-" in held.name
        assert not os.path.exists(f"/proc/{started.read_text()}")
        result = pytester.runpytest_subprocess("-p", "no:xdist", "test_other.py")
        result.assert_outcomes(passed=1)
        assert held.is_dir(), "a live run's session dir was deleted"
    finally:
        release.touch()
        out, _ = holder.communicate(timeout=120)
    assert holder.returncode == 0, out.decode()
    assert not _session_dirs(tmpdir)


@pytest.fixture
def nobody_dirs() -> Iterator[tuple[Path, Path]]:
    """A project dir and a TMPDIR that the user nobody owns, outside root's private dirs."""
    top = Path(tempfile.mkdtemp(prefix="isoenv-nobody-", dir="/tmp"))
    top.chmod(0o755)
    project, tmpdir = top / "project", top / "tmp"
    for path in (project, tmpdir):
        path.mkdir()
        os.chown(path, 65534, 65534)
    yield project, tmpdir
    subprocess.run(["chmod", "-R", "u+rwx", str(top)], check=False)
    shutil.rmtree(top)


# pytest and the plugin from this venv, run by an interpreter nobody can reach (ours may live in
# root's home); the venv must be readable by nobody (tox's are not)
_PYTHONPATH = os.pathsep.join(sys.path[1:])


def _system_python() -> str | None:
    """A Python of this version that the user nobody can run (ours may be in root's home)."""
    for directory in ("/usr/local/bin", "/usr/bin", "/bin"):
        python = os.path.join(directory, f"python{sys.version_info[0]}.{sys.version_info[1]}")
        if os.path.isfile(python):
            environ = {**os.environ, "PYTHONPATH": _PYTHONPATH}
            done = subprocess.run(
                [*NOBODY, python, "-c", "import pytest, pytest_isoenv.plugin"],
                capture_output=True,
                env=environ,
                check=False,
            )
            if done.returncode == 0:
                return python
    return None


SYSTEM_PYTHON = _system_python() if hasattr(os, "geteuid") and os.geteuid() == 0 else None


def _as_nobody(project: Path, tmpdir: Path, test_file: str) -> subprocess.CompletedProcess[str]:
    assert SYSTEM_PYTHON is not None
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PYTEST_"))}
    environ.update(TMPDIR=str(tmpdir), HOME=str(tmpdir), PYTHONPATH=_PYTHONPATH)
    environ.pop("PYTHONDONTWRITEBYTECODE", None)  # as on users' machines
    return subprocess.run(
        [
            *NOBODY,
            SYSTEM_PYTHON,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            test_file,
        ],
        cwd=project,
        env=environ,
        capture_output=True,
        text=True,
        check=False,
    )


@needs_root
@pytest.mark.skipif(
    SYSTEM_PYTHON is None, reason="needs a Python and pytest the user nobody can run"
)
def test_read_only_trees_are_deleted_by_an_unprivileged_user(
    nobody_dirs: tuple[Path, Path],
) -> None:
    project, tmpdir = nobody_dirs
    lock_down = textwrap.dedent(
        """
        import os, signal

        def lock_down(root):
            for directory, dirnames, _ in os.walk(root, topdown=False):
                os.chmod(directory, 0o500)
        """
    )
    (project / "test_killed.py").write_text(
        lock_down
        + textwrap.dedent(
            """
            def test_killed(isoenv):
                (isoenv.path / "sealed").mkdir(mode=0)
                lock_down(str(isoenv.path))
                os.chmod(isoenv.path.parent, 0o500)  # the directory of this process's envs too
                os.kill(os.getpid(), signal.SIGKILL)
            """
        )
    )
    (project / "test_normal.py").write_text(
        lock_down
        + textwrap.dedent(
            """
            def test_read_only_env(isoenv):
                (isoenv.path / "sealed").mkdir(mode=0)
                lock_down(str(isoenv.path))
            """
        )
    )
    killed = _as_nobody(project, tmpdir, "test_killed.py")
    assert killed.returncode == -9, killed.stdout + killed.stderr
    (left,) = _session_dirs(tmpdir)
    assert list(left.glob("derived/*/env-*/sealed")), "nothing read-only was left to delete"
    normal = _as_nobody(project, tmpdir, "test_normal.py")
    assert normal.returncode == 0, normal.stdout + normal.stderr
    assert not _session_dirs(tmpdir), "a read-only tree was left behind"


def test_a_session_without_env_tests_leaves_other_session_dirs_alone(
    pytester: pytest.Pytester, offline_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    abandoned = tmpdir / f"pytest-isoenv-{_host()}-999999-0123456789ab"
    (abandoned / "derived").mkdir(parents=True)
    (abandoned / LOCK).touch()  # nobody holds it: its run was killed
    pytester.makepyfile(test_plain="def test_plain(): pass", test_env="def test_env(isoenv): pass")
    pytester.runpytest_subprocess("-p", "no:xdist", "test_plain.py").assert_outcomes(passed=1)
    assert _session_dirs(tmpdir) == [abandoned], "a session without env tests touched session dirs"
    pytester.runpytest_subprocess("-p", "no:xdist", "test_env.py").assert_outcomes(passed=1)
    assert not _session_dirs(tmpdir), "the abandoned session dir was not removed"
