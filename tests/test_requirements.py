"""Requirement lines and cache keys: nothing stale is reused, no credential is shown or keyed."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest
from conftest import write_project

from pytest_isoenv._redact import redact
from pytest_isoenv._requirements import (
    EDITABLE,
    PATH,
    lines_digest,
    local_project_names,
    parse_line,
    parse_lines,
    project_name,
    toml_subset,
)
from pytest_isoenv._uv import install_settings

# -- a tiny in-tree build backend --------------------------------------------------------------

# A PEP 517/660 backend in the project itself (no build requirement to download): its
# dependencies are read from a file, as setuptools' ``dynamic = ["dependencies"]`` or
# hatch-requirements-txt do. Editable installs put the project's src/ on sys.path.
BACKEND = """
import base64, hashlib, os, zipfile
from pathlib import Path

ROOT = Path(__file__).parent
NAME, MODULE, DEPS = {name!r}, {module!r}, {deps!r}


def _metadata():
    lines = ["Metadata-Version: 2.1", "Name: " + NAME, "Version: 1.0"]
    for dep in (ROOT / DEPS).read_text().splitlines():
        if dep.strip():
            lines.append("Requires-Dist: " + dep.strip())
    return "\\n".join(lines) + "\\n"


def _wheel(directory, files):
    info = MODULE + "-1.0.dist-info"
    files = dict(files)
    files[info + "/METADATA"] = _metadata()
    files[info + "/WHEEL"] = "Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
    record = []
    for name, text in files.items():
        digest = hashlib.sha256(text.encode()).digest()
        encoded = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        record.append("%s,sha256=%s,%d" % (name, encoded, len(text.encode())))
    files[info + "/RECORD"] = "\\n".join(record + [info + "/RECORD,,"]) + "\\n"
    wheel = MODULE + "-1.0-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(directory, wheel), "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return wheel


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    src = ROOT / "src"
    return _wheel(wheel_directory, {{str(p.relative_to(src)): p.read_text() for p in src.rglob("*.py")}})


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    return _wheel(wheel_directory, {{MODULE + ".pth": str(ROOT / "src") + "\\n"}})
"""


def write_backend_project(root: Path, name: str, deps_file: str, deps: str, body: str) -> Path:
    """A project built by its own in-tree backend, its dependencies read from ``deps_file``."""
    module = name.replace("-", "_")
    (root / "src" / module).mkdir(parents=True, exist_ok=True)
    (root / "src" / module / "__init__.py").write_text(body)
    (root / deps_file).parent.mkdir(parents=True, exist_ok=True)
    (root / deps_file).write_text(deps)
    (root / "backend.py").write_text(BACKEND.format(name=name, module=module, deps=deps_file))
    (root / "pyproject.toml").write_text(
        textwrap.dedent(f"""\
            [project]
            name = "{name}"
            version = "1.0"
            dynamic = ["dependencies"]

            [tool.setuptools.dynamic]
            dependencies = {{ file = ["{deps_file}"] }}

            [build-system]
            requires = []
            build-backend = "backend"
            backend-path = ["."]
        """)
    )
    return root


# -- helpers for sessions that reuse the cached base -------------------------------------------


def _ini(pytester: pytest.Pytester, *requires: str) -> None:
    lines = ", ".join(json.dumps(r) for r in requires)
    pytester.makepyprojecttoml(f"[tool.pytest.ini_options]\nisoenv_requires = [{lines}]\n")


def _expect(pytester: pytest.Pytester, code: str, expected: str, marker: str = "") -> None:
    """A test asserting what ``python -c code`` prints in the test's env."""
    pytester.makepyfile(
        test_it=f"""
import pytest

{marker}
def test_it(isoenv):
    out = isoenv.run("python", "-c", {code!r})
    assert out.stdout.strip() == {expected!r}
"""
    )
    # Rewritten within a second at the same size: pytest's cached rewrite of the old file
    # would pass for the new one where bytecode is written (tox, users' machines).
    shutil.rmtree(pytester.path / "__pycache__", ignore_errors=True)


