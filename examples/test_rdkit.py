"""The code-interpreter story: every kernel gets its own derived env over one base.

rdkit is installed once, into a layer that every test asking for it shares; what a kernel
installs at run time stays in that kernel's env. Uses the real package index (PyPI).
"""

import pytest

COUNT_ATOMS = "from rdkit import Chem; print(Chem.MolFromSmiles('CC').GetNumAtoms())"
WHERE = "import rdkit; print(rdkit.__file__)"


@pytest.mark.network
@pytest.mark.isoenv(requires=["rdkit"])
def test_kernel_counts_atoms(isoenv):
    assert isoenv.run("python", "-c", COUNT_ATOMS).stdout == "2\n"


@pytest.mark.network
@pytest.mark.isoenv(requires=["rdkit"])
def test_another_kernel_shares_the_rdkit_layer(isoenv):
    # rdkit is imported from the shared layer: neither this test's env nor the base holds it.
    assert isoenv.run("python", "-c", WHERE).stdout.startswith(str(isoenv.layer.site_packages))
    assert "rdkit" in isoenv.layer.packages
    assert "rdkit" not in isoenv.base.packages


@pytest.mark.network
@pytest.mark.isoenv(requires=["rdkit"])
def test_a_kernels_installs_stay_in_that_kernel(isoenv):
    # The kernel's "!pip install": into this env only, gone when the test ends.
    assert isoenv.install("iniconfig==2.1.0") == ["iniconfig==2.1.0"]
    isoenv.run("python", "-c", "import iniconfig, rdkit")
    assert "iniconfig" not in isoenv.layer.packages
