"""The silent trap: a marked test whose body imports, in pytest's process, the host's copy."""

from __future__ import annotations

from pathlib import Path

import pytest

# The host's copy of iso-a at 2.0 (the worktree's venv has none, and is never installed into):
# a directory on the host's sys.path with the package and its metadata, put there by a conftest.
HOST = """
import sys
from pathlib import Path

host = Path(__file__).parent / "host"
(host / "iso_a").mkdir(parents=True, exist_ok=True)
(host / "iso_a" / "__init__.py").write_text("__version__ = '2.0'\\n")
(host / "iso_a-2.0.dist-info").mkdir(exist_ok=True)
(host / "iso_a-2.0.dist-info" / "METADATA").write_text(
    "Metadata-Version: 2.1\\nName: iso-a\\nVersion: 2.0\\n"
)
(host / "iso_a-2.0.dist-info" / "RECORD").write_text("iso_a/__init__.py,,\\n")
sys.path.insert(0, str(host))
"""

WARNING = (
    "*IsoenvWarning: {test} used the host's iso-a 2.0 (*host/iso_a/__init__.py), not the "
    "env's iso-a 1.0 its isoenv marker asks for: the test body runs in pytest's own process. "
    "To use the env's, run it in its env with @pytest.mark.isoenv(..., inside=True), with "
    "isoenv.run(...), or import it inside `with isoenv.activate():`.*"
)


def _told(output: str) -> list[str]:
    """The tests the warnings summary names (a line per warning), in order."""
    return [
        line.split(" used the host's")[0].rsplit("IsoenvWarning: ", 1)[1]
        for line in output.splitlines()
        if "IsoenvWarning: " in line and " used the host's" in line
    ]


