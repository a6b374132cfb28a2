"""The book's edition: one version number, emlib's ``__version__``, everywhere it is shown.

Sphinx's ``version``/``release`` (the PDF title page), the footer of every HTML page and the
substitution ``{{ edition }}`` (used by the introduction) all come from ``emlib/__init__.py``,
read as text so that building the book never imports the library.
"""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def edition() -> str:
    """``__version__`` of emlib, e.g. ``"0.2.0"``."""
    text = (ROOT / "emlib" / "__init__.py").read_text()
    match = re.search(r'^__version__ = "([^"]+)"$', text, flags=re.M)
    if not match:
        raise ValueError("emlib/__init__.py has no line __version__ = \"...\"")
    return match.group(1)


def apply(app, config) -> None:
    number = edition()
    config.version = config.release = number
    options = dict(config.html_theme_options or {})
    footer = f'<p class="edition">Edition {number} &middot; <a href="https://semver.org">semantic versioning</a></p>'
    options["extra_footer"] = options.get("extra_footer", "") + footer
    config.html_theme_options = options
    config.myst_substitutions = {**(config.myst_substitutions or {}), "edition": number}
    config.latex_elements = {**config.latex_elements, "releasename": "Edition"}


def setup(app):
    # after Jupyter Book has translated _config.yml into Sphinx's configuration
    app.connect("config-inited", apply, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
