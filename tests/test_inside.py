"""inside=True: the test body runs in a child process in its env, reported in the host.

Each test runs a real pytest session (a subprocess, as a user runs it) whose tests are marked
``inside=True``, and checks what the host reports: outcomes, pytest's assertion detail,
captured output, junitxml, fixtures set up in the child, crashes, timeouts, -x, Ctrl-C and
xdist.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import UV, write_project

PYPROJECT = """\
[tool.pytest.ini_options]
isoenv_requires = []
addopts = ["--strict-markers", "--strict-config"]
"""


@pytest.fixture
def project(pytester: pytest.Pytester, offline_env: Path) -> pytest.Pytester:
    pytester.makepyprojecttoml(PYPROJECT)
    return pytester


def test_the_body_imports_the_env_s_packages_not_the_host_s(
    project: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The host sees iso_a 2.0 (on its PYTHONPATH); the marker asks for iso-a 1.0.
    host_copy = tmp_path / "host-packages"
    (host_copy / "iso_a").mkdir(parents=True)
    (host_copy / "iso_a" / "__init__.py").write_text("__version__ = 'host 2.0'\n")
    monkeypatch.setenv("PYTHONPATH", str(host_copy))
    project.makepyfile(
        f"""
        import sys
        import pytest

        try:
            import iso_a  # at module level: the host imports its own copy to collect
        except ImportError:
            iso_a = None

        HOST_PREFIX = {sys.prefix!r}

        @pytest.mark.isoenv(requires=["iso-a==1.0"], inside=True)
        def test_inside():
            assert iso_a.__version__ == "1.0"
            assert sys.prefix != HOST_PREFIX
            assert not [p for p in sys.path if p.startswith(HOST_PREFIX)]
            with pytest.raises(ImportError):
                import xdist  # the host's: not here
            print("inside with pytest", pytest.__version__)

        @pytest.mark.isoenv(requires=["iso-a==1.0"])
        def test_host():
            assert iso_a.__version__ == "host 2.0"
        """
    )
    result = project.runpytest_subprocess("-rA")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([f"inside with pytest {pytest.__version__}"])


def test_failures_show_pytest_s_detail_and_captured_output(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import logging
        import sys
        import pytest

        @pytest.mark.isoenv(inside=True)
        def test_fails():
            print("printed inside")
            print("to stderr inside", file=sys.stderr)
            logging.getLogger("inside").warning("logged inside")
            assert [1, 2, 3] == [1, 2, 4]

        @pytest.mark.isoenv(inside=True)
        def test_passes():
            print("a pass prints")
        """
    )
    result = project.runpytest_subprocess(
        "-rA", "--junitxml=out.xml", "-o", "junit_logging=system-out"
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ test_fails _*",
            ">       assert [[]1, 2, 3[]] == [[]1, 2, 4[]]",
            "E       *At index 2 diff: 3 != 4*",
            "test_failures_show_pytest_s_detail_and_captured_output.py:10: AssertionError",
            "*- Captured stdout call -*",
            "printed inside",
            "*- Captured stderr call -*",
            "to stderr inside",
            "*- Captured log call -*",
            "WARNING *inside*logged inside*",
            "*PASSES*",
            "*- Captured stdout call -*",
            "a pass prints",
            "FAILED *::test_fails*",
        ]
    )
    tree = ET.parse(project.path / "out.xml")  # noqa: S314 - written by the run above
    cases = {case.get("name"): case for case in tree.iter("testcase")}
    assert cases["test_fails"].find("failure") is not None
    assert "printed inside" in (cases["test_fails"].findtext("system-out") or "")
    assert cases["test_passes"].find("failure") is None


