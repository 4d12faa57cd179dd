"""Sphinx configuration: ``python -m sphinx -W -b html docs docs/_build/html`` from the repository root."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

from warpfields import __version__  # noqa: E402

project = "warpfields"
copyright = "the warpfields developers; Apache-2.0"
version = release = __version__

extensions = ["sphinx.ext.autodoc", "myst_parser", "warpfields_docs"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
myst_heading_anchors = 3
autodoc_member_order = "bysource"
autodoc_typehints = "description"
html_theme = "alabaster"
