"""The derived env a test gets: what it sees, what it can change, and that it goes away."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_isoenv._link import link_line


def _ini(pytester: pytest.Pytester, *requires: str, extra: str = "") -> None:
    lines = ", ".join(f'"{r}"' for r in requires)
    pytester.makepyprojecttoml(f"[tool.pytest.ini_options]\nisoenv_requires = [{lines}]\n{extra}")


def test_derived_env_is_a_venv_over_the_base(pytester: pytest.Pytester, offline_env: Path) -> None:
    _ini(pytester, "iso-a==1.0")
    pytester.makepyfile(
        """
        import json, os, sys

        def test_env(isoenv, isoenv_base):
            code = "import iso_a, sys, json; print(json.dumps([iso_a.__file__, sys.prefix, sys.base_prefix]))"
            module, prefix, base_prefix = json.loads(isoenv.run("python", "-c", code).stdout)
            assert prefix == str(isoenv.path)
            assert base_prefix != prefix
            assert module.startswith(str(isoenv_base.path))
            assert (isoenv.path / "pyvenv.cfg").is_file()
            assert isoenv.python == isoenv.bin / "python"
            assert isoenv.python.exists()
            assert isoenv.site_packages.is_dir()
            assert isoenv.packages()["iso-a"] == "1.0"
            assert isoenv_base.packages == {"iso-a": "1.0"}
            assert isoenv_base.requirements == ("iso-a==1.0",)
            assert (isoenv_base.python).exists()
        """
    )
    pytester.runpytest_subprocess().assert_outcomes(passed=1)


def test_env_dict_is_clean_and_points_at_the_env(
    pytester: pytest.Pytester, offline_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", "/host/leak")
    monkeypatch.setenv("PYTHONUSERBASE", "/host/userbase")
    _ini(pytester)
    pytester.makepyfile(
        """
        import os, sys

        def test_env(isoenv):
            env = isoenv.env
            assert env["VIRTUAL_ENV"] == str(isoenv.path)
            assert env["PATH"].split(os.pathsep)[0] == str(isoenv.bin)
            assert "PYTHONPATH" not in env and "PYTHONHOME" not in env
            assert env["PYTHONNOUSERSITE"] == "1"
            out = isoenv.run("python", "-c", "import site, sys; print(site.ENABLE_USER_SITE, sys.path)")
            assert out.stdout.startswith("False")
            assert "/host/leak" not in out.stdout
            # the env is active for the test's own subprocesses too, and restored afterwards
            assert os.environ["VIRTUAL_ENV"] == str(isoenv.path)
            assert "PYTHONPATH" not in os.environ

        def test_after():
            assert "VIRTUAL_ENV" not in os.environ or "pytest-isoenv" not in os.environ["VIRTUAL_ENV"]
            assert os.environ["PYTHONPATH"].endswith("/host/leak")
        """
    )
    pytester.runpytest_subprocess("-p", "no:randomly").assert_outcomes(passed=2)


def test_run_resolves_commands_in_the_env_and_reports_failures(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    _ini(pytester, "iso-cli")
    pytester.makepyfile(
        """
        import pytest, subprocess
        from pytest_isoenv import RunError

        def test_run(isoenv):
            assert isoenv.which("iso-cli") == str(isoenv.bin / "iso-cli")
            done = isoenv.run("python", "-c", "import sys; sys.exit(3)", check=False)
            assert done.returncode == 3
            with pytest.raises(RunError, match="boom"):
                isoenv.run("python", "-c", "import sys; print('boom', file=sys.stderr); sys.exit(1)")
            assert isinstance(RunError(1, ["x"]), subprocess.CalledProcessError)
            out = isoenv.run("python", "-c", "import os; print(os.environ['EXTRA'])", env={"EXTRA": "yes"})
            assert out.stdout == "yes\\n"
        """
    )
    pytester.runpytest_subprocess().assert_outcomes(passed=1)


def test_console_scripts_of_the_base_run_with_the_derived_python(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    _ini(pytester, "iso-cli", "iso-a==1.0")
    pytester.makepyfile(
        """
        import pytest

        def test_plain(isoenv):
            out = isoenv.run("iso-cli").stdout.split()
            assert out == ["iso-cli", "1.0", str(isoenv.path), "iso-a", "1.0"]

        @pytest.mark.isoenv(requires=["iso-a==2.0"])
        def test_sees_the_tests_extras(isoenv):
            out = isoenv.run("iso-cli").stdout.split()
            assert out == ["iso-cli", "1.0", str(isoenv.path), "iso-a", "2.0"]
        """
    )
    pytester.runpytest_subprocess("--isoenv-base=cache").assert_outcomes(passed=2)


def test_marker_extras_shadow_the_base_and_stay_in_the_test(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    _ini(pytester, "iso-a==1.0")
    pytester.makepyfile(
        """
        import pytest

        VERSION = "import iso_a; print(iso_a.__version__)"

        def test_first(isoenv):
            assert isoenv.run("python", "-c", VERSION).stdout.strip() == "1.0"

        @pytest.mark.isoenv(requires=["iso-a==2.0"])
        def test_pinned(isoenv):
            assert isoenv.run("python", "-c", VERSION).stdout.strip() == "2.0"
            assert isoenv.layer is not None and isoenv.layer.packages == {"iso-a": "2.0"}

        def test_last(isoenv, isoenv_base):
            assert isoenv.run("python", "-c", VERSION).stdout.strip() == "1.0"
            assert isoenv_base.packages == {"iso-a": "1.0"}
        """
    )
    pytester.runpytest_subprocess("-p", "no:randomly").assert_outcomes(passed=3)


def test_install_adds_only_what_the_base_lacks_to_this_env_only(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    _ini(pytester, "iso-a==1.0")
    pytester.makepyfile(
        """
        VERSION = "import iso_a; print(iso_a.__version__)"

        def test_install_dependent(isoenv, isoenv_base):
            assert isoenv.install("iso-b") == ["iso-b==1.0"]
            assert sorted(p.name for p in isoenv.site_packages.iterdir() if p.name.endswith(".dist-info")) == ["iso_b-1.0.dist-info"]
            isoenv.run("python", "-c", "import iso_b")
            assert isoenv.installed == ("iso-b",)

        def test_install_other_version(isoenv):
            assert isoenv.install("iso-a==2.0") == ["iso-a==2.0"]
            assert isoenv.run("python", "-c", VERSION).stdout.strip() == "2.0"

        def test_base_untouched(isoenv, isoenv_base):
            assert isoenv.run("python", "-c", VERSION).stdout.strip() == "1.0"
            assert isoenv_base.packages == {"iso-a": "1.0"}
            assert isoenv.run("python", "-c", "import iso_b", check=False).returncode == 1
        """
    )
    pytester.runpytest_subprocess("-p", "no:randomly").assert_outcomes(passed=3)


def test_pip_and_uv_inside_a_derived_env_change_only_that_env(
    pytester: pytest.Pytester, offline_env: Path, wheelhouse: Path
) -> None:
    _ini(pytester, "iso-a==1.0", "pip")
    pytester.makepyfile(
        f"""
        from uv import find_uv_bin

        VERSION = "import iso_a; print(iso_a.__version__)"
        WHEELS = {str(wheelhouse)!r}

        def test_pip(isoenv):
            isoenv.run("python", "-m", "pip", "install", "--no-index", "--find-links", WHEELS, "iso-a==2.0")
            assert isoenv.run("python", "-c", VERSION).stdout.strip() == "2.0"
            assert (isoenv.site_packages / "iso_a-2.0.dist-info").is_dir()

        def test_pip_uninstall_of_a_base_package_leaves_the_base(isoenv):
            isoenv.run("python", "-m", "pip", "uninstall", "-y", "iso-a", check=False)
            assert isoenv.run("python", "-c", VERSION).stdout.strip() == "1.0"

        def test_uv(isoenv):
            isoenv.run(find_uv_bin(), "pip", "install", "--offline", "--no-index", "--find-links", WHEELS, "iso-a==2.0")
            assert isoenv.run("python", "-c", VERSION).stdout.strip() == "2.0"

        def test_base_untouched(isoenv, isoenv_base):
            assert isoenv.run("python", "-c", VERSION).stdout.strip() == "1.0"
            assert isoenv_base.packages["iso-a"] == "1.0"
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=4)


