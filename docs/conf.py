"""Sphinx configuration of the spikefa documentation (MyST Markdown, notebooks through myst-nb).

Build: `python -m sphinx -W -b html docs docs/_build/html` (after `pip install -e ".[docs]"`).
Pages under `_generated/` are written at the start of every build from the code itself
(`_ext/spikefa_docs.py`): the config reference, the command reference, the results page and copies
of the notebooks. The notebooks are shown with the outputs they carry (none in the repository);
`SPIKEFA_DOCS_EXECUTE=1` runs them in QUICK mode during the build (a few minutes per notebook).
"""

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(DOCS.parent))  # the checkout's spikefa, also when it is not installed

import spikefa_docs  # noqa: E402

import spikefa  # noqa: E402

spikefa_docs.generate(DOCS)

project = "spikefa"
author = "the spikefa authors"
copyright = "the spikefa authors"
release = spikefa.__version__
version = release

extensions = [
    "myst_nb",  # MyST Markdown and Jupyter notebooks
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx.ext.napoleon",  # the numpydoc sections of the Python API's docstrings
    "spikefa_docs",  # docs/_ext: generated pages, plain-text docstrings
]
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}
root_doc = "index"
exclude_patterns = [
    "_build",
    "_generated/results_toctree.md",
    "tables/*",  # generated tables, included in the pages that discuss them
    "**/.ipynb_checkpoints",
    "Thumbs.db",
    ".DS_Store",
]
# the results report (docs/results.md, written by `spikefa report`) replaces the placeholder page
exclude_patterns.append(
    "_generated/results.md" if (DOCS / "results.md").is_file() else "results.md"
)
suppress_warnings = ["myst.header"]  # the generated results report may skip heading levels

myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# Notebooks: shown as committed; executed (QUICK mode) only when asked for.
if os.environ.get("SPIKEFA_DOCS_EXECUTE"):
    os.environ.setdefault("SPIKEFA_QUICK", "1")
    nb_execution_mode = "force"
    nb_execution_timeout = 900
    nb_execution_in_temp = True  # results folders of the runs go to a temporary folder
else:
    nb_execution_mode = "off"
nb_execution_raise_on_error = True

autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "signature"
autodoc_mock_imports = ["cupy", "torch"]
napoleon_google_docstring = False
napoleon_use_ivar = True  # Attributes sections as fields: the properties are not described twice

html_theme = "alabaster"
html_title = f"spikefa {release}"
html_static_path = []
html_theme_options = {
    "description": "Feedback alignment in spiking and rate networks",
    "fixed_sidebar": True,
}