def test_skips_and_xfails_inside(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import sys
        import pytest

        pytestmark = pytest.mark.isoenv(inside=True)

        def test_skip_call():
            pytest.skip("skipped inside")

        @pytest.mark.skipif("sys.prefix == sys.base_prefix", reason="not in a venv")
        def test_skipif_false():
            pass

        @pytest.mark.skipif(True, reason="always")
        def test_skipif_true():
            pass

        @pytest.mark.xfail(reason="known")
        def test_xfail():
            assert False

        @pytest.mark.xfail(strict=True, reason="should fail")
        def test_xpass_strict():
            pass
        """
    )
    result = project.runpytest_subprocess("-rA")
    result.assert_outcomes(passed=1, skipped=2, xfailed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ test_xpass_strict _*",
            "[[]XPASS(strict)[]] should fail",
            "SKIPPED [[]1[]] *: skipped inside",
            "SKIPPED [[]1[]] *: always",
            "XFAIL *::test_xfail - known",
            "FAILED *::test_xpass_strict*",
        ]
    )


CRASHES = """
import os, signal, time
import pytest

pytestmark = pytest.mark.isoenv(inside=True)

def test_exit():
    os._exit(3)

def test_sigkill():
    os.kill(os.getpid(), signal.SIGKILL)

def test_segfault():
    os.kill(os.getpid(), signal.SIGSEGV)

@pytest.mark.timeout(3)
def test_hangs():
    time.sleep(600)

def test_after():
    pass
"""


def test_a_crash_or_a_hang_fails_that_test_and_the_session_goes_on(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(CRASHES)
    result = project.runpytest_subprocess()
    result.assert_outcomes(passed=1, failed=4)
    result.stdout.fnmatch_lines(
        [
            "*_ test_exit _*",
            "isoenv: the child process running the test exited with status 3 before it "
            "finished (*::test_exit inside, python */bin/python)",
            "*_ test_sigkill _*",
            "isoenv: *killed by SIGKILL (exit status -9)*",
            "*_ test_segfault _*",
            "isoenv: *killed by SIGSEGV (exit status -11)*",
            "--- its output (stdout and stderr) ---",
            "Fatal Python error: Segmentation fault",
            '  File "*test_a_crash*.py", line * in test_segfault',
            "*_ test_hangs _*",
            "isoenv: Timeout (>3s): the child process running the test (pid *) was killed "
            "with its process group*",
            "--- its output (stdout and stderr; the stacks it dumped when it was stopped) ---",
            "Fatal Python error: Aborted",  # where it hung: every thread's stack
            '  File "*test_a_crash*.py", line * in test_hangs',
        ]
    )


def test_exitfirst_stops_after_a_failing_test_inside(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import pytest

        pytestmark = pytest.mark.isoenv(inside=True)

        def test_one():
            assert False

        def test_two():
            pass
        """
    )
    result = project.runpytest_subprocess("-x")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*stopping after 1 failures*"])


def test_fixtures_are_set_up_inside(project: pytest.Pytester) -> None:
    project.makeconftest(
        """
        import os, sys
        import pytest

        def pytest_addoption(parser):
            parser.addoption("--runslow", action="store_true")

        @pytest.fixture(scope="session")
        def where():
            return sys.prefix, os.getpid()
        """
    )
    project.makepyfile(
        """
        import os, sys
        import pytest

        pytestmark = pytest.mark.isoenv(inside=True)

        def test_fixtures(where, tmp_path, monkeypatch, capsys, request):
            assert where == (sys.prefix, os.getpid())
            assert sys.prefix != sys.base_prefix
            assert request.config.getoption("--runslow")
            monkeypatch.setenv("ISO_INSIDE", "1")
            (tmp_path / "f").write_text("x")
            print("captured")
            assert capsys.readouterr().out == "captured\\n"

        def test_plugin_fixture(benchmark):  # pytest-benchmark's: not in the env (nor here)
            pass

        def test_after():
            assert "ISO_INSIDE" not in os.environ
        """
    )
    result = project.runpytest_subprocess("--runslow")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*_ ERROR at setup of test_plugin_fixture _*",
            "*fixture 'benchmark' not found*",
            "*- Captured isoenv setup -*",
            "fixture 'benchmark' of test_fixtures_are_set_up_inside.py::test_plugin_fixture is "
            "not available inside its env (inside=True)*",
        ]
    )
    # The isoenv fixtures inside: a mistake seen at collection.
    project.makepyfile(
        test_host_fixture="""
        import pytest

        @pytest.mark.isoenv(inside=True)
        def test_host_fixture(isoenv):
            pass
        """
    )
    result = project.runpytest_subprocess("test_host_fixture.py")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        [
            "In test_host_fixture: invalid isoenv marker: inside=True runs the test in its env, "
            "where the isoenv fixture *"
        ]
    )


