"""The console script of the project under test: installed once in the base, run in every test."""


def test_cli_prints_its_version(isoenv):
    out = isoenv.run("demo-tool", "--version")
    assert out.stdout == "demo-tool 1.2.0\n"


def test_cli_runs_with_the_tests_own_python(isoenv):
    # The test's env holds a copy of the base's script, found first on its PATH...
    assert isoenv.which("demo-tool") == str(isoenv.bin / "demo-tool")
    # ...and the copy runs with the test's interpreter, so it sees what the test installs.
    out = isoenv.run("demo-tool", "--env")
    assert out.stdout.splitlines() == ["demo-tool 1.2.0", str(isoenv.path)]


def test_project_is_importable_from_the_base(isoenv):
    # An editable install works through the link: it has a .pth file of its own in the base.
    code = "import demo_tool; print(demo_tool.__version__)"
    assert isoenv.run("python", "-c", code).stdout == "1.2.0\n"
    assert isoenv.base.packages["demo-tool"] == "1.2.0"
