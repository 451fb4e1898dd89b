"""The code-interpreter story: each kernel gets a derived env; rdkit is installed once, shared.

Uses the real package index (marked ``network``); deselect with ``-m "not network"``.
"""

import pytest

ATOMS = "from rdkit import Chem; print(Chem.MolFromSmiles('CC').GetNumAtoms())"

pytestmark = [pytest.mark.network, pytest.mark.isoenv(requires=["rdkit"])]


def test_molecule(isoenv):
    out = isoenv.run("python", "-c", ATOMS)
    assert out.stdout.strip() == "2"


def test_another_kernel_shares_the_rdkit_layer(isoenv):
    out = isoenv.run("python", "-c", ATOMS)
    assert out.stdout.strip() == "2"
    assert "rdkit" in isoenv.layer.packages
    assert "rdkit" not in isoenv.base.packages


def test_kernel_installs_stay_in_the_kernel(isoenv):
    isoenv.install("iniconfig")
    isoenv.run("python", "-c", "import iniconfig, rdkit")
