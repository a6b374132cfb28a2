"""The PDF numbers chapters, equations, theorems and exercises exactly as the HTML book does.

In the HTML book only the parts of ``_toc.yml`` marked ``numbered: true`` are numbered, so the
first chapter of "The problem" is chapter 1. Jupyter Book's LaTeX instead turns every part into a
``\\part`` and every page into a numbered ``\\chapter`` (the Notation page became chapter 1 and
every later number was one too high), and numbers exercises and theorems with one level more
than the HTML ("Exercise 1.10.1"). This extension:

- numbers exercises and theorems by chapter (``numfig_secnum_depth = 1``), as the HTML, and lets
  LaTeX number equations and figures by chapter (``numfigreset=1``: the chapter level);
- rewrites the ``.tex`` after Sphinx writes it and before ``latexmk`` runs: the parts that are not
  numbered in ``_toc.yml`` lose their ``\\part`` heading and their chapters are unnumbered (they
  still appear in the contents), so LaTeX's chapter and equation counters match the HTML;
- sets the bibliography under the "References" chapter instead of a second, empty-headed one;
- with ``EMBOOK_PROBLEMS=1`` in the environment builds the problem set: every exercise, no
  solutions (``make problems``).

``tests/built_book/test_pdf.py`` compares numbers of the HTML and the PDF text.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def problem_set() -> bool:
    return os.environ.get("EMBOOK_PROBLEMS", "") == "1"


def unnumbered_parts() -> list[str]:
    """Captions of the parts of _toc.yml that the HTML does not number."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [part["caption"] for part in toc.get("parts", []) if not part.get("numbered")]


def configure(app, config) -> None:
    if problem_set():
        config.hide_solutions = True
        config.latex_documents = [(doc[0], "em-book-problems.tex", f"{doc[2]}: problems", *doc[3:])
                                  for doc in config.latex_documents]


def match_html_numbering(app) -> None:
    """After sphinx-jupyterbook-latex's builder-inited handler: one level of section numbers."""
    if app.builder.name == "latex":
        app.config.numfig_secnum_depth = 1


def restructure(tex: str, unnumbered: list[str]) -> str:
    """The .tex with unnumbered parts' headings removed and their chapters unnumbered."""
    # figures, tables and equations are numbered by LaTeX itself: by chapter, as the HTML does
    # (numfig_secnum_depth = 1 above serves only Sphinx's own numbers, and would make them global)
    tex, found = re.subn(r"numfigreset=\d", "numfigreset=1", tex, count=1)
    if not found:
        raise ValueError("the LaTeX does not load sphinx with numfigreset: Jupyter Book's LaTeX changed")
    keep = r"\edef\booksecnumdepth{\arabic{secnumdepth}}"
    tex = tex.replace(r"\begin{document}", r"\begin{document}" + "\n" + keep, 1)
    for caption in unnumbered:
        heading = r"\part{" + caption + "}"
        if heading not in tex:
            raise ValueError(f"the LaTeX has no {heading}: the structure of Jupyter Book's LaTeX changed")
        tex = tex.replace(heading, r"\setcounter{secnumdepth}{-1}% " + caption + " (unnumbered, as in HTML)")
    # every numbered part switches numbering back on
    tex = re.sub(r"(\\part\{)", r"\\setcounter{secnumdepth}{\\booksecnumdepth}\n\1", tex)
    # the report class opens the bibliography with its own \chapter*{Bibliography}: swallow it,
    # so the entries sit under the "References" chapter that introduces them
    tex = tex.replace(r"\begin{sphinxthebibliography}",
                      r"\begingroup\def\chapter*#1{}\begin{sphinxthebibliography}", 1)
    tex = tex.replace(r"\end{sphinxthebibliography}", r"\end{sphinxthebibliography}\endgroup", 1)
    return tex


def rewrite_tex(app, exception) -> None:
    if exception is not None or app.builder.name != "latex":
        return
    for _, target, *_ in app.config.latex_documents:
        path = Path(app.outdir) / target
        path.write_text(restructure(path.read_text(), unnumbered_parts()))


def setup(app):
    app.connect("config-inited", configure, priority=950)
    app.connect("builder-inited", match_html_numbering, priority=900)
    app.connect("build-finished", rewrite_tex)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
