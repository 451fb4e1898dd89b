"""The reference in the docs is generated from a record of what the plugin registers.

The record (``docs/_ext/isoenv_options.py``) must hold exactly what ``pytest --help`` shows in
the isoenv group, so an option added to the plugin appears in the docs with no docs edit.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

OPTIONS_MODULE = Path(__file__).parent.parent / "docs" / "_ext" / "isoenv_options.py"


def _options_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("isoenv_options", OPTIONS_MODULE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _squeezed(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_the_docs_record_every_option_and_ini_key_of_pytest_help(
    pytester: pytest.Pytester,
) -> None:
    result = pytester.runpytest_subprocess("--help")
    assert result.ret == 0
    shown_options = set(re.findall(r"^\s+(--isoenv-[\w-]+)", result.stdout.str(), re.MULTILINE))
    shown_inis = set(re.findall(r"^\s+(isoenv_\w+) \(", result.stdout.str(), re.MULTILINE))
    assert shown_options, "pytest --help shows no isoenv option: is the plugin installed?"

    settings = _options_module().settings()
    recorded_options = {s.option.names[-1] for s in settings if s.option is not None}
    recorded_inis = {s.ini.name for s in settings if s.ini is not None}
    assert recorded_options == shown_options
    assert recorded_inis == shown_inis
    help_text = _squeezed(result.stdout.str())
    for setting in settings:
        assert _squeezed(setting.help) in help_text, setting.name


def test_the_docs_name_the_environment_variables_the_code_reads() -> None:
    by_name = {s.name: s for s in _options_module().settings()}
    assert by_name["isoenv_base"].env_var == "PYTEST_ISOENV_BASE"
    assert by_name["isoenv_cache_dir"].env_var == "PYTEST_ISOENV_CACHE_DIR"
    assert by_name["isoenv_requires"].env_var is None  # no such variable: none is documented