def test_host_scopes_around_a_test_inside_are_torn_down_in_order(
    project: pytest.Pytester,
) -> None:
    # An ordinary test, then one inside in the same module, then an ordinary test elsewhere:
    # the first module's scope ends before the next module's starts, as without inside.
    project.makeconftest(
        """
        import pytest

        LOG = []

        @pytest.fixture(scope="session")
        def session_log():
            yield LOG
            print("order:", ",".join(LOG))

        @pytest.fixture(scope="module")
        def module_scope(request, session_log):
            session_log.append("setup " + request.module.__name__)
            yield
            session_log.append("teardown " + request.module.__name__)
        """
    )
    project.makepyfile(
        test_b="""
        import pytest

        class TestB:
            def test_b1(self, module_scope):
                pass

            @pytest.mark.isoenv(inside=True)
            def test_b2(self):
                pass
        """,
        test_c="""
        def test_c1(module_scope):
            pass
        """,
    )
    result = project.runpytest_subprocess("-s")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        ["*order: setup test_b,teardown test_b,setup test_c,teardown test_c"]
    )


def test_the_marker_s_inside_must_be_a_bool(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import pytest

        @pytest.mark.isoenv(inside="yes")
        def test_x():
            pass
        """
    )
    result = project.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        ["*In test_x: invalid isoenv marker: inside must be True or False, got 'yes'*"]
    )


def test_xdist_workers_run_their_own_children(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import os, sys
        import pytest

        @pytest.mark.isoenv(requires=["iso-a==1.0"], inside=True)
        @pytest.mark.parametrize("n", range(4))
        def test_inside(n, tmp_path):  # a worker's basetemp: made at its first use
            import iso_a
            assert iso_a.__version__ == "1.0"
            assert "PYTEST_XDIST_WORKER" in os.environ
            (tmp_path / "x").write_text("x")
        """
    )
    # Without --basetemp (runpytest_subprocess gives one), as users run it: each worker's
    # basetemp is made when a test of the worker first uses it.
    result = project.run(sys.executable, "-m", "pytest", "-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)


def test_the_env_s_own_pytest_wins_and_one_too_old_is_a_clear_error(
    project: pytest.Pytester, tmp_path: Path
) -> None:
    fake = write_project(tmp_path / "old-pytest", "pytest", "6.0.0", [], "__version__ = '6.0.0'\n")
    wheels = tmp_path / "wheels"
    subprocess.run(
        [UV, "build", "--wheel", "--offline", "--quiet", "--out-dir", str(wheels), str(fake)],
        check=True,
        capture_output=True,
    )
    wheel = next(wheels.glob("pytest-6.0.0-*.whl"))
    project.makepyfile(
        f"""
        import pytest

        @pytest.mark.isoenv(requires=[{str(wheel)!r}], inside=True)
        def test_old():
            pass

        @pytest.mark.isoenv(inside=True)
        def test_after():
            pass
        """
    )
    result = project.runpytest_subprocess()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "isoenv: the env's own pytest 6.0.0 (*/pytest/__init__.py) is too old to run a "
            "test inside it: pytest-isoenv needs pytest >= 7.0 there*",
        ]
    )


