"""Small corrections to the HTML pages that the theme and Jupyter Book's extensions produce.

- Live code (sphinx-thebe) is not used by this book, yet Jupyter Book always loads the
  extension, which registers its inline configuration script once per reading pass; the second
  copy throws "Identifier 'THEBE_JS_URL' has already been declared" in every page's console.
  Its scripts are removed from the pages.
- Wide tables scroll inside their own box instead of widening the page on a phone, and search
  results typeset the maths of their text snippets (static/book.css, static/book.js).
"""
from __future__ import annotations

from pathlib import Path

STATIC = Path(__file__).resolve().parent / "static"


def _is_thebe(script) -> bool:
    body = getattr(script, "attributes", {}).get("body", "") or ""
    filename = getattr(script, "filename", "") or ""
    return "THEBE_JS_URL" in body or "thebe" in str(filename)


def drop_thebe(app, pagename, templatename, context, doctree) -> None:
    if "script_files" in context:
        context["script_files"] = [s for s in context["script_files"] if not _is_thebe(s)]


def add_static(app, config) -> None:
    config.html_static_path = list(config.html_static_path) + [str(STATIC)]


def setup(app):
    app.connect("config-inited", add_static)
    app.add_css_file("book.css")
    app.add_js_file("book.js", defer="defer")
    app.connect("html-page-context", drop_thebe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
