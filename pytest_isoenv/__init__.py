"""pytest-isoenv: an isolated Python environment for every test, at almost no cost."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._derived import DerivedEnv
    from ._errors import (
        BaseBuildError,
        InstallError,
        IsoenvError,
        IsoenvWarning,
        MarkerError,
        RunError,
        SharedEnvModified,
    )
    from ._shared_env import SharedEnv

__version__ = "0.1.0"

__all__ = [
    "BaseBuildError",
    "DerivedEnv",
    "InstallError",
    "IsoenvError",
    "IsoenvWarning",
    "MarkerError",
    "RunError",
    "SharedEnv",
    "SharedEnvModified",
    "__version__",
]

# pytest imports this package for the plugin in every session: the public names are imported
# on first use, so that a session without env tests does not pay for what they need.
_LAZY = {
    "DerivedEnv": "._derived",
    "SharedEnv": "._shared_env",
    **dict.fromkeys(
        (
            "BaseBuildError",
            "InstallError",
            "IsoenvError",
            "IsoenvWarning",
            "MarkerError",
            "RunError",
            "SharedEnvModified",
        ),
        "._errors",
    ),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib  # noqa: PLC0415

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
