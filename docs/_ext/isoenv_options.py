"""What the plugin registers with pytest, recorded without running pytest (for the reference).

The plugin's ``pytest_addoption`` hook is called with a stand-in parser that only records:
every option and ini key it registers, with its help text, is what ``pytest --help`` prints,
so the reference generated from this record cannot drift from the code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest_isoenv
from pytest_isoenv import plugin


@dataclass
class Option:
    """One command-line option."""

    names: tuple[str, ...]
    dest: str
    help: str
    metavar: str | None
    is_flag: bool


@dataclass
class Ini:
    """One ini key."""

    name: str
    help: str
    type: str | None
    default: Any


@dataclass
class Setting:
    """A setting as users see it: its ini key, command-line option and environment variable."""

    name: str
    help: str
    option: Option | None = None
    ini: Ini | None = None
    env_var: str | None = None


@dataclass
class _Recorder:
    """Stands in for ``pytest.Parser`` and its option groups: records, validates nothing."""

    options: list[Option] = field(default_factory=list)
    inis: list[Ini] = field(default_factory=list)
    groups: list[tuple[str, str]] = field(default_factory=list)

    def getgroup(self, name: str, description: str = "", after: str | None = None) -> _Recorder:
        self.groups.append((name, description))
        return self

    def addoption(self, *names: str, **attrs: Any) -> None:
        action = attrs.get("action", "store")
        self.options.append(
            Option(
                names=names,
                dest=attrs.get("dest") or names[-1].lstrip("-").replace("-", "_"),
                help=attrs.get("help", ""),
                metavar=attrs.get("metavar"),
                is_flag=action in ("store_true", "store_false", "count"),
            )
        )

    _addoption = addoption

    def addini(
        self, name: str, help: str, type: str | None = None, default: Any = None, **_: Any
    ) -> None:
        self.inis.append(Ini(name, help, type, default))


def record() -> _Recorder:
    """Call the plugin's ``pytest_addoption`` on a recorder and return what it registered."""
    recorder = _Recorder()
    plugin.pytest_addoption(recorder)  # type: ignore[arg-type]
    return recorder


def environment_variables() -> set[str]:
    """Every ``PYTEST_ISOENV_*`` name the package's source mentions (so reads)."""
    found: set[str] = set()
    for module in Path(pytest_isoenv.__file__).parent.glob("*.py"):
        found.update(re.findall(r"\bPYTEST_ISOENV_[A-Z0-9_]+\b", module.read_text("utf-8")))
    return found


def settings() -> list[Setting]:
    """Options and ini keys paired by name (an option's ``dest`` is its ini twin's name).

    A setting's environment variable is ``PYTEST_ISOENV_<NAME>`` when the code mentions it.
    """
    recorded = record()
    variables = environment_variables()
    by_name: dict[str, Setting] = {}
    for ini in recorded.inis:
        by_name[ini.name] = Setting(ini.name, ini.help, ini=ini)
    for option in recorded.options:
        setting = by_name.setdefault(option.dest, Setting(option.dest, option.help))
        setting.option = option
        setting.help = option.help or setting.help
    for setting in by_name.values():
        variable = "PYTEST_" + setting.name.upper()
        if variable in variables:
            setting.env_var = variable
    return list(by_name.values())
