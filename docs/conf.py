"""Sphinx configuration of the persist docs.

Build (after installing persist into the environment, as scripts/test-all.sh does):

    python -m sphinx -W --keep-going -b html docs docs/_build/html

The reference pages are generated from the installed package's docstrings (autodoc reads
``__doc__`` from the compiled module too), so build against the version you mean to describe.
The code examples in these pages are run by tests/python/test_docs.py.
"""

from __future__ import annotations

import persist

project = "persist"
author = "the persist authors"
copyright = "2026, the persist authors"  # noqa: A001 - Sphinx's name
release = persist.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build"]

# Headings become link targets, so pages can link to a section of FORMAT.md or the papers.
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "show-inheritance": True}

html_theme = "alabaster"
html_title = f"persist {release}"
html_static_path: list[str] = []


# These classes are never constructed by users (a store gives them out), so their pages show no
# constructor signature: the native ones would show their refusing ``__new__``'s ``*_args``.
_NO_SIGNATURE = {
    "persist.Store",
    "persist.Dict",
    "persist.List",
    "persist._persist.LockGuard",
    "persist._persist.Transaction",
    "persist._persist.ListIter",
}


def _hide_constructor(
    app: object,
    what: str,
    name: str,
    obj: object,
    options: object,
    signature: str | None,
    return_annotation: str | None,
) -> tuple[str, str | None] | None:
    if what in ("class", "exception") and name in _NO_SIGNATURE:
        return "", return_annotation
    return None


def setup(app: object) -> None:
    app.connect("autodoc-process-signature", _hide_constructor)  # type: ignore[attr-defined]
