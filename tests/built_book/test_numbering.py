"""The HTML book, the PDF and the generated indexes give every theorem, exercise and equation the
same number: an instructor who assigns "Exercise 3.2" means the same problem in all of them."""
from __future__ import annotations

import re
from pathlib import Path

from book_sources import RESULT_KINDS, chapters, numbered_blocks
from .test_pdf import normalize, pdf_text  # noqa: F401  (the PDF text fixture)

NUMBERED = re.compile(r"^(Definition|Theorem|Lemma|Corollary|Proposition|Algorithm|Remark|Example|Exercise)"
                      r" (\d+\.\d+) \((.+)\)$")


def html_numbered_items(html_dir: Path) -> list[str]:
    """'Theorem 3.1 (Monotonicity of EM)', 'Exercise 3.2 (...)': every numbered, titled block of the HTML."""
    from bs4 import BeautifulSoup

    items = []
    for page in chapters():
        html = html_dir / page.relative_to(page.parents[1]).with_suffix(".html")
        soup = BeautifulSoup(html.read_text(), "html.parser")
        for heading in soup.select("p.admonition-title"):
            text = re.sub(r"\s+", " ", heading.get_text(" ", strip=True))
            if NUMBERED.match(text):
                # maths in a title is raw TeX in the HTML source: compare the words before it
                items.append(text.split("\\(")[0].rstrip(" ("))
    return items


def html_equation_numbers(html_dir: Path) -> list[str]:
    from bs4 import BeautifulSoup

    numbers = []
    for page in chapters():
        html = html_dir / page.relative_to(page.parents[1]).with_suffix(".html")
        soup = BeautifulSoup(html.read_text(), "html.parser")
        numbers += [e.get_text().strip("#").strip() for e in soup.select("span.eqno")]
    return numbers


def test_the_indexes_number_every_block_as_the_html_does(html_dir):
    """book/exercises.md and book/results.md compute numbers from the sources; the HTML must agree."""
    html = {item.split(" (")[0] for item in html_numbered_items(html_dir)}
    for page in chapters():
        for kind, number, label in numbered_blocks(page, RESULT_KINDS + ("exercise",)):
            assert f"{kind.title()} {number}" in html, f"{label}: the index says {kind} {number}, the HTML does not"


def test_theorems_and_exercises_carry_the_same_numbers_as_in_the_html(pdf_text, html_dir):
    items = html_numbered_items(html_dir)
    assert len(items) > 50, f"only {len(items)} numbered blocks found in the HTML"
    text = normalize(pdf_text)
    missing = [item for item in items if normalize(item) not in text]
    assert not missing, (
        f"{len(missing)} numbered blocks of the HTML are numbered otherwise in the PDF: {missing[:8]}. (If a whole "
        "chapter's theorems lost their numbers: sphinx-proof finds a block's chapter in LaTeX by comparing the "
        "chapter title with its typeset form, so write a typographic apostrophe ’ in chapter titles, not ').")


def test_equations_carry_the_same_numbers_as_in_the_html(pdf_text, html_dir):
    html_numbers = html_equation_numbers(html_dir)
    assert len(html_numbers) > 50
    pdf_numbers = set(re.findall(r"\((\d+\.\d+)\)", pdf_text))
    missing = [n for n in html_numbers if n.strip("()") not in pdf_numbers]
    assert not missing, f"equation numbers of the HTML that the PDF never shows: {missing[:10]}"
    chapters_html = {n.strip("()").split(".")[0] for n in html_numbers}
    chapters_pdf = {n.split(".")[0] for n in pdf_numbers if int(n.split(".")[0]) <= len(chapters())}
    assert max(map(int, chapters_pdf)) == max(map(int, chapters_html)), "the PDF has more numbered chapters"


