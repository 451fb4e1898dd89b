"""Running uv: its version is checked, its errors are clean and secret-free, it dies with its test."""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_isoenv import _uv
from pytest_isoenv._errors import IsoenvError
from pytest_isoenv._uv import UV_FLOOR, Uv, _without_noise, check_uv_version


def _ini(pytester: pytest.Pytester, *requires: str) -> None:
    quoted = ", ".join(f"'{r}'" for r in requires)
    pytester.makepyprojecttoml(f"[tool.pytest.ini_options]\nisoenv_requires = [{quoted}]\n")


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- 4. credentials in requirement URLs ----------------------------------------------------------


def test_a_failing_install_shows_no_credentials(
    pytester: pytest.Pytester, offline_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = _unused_port()  # nothing listens: uv fails fast, connection refused
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")
    url = f"https://user:sekrit-token@127.0.0.1:{port}/iso_zz-1.0-py3-none-any.whl"
    git = f"git+https://sekrit-token@127.0.0.1:{port}/o/r.git"
    pytester.makepyfile(
        f"""
        from pathlib import Path
        import pytest

        @pytest.mark.isoenv(requires=["iso-zz @ {url}"])
        def test_wheel_url(isoenv):
            pass

        @pytest.mark.isoenv(requires=["{git}"])
        def test_git_url(isoenv):
            pass

        def test_run_time(isoenv):
            isoenv.install(Path("url.txt").read_text())  # the token is not in the source
        """
    )
    (pytester.path / "url.txt").write_text(url)
    result = pytester.runpytest_subprocess("-v", "-rA")
    result.assert_outcomes(errors=2, failed=1)
    output = "\n".join(result.outlines + result.errlines)
    assert "sekrit" not in output
    result.stdout.fnmatch_lines(
        [
            f"*could not install iso-zz* https://user:****@127.0.0.1:{port}/iso_zz-1.0*",
            f"*could not install git+https://****@127.0.0.1:{port}/o/r.git*",
        ],
        consecutive=False,
    )


@pytest.fixture
def wheel_server(wheelhouse: Path) -> Iterator[str]:
    """The wheelhouse over HTTP on 127.0.0.1 (credentials in URLs are accepted, and ignored)."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(wheelhouse))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_credentials_stay_out_of_lines_and_manifests(
    pytester: pytest.Pytester,
    offline_env: Path,
    wheel_server: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    url = wheel_server.replace("://", "://ci:sekrit-token@") + "/iso_a-1.0-py3-none-any.whl"
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.isoenv(requires=["iso-a @ {url}"])
        def test_layer(isoenv):
            isoenv.run("python", "-c", "import iso_a")

        def test_run_time(isoenv):
            isoenv.install("iso-a @ {url}")
            assert all("sekrit" not in line for line in isoenv.installed)
        """
    )
    result = pytester.runpytest_subprocess("--isoenv-base=cache", "-v")
    result.assert_outcomes(passed=2)
    output = "\n".join(result.outlines + result.errlines)
    assert "sekrit" not in output
    result.stdout.fnmatch_lines(["*layer built*iso-a @ http://ci:****@127.0.0.1*"])
    written = [p for p in offline_env.rglob("*") if p.is_file() and p.suffix in (".json", ".txt")]
    assert written, "no manifest was found to check"
    for path in written:
        assert "sekrit" not in path.read_text(errors="replace"), path


# -- 5. the uv floor -----------------------------------------------------------------------------


def _fake_uv(directory: Path, version: str) -> Path:
    """A ``uv`` that says it is ``version`` and, like an old uv, rejects newer options."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "uv"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> "{directory}/calls.log"\n'
        f'if [ "$1" = "--version" ]; then echo "uv {version} (0123abcd 2024-11-01)"; exit 0; fi\n'
        "echo \"error: unexpected argument '--output-format' found\" >&2\n"
        "exit 2\n"
    )
    script.chmod(0o755)
    return script


def test_an_old_uv_is_refused_with_its_version_path_and_the_floor(
    pytester: pytest.Pytester, offline_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = _fake_uv(tmp_path / "old-uv", "0.5.31")
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    # the session has no 'uv' package: the uv found is the one on PATH
    pytester.makeconftest("import sys\nsys.modules['uv'] = None\n")
    _ini(pytester, "iso-a")
    pytester.makepyfile("def test_a(isoenv):\n    pass\n\ndef test_b(isoenv):\n    pass\n")
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [f"*uv 0.5.31 (at {fake}) is too old: pytest-isoenv needs uv >= {UV_FLOOR}*"]
    )
    versions = (fake.parent / "calls.log").read_text().splitlines().count("--version")
    assert versions == 1, "uv's version is checked once per process"


@pytest.mark.parametrize(("version", "ok"), [("0.12.17", False), (UV_FLOOR, True), ("1.0.0", True)])
def test_check_uv_version(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, version: str, ok: bool
) -> None:
    monkeypatch.setattr(_uv, "_CHECKED", {})
    fake = _fake_uv(tmp_path, version)
    if ok:
        check_uv_version(str(fake))
    else:
        with pytest.raises(IsoenvError, match=rf"uv {version} \(at {fake}\) is too old"):
            check_uv_version(str(fake))


def test_the_uv_package_meets_the_floor() -> None:
    Uv(cwd=Path.cwd(), no_index=True, refresh=False)  # the one this suite installs


# -- 6. uv's interpreter lines are not errors ----------------------------------------------------


def test_uv_interpreter_lines_are_left_out_of_errors(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    _ini(pytester, "iso-zz")  # not in the wheelhouse
    pytester.makepyfile("def test_a(isoenv):\n    pass\n")
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*could not install iso-zz*", "*iso-zz*"])
    assert not [line for line in result.outlines if " interpreter at: " in line]
    assert not [line for line in result.outlines if " environment at: " in line]


def test_without_noise() -> None:
    output = "\n".join(
        [
            "Using CPython 3.12.3 interpreter at: /usr/bin/python3.12",
            "Using Python 3.11.7 environment at: /tmp/env",
            "Using PyPy 3.10.14 interpreter at: /opt/pypy/bin/pypy3",
            "  x No solution found when resolving dependencies:",
            "Using Python 3.11 is what the project says",
        ]
    )
    assert _without_noise(output).splitlines() == [
        "x No solution found when resolving dependencies:",
        "Using Python 3.11 is what the project says",
    ]


# -- 7. uv and its build backends die with their test --------------------------------------------

# A build backend that notes its pid, then sleeps: an install that never ends by itself.
SLEEPING_BACKEND = """\
import os, time
with open({pidfile!r} + ".tmp", "w") as handle:
    handle.write(str(os.getpid()))
