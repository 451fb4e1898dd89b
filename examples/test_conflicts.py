"""Two tools that need different versions of one package: each test gets its own, side by side.

The story of PyTorch-style conflicts: installing one tool's pins globally breaks the other.
"""

import pytest

VERSION = "import packaging; print(packaging.__version__)"


@pytest.mark.isoenv(requires=["packaging==23.2"])
def test_tool_that_needs_old_packaging(isoenv):
    assert isoenv.run("python", "-c", VERSION).stdout.strip() == "23.2"


@pytest.mark.isoenv(requires=["packaging==24.1"])
def test_tool_that_needs_new_packaging(isoenv):
    assert isoenv.run("python", "-c", VERSION).stdout.strip() == "24.1"


def test_neither_leaks_into_the_base(isoenv):
    done = isoenv.run("python", "-c", "import packaging", check=False)
    assert done.returncode != 0
