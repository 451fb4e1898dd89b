"""``with isoenv.activate():``: the env's packages imported in pytest's process, then undone."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import UV, write_project
from realwheels import Wheelhouse

from pytest_isoenv._discovery import pyenv_root

HOST_ISO_A = """
import sys
from pathlib import Path

# The host's copy of iso-a, at another version than the env's: imported here, before any
# test, then taken off sys.path (the module stays loaded, as a host package would).
host = Path(__file__).parent / "host"
(host / "iso_a").mkdir(parents=True, exist_ok=True)
(host / "iso_a" / "__init__.py").write_text("__version__ = '2.0'\\n")
(host / "iso_a-2.0.dist-info").mkdir(exist_ok=True)
(host / "iso_a-2.0.dist-info" / "METADATA").write_text(
    "Metadata-Version: 2.1\\nName: iso-a\\nVersion: 2.0\\n"
)
(host / "iso_a-2.0.dist-info" / "top_level.txt").write_text("iso_a\\n")
sys.path.insert(0, str(host))
import iso_a
{keep}
"""


def _host_iso_a(pytester: pytest.Pytester, *, keep_on_path: bool = False) -> None:
    keep = "" if keep_on_path else "sys.path.remove(str(host))"
    pytester.makeconftest(HOST_ISO_A.format(keep=keep))


def test_a_block_imports_from_the_env_and_everything_is_undone(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    pytester.makepyfile(
        """
        import importlib, json, os, sys
        import pytest

        @pytest.mark.isoenv(requires=["iso-b"])
        def test_block(isoenv):
            path = list(sys.path)
            meta_path = list(sys.meta_path)
            cache = dict(sys.path_importer_cache)
            prefix = sys.pycache_prefix
            assert "iso_a" not in sys.modules and "iso_b" not in sys.modules
            for _ in range(2):  # a second block imports afresh
                with isoenv.activate() as env:
                    assert env is isoenv
                    assert sys.path[0] == str(isoenv.site_packages)
                    assert os.environ["VIRTUAL_ENV"] == str(isoenv.path)
                    import iso_b, iso_a
                    assert iso_a.__version__ == "1.0"  # iso-b requires iso-a<2
                    assert iso_b.__file__.startswith(str(isoenv.layer.site_packages))
                    del sys.modules["json"]  # a module the block replaces is put back
                    import json as other
                    assert other is not json
                assert sys.path == path
                assert sys.meta_path == meta_path
                assert sys.path_importer_cache == cache
                assert sys.pycache_prefix == prefix
                assert sys.modules["json"] is json
                assert "iso_a" not in sys.modules and "iso_b" not in sys.modules
                assert os.environ["VIRTUAL_ENV"] == str(isoenv.path)  # the fixture's, still
                with pytest.raises(ImportError):
                    importlib.import_module("iso_a")

        def test_failure_inside_is_undone_too(isoenv):
            path = list(sys.path)
            with pytest.raises(ZeroDivisionError):
                with isoenv.activate():
                    1 / 0
            assert sys.path == path
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=2)
    assert "IsoenvWarning" not in result.stdout.str()


