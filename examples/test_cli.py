"""A console script of the project under test, installed once in the base, run in each test."""


def test_cli_runs(isoenv):
    out = isoenv.run("demo-tool", "--version")
    assert out.stdout == "demo-tool 1.2.0\n"


def test_cli_runs_with_the_tests_own_python(isoenv):
    # The script's copy in the derived env runs with the derived interpreter...
    out = isoenv.run("python", "-c", "import sys; print(sys.prefix)")
    assert out.stdout.strip() == str(isoenv.path)
    # ...so it sees what the test installs, and the base never changes.
    isoenv.install("six==1.16.0")
    assert isoenv.run("demo-tool").stdout == "six: 1.16.0\n"


def test_base_is_unchanged(isoenv, isoenv_base):
    assert isoenv_base.packages["six"] != "1.16.0"
    assert isoenv.run("demo-tool").stdout == f"six: {isoenv_base.packages['six']}\n"