def test_marked_test_gets_an_active_env_without_naming_the_fixture(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    _ini(pytester)
    pytester.makepyfile(
        """
        import os, subprocess, pytest

        @pytest.mark.isoenv(requires=["iso-a==2.0"])
        def test_marked():
            out = subprocess.run(["python", "-c", "import iso_a, sys; print(iso_a.__version__, sys.prefix)"],
                                 capture_output=True, text=True, check=True)
            version, prefix = out.stdout.split()
            assert version == "2.0"
            assert prefix == os.environ["VIRTUAL_ENV"]
        """
    )
    pytester.runpytest_subprocess().assert_outcomes(passed=1)


def test_derived_envs_are_deleted_pass_or_fail(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    _ini(pytester)
    record = pytester.path / "paths.txt"
    pytester.makepyfile(
        f"""
        import pytest

        def _note(env):
            with open({str(record)!r}, "a") as f:
                f.write(str(env.path) + "\\n")

        def test_pass(isoenv):
            _note(isoenv)

        def test_fail(isoenv):
            _note(isoenv)
            assert False

        @pytest.mark.parametrize("n", range(3))
        def test_many(isoenv, n):
            _note(isoenv)
            assert isoenv.path.is_dir()
        """
    )
    pytester.runpytest_subprocess().assert_outcomes(passed=4, failed=1)
    paths = [Path(p) for p in record.read_text().split()]
    assert len(set(paths)) == 5
    assert not any(p.exists() for p in paths)
    assert not paths[0].parent.parent.exists(), "the session dir outlived the session"


def test_link_line_is_idempotent_and_processes_pth_files_of_the_target(tmp_path: Path) -> None:
    import site
    import sys

    target = tmp_path / "target dir 🐸"
    target.mkdir()
    (target / "extra.pth").write_text(str(tmp_path / "extra") + "\n")
    (tmp_path / "extra").mkdir()
    line = link_line([target])
    saved = list(sys.path)
    try:
        for _ in range(2):  # site runs every .pth import line twice in a venv
            exec(line, {"site": site})
        assert sys.path.count(str(target)) == 1
        assert str(tmp_path / "extra") in sys.path
    finally:
        sys.path[:] = saved


def test_a_test_that_changes_the_base_fails_and_the_base_is_restored(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\nisoenv_requires = ["iso-a==1.0"]\n')
    pytester.makepyfile(
        """
        import pytest, shutil

        def test_adds_a_file(isoenv_base, isoenv):
            (isoenv_base.site_packages / "planted.py").write_text("x = 1")

        def test_removes_a_package(isoenv_base, isoenv):
            (isoenv_base.site_packages / "iso_a" / "__init__.py").unlink()

        @pytest.mark.isoenv(requires=["iso-cli"])
        def test_adds_to_the_layer(isoenv):
            (isoenv.layer.site_packages / "planted.py").write_text("x = 1")

        def test_afterwards(isoenv_base, isoenv):
            assert not (isoenv_base.site_packages / "planted.py").exists()
            assert isoenv.run("python", "-c", "import iso_a; print(iso_a.__version__)").stdout == "1.0\\n"

        @pytest.mark.isoenv(requires=["iso-cli"])
        def test_layer_afterwards(isoenv):
            assert not (isoenv.layer.site_packages / "planted.py").exists()
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly", "--isoenv-base=cache")
    result.assert_outcomes(passed=2, failed=3)
    result.stdout.fnmatch_lines(
        [
            "*test_adds_a_file*",
            "isoenv: the test changed the shared base env * (undone):",
            "  added */site-packages/planted.py",
            "*test_removes_a_package*",
            "isoenv: the test changed the shared base env * (it will be rebuilt):",
            "  removed */iso_a/__init__.py",
            "*test_adds_to_the_layer*",
            "isoenv: the test changed the shared layer * (undone):",
        ]
    )
    again = pytester.runpytest_subprocess("-p", "no:randomly", "--isoenv-base=cache", "-k", "after")
    again.assert_outcomes(passed=2)
    again.stdout.fnmatch_lines(["isoenv: base reused*"])


def test_pip_in_a_derived_env_installs_into_that_env_alone(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    # A base built by uv has no pip: a kernel's "!pip install" or "%pip install" (which runs
    # sys.executable -m pip) must still land in the test's env, never the host's or a shared one.
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\nisoenv_requires = ["iso-b"]\n')
    pytester.makepyfile(
        """
        import os, subprocess, sysconfig
        import pytest

        HOST = sysconfig.get_paths()["purelib"]
        PIP = ["install", "--no-index", "--find-links", os.environ["UV_FIND_LINKS"]]

        @pytest.mark.parametrize("pip", [["pip"], ["pip3"], ["python", "-m", "pip"]])
        def test_pip(isoenv, isoenv_base, pip):
            host_before = sorted(os.listdir(HOST))
            base_before = sorted(os.listdir(isoenv_base.site_packages))
            # plain subprocess, through the activated PATH, as a kernel's "!pip" does
            done = subprocess.run([*pip, *PIP, "iso-cli"], capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
            assert (isoenv.site_packages / "iso_cli-1.0.dist-info").is_dir()
            assert isoenv.packages()["iso-cli"] == "1.0"
            assert sorted(os.listdir(HOST)) == host_before
            assert sorted(os.listdir(isoenv_base.site_packages)) == base_before
            out = isoenv.run("pip", "--version").stdout
            assert "pip" in out

        def test_base_packages_are_seen_as_installed(isoenv):
            out = isoenv.run("pip", *PIP, "iso-a<2").stdout
            assert "already satisfied" in out
            assert not list(isoenv.site_packages.glob("iso_a*"))

        def test_gone_in_the_next_test(isoenv):
            assert "iso-cli" not in isoenv.packages()

        def test_uv(isoenv):
            assert isoenv.which("uv")
            isoenv.run("uv", "pip", "install", "--offline", "iso-a==2.0")
            assert (isoenv.site_packages / "iso_a-2.0.dist-info").is_dir()
        """
    )
    pytester.runpytest_subprocess("-p", "no:randomly").assert_outcomes(passed=6)


def test_envs_of_a_killed_run_are_removed_by_the_next_run(
    pytester: pytest.Pytester, offline_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import signal
    import subprocess
    import sys
    import time

    tmpdir = pytester.path / "tmp"
    tmpdir.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    pytester.makepyfile(
        """
        import time

        def test_hangs(isoenv):
            print("STARTED", flush=True)
            time.sleep(60)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-s", "-p", "no:cacheprovider"],
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while "STARTED" not in proc.stdout.readline():
        assert time.monotonic() < deadline
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert list(tmpdir.glob("pytest-isoenv-*/derived/*/env-*")), "nothing to clean up?"
    pytester.makepyfile("def test_ok(isoenv): pass")
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
    assert not list(tmpdir.glob("pytest-isoenv-*")), "the killed run's envs were left behind"


def test_every_test_gets_a_fresh_env_even_when_envs_are_recycled(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    pytester.makepyfile(
        """
        import pytest

        SEEN = []

        @pytest.mark.parametrize("n", range(6))
        def test_env(isoenv, n):
            assert isoenv.path not in SEEN
            SEEN.append(isoenv.path)
            assert not (isoenv.path / "mine.txt").exists()
            assert not (isoenv.site_packages / "mine.py").exists()
            assert not (isoenv.bin / "mine").exists()
            assert (isoenv.bin / "iso-cli").read_text().endswith("main())\\n")
            if n == 1:
                (isoenv.path / "mine.txt").write_text("x")
            if n == 2:
                (isoenv.site_packages / "mine.py").write_text("x")
            if n == 3:
                (isoenv.bin / "iso-cli").write_text("changed in place")
            if n == 4:
                (isoenv.bin / "mine").write_text("x")
        """
    )
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\nisoenv_requires = ["iso-cli"]\n')
    pytester.runpytest_subprocess("-p", "no:randomly").assert_outcomes(passed=6)


def test_a_test_with_only_the_base_fixture_is_guarded_too(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\nisoenv_requires = ["iso-a==1.0"]\n')
    pytester.makepyfile(
        """
        def test_plants(isoenv_base):
            (isoenv_base.site_packages / "planted.py").write_text("x = 1")

        def test_afterwards(isoenv_base, isoenv):
            assert not (isoenv_base.site_packages / "planted.py").exists()
            done = isoenv.run("python", "-c", "import planted", check=False)
            assert done.returncode != 0
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ test_plants _*",
            "isoenv: the test changed the shared base env * (undone):",
            "  added */site-packages/planted.py",
        ]
    )


def test_no_env_directory_serves_a_second_test(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    # A process the first test left behind, with its cwd in the test's env, writes a .pth
    # into "its" env later; the next test must not run that code, nor get that directory.
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\nisoenv_requires = ["iso-a==1.0"]\n')
    pytester.makepyfile(
        """
        import os, subprocess, sys, time

        SEEN = []

        LATER = (
            "import os, time; time.sleep(0.5); "
            "open('lib/python%d.%d/site-packages/planted.pth' % __import__('sys').version_info[:2], 'w')"
            ".write('import os; os.environ[\\\\'ISOENV_PLANTED\\\\'] = \\\\'1\\\\'')"
        )

        def test_leaves_a_process_behind(isoenv):
            SEEN.append(str(isoenv.path))
            subprocess.Popen([sys.executable, "-c", LATER], cwd=isoenv.path, start_new_session=True)

        def test_next(isoenv):
            time.sleep(1.0)
            assert str(isoenv.path) != SEEN[0]
            out = isoenv.run("python", "-c", "import os; print(os.environ.get('ISOENV_PLANTED'))")
            assert out.stdout == "None\\n"
            assert not list(isoenv.site_packages.glob("planted.pth"))
        """
    )
    pytester.runpytest_subprocess("-p", "no:randomly").assert_outcomes(passed=2)


def test_the_pep_829_start_form_links_as_the_line_does(tmp_path: Path) -> None:
    """Python 3.15 runs ``_pytest_isoenv_link.start`` instead of the .pth file's import line:
    the module it names links the same targets (what 3.15's site does is played here by
    hand: a Python 3.15 is not installed)."""
    import dataclasses
    import subprocess
    import sys

    from pytest_isoenv import _interpreter
    from pytest_isoenv._link import START_FILE, START_MODULE
    from pytest_isoenv._venv import create_venv

    target = tmp_path / "target dir 🐸"
    (target / "linked_pkg").mkdir(parents=True)
    (target / "linked_pkg" / "__init__.py").write_text("VALUE = 1\n")
    (target / "extra.pth").write_text(str(tmp_path / "extra") + "\n")
    (tmp_path / "extra").mkdir()
    current = _interpreter.current()
    old = create_venv(tmp_path / "old", current, [target], tmp_path / "pycache")
    assert not (old / START_FILE).exists()  # Pythons before 3.15 read the line
    new = create_venv(
        tmp_path / "new",
        dataclasses.replace(current, version=(3, 15, 0)),
        [target],
        tmp_path / "pycache",
    )
    assert (new / START_FILE).read_text() == f"{START_MODULE}:start\n"
    code = (
        "import sys, pkgutil\n"
        f"sys.path.append({str(new)!r})\n"
        f"pkgutil.resolve_name({START_MODULE + ':start'!r})()\n"
        f"pkgutil.resolve_name({START_MODULE + ':start'!r})()  # idempotent\n"
        "import linked_pkg\n"
        f"assert sys.path.count({str(target)!r}) == 1\n"
        f"assert {str(tmp_path / 'extra')!r} in sys.path  # the target's own .pth files\n"
        f"assert sys.pycache_prefix == {str(tmp_path / 'pycache')!r}\n"
        "print(linked_pkg.VALUE)\n"
    )
    done = subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, check=False
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "1\n", "")
