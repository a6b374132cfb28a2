"""The reference list in the same author-year style as the citations in the text.

The chapters cite with sphinxcontrib-bibtex's ``author_year`` referencing style
(``bibtex_reference_style`` in ``_config.yml``): "Dempster et al. [1977]" in a sentence,
"[Dempster et al., 1977]" in parentheses. The bibliography styles that pybtex ships label the
entries with numbers (``plain``) or abbreviations (``alpha``), so a reader who looks up
"Dempster et al., 1977" in the list finds "[3]". This extension registers the pybtex
formatting style ``author_year`` (set as ``bibtex_default_style``): the entries are sorted by
author, year and title, as in ``plain``, and each is labelled with the text of its
parenthetical citation, "Dempster et al., 1977" (one author: "Jensen, 1906"; two: "Celeux
and Govaert, 1992"), with a, b, ... appended when two entries would share a label.
"""
from __future__ import annotations

from collections import Counter

from pybtex.plugin import register_plugin
from pybtex.richtext import Text
from pybtex.style.formatting.plain import Style as PlainStyle
from pybtex.style.labels import BaseLabelStyle

NAME = "author_year"


def _last_name(person) -> str:
    """The last name as plain text, LaTeX accents decoded ("Capp{\\'e}" -> "Cappé")."""
    return Text(*person.rich_last_names).render_as("text")


def author_year_label(entry) -> str:
    """"Last, year", "Last1 and Last2, year" or "Last1 et al., year", as the citations read."""
    persons = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [_last_name(p) for p in persons]
    if not names:
        who = Text.from_latex(entry.fields.get("title", entry.key)).render_as("text")
    elif len(names) == 1:
        who = names[0]
    elif len(names) == 2:
        who = f"{names[0]} and {names[1]}"
    else:
        who = f"{names[0]} et al."
    return f"{who}, {entry.fields.get('year', 'n.d.')}"


class AuthorYearLabelStyle(BaseLabelStyle):
    """Labels "Dempster et al., 1977", made unique with a, b, ... after the year."""

    def format_labels(self, sorted_entries):
        entries = list(sorted_entries)
        labels = [author_year_label(entry) for entry in entries]
        counts, seen = Counter(labels), Counter()
        for label in labels:
            if counts[label] > 1:
                yield label + "abcdefghijklmnopqrstuvwxyz"[seen[label]]
                seen[label] += 1
            else:
                yield label


class AuthorYearStyle(PlainStyle):
    """pybtex's ``plain`` formatting and sorting (author, year, title) with author-year labels."""

    default_label_style = AuthorYearLabelStyle


def setup(app):
    register_plugin("pybtex.style.formatting", NAME, AuthorYearStyle)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
