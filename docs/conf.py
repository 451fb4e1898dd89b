"""Sphinx configuration of the pytest-isoenv documentation (built by ``tox -e docs``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest_isoenv

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "pytest-isoenv"
author = "pytest-isoenv developers"
copyright = "pytest-isoenv developers"
release = version = pytest_isoenv.__version__
repository = "https://github.com/pytest-isoenv/pytest-isoenv"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.extlinks",
    "isoenv_reference",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
root_doc = "index"
# Option names and quoted values are typed by users: no "--" turned into a dash.
smartquotes = False

# Markdown pages link to each other's headings as `page.md#heading`.
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence", "deflist"]

# Files outside docs/ (examples, benchmark script) are linked on the repository.
extlinks = {"source": (f"{repository}/blob/main/%s", "%s")}

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True

# Every cross-reference must resolve (-n), except to modules the docs do not document: the
# build must not need the network, so there is no intersphinx inventory to resolve them with.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(pathlib|os|subprocess|collections\.abc|typing|contextlib)\..*"),
    (r"py:.*", r"packaging\..*"),
    (r"py:.*", r"_?pytest\..*"),  # pytest's own types (MonkeyPatch, ...)
    (r"py:class", r"(Path|Any|Requirement|Interpreter|Script|IsoenvSession|Entry)"),
    (r"py:class", r"pytest_isoenv\._.*"),  # private helper types named in annotations
]

html_theme = "furo"
html_title = f"pytest-isoenv {release}"
html_theme_options = {
    "source_repository": repository,
    "source_branch": "main",
    "source_directory": "docs/",
}