os.replace({pidfile!r} + ".tmp", {pidfile!r})
time.sleep(600)
"""


def _sleeping_project(root: Path, pidfile: Path) -> Path:
    root.mkdir()
    (root / "backend.py").write_text(SLEEPING_BACKEND.format(pidfile=str(pidfile)))
    (root / "pyproject.toml").write_text(
        '[project]\nname = "iso-sleep"\nversion = "1.0"\n'
        '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n'
    )
    return root


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has stopped running


def _processes_naming(text: str) -> list[int]:
    """The running processes whose command line contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and _running(int(entry.name)):
            found.append(int(entry.name))
    return found


@pytest.fixture
def sleeping(pytester: pytest.Pytester) -> Iterator[tuple[Path, Path]]:
    """A project whose build never ends, and the file its backend writes its pid to."""
    pidfile = pytester.path / "backend.pid"
    project = _sleeping_project(pytester.path / "sleeping-project", pidfile)
    yield project, pidfile
    # whatever the outcome, nothing of this test may outlive it
    pids = _processes_naming(str(project))
    if pidfile.exists():
        pids.append(int(pidfile.read_text()))
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


_needs_proc = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="looks for processes in /proc"
)


@_needs_proc
@pytest.mark.parametrize("where", ["base", "layer", "run-time"])
def test_an_interrupted_test_leaves_no_build_running(
    pytester: pytest.Pytester, offline_env: Path, sleeping: tuple[Path, Path], where: str
) -> None:
    project, pidfile = sleeping
    _ini(pytester, *(["./sleeping-project"] if where == "base" else []))
    marker = '@pytest.mark.isoenv(requires=["./sleeping-project"])' if where == "layer" else ""
    action = 'isoenv.install("./sleeping-project")' if where == "run-time" else "pass"
    # What pytest-timeout's signal method does: an exception raised by a SIGALRM handler in
    # the middle of the test; here as soon as the build backend runs. Set up at import, before
    # the plugin's fixtures build the base or the layer.
    pytester.makepyfile(
        f"""
        import os, signal, threading, time
        import pytest

        class Timeout(Exception):
            pass

        def _alarm(signum, frame):
            raise Timeout("Timeout >1s")

        def _fire():
            while not os.path.exists({str(pidfile)!r}):
                time.sleep(0.02)
            os.kill(os.getpid(), signal.SIGALRM)

        signal.signal(signal.SIGALRM, _alarm)
        threading.Thread(target=_fire, daemon=True).start()

        {marker}
        def test_it(isoenv):
            {action}
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:xdist", timeout=300)
    if where in ("base", "layer"):
        # The base and the layers are built before the test loop (outside any test's
        # timeout): an exception there ends the session.
        assert result.ret != 0
    else:
        outcome = result.parseoutcomes()
        assert outcome.get("failed", 0) + outcome.get("errors", 0) == 1, result.outlines
    result.stdout.fnmatch_lines(["*Timeout*"])
    assert pidfile.exists(), "the build backend never ran"
    assert not _running(int(pidfile.read_text())), "the build backend outlived its test"
    assert not _processes_naming(str(project)), "uv outlived its test"


@_needs_proc
def test_a_killed_pytest_leaves_no_build_running(
    pytester: pytest.Pytester, offline_env: Path, sleeping: tuple[Path, Path]
) -> None:
    project, pidfile = sleeping
    _ini(pytester, "./sleeping-project")
    pytester.makepyfile("def test_it(isoenv):\n    pass\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist"],
        cwd=pytester.path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not pidfile.exists():
            assert proc.poll() is None, "pytest ended before the build began"
            assert time.monotonic() < deadline, "the build never began"
            time.sleep(0.02)
        proc.kill()  # SIGKILL: pytest cannot clean up anything itself
    finally:
        proc.kill()
        proc.wait()
    backend = int(pidfile.read_text())
    # the watchdog stops the group at once; wait for the kernel, generously
    deadline = time.monotonic() + 60
    while (_running(backend) or _processes_naming(str(project))) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(backend), "the build backend outlived the killed pytest"
    assert not _processes_naming(str(project)), "uv outlived the killed pytest"