def test_module_level_and_in_body_imports_of_the_hosts_copy_are_told(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    pytester.makeconftest(HOST)
    pytester.makepyfile(
        test_top="""
            import iso_a  # at collection, in the host: the trap
            import pytest

            @pytest.mark.isoenv(requires=["iso-a==1.0"])
            def test_uses_module_level_import(isoenv):
                assert iso_a.__version__ == "2.0"
        """,
        test_body="""
            import pytest

            pytestmark = pytest.mark.isoenv(requires=["iso-a==1.0"])

            def test_imports_in_body():
                import iso_a
                assert iso_a.__version__ == "2.0"

            def test_imports_in_body_again():  # iso_a is loaded already: its code says it
                from iso_a import __version__
                assert __version__ == "2.0"

            class TestClass:
                def test_method(self):
                    import iso_a.__init__
        """,
        test_class_import="""
            import pytest
            from iso_a import __version__ as v

            @pytest.fixture
            def module():
                import iso_a
                return iso_a

            @pytest.mark.isoenv(requires=["iso-a==1.0"])
            def test_through_a_fixture(module):
                assert module.__version__ == "2.0"
        """,
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines([WARNING.format(test="test_body.py::test_imports_in_body")])
    assert sorted(_told(result.stdout.str())) == [
        "test_body.py::TestClass::test_method",
        "test_body.py::test_imports_in_body",
        "test_body.py::test_imports_in_body_again",
        "test_class_import.py::test_through_a_fixture",
        "test_top.py::test_uses_module_level_import",
    ]
    # Attributed to the test in the summary, at the test's own line.
    result.stdout.fnmatch_lines(
        ["test_top.py::test_uses_module_level_import", "  *test_top.py:4: IsoenvWarning: *"]
    )
    # The guard is a plugin of its own, which -p no: turns off.
    quiet = pytester.runpytest_subprocess("-p", "no:isoenv-host-imports")
    quiet.assert_outcomes(passed=5)
    assert "IsoenvWarning" not in quiet.stdout.str()


def test_a_conftest_that_imported_it_is_told(pytester: pytest.Pytester, offline_env: Path) -> None:
    pytester.makeconftest(HOST + "import iso_a\n")
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        def module():
            import sys
            return sys.modules["iso_a"]  # the conftest imported it

        @pytest.mark.isoenv(requires=["iso-a==1.0"])
        def test_it(module):
            assert module.__version__ == "2.0"

        @pytest.mark.isoenv(requires=["iso-a==1.0"])
        def test_other(isoenv):  # the conftest's import is not this test's business
            assert isoenv.run("python", "-c", "import iso_a").returncode == 0
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=2)
    assert _told(result.stdout.str()) == ["test_a_conftest_that_imported_it_is_told.py::test_it"]


def test_no_warning_where_the_host_copy_is_not_the_trap(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    pytester.makeconftest(HOST)
    pytester.makepyfile(
        """
        import sys
        import pytest

        @pytest.mark.isoenv(requires=["iso-a==1.0"])
        def test_imports_the_envs_copy(isoenv):
            with isoenv.activate():  # first: nothing imported iso_a yet
                import iso_a
                assert iso_a.__version__ == "1.0"

        def test_unmarked():
            import iso_a

        @pytest.mark.isoenv(requires=["iso-b"])
        def test_marker_names_another_distribution():
            import iso_a  # iso-b needs iso-a, but the marker does not name it

        @pytest.mark.isoenv(requires=["iso-a==1.0"])
        def test_does_not_import_it(isoenv):
            assert isoenv.run("python", "-c", "import iso_a; print(iso_a.__version__)").stdout == "1.0\\n"

        @pytest.mark.isoenv(requires=["iso-a==1.0"], inside=True)
        def test_inside():  # (the conftest puts its iso_a 2.0 first in the child too)
            import iso_a

        @pytest.mark.isoenv(requires=["iso-a==2.0"])
        def test_same_version_as_the_host():
            import iso_a

        @pytest.mark.isoenv(requires=["iso-cli"])
        def test_the_host_has_none():
            with pytest.raises(ImportError):
                import iso_cli
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=7)
    assert "IsoenvWarning" not in result.stdout.str()


def test_error_filter_makes_it_a_failure(pytester: pytest.Pytester, offline_env: Path) -> None:
    pytester.makeconftest(HOST)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.isoenv(requires=["iso-a==1.0"])
        def test_passes_but_used_the_host():
            import iso_a

        @pytest.mark.isoenv(requires=["iso-a==1.0"])
        def test_fails_on_its_own():
            import iso_a
            assert iso_a.__version__ == "1.0"
        """
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:randomly", "-W", "error::pytest_isoenv.IsoenvWarning"
    )
    result.assert_outcomes(failed=2)
    assert "_host_imports.py" not in result.stdout.str()  # the message, not the plugin's code
    result.stdout.fnmatch_lines(
        [
            "*_ test_passes_but_used_the_host _*",
            "IsoenvWarning: *::test_passes_but_used_the_host used the host's iso-a 2.0 *",
            # A test that failed on its own keeps its own failure.
            "*_ test_fails_on_its_own _*",
            "*AssertionError: assert '2.0' == '1.0'",
        ]
    )


def test_an_activate_warning_is_not_told_twice(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    pytester.makeconftest(HOST + "import iso_a\n")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.isoenv(requires=["iso-a==1.0"])
        def test_block(isoenv):
            with isoenv.activate():
                import iso_a
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    assert result.stdout.str().count("IsoenvWarning: ") == 1
    result.stdout.fnmatch_lines(["*IsoenvWarning: `import iso_a` in an isoenv.activate() block*"])


def test_a_module_level_import_counts_only_for_tests_using_it(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    pytester.makeconftest(HOST)
    pytester.makepyfile(
        """
        import iso_a
        import pytest

        pytestmark = pytest.mark.isoenv(requires=["iso-a==1.0"])

        def test_uses():
            assert iso_a.__version__ == "2.0"

        def test_unrelated():
            assert 1 + 1 == 2

        def test_in_its_env(isoenv):
            assert isoenv.run("python", "-c", "import iso_a").returncode == 0
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=3)
    name = "test_a_module_level_import_counts_only_for_tests_using_it.py"
    assert _told(result.stdout.str()) == [f"{name}::test_uses"]