def test_pth_files_of_the_env_work_and_are_undone(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    """An editable project in the base (a .pth path), a finder and a namespace part (.pth lines)."""
    write_project(pytester.path / "proj", "iso-edit", "1.0", [], "X = 'editable'\n")
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\nisoenv_requires = ["-e ./proj"]\n')
    pytester.makepyfile(
        """
        import sys, textwrap, types

        # The host's part of a namespace package with a list __path__ (pkg_resources style).
        nsx = types.ModuleType("nsx")
        nsx.__path__ = []
        sys.modules["nsx"] = nsx

        def test_pth(isoenv):
            site = isoenv.site_packages
            # An editable install's finder, as setuptools writes it: a .pth line installs it.
            (site / "demo_mod.txt").write_text("VALUE = 'found by the finder'\\n")
            (site / "__editable___demo_finder.py").write_text(textwrap.dedent('''
                import importlib.abc, importlib.util, sys
                from pathlib import Path
                class Finder(importlib.abc.MetaPathFinder):
                    def find_spec(self, name, path=None, target=None):
                        if name != "demo":
                            return None
                        source = Path(__file__).with_name("demo_mod.txt")
                        return importlib.util.spec_from_loader(name, Loader())
                class Loader(importlib.abc.Loader):
                    def create_module(self, spec):
                        return None
                    def exec_module(self, module):
                        exec(Path(__file__).with_name("demo_mod.txt").read_text(), vars(module))
                def install():
                    sys.meta_path.append(Finder())
            '''))
            (site / "__editable__.demo.pth").write_text(
                "import __editable___demo_finder; __editable___demo_finder.install()\\n"
            )
            # A namespace part, as a setuptools -nspkg.pth line adds it to the host's package.
            (site / "nsx").mkdir()
            (site / "nsx" / "part.py").write_text("PART = 'env'\\n")
            (site / "nsx-nspkg.pth").write_text(
                "import sys, os; p = os.path.join(sitedir, 'nsx'); "
                "mp = sys.modules['nsx'].__path__; (p not in mp) and mp.append(p)\\n"
            )
            meta_path = list(sys.meta_path)
            with isoenv.activate():
                import iso_edit, demo
                import nsx.part
                assert iso_edit.X == "editable"
                assert demo.VALUE == "found by the finder"
                assert nsx.part.PART == "env"
            assert sys.meta_path == meta_path
            assert nsx.__path__ == [] and not hasattr(nsx, "part")
            for name in ("iso_edit", "demo", "nsx.part", "__editable___demo_finder"):
                assert name not in sys.modules, name
            assert sys.modules["nsx"] is nsx
            assert not any("proj" in entry for entry in sys.path)
        """
    )
    pytester.runpytest_subprocess().assert_outcomes(passed=1)


def test_a_module_the_host_imported_before_stays_the_hosts_with_a_warning(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    _host_iso_a(pytester)
    pytester.makepyfile(
        """
        import sys
        import pytest

        @pytest.mark.isoenv(requires=["iso-a==1.0"])
        def test_block(isoenv):
            host = sys.modules["iso_a"]
            with isoenv.activate():
                import iso_a
                import iso_a  # told once
                assert iso_a is host and iso_a.__version__ == "2.0"
            assert sys.modules["iso_a"] is host

        @pytest.mark.isoenv(requires=["iso-a==2.0"])
        def test_same_version_is_not_told(isoenv):
            with isoenv.activate():
                import iso_a
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "*test_block*",
            "*test_a_module_the_host_imported_before_stays_the_hosts_with_a_warning.py:8: "
            "IsoenvWarning: `import iso_a` in an isoenv.activate() block gets the module the "
            "host imported before the block, iso-a 2.0 (*host/iso_a/__init__.py), not the "
            "env's iso-a 1.0*",
        ]
    )
    assert result.stdout.str().count("IsoenvWarning") == 1


def test_nested_blocks_are_refused(pytester: pytest.Pytester, offline_env: Path) -> None:
    pytester.makepyfile(
        """
        import sys
        import pytest
        from pytest_isoenv import IsoenvError

        def test_nested(isoenv):
            with isoenv.activate():
                path = list(sys.path)
                with pytest.raises(IsoenvError, match="cannot be nested"):
                    with isoenv.activate():
                        pass
                assert sys.path == path  # the refused block changed nothing
            with isoenv.activate():  # the first one is over: a new one is fine
                pass
        """
    )
    pytester.runpytest_subprocess().assert_outcomes(passed=1)


def _runs(python: Path) -> bool:
    """Whether ``python`` is another minor version than this one, and runs."""
    code = "import sys; print(sys.version_info[:2])"
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False)
    return done.returncode == 0 and done.stdout.strip() != str(sys.version_info[:2])


def test_an_env_on_another_interpreter_cannot_be_activated(
    pytester: pytest.Pytester, offline_env: Path
) -> None:
    pyenv = pyenv_root(os.environ) / "versions"
    found = [*pyenv.glob("3.1[02].*/bin/python3"), shutil.which("python3.12")]
    other = next((Path(p) for p in found if p and _runs(Path(p))), None)
    if other is None:
        pytest.skip("needs a Python 3.10 or 3.12 beside the one running the tests")
    venv = pytester.path / "other venv"
    subprocess.run([UV, "venv", "--quiet", "--python", str(other), str(venv)], check=True)
    pytester.makepyfile(
        """
        import sys
        import pytest
        from pytest_isoenv import IsoenvError

        def test_other(isoenv):
            path = list(sys.path)
            with pytest.raises(IsoenvError) as raised:
                with isoenv.activate():
                    pass
            message = str(raised.value)
            assert "inside=True" in message and "isoenv.run(" in message
            assert str(isoenv.base.interpreter) in message
            assert sys.path == path
        """
    )
    pytester.runpytest_subprocess(f"--isoenv-base={venv}").assert_outcomes(passed=1)


@pytest.mark.realpkgs
def test_numpy_in_several_blocks_and_tests(
    pytester: pytest.Pytester, offline_real_env: Path, real_wheelhouse: Wheelhouse
) -> None:
    """An extension module cannot be loaded twice (NumPy refuses): later blocks get it back."""
    if real_wheelhouse.newest("numpy", ">=2") is None:
        pytest.skip(f"no numpy 2 wheel for this Python in {real_wheelhouse.path}")
    pytester.makepyfile(
        """
        import sys
        import pytest

        @pytest.mark.isoenv(requires=["numpy>=2"])
        def test_twice(isoenv):
            with isoenv.activate():
                import numpy
                first = numpy
                assert numpy.ones(2).sum() == 2
            assert "numpy" not in sys.modules
            with isoenv.activate():
                import numpy
                assert numpy is first

        @pytest.mark.isoenv(requires=["numpy>=2", "six"])
        def test_another_layer_holding_the_same_numpy(isoenv):
            with isoenv.activate():
                import numpy
                assert numpy.arange(3).tolist() == [0, 1, 2]
            assert "numpy" not in sys.modules
        """
    )
    pytester.runpytest_subprocess("-p", "no:randomly").assert_outcomes(passed=2)


def test_a_single_file_module_setting_its_own_path_is_no_package(tmp_path: Path) -> None:
    """six.py sets ``__path__ = []``: its sys.path directory is still its file's."""
    import types

    from pytest_isoenv._host_imports import module_root

    module = types.ModuleType("six")
    module.__file__ = str(tmp_path / "site" / "six.py")
    module.__path__ = []
    assert module_root(module) == str(tmp_path / "site")
    package = types.ModuleType("pkg")
    package.__file__ = str(tmp_path / "site" / "pkg" / "__init__.py")
    package.__path__ = [str(tmp_path / "site" / "pkg")]
    assert module_root(package) == str(tmp_path / "site")
