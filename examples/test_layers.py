"""Stacked envs: test env -> layer (a view of the base plus the extras). Markers add up.

Every test in this module needs six 1.16.0 (the base ships 1.17.0); one needs packaging too.
A marker on a class works the same way.
"""

import pytest

pytestmark = pytest.mark.isoenv(requires=["six==1.16.0"])

SYS_PATH = "import sys; print('\\n'.join(sys.path))"


def test_module_marker(isoenv):
    assert isoenv.requirements == ("six==1.16.0",)
    # The layer's six shadows the base's: the stack is searched top down.
    assert isoenv.layer.packages == {"six": "1.16.0"}
    assert isoenv.base.packages["six"] == "1.17.0"
    assert isoenv.packages()["six"] == "1.16.0"


@pytest.mark.isoenv(requires=["packaging>=23"])
def test_module_and_function_markers(isoenv):
    assert isoenv.requirements == ("six==1.16.0", "packaging>=23")
    # One layer holds exactly what the base lacks for this test's combined requirements.
    assert set(isoenv.layer.packages) == {"six", "packaging"}
    isoenv.run("python", "-c", "import six, packaging")


def test_the_stack_order(isoenv):
    # The test's own env first, then its layer: a complete view of the base plus the extras,
    # made of links to one stored copy of each package (the base's six 1.17.0 is not in it).
    paths = isoenv.run("python", "-c", SYS_PATH).stdout.splitlines()
    stack = [isoenv.site_packages, isoenv.layer.site_packages]
    positions = [paths.index(str(site)) for site in stack]
    assert positions == sorted(positions)
    assert str(isoenv.base.site_packages) not in paths
    assert isoenv.packages()["demo-tool"] == "1.2.0"  # from the base, through the layer
