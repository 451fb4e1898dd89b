"""Markers on several levels combine; tests that ask for the same extras share one layer."""

import pytest

pytestmark = pytest.mark.isoenv(requires=["six==1.16.0"])


def test_module_marker(isoenv):
    assert isoenv.requirements == ("six==1.16.0",)
    out = isoenv.run("python", "-c", "import six; print(six.__version__)")
    assert out.stdout.strip() == "1.16.0"


@pytest.mark.isoenv(requires=["packaging>=23"])
def test_module_and_function_markers(isoenv):
    assert isoenv.requirements == ("six==1.16.0", "packaging>=23")
    isoenv.run("python", "-c", "import six, packaging")
    # the layer holds exactly what the base lacks for this test
    assert set(isoenv.layer.packages) == {"six", "packaging"}