def _cached_run(pytester: pytest.Pytester) -> str:
    """Run the suite with the cached base; return the base's summary line."""
    result = pytester.runpytest_subprocess("--isoenv-base=cache", "-p", "no:randomly")
    result.assert_outcomes(passed=1)
    lines = [line for line in result.outlines if line.startswith("isoenv: base")]
    assert len(lines) == 1, result.outlines
    return lines[0]


# -- 1. the cache key sees every input ---------------------------------------------------------


def test_a_file_url_project_is_keyed_by_its_content(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    local = write_project(pytester.path / "local", "iso-local", "1.0", [], "X = 1\n")
    _ini(pytester, f"iso-local @ {local.as_uri()}")
    _expect(pytester, "import iso_local; print(iso_local.X)", "1")
    assert "base built" in _cached_run(pytester)
    (local / "src" / "iso_local" / "__init__.py").write_text("X = 2\n")
    _expect(pytester, "import iso_local; print(iso_local.X)", "2")
    assert "base built" in _cached_run(pytester)


def test_a_bare_file_url_is_keyed_by_its_content(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    local = write_project(pytester.path / "local", "iso-local", "1.0", [], "X = 1\n")
    _ini(pytester, local.as_uri())
    _expect(pytester, "import iso_local; print(iso_local.X)", "1")
    assert "base built" in _cached_run(pytester)
    (local / "src" / "iso_local" / "__init__.py").write_text("X = 2\n")
    _expect(pytester, "import iso_local; print(iso_local.X)", "2")
    assert "base built" in _cached_run(pytester)


def test_a_local_path_with_extras(pytester: pytest.Pytester, offline_env: Path) -> None:
    local = write_project(pytester.path / "local", "iso-local", "1.0", [], "X = 1\n")
    pyproject = local / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            "[build-system]", '[project.optional-dependencies]\nx = ["iso-a==1.0"]\n[build-system]'
        )
    )
    _ini(pytester, "./local[x]")
    code = "import iso_local, iso_a; print(iso_local.X, iso_a.__version__)"
    _expect(pytester, code, "1 1.0")
    assert "base built" in _cached_run(pytester)
    (local / "src" / "iso_local" / "__init__.py").write_text("X = 2\n")
    _expect(pytester, code, "2 1.0")
    assert "base built" in _cached_run(pytester)


@pytest.mark.parametrize("change", ["constraint", "local-source", "editable-dependencies"])
def test_what_nested_requirement_files_name(
    pytester: pytest.Pytester, offline_env: Path, change: str
) -> None:
    # -r and -c paths are relative to the file that names them; project paths to the rootdir.
    write_project(pytester.path / "local", "iso-local", "1.0", [], "X = 1\n")
    edit = write_backend_project(pytester.path / "edit", "iso-edit", "requirements.txt", "", "")
    (pytester.path / "reqs.txt").write_text("--requirement=sub/more.txt\n")
    (pytester.path / "sub").mkdir()
    (pytester.path / "sub" / "more.txt").write_text(
        "--constraint ../pins.txt\niso-a  # from the index\n./local\n-e ./edit\n"
    )
    (pytester.path / "pins.txt").write_text("iso-a==1.0\n")
    _ini(pytester, "-r reqs.txt")
    code = (
        "import importlib.util, iso_a, iso_local, iso_edit; "
        "print(iso_a.__version__, iso_local.X, importlib.util.find_spec('iso_cli') is not None)"
    )
    _expect(pytester, code, "1.0 1 False")
    assert "base built" in _cached_run(pytester)
    if change == "constraint":
        (pytester.path / "pins.txt").write_text("iso-a==2.0\n")
        expected = "2.0 1 False"
    elif change == "local-source":
        (pytester.path / "local" / "src" / "iso_local" / "__init__.py").write_text("X = 2\n")
        expected = "1.0 2 False"
    else:
        (edit / "requirements.txt").write_text("iso-cli\n")
        expected = "1.0 1 True"
    _expect(pytester, code, expected)
    assert "base built" in _cached_run(pytester)


