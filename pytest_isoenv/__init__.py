"""pytest-isoenv: an isolated Python environment for every test, at almost no cost."""

from __future__ import annotations

from ._derived import DerivedEnv
from ._errors import (
    BaseBuildError,
    InstallError,
    IsoenvError,
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
    "MarkerError",
    "RunError",
    "SharedEnv",
    "SharedEnvModified",
    "__version__",
]
