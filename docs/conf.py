"""Sphinx configuration of arraynn's documentation (built by ``nox -s docs``)."""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))

import arraynn  # noqa: E402

project = "arraynn"
author = "arraynn developers"
copyright = "arraynn developers, MIT licence"  # noqa: A001
release = arraynn.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.doctest",
    "benchmark_tables",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
# command lines are text: "--preset" stays two hyphens, quotes stay straight
smartquotes = False
exclude_patterns = ["_build", "_ext", "_templates"]
templates_path = ["_templates"]

# MyST: ```{directive}``` blocks, ::: fences, $-free text, anchors for ## and ### headings
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
# benchmarks/README.md, included as the benchmark notes, skips heading levels (### under #)
suppress_warnings = ["myst.header"]

# The package's docstrings are numpydoc-style; napoleon reads them without numpydoc's own checks.
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
# attributes as fields of their class, so a documented property is not described twice
napoleon_use_ivar = True
napoleon_preprocess_types = False
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autosummary_generate = True
autosummary_imported_members = False

# sphinx.ext.doctest: pages' {doctest} blocks and the docstrings' >>> examples, tiny and offline
doctest_global_setup = """
import warnings
import numpy as np
import arraynn
# the docstrings' examples use the package's names as their module does
from arraynn import *
"""
doctest_test_doctest_blocks = "default"

html_theme = "furo"
html_title = f"arraynn {release}"
html_static_path = ["_static"]
html_show_sourcelink = False
html_copy_source = False