def test_no_bytecode_is_written_into_the_project(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    helpers = project.mkpydir("helpers")
    (helpers / "only_inside.py").write_text("VALUE = 1\n")
    project.makepyfile(
        """
        import pytest

        @pytest.mark.isoenv(inside=True)
        def test_imports_a_module_of_the_project():
            from helpers import only_inside
            assert only_inside.VALUE == 1
        """
    )
    result = project.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert not list((project.path / "helpers").rglob("*.pyc"))


def _wait_for(pids: Path) -> None:
    """Until the test inside has written its line of pids (it runs)."""
    for _ in range(1200):
        if pids.exists() and pids.read_text().endswith("\n"):
            return
        time.sleep(0.05)
    pytest.fail("the test inside never started")


def test_ctrl_c_stops_the_session_and_its_children(
    project: pytest.Pytester, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    project.makepyfile(
        f"""
        import os, time
        import pytest

        pytestmark = pytest.mark.isoenv(inside=True)

        def test_hangs():
            with open({str(pids)!r}, "a") as handle:
                handle.write(str(os.getpid()) + "\\n")
            time.sleep(600)

        def test_next():
            pass
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"],
        cwd=project.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_for(pids)
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    text = out.decode()
    assert process.returncode == pytest.ExitCode.INTERRUPTED, text
    assert "KeyboardInterrupt" in text
    child = int(pids.read_text())
    assert not Path(f"/proc/{child}").exists(), "the child outlived the session"
    left = [
        pid
        for pid in os.listdir("/proc")
        if pid.isdigit() and _cwd(pid) == project.path and int(pid) != os.getpid()
    ]
    assert not left, "a child started ahead outlived the session"


def _cwd(pid: str) -> Path | None:
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None


def test_a_child_exits_when_its_host_dies(project: pytest.Pytester, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    project.makepyfile(
        f"""
        import os, time
        import pytest

        @pytest.mark.isoenv(inside=True)
        def test_hangs():
            import subprocess, sys
            started = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
            with open({str(pids)!r}, "a") as handle:
                handle.write(f"{{os.getpid()}} {{started.pid}}\\n")
            time.sleep(600)
        """
    )
    host = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"],
        cwd=project.path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_for(pids)
        host.kill()  # no cleanup of any kind in the host
        host.wait()
        # The child, and what the test started in it (its process group), are gone.
        for pid in pids.read_text().split():
            process = Path(f"/proc/{pid}")
            for _ in range(600):  # it notices the end of its command pipe at once
                if not process.exists() or "Z" in _state(process):
                    break
                time.sleep(0.05)
            else:
                pytest.fail(f"process {pid} outlived the host")
    finally:
        if host.poll() is None:
            os.killpg(host.pid, signal.SIGKILL)
            host.wait()


def _state(proc: Path) -> str:
    try:
        return (proc / "stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return "Z"


def test_warnings_inside_reach_the_host_s_summary(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import warnings
        import pytest

        class EnvOnlyWarning(UserWarning):
            pass

        @pytest.mark.isoenv(inside=True)
        def test_warns():
            warnings.warn("old api", DeprecationWarning)
            warnings.warn("from the env", EnvOnlyWarning)

        @pytest.mark.isoenv(inside=True)
        @pytest.mark.filterwarnings("error::DeprecationWarning")
        def test_warning_as_error():
            warnings.warn("now an error", DeprecationWarning)
        """
    )
    result = project.runpytest_subprocess()
    result.assert_outcomes(passed=1, failed=1, warnings=2)
    result.stdout.fnmatch_lines(
        [
            "*= warnings summary =*",
            "test_warnings_inside_reach_the_host_s_summary.py::test_warns",
            "*test_warnings_inside_reach_the_host_s_summary.py:9: DeprecationWarning: old api",
            "*test_warnings_inside_reach_the_host_s_summary.py:10: EnvOnlyWarning: from the env",
        ]
    )
    result.stdout.fnmatch_lines(["E       DeprecationWarning: now an error"])


def test_a_failed_test_s_env_is_described_and_kept(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import pytest

        @pytest.mark.isoenv(requires=["iso-a==1.0"], inside=True)
        def test_fails():
            assert False

        @pytest.mark.isoenv(inside=True)
        def test_passes():
            pass
        """
    )
    result = project.runpytest_subprocess("--isoenv-keep=failed", "--junitxml=out.xml")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*- isoenv env -*",
            "env: * (kept: run its bin/python, or source its bin/activate)",
            "layer: *",
            "  requires: iso-a==1.0",
        ]
    )
    result.stdout.fnmatch_lines(["isoenv: kept the env of *::test_fails: *"])
    kept = [line for line in result.stdout.lines if line.startswith("isoenv: kept the env of")]
    path = Path(kept[0].rpartition(": ")[2])
    done = subprocess.run(
        [str(path / "bin" / "python"), "-c", "import iso_a; print(iso_a.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout == "1.0\n"
    assert len(kept) == 1  # not the passing test's
    properties = ET.parse(project.path / "out.xml").getroot().iter("property")  # noqa: S314 - the run above wrote it
    assert any(p.get("name") == "isoenv" for p in properties)


_SLOW_BACKEND = """
import base64, hashlib, time, zipfile

def _wheel(directory):
    time.sleep(5)  # a slow build: the next test's layer is prepared while a test runs
    name = "slow_pkg-1.0-py3-none-any.whl"
    files = {
        "slow_pkg.py": "VALUE = 1\\n",
        "slow_pkg-1.0.dist-info/METADATA": "Metadata-Version: 2.1\\nName: slow-pkg\\nVersion: 1.0\\n",
        "slow_pkg-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
    }
    record = []
    with zipfile.ZipFile(f"{directory}/{name}", "w") as wheel:
        for path, text in files.items():
            wheel.writestr(path, text)
            digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
            record.append(f"{path},sha256={digest.decode()},{len(text)}")
        record.append("slow_pkg-1.0.dist-info/RECORD,,")
        wheel.writestr("slow_pkg-1.0.dist-info/RECORD", "\\n".join(record) + "\\n")
    return name

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return _wheel(wheel_directory)

def get_requires_for_build_wheel(config_settings=None):
    return []
"""


def _slow_project(slow: Path) -> None:
    """A local project whose build takes 5 s (an in-tree backend, no download)."""
    slow.mkdir()
    (slow / "backend.py").write_text(_SLOW_BACKEND)
    (slow / "pyproject.toml").write_text(
        '[project]\nname = "slow-pkg"\nversion = "1.0"\n'
        '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n'
    )


def test_preparing_the_next_test_is_not_this_test_s_time(project: pytest.Pytester) -> None:
    """The next test's layer is built while this test runs: not counted in its timeout."""
    _slow_project(project.path / "slow")
    project.makepyfile(
        """
        import time
        import pytest

        @pytest.mark.timeout(4)
        @pytest.mark.isoenv(inside=True)
        def test_first():
            time.sleep(1)

        @pytest.mark.isoenv(requires=["./slow"], inside=True)
        def test_second():
            import slow_pkg
            assert slow_pkg.VALUE == 1
        """
    )
    project.runpytest_subprocess().assert_outcomes(passed=2)


def test_setup_plan_runs_no_test_inside(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import pytest

        @pytest.mark.isoenv(inside=True)
        def test_writes(tmp_path):
            open("written.txt", "w").write("the test ran")
            assert False
        """
    )
    for option in ("--setup-plan", "--setup-only"):
        result = project.runpytest_subprocess(option)
        assert result.ret == pytest.ExitCode.OK, option
        assert not (project.path / "written.txt").exists()


def test_override_ini_reaches_the_child(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import pytest

        @pytest.mark.xfail
        @pytest.mark.isoenv(inside=True)
        def test_passes_unexpectedly():
            pass
        """
    )
    project.runpytest_subprocess("-o", "xfail_strict=true").assert_outcomes(failed=1)
    project.runpytest_subprocess().assert_outcomes(xpassed=1)


def test_tmp_path_inside_is_under_the_session_s_basetemp(project: pytest.Pytester) -> None:
    """Not a numbered pytest-N of each child's own: pytest would delete older ones."""
    project.makepyfile(
        """
        import pytest

        @pytest.mark.isoenv(inside=True)
        def test_one(tmp_path):
            print("TMP", tmp_path)
            assert False
        """
    )
    basetemp = project.path / "basetemp"
    result = project.runpytest_subprocess(f"--basetemp={basetemp}")
    result.assert_outcomes(failed=1)
    line = next(line for line in result.stdout.lines if line.startswith("TMP "))
    tmp = Path(line.split()[1])
    assert basetemp in tmp.parents
    assert tmp.is_dir()  # kept after the session, as pytest keeps a failed test's
    # Without --basetemp (as users run it): in the session's own numbered directory.
    result = project.run(sys.executable, "-m", "pytest", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    line = next(line for line in result.stdout.lines if line.startswith("TMP "))
    tmp = Path(line.split()[1])
    assert tmp.parent.name.startswith("inside-"), tmp
    assert tmp.parent.parent.name.startswith("pytest-"), tmp


def test_pdb_says_it_does_not_stop_inside(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import pytest

        @pytest.mark.isoenv(inside=True)
        def test_one():
            pass
        """
    )
    result = project.runpytest_subprocess("--pdb")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*IsoenvWarning: --pdb does not stop in inside=True tests*"])


def test_pytest_rerunfailures_reruns_a_test_inside(
    project: pytest.Pytester, tmp_path: Path
) -> None:
    counter = tmp_path / "counter"
    project.makepyfile(
        f"""
        import pytest

        def bump(name):
            path = {str(counter)!r} + name
            try:
                count = int(open(path).read()) + 1
            except FileNotFoundError:
                count = 1
            open(path, "w").write(str(count))
            return count

        @pytest.mark.isoenv(inside=True)
        def test_flaky():
            assert bump("a") >= 3

        @pytest.mark.isoenv(inside=True)
        @pytest.mark.flaky(reruns=1)
        def test_flaky_mark():
            assert bump("b") >= 2

        @pytest.mark.isoenv(inside=True)
        def test_fails():
            assert bump("c") >= 9
        """
    )
    result = project.runpytest_subprocess("--reruns", "2")
    outcomes = result.parseoutcomes()
    assert (outcomes["passed"], outcomes["failed"], outcomes["rerun"]) == (2, 1, 5)
    assert (tmp_path / "countera").read_text() == "3"
    assert (tmp_path / "counterb").read_text() == "2"
    assert (tmp_path / "counterc").read_text() == "3"


def test_pytest_exit_and_keyboard_interrupt_inside_stop_the_session(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(
        test_exit="""
        import pytest

        @pytest.mark.isoenv(inside=True)
        def test_exit():
            pytest.exit("stop everything", returncode=3)

        @pytest.mark.isoenv(inside=True)
        def test_after():
            pass
        """,
        test_interrupt="""
        import pytest

        @pytest.mark.isoenv(inside=True)
        def test_interrupt():
            raise KeyboardInterrupt

        @pytest.mark.isoenv(inside=True)
        def test_after():
            pass
        """,
    )
    result = project.runpytest_subprocess("test_exit.py")
    assert result.ret == 3
    result.stdout.fnmatch_lines(["*!! _pytest.outcomes.Exit: stop everything !!*"])
    assert "test_after" not in result.stdout.str()
    result = project.runpytest_subprocess("test_interrupt.py")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*!! KeyboardInterrupt !!*"])


def test_layers_are_built_before_the_test_loop_outside_timeouts(
    project: pytest.Pytester,
) -> None:
    """A first, slow layer build (5 s here) is not charged to a test's 3 s timeout."""
    _slow_project(project.path / "slow")
    project.makepyfile(
        """
        import pytest

        @pytest.mark.timeout(3)
        @pytest.mark.isoenv(requires=["./slow"])
        def test_in_the_host(isoenv):
            assert isoenv.run("python", "-c", "import slow_pkg").returncode == 0
        """
    )
    project.runpytest_subprocess().assert_outcomes(passed=1)


def test_pytest_exit_in_a_fixture_inside_stops_the_session(project: pytest.Pytester) -> None:
    project.makeconftest(
        """
        import pytest

        @pytest.fixture
        def database():
            pytest.exit("no database", returncode=3)
        """
    )
    project.makepyfile(
        """
        import pytest

        @pytest.mark.isoenv(inside=True)
        def test_needs_it(database):
            pass
        """
    )
    result = project.runpytest_subprocess()
    assert result.ret == 3
    result.stdout.fnmatch_lines(["*!! _pytest.outcomes.Exit: no database !!*"])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


def test_the_plugin_s_own_warnings_are_never_errors(project: pytest.Pytester) -> None:
    """--pdb's note is a warning even under filterwarnings = error (and -p no:debugging)."""
    project.makeini("[pytest]\nfilterwarnings = error\n")
    project.makepyfile(
        """
        import pytest

        @pytest.mark.isoenv(inside=True)
        def test_one():
            pass
        """
    )
    result = project.runpytest_subprocess("--pdb")
    result.assert_outcomes(passed=1, warnings=1)
    project.runpytest_subprocess("-p", "no:debugging", "-p", "no:setuponly").assert_outcomes(
        passed=1
    )


def test_only_rerun_patterns_apply_inside(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import pytest

        @pytest.mark.isoenv(inside=True)
        def test_value_error():
            raise ValueError("not an assertion")

        @pytest.mark.isoenv(inside=True)
        def test_assertion():
            assert False
        """
    )
    result = project.runpytest_subprocess("--reruns", "2", "--only-rerun", "AssertionError")
    outcomes = result.parseoutcomes()
    assert (outcomes["failed"], outcomes["rerun"]) == (2, 2)  # test_assertion's only