@pytest.mark.parametrize("deps_file", ["requirements.txt", "meta/deps.in"])
def test_an_editable_project_with_dependencies_read_from_a_file(
    pytester: pytest.Pytester, offline_env: Path, deps_file: str
) -> None:
    # requirements.txt at the root is seen as a root file; meta/deps.in because
    # pyproject.toml names it ([tool.setuptools.dynamic]).
    edit = write_backend_project(
        pytester.path / "edit", "iso-edit", deps_file, "iso-a==1.0\n", "X = 1\n"
    )
    _ini(pytester, "-e ./edit")
    code = "import iso_edit, iso_a; print(iso_edit.X, iso_a.__version__)"
    _expect(pytester, code, "1 1.0")
    assert "base built" in _cached_run(pytester)
    # its sources are used in place: an edit is seen without rebuilding the base
    (edit / "src" / "iso_edit" / "__init__.py").write_text("X = 2\n")
    _expect(pytester, code, "2 1.0")
    assert "base reused" in _cached_run(pytester)
    (edit / deps_file).write_text("iso-a==2.0\n")
    _expect(pytester, code, "2 2.0")
    assert "base built" in _cached_run(pytester)


def _key(tmp_path: Path, *texts: str) -> str:
    return lines_digest(parse_lines(list(texts), tmp_path))


def test_editable_key_covers_metadata_sources_not_sources(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    (project / "src" / "pkg").mkdir(parents=True)
    (project / "src" / "pkg" / "__init__.py").write_text("X = 1\n")
    (project / "src" / "pkg" / "_version.py").write_text("V = '1'\n")
    (project / "docs").mkdir()
    (project / "docs" / "README.md").write_text("readme\n")
    (project / "pyproject.toml").write_text(
        textwrap.dedent("""\
            [project]
            name = "pkg"
            dynamic = ["version", "dependencies"]
            readme = "docs/README.md"
            [tool.hatch.version]
            path = "src/pkg/_version.py"
            [tool.hatch.metadata.hooks.requirements_txt]
            files = ["reqs/base.txt"]
        """)
    )
    (project / "reqs").mkdir()
    (project / "reqs" / "base.txt").write_text("a\n")
    (project / "setup.cfg").write_text("[options]\ninstall_requires = file: cfg-deps.lst\n")
    (project / "cfg-deps.lst").write_text("b\n")
    (project / "VERSION").write_text("1\n")
    (project / "junit.xml").write_text("<report/>\n")
    key = _key(tmp_path, "-e ./proj")
    for changed in ("src/pkg/__init__.py", "junit.xml"):
        (project / changed).write_text("changed\n")
        assert _key(tmp_path, "-e ./proj") == key, f"{changed} must not rebuild the base"
    for changed in (
        "reqs/base.txt",
        "src/pkg/_version.py",
        "docs/README.md",
        "cfg-deps.lst",
        "VERSION",
    ):
        (project / changed).write_text("changed again\n")
        new = _key(tmp_path, "-e ./proj")
        assert new != key, f"{changed} is metadata"
        key = new


def test_nested_requirement_file_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "top.txt").write_text("-ra/one.txt \\\n  # continued\n")
    (tmp_path / "a" / "one.txt").write_text("--requirement two.txt\n-c=three.txt\n")
    (tmp_path / "a" / "two.txt").write_text("--editable=${PROJ_DIR}\n")
    (tmp_path / "a" / "three.txt").write_text("x==1\n")
    project = write_project(tmp_path / "proj", "iso-proj", "1.0", [], "")
    monkeypatch.setenv("PROJ_DIR", str(project))
    key = _key(tmp_path, "-r top.txt")
    (project / "src" / "iso_proj" / "__init__.py").write_text("X = 2\n")
    assert _key(tmp_path, "-r top.txt") == key, "an editable's sources are used in place"
    for changed in ("a/two.txt", "a/three.txt", "proj/pyproject.toml"):
        (tmp_path / changed).write_text((tmp_path / changed).read_text() + "\n# edit\n")
        new = _key(tmp_path, "-r top.txt")
        assert new != key, changed
        key = new


