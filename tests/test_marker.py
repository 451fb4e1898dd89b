"""The isoenv marker: where it may stand, how levels combine, and static mistakes at collection."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_marker_is_registered_with_its_signature(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(
        ["@pytest.mark.isoenv(requires=[[]...[]], python=*, inside=False): *"]
    )


def test_markers_on_every_level_combine(pytester: pytest.Pytester, offline_env: Path) -> None:
    pytester.makepyprojecttoml("[tool.pytest.ini_options]\nisoenv_requires = []\n")
    pytester.makepyfile(
        """
        import pytest

        pytestmark = pytest.mark.isoenv(requires=["iso-a==2.0"])

        @pytest.mark.isoenv(requires=["iso-cli"])
        class TestLevels:
            @pytest.mark.isoenv(requires=["iso-b; python_version < '3'"])
            def test_method(self, isoenv):
                assert isoenv.requirements == (
                    "iso-a==2.0", "iso-cli", 'iso-b; python_version < "3"')
                out = isoenv.run("iso-cli").stdout.split()
                assert out[-1] == "2.0"

        @pytest.mark.parametrize("extra", [
            pytest.param("plain", id="plain"),
            pytest.param("cli", marks=pytest.mark.isoenv(requires=["iso-cli"]), id="cli"),
        ])
        def test_param(isoenv, extra):
            expected = ("iso-a==2.0",) + (("iso-cli",) if extra == "cli" else ())
            assert isoenv.requirements == expected
            assert (isoenv.which("iso-cli") is not None) == (extra == "cli")

        def test_module_only(isoenv):
            assert isoenv.requirements == ("iso-a==2.0",)
        """
    )
    pytester.runpytest_subprocess("--strict-markers").assert_outcomes(passed=4)


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        pytest.param('requires=["iso-a>=>1"]', "*invalid requirement 'iso-a>=>1':*", id="pep508"),
        pytest.param('requires=["iso-a==="]', "*invalid requirement 'iso-a===*", id="empty"),
        pytest.param('requires=["iso a b"]', "*invalid requirement 'iso a b'*", id="spaces"),
        pytest.param('require=["iso-a"]', "*unknown keyword argument(s) require*", id="unknown-kw"),
        pytest.param('requires="iso-a"', "*requires must be a list*'iso-a'*", id="string"),
        pytest.param("requires=[1]", "*requirement 1 is a int, not a string*", id="not-str"),
        pytest.param('"iso-a"', "*positional arguments*use requires=*", id="positional"),
        pytest.param('requires=["--index-url x"]', "*only -e PATH and -r FILE*", id="option"),
    ],
)
def test_static_mistakes_fail_collection_naming_test_and_value(
    pytester: pytest.Pytester, offline_env: Path, marker: str, message: str
) -> None:
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.isoenv({marker})
        def test_bad():
            pass

        def test_fine():
            pass
        """
    )
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*ERROR collecting*", "*In test_bad: invalid isoenv marker*"])
    result.stdout.fnmatch_lines([message])
    result.stdout.no_fnmatch_line("*Traceback*")


def test_static_mistake_in_a_param_mark_fails_collection(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("x", [1, pytest.param(2, marks=pytest.mark.isoenv(requires=["!!"]))])
        def test_p(x):
            pass
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*In test_p?2?: invalid isoenv marker: invalid requirement '!!'*"])


@pytest.mark.parametrize("args", [["-p", "no:xdist"], ["-n", "2"]], ids=["no-xdist", "n2"])
def test_invalid_ini_requirement_is_a_usage_error(
    pytester: pytest.Pytester, args: list[str]
) -> None:
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\nisoenv_requires = ["ok", "bad=>1"]\n')
    pytester.makepyfile("def test_x(isoenv): pass")
    result = pytester.runpytest_subprocess(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*isoenv_requires: invalid requirement 'bad=>1':*"])


def test_settings_are_not_read_in_a_session_without_env_tests(pytester: pytest.Pytester) -> None:
    """Reading them costs an import of packaging: a session that needs no env skips it."""
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\nisoenv_requires = ["bad=>1"]\n')
    pytester.makepyfile(
        """
        import sys

        def test_x():
            assert "packaging.requirements" not in sys.modules
            assert "filelock" not in sys.modules
        """
    )
    pytester.runpytest_subprocess("-p", "no:xdist").assert_outcomes(passed=1)


def test_runtime_failures_error_the_test_and_the_session_goes_on(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\nisoenv_requires = ["iso-b"]\n')
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.isoenv(requires=["does-not-exist-zz"])
        def test_missing():
            pass

        @pytest.mark.isoenv(requires=["iso-a==1.0", "iso-a==2.0"])
        def test_conflict_within_marker():
            pass

        @pytest.mark.isoenv(requires=["iso-a==2.0"])
        def test_conflict_with_the_base():
            pass

        @pytest.mark.isoenv(requires=["does-not-exist-zz"])
        def test_missing_again():
            pass

        def test_runtime_install(isoenv):
            with pytest.raises(Exception, match="does-not-exist-zz"):
                isoenv.install("does-not-exist-zz")

        def test_fine(isoenv):
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=2, errors=4)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of test_missing *",
            "isoenv: could not install does-not-exist-zz:",
            "*does-not-exist-zz was not found*",
            "*ERROR at setup of test_conflict_within_marker*",
            "isoenv: could not install iso-a==1.0, iso-a==2.0:",
            "*requirements are unsatisfiable*",
            "*ERROR at setup of test_conflict_with_the_base*",
            "isoenv: could not install iso-a==2.0:",
            "*iso-b depend on iso-a<2*",
            "*you require iso-a==2.0*unsatisfiable*",
            "isoenv_requires asks for: iso-b",
            "the marker asks for: iso-a==2.0",
        ]
    )


def test_a_base_that_cannot_be_built_fails_only_the_tests_that_need_it(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\nisoenv_requires = ["nope-zz"]\n')
    pytester.makepyfile(
        """
        def test_one(isoenv): pass
        def test_two(isoenv_base): pass
        def test_no_env(): pass
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines(
        ["*the isoenv base env could not be prepared: could not install nope-zz:*"]
    )
    result.stdout.no_fnmatch_line("*_session.py*")
