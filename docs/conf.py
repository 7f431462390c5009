"""Sphinx configuration of the ibsolver site.

Build (from the repository root, after ``pip install ".[docs]"``)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

The gallery scripts in ``examples/`` run during the build; one that raises fails it. For
a quick look at the text alone, add ``-D plot_gallery=0`` (the examples are then not run).
"""
from __future__ import annotations

import re
import warnings
from importlib.metadata import version as _version
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # the gallery draws off screen

ROOT = Path(__file__).resolve().parent.parent

project = "ibsolver"
author = "the ibsolver developers"
copyright = "the ibsolver developers"  # noqa: A001 - Sphinx's name for it
release = _version("ibsolver")
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",  # the benchmark tables are included from README.md
    "sphinxarg.ext",
    "sphinx_gallery.gen_gallery",
]

exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py"]
templates_path = ["_templates"]
html_theme = "alabaster"
html_theme_options = {"description": "Exact Information Bottleneck curves", "fixed_sidebar": True}
html_static_path: list[str] = []

# API reference: one generated page per public object, listed by hand in api.rst
autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False}
autodoc_typehints = "none"  # the numpydoc sections say the types
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_validation_checks: set[str] = set()
# numpydoc drops a section it does not know, with a Python warning that -W does not see
warnings.filterwarnings("error", message="Unknown section", category=UserWarning)

# the gallery: every script in examples/ runs; a failing one fails the build
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "abort_on_example_error": False,  # run them all, then fail the build listing each
    "only_warn_on_example_error": False,
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "reset_modules": ("matplotlib",),
    "min_reported_time": 1,
}


# Docstrings are plain text that reads well in help(): there |x| is an absolute value or a
# set's size, never a reStructuredText substitution. Escape the bars outside ``literals``
# before numpydoc parses the docstring (it runs at the default priority, 500).
_LITERAL = re.compile(r"(``.*?``)")


def _literal_bars(app, what, name, obj, options, lines):
    for i, line in enumerate(lines):
        if "|" in line:
            parts = _LITERAL.split(line)
            lines[i] = "".join(p if p.startswith("``") else p.replace("|", r"\|") for p in parts)


def setup(app):
    app.connect("autodoc-process-docstring", _literal_bars, priority=400)
