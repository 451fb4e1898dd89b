"""Settings: --isoenv-rebuild, its env var and ini key, with the precedence of every flag."""

from __future__ import annotations

import pytest

from pytest_isoenv._settings import resolve


@pytest.mark.parametrize(
    ("cli", "env", "ini", "expected"),
    [
        (False, None, None, False),
        (True, None, None, True),
        (False, "1", None, True),
        (False, None, "true", True),
        (False, "0", "true", False),  # the env var wins over the ini
        (True, "0", "false", True),  # the command line wins over both
        (False, "", "true", True),  # an empty env var is unset
    ],
)
def test_rebuild_setting(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    cli: bool,
    env: str | None,
    ini: str | None,
    expected: bool,
) -> None:
    monkeypatch.delenv("PYTEST_ISOENV_REBUILD", raising=False)
    if env is not None:
        monkeypatch.setenv("PYTEST_ISOENV_REBUILD", env)
    if ini is not None:
        pytester.makeini(f"[pytest]\nisoenv_rebuild = {ini}\n")
    config = pytester.parseconfigure(*(["--isoenv-rebuild"] if cli else []))
    assert resolve(config).rebuild is expected


def test_rebuild_is_documented_in_help(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["*--isoenv-rebuild*Build the base and every layer*"])
    result.stdout.fnmatch_lines(["  isoenv_rebuild (bool):*"])
