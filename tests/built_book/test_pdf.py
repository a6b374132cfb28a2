"""The PDF of the whole book (`make pdf`): every chapter is in it, and its figures are not blank."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from book_sources import chapters, code_cells, figure_outputs, markdown_text, title, toc_files
from .conftest import BUILD, require, require_tool

PDF = Path(os.environ.get("EMBOOK_PDF", BUILD / "latex" / "em-book.pdf"))


def normalize(text: str) -> str:
    """Fold the differences between source text and pdftotext output: quotes, dashes, ligatures,
    hyphenation at line ends and white space."""
    for a, b in (("\u2019", "'"), ("\u2018", "'"), ("\u201c", '"'), ("\u201d", '"'), ("\u2013", "-"),
                 ("\u2014", "-"), ("\ufb01", "fi"), ("\ufb02", "fl"), ("\ufb00", "ff"), ("\ufb03", "ffi")):
        text = text.replace(a, b)
    text = re.sub(r"-\n(?=[a-z])", "", text)
    return re.sub(r"\s+", " ", text).strip().lower()


@pytest.fixture(scope="module")
def pdf_text() -> str:
    require_tool("pdftotext")
    require(PDF.exists(), f"no PDF at {PDF}: run `make pdf` first")
    return subprocess.run(["pdftotext", "-layout", str(PDF), "-"], check=True, capture_output=True,
                          text=True).stdout


@pytest.mark.parametrize("page", toc_files(), ids=lambda p: p.stem)
def test_every_chapter_title_is_in_the_pdf(pdf_text, page):
    assert normalize(title(page)) in normalize(pdf_text)


def test_theorems_proofs_and_exercises_come_through(pdf_text):
    sources = "\n".join(markdown_text(p) for p in toc_files())
    text = normalize(pdf_text)
    for directive, word in (("prf:theorem", "theorem"), ("prf:proof", "proof"),
                            ("exercise", "exercise"), ("solution", "solution")):
        if "{" + directive + "}" in sources:
            assert word in text, f"the book has {directive} directives but the PDF never says '{word}'"
    assert "references" in text


def pdf_images() -> list[tuple[int, int]]:
    """(page, image number) of every image in the PDF, from `pdfimages -list` (not their masks)."""
    listing = subprocess.run(["pdfimages", "-list", str(PDF)], check=True, capture_output=True, text=True).stdout
    rows = [line.split() for line in listing.splitlines()[2:] if line.strip()]
    return [(int(r[0]), int(r[1])) for r in rows if r[2] == "image"]


def test_every_figure_is_in_the_pdf_and_not_blank(tmp_path):
    require_tool("pdfimages")
    require(PDF.exists(), f"no PDF at {PDF}: run `make pdf` first")
    n_figures = sum(len(figure_outputs(p)) for p in chapters())
    images = pdf_images()
    assert len(images) >= n_figures, f"the notebooks show {n_figures} figures but the PDF holds {len(images)} images"
    from PIL import Image

    subprocess.run(["pdfimages", "-png", str(PDF), str(tmp_path / "img")], check=True)
    blank = []
    for _, number in images:  # skip the soft masks (alpha channels), which are extracted too
        png = tmp_path / f"img-{number:03d}.png"
        pixels = np.asarray(Image.open(png).convert("L"), dtype=float)
        if pixels.size == 0 or pixels.std() < 1.0:  # one flat colour: nothing drawn
            blank.append(png.name)
    assert not blank, f"blank images in the PDF: {blank}"
    # and every page that holds an image renders with ink on it
    for page in sorted({p for p, _ in images}):
        out = tmp_path / f"page-{page}"
        subprocess.run(["pdftoppm", "-r", "20", "-gray", "-png", "-f", str(page), "-l", str(page), str(PDF), str(out)],
                       check=True)
        rendered = np.asarray(Image.open(next(tmp_path.glob(f"page-{page}*.png"))), dtype=float)
        assert (rendered < 200).mean() > 0.01, f"page {page} of the PDF is blank where a figure should be"


# -- The PDF and the HTML number things the same way; no raw TeX; nothing runs off the page. --

def code_text() -> str:
    """Every code cell and markdown code block of the book, white space removed (TeX is legal there)."""
    parts = ["".join(c["source"]) for p in chapters() for c in code_cells(p)]
    parts += re.findall(r"```[a-z]*\n(.*?)```", "\n".join(markdown_text(p) for p in toc_files()), flags=re.S)
    return re.sub(r"\s+", "", "\n".join(parts))


def test_no_tex_escaped_into_the_pdf_text(pdf_text):
    """A wrapped line inside $...$ that starts with '- ' becomes a list item and prints its TeX raw."""
    code = code_text()
    tex = re.compile(r"\\(?:[a-zA-Z]{2,}|[()\[\]])|\$[^$\s][^$\n]{0,40}\$")
    hits = []
    for line in pdf_text.splitlines():
        if "\u02d3\u2192" in line:   # "˓→": Sphinx's mark for a code line wrapped onto the next
            continue
        for match in tex.finditer(line):
            # a piece of code, printed as it is in a code cell, is not a defect
            context = re.sub(r"\s+", "", line[max(0, match.start() - 15):match.end() + 15])
            if re.sub(r"\s+", "", match.group(0)) not in code or context[:12] not in code:
                hits.append(line.strip()[:100])
    assert not hits, f"raw TeX in the PDF text: {hits[:10]}"


def test_nothing_runs_off_the_page():
    """latexmk's log: every overfull line is at most a few points wide."""
    log = PDF.with_suffix(".log")
    require(log.exists(), f"no LaTeX log at {log}: run `make pdf` first")
    widths = [float(w) for w in re.findall(r"Overfull \\hbox \((\d+(?:\.\d+)?)pt too wide\)",
                                            log.read_text(errors="replace"))]
    wide = [w for w in widths if w > 4.0]
    assert not wide, f"{len(wide)} lines run off the page by up to {max(wide):.0f} pt (see {log.name})"


def test_every_reference_resolves(pdf_text):
    """No "??" where a number should be: LaTeX reports no undefined reference, and the text has none."""
    log = PDF.with_suffix(".log")
    require(log.exists(), f"no LaTeX log at {log}: run `make pdf` first")
    text = log.read_text(errors="replace")
    # TeX folds its log at 79 characters, so a warning may continue on the next line
    undefined = re.findall(r"Reference `([^']+)' on page \d+\s*undefined", text.replace("\n", ""))
    assert not undefined and "There were undefined references" not in text, \
        f"undefined references in the PDF: {sorted(set(undefined))}"
    unresolved = [line.strip()[:100] for line in pdf_text.splitlines() if "??" in line]
    assert not unresolved, f"unresolved references printed as ?? in the PDF: {unresolved[:10]}"
