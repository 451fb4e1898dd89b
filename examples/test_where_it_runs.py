"""Where a test's code runs: its body in its env (inside=True), on other interpreters, and
quick in-process checks (activate()). See docs/where-your-test-runs.md."""

import sys

import pytest

try:  # collected by the host too, which may hold another packaging (or none)
    import packaging
except ImportError:
    packaging = None


@pytest.mark.isoenv(requires=["packaging==23.2"], inside=True)
def test_the_body_runs_in_its_env(tmp_path):
    # The whole test runs in a child process of its env: the module-level import above
    # found the env's packaging, whatever the host has.
    assert packaging.__version__ == "23.2"
    assert sys.prefix != sys.base_prefix  # a venv: the derived env
    (tmp_path / "out.txt").write_text("fixtures work inside too")


@pytest.mark.isoenv(requires=["packaging==24.1"], python=["3.9", "3.12", "3.13"], inside=True)
def test_on_each_interpreter():
    # test_on_each_interpreter[py3.9], [py3.12], [py3.13]: skipped where one is not installed
    assert packaging.__version__ == "24.1"
    assert sys.version_info >= (3, 9)


@pytest.mark.isoenv(requires=["six==1.16.0"])
def test_a_quick_check_in_process(isoenv):
    # The base has six 1.17.0; for the block, the env's packages come first on sys.path.
    with isoenv.activate():
        import six

        assert six.__version__ == "1.16.0"
    assert "six" not in sys.modules or sys.modules["six"] is not six  # undone after it