def test_parsing_stays_static(tmp_path: Path) -> None:
    """Nothing is read when a line is parsed: missing paths fail later, in uv's words."""
    for text in ("-r missing.txt", "./missing[x]", "-e ./missing[x,y]", "x @ file:///no/where"):
        parse_line(text, tmp_path)


def test_local_paths_with_extras_are_split(tmp_path: Path) -> None:
    line = parse_line("./proj[test, docs]", tmp_path)
    assert line.kind == PATH
    assert line.project == tmp_path / "proj"
    assert line.uv_args() == [f"{tmp_path / 'proj'}[test,docs]"]
    editable = parse_line("-e ./proj[x]", tmp_path)
    assert editable.kind == EDITABLE
    assert editable.uv_args() == ["--editable", f"{tmp_path / 'proj'}[x]"]
    assert editable.project == tmp_path / "proj"


# -- 2. uv builds edited local projects again --------------------------------------------------


@pytest.mark.parametrize("where", ["base", "layer"])
def test_uv_builds_an_edited_local_project_again(
    pytester: pytest.Pytester, offline_env: Path, where: str
) -> None:
    # uv caches a build of ./local keyed by its pyproject.toml's modification time, which a
    # source edit leaves alone; named in a -r file, uv does not refresh it by itself.
    local = write_project(pytester.path / "local", "iso-local", "1.0", [], "X = 1\n")
    (pytester.path / "reqs.txt").write_text("./local\n")
    marker = '@pytest.mark.isoenv(requires=["-r reqs.txt"])' if where == "layer" else ""
    _ini(pytester, *(["-r reqs.txt"] if where == "base" else ["iso-a"]))
    _expect(pytester, "import iso_local; print(iso_local.X)", "1", marker)
    pytester.runpytest_subprocess("--isoenv-base=cache").assert_outcomes(passed=1)
    mtime = (local / "pyproject.toml").stat().st_mtime_ns
    (local / "src" / "iso_local" / "__init__.py").write_text("X = 2\n")
    assert (local / "pyproject.toml").stat().st_mtime_ns == mtime
    _expect(pytester, "import iso_local; print(iso_local.X)", "2", marker)
    pytester.runpytest_subprocess("--isoenv-base=cache").assert_outcomes(passed=1)


def test_local_project_names(tmp_path: Path) -> None:
    write_project(tmp_path / "toml", "Toml_Proj", "1.0", [], "")
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "setup.cfg").write_text("[metadata]\nname = Cfg.Proj\n")
    (tmp_path / "py").mkdir()
    (tmp_path / "py" / "setup.py").write_text(
        "from setuptools import setup\nsetup(name='py-proj')\n"
    )
    (tmp_path / "nameless").mkdir()
    (tmp_path / "reqs.txt").write_text("-e ./py\n./nameless\nrequests\n")
    assert project_name(tmp_path / "cfg") == "cfg-proj"
    lines = parse_lines(
        [
            "./toml[x]",
            f"renamed @ {(tmp_path / 'cfg').as_uri()}",
            "-r reqs.txt",
            "iso-a",
            "https://example.org/x.whl",
        ],
        tmp_path,
    )
    assert local_project_names(lines) == ["toml-proj", "renamed", "py-proj"]


def test_toml_subset_reads_what_pyproject_files_hold() -> None:
    text = textwrap.dedent('''\
        # comment
        [project]
        name = "demo"  # trailing comment
        dynamic = [
            "version",  # why
            'dependencies',
        ]
        readme = {file = "README.md", content-type = "text/markdown"}
        "quoted key" = """
        multi \\
            line\\u00e9"""
        raw = \'\'\'C:\\path\'\'\'
        [project.optional-dependencies]
        test = ["pytest>=7", "x[a,b]; python_version < '3.10'"]
        [[tool.hatch.envs]]
        n = 1
        [[tool.hatch.envs]]
        n = 2
        [tool.setuptools.dynamic]
        dependencies.file = ["requirements.txt"]
        flag = true
        when = 1979-05-27 07:32:00Z
    ''')
    assert toml_subset(text) == {
        "project": {
            "name": "demo",
            "dynamic": ["version", "dependencies"],
            "readme": {"file": "README.md", "content-type": "text/markdown"},
            "quoted key": "multi line\u00e9",
            "raw": "C:\\path",
            "optional-dependencies": {"test": ["pytest>=7", "x[a,b]; python_version < '3.10'"]},
        },
        "tool": {
            "hatch": {"envs": [{"n": "1"}, {"n": "2"}]},
            "setuptools": {
                "dynamic": {
                    "dependencies": {"file": ["requirements.txt"]},
                    "flag": True,
                    "when": "1979-05-27 07:32:00Z",
                }
            },
        },
    }
    assert toml_subset("[broken\nname = ") == {}


