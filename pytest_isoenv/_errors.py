"""Errors: one type per way pytest-isoenv can fail, each with a message a user can act on."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

from ._redact import redact


class IsoenvError(Exception):
    """Base class of every error pytest-isoenv raises."""


class MarkerError(IsoenvError):
    """A static mistake in an ``isoenv`` marker or ini setting (reported at collection)."""


class InstallError(IsoenvError):
    """uv could not install the requested requirements (missing package, conflict, network)."""

    def __init__(self, requirements: Sequence[str], output: str) -> None:
        #: What was asked for (credentials in URLs hidden).
        self.requirements = tuple(redact(r) for r in requirements)
        #: uv's message, or the conflicts found (credentials hidden, as uv hides them).
        self.output = redact(output.strip())
        wanted = ", ".join(self.requirements) or "(nothing)"
        super().__init__(f"could not install {wanted}:\n{self.output}")


class BaseBuildError(IsoenvError):
    """The base env could not be built; every test that needs it errors with this message."""


class SharedEnvModified(IsoenvError):
    """A test changed the base env or a layer, which every other test shares."""


class IsoenvWarning(UserWarning):
    """A test's code used a package that is not its env's: the host's copy, imported in-process.

    Told when a marked test imports, in pytest's own process, a distribution its marker asks
    for, or when a ``with isoenv.activate():`` block gets the host's copy of a module the host
    had already imported. ``-W error::pytest_isoenv.IsoenvWarning`` makes it a failure.
    """


class RunError(subprocess.CalledProcessError):
    """A command run with ``isoenv.run(..., check=True)`` failed; the message shows its output."""

    def __str__(self) -> str:
        text = super().__str__()
        for name, stream in (("stdout", self.stdout), ("stderr", self.stderr)):
            if stream and stream.strip():
                tail = stream.strip()[-4000:]
                text += f"\n--- {name} ---\n{tail}"
        return text
