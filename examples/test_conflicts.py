"""Two tools that pin different versions of one package, side by side.

The PyTorch-style conflict: install one tool's pins globally and the other tool breaks. Here
each test gets its own env, sees its own version, and the shared base never changes.
"""

import pytest

VERSION = "import packaging; print(packaging.__version__)"


@pytest.mark.isoenv(requires=["packaging==23.2"])
def test_tool_pinning_old_packaging(isoenv):
    assert isoenv.run("python", "-c", VERSION).stdout == "23.2\n"


@pytest.mark.isoenv(requires=["packaging==24.1"])
def test_tool_pinning_new_packaging(isoenv):
    assert isoenv.run("python", "-c", VERSION).stdout == "24.1\n"


def test_install_at_run_time_shadows_the_base(isoenv, isoenv_base):
    # The base ships six 1.17.0; this test needs 1.16.0, installed into its own env only.
    assert isoenv.install("six==1.16.0") == ["six==1.16.0"]
    out = isoenv.run("python", "-c", "import six; print(six.__version__)")
    assert out.stdout == "1.16.0\n"
    assert isoenv.packages()["six"] == "1.16.0"

    # The base is unchanged: ask it directly, no pip needed.
    assert isoenv_base.packages["six"] == "1.17.0"
    in_base = isoenv.run(isoenv_base.python, "-c", "import six; print(six.__version__)")
    assert in_base.stdout == "1.17.0\n"
    assert "packaging" not in isoenv_base.packages  # the markers above did not leak either