# -- 4. credentials ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("https://user:s3cret@host/simple", "https://user:****@host/simple"),
        ("git+https://t0ken@github.com/o/r.git@v1", "git+https://****@github.com/o/r.git@v1"),
        ("git+ssh://git@github.com/o/r.git", "git+ssh://git@github.com/o/r.git"),
        ("git+https://github.com/o/r.git@v1", "git+https://github.com/o/r.git@v1"),
        (
            "x @ https://u:p@ss@h/x.whl ; os_name=='posix'",
            "x @ https://u:****@h/x.whl ; os_name=='posix'",
        ),
        ("https://acct.blob/x.whl?sv=1&sig=abc%2B", "https://acct.blob/x.whl?sv=1&sig=****"),
        ("see https://a:b@h/ and http://c@d/", "see https://a:****@h/ and http://****@d/"),
        ("file:///home/me@work/proj", "file:///home/me@work/proj"),
    ],
)
def test_redact_hides_credentials_as_uv_does(text: str, shown: str) -> None:
    assert redact(text) == shown
    assert redact(shown) == shown


def test_credentials_are_neither_shown_nor_keyed(tmp_path: Path) -> None:
    one = parse_line("pkg @ https://user:token-one@host/pkg-1.0-py3-none-any.whl", tmp_path)
    two = parse_line("pkg @ https://user:token-two@host/pkg-1.0-py3-none-any.whl", tmp_path)
    assert "token-one" in " ".join(one.uv_args())
    for shown in (str(one), one.display, repr(one)):
        assert "token-one" not in shown
    assert one.display.endswith(" https://user:****@host/pkg-1.0-py3-none-any.whl")
    assert lines_digest([one]) == lines_digest([two])
    other = parse_line("pkg @ https://user:token-one@other/pkg-1.0-py3-none-any.whl", tmp_path)
    assert lines_digest([other]) != lines_digest([one])
    git = [parse_line(f"git+https://{t}@github.com/o/r.git", tmp_path) for t in ("ghp_1", "ghp_2")]
    assert lines_digest(git[:1]) == lines_digest(git[1:])


@pytest.mark.parametrize(
    "name", ["UV_INDEX_URL", "UV_EXTRA_INDEX_URL", "UV_INDEX", "UV_DEFAULT_INDEX", "UV_FIND_LINKS"]
)
def test_index_credentials_are_not_in_the_key(name: str) -> None:
    value = "https://ci:{}@pypi.example.org/simple"
    if name == "UV_INDEX":
        value = "internal=" + value
    one = install_settings({name: value.format("token-one")}, no_index=False)
    two = install_settings({name: value.format("token-two")}, no_index=False)
    assert one == two
    assert "token-one" not in json.dumps(one)
    assert install_settings({name: value.format("t").replace("pypi", "other")}, False) != one


def test_a_rotated_index_token_reuses_the_cached_base(
    pytester: pytest.Pytester, offline_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _ini(pytester, "iso-a")
    _expect(pytester, "import iso_a; print(iso_a.__version__)", "2.0")
    monkeypatch.setenv("UV_EXTRA_INDEX_URL", "https://ci:token-one@127.0.0.1:9/simple")
    assert "base built" in _cached_run(pytester)
    monkeypatch.setenv("UV_EXTRA_INDEX_URL", "https://ci:token-two@127.0.0.1:9/simple")
    assert "base reused" in _cached_run(pytester)
