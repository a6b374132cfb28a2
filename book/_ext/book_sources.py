"""Read the book's sources: the chapters in _toc.yml order, their titles, cells and directives."""
from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def toc_files() -> list[Path]:
    """Every page of the table of contents, root first, as paths with their suffix."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    stems = [toc["root"]] + [c["file"] for part in toc.get("parts", []) for c in part["chapters"]]
    paths = []
    for stem in stems:
        for suffix in (".ipynb", ".md"):
            if (ROOT / (stem + suffix)).exists():
                paths.append(ROOT / (stem + suffix))
                break
        else:
            raise FileNotFoundError(f"_toc.yml lists {stem}, which has no .ipynb or .md file")
    return paths


def chapters() -> list[Path]:
    """The numbered chapters: the notebooks of the table of contents."""
    return [p for p in toc_files() if p.suffix == ".ipynb"]


def markdown_text(path: Path) -> str:
    """All markdown of a page (for a notebook, its markdown cells joined)."""
    if path.suffix == ".md":
        return path.read_text()
    nb = json.loads(path.read_text())
    return "\n\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")


def code_cells(path: Path) -> list[dict]:
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


def title(path: Path) -> str:
    """The page's title: its first level-1 heading, without markup."""
    match = re.search(r"^# (.+)$", markdown_text(path), flags=re.MULTILINE)
    if not match:
        raise ValueError(f"{path.name} has no '# Title' heading")
    return re.sub(r"[`*_]", "", match.group(1)).strip()


def directives(path: Path, name: str) -> list[str]:
    """Labels of the ``{name}`` directives of a page, e.g. name='exercise'."""
    return [label for label, _ in titled_directives(path, name)]


def titled_directives(path: Path, name: str) -> list[tuple[str, str]]:
    """(label, title) of the ``{name}`` directives of a page, in order."""
    pattern = re.compile(r"^(`{3,}|:{3,})\{" + re.escape(name) + r"\}([^\n]*)\n(?:[^\n]*\n)*?\s*:label:\s*(\S+)",
                         flags=re.MULTILINE)
    return [(m.group(3), m.group(2).strip()) for m in pattern.finditer(markdown_text(path))]


def glued_values(path: Path) -> dict[str, str]:
    """{name: text/plain} of every value a notebook glued, from its stored outputs (myst-nb)."""
    values = {}
    for cell in code_cells(path):
        for out in cell.get("outputs", []):
            name = out.get("metadata", {}).get("scrapbook", {}).get("name")
            if name is not None:
                prefix = out["metadata"]["scrapbook"].get("mime_prefix", "")
                text = out.get("data", {}).get(prefix + "text/plain", "")
                values[name] = "".join(text) if isinstance(text, list) else text
    return values


def glue_uses(path: Path) -> list[tuple[str, str]]:
    """(name, format spec) of every ``{glue:text}`name:spec``` role in a page's prose."""
    uses = []
    for body in re.findall(r"\{glue(?::[a-z]+)?\}`([^`]+)`", markdown_text(path)):
        name, _, spec = body.partition(":")
        uses.append((name.strip(), spec.strip()))
    return uses


def markdown_cells(path: Path) -> list[dict]:
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "markdown"]


def prose_uses(path: Path) -> list[str]:
    """The expressions of every ``{eval}`...``` role in a chapter's prose."""
    return re.findall(r"\{eval\}`([^`]+)`", markdown_text(path))


def prose_values(path: Path) -> dict[str, str]:
    """{expression: text/plain} of the prose's {eval} roles, as stored by ``make execute``."""
    return {e["expression"]: e["result"].get("data", {}).get("text/plain", "")
            for cell in markdown_cells(path) for e in cell.get("metadata", {}).get("user_expressions", [])
            if e.get("result", {}).get("status") == "ok"}


def prose_names_assigned(path: Path) -> set[str]:
    """Names of the form ``<chapter>_...`` that the chapter's code assigns: its prose values."""
    import ast

    names = set()
    for cell in code_cells(path):
        source = "".join(cell["source"])
        if source.lstrip().startswith(("%", "# emlib-book launch cell")):
            continue
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) and node.id.startswith(path.stem + "_"):
                names.add(node.id)
    return names


def prose_without_code_and_math(path: Path) -> str:
    """A page's markdown with code, roles, directive options, labels and maths removed."""
    text = markdown_text(path)
    text = re.sub(r"^(`{3,}|~{3,}).*?^\1", "", text, flags=re.S | re.M)          # fenced code
    text = re.sub(r"^\$\$.*?^\$\$.*$", "", text, flags=re.S | re.M)              # display maths
    text = re.sub(r"\$[^$]+\$", "", text)                                        # inline maths
    text = re.sub(r"\{[a-z:-]+\}`[^`]*`", "", text)                               # roles
    text = re.sub(r"`[^`]*`", "", text)                                          # inline code
    text = re.sub(r"^\s*:[a-z-]+:.*$", "", text, flags=re.M)                     # directive options
    return text


def figure_outputs(path: Path) -> list[dict]:
    """The code cells of a notebook that display a figure (a PNG output)."""
    return [c for c in code_cells(path)
            if any("image/png" in o.get("data", {}) for o in c.get("outputs", []))]


def chapter_numbers() -> dict[str, int]:
    """{stem: number} of the chapters in the numbered parts of _toc.yml, as the HTML numbers them."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    stems = [Path(c["file"]).name for part in toc.get("parts", []) if part.get("numbered")
             for c in part["chapters"]]
    return {stem: i for i, stem in enumerate(stems, start=1)}


RESULT_KINDS = ("theorem", "lemma", "proposition", "corollary", "definition", "algorithm")


def numbered_blocks(path: Path, kinds: tuple[str, ...]) -> list[tuple[str, str, str]]:
    """(kind, "c.n", label) of the numbered directives of the given kinds in a chapter, in order.

    Each kind is counted separately within its chapter, as sphinx-exercise and sphinx-proof do.
    """
    pattern = re.compile(r"^(?:`{3,}|:{3,})\{(?:prf:)?(" + "|".join(kinds) + r")\}[^\n]*\n"
                         r"(?:[^\n]*\n)*?\s*:label:\s*(\S+)", flags=re.MULTILINE)
    chapter = chapter_numbers()[path.stem]
    counts: dict[str, int] = {}
    blocks = []
    for match in pattern.finditer(markdown_text(path)):
        kind = match.group(1)
        counts[kind] = counts.get(kind, 0) + 1
        blocks.append((kind, f"{chapter}.{counts[kind]}", match.group(2)))
    return blocks


def _index_page(heading: str, intro: list[str], kinds: tuple[str, ...], role: str | None) -> str:
    """An index of numbered blocks by chapter. ``role`` links them where their anchors exist
    (``ref`` for exercises only in HTML, since their LaTeX has no labels; ``prf:ref`` everywhere)."""
    lines = [f"# {heading}", "", *intro, ""]
    for path in chapters():
        titles = dict(titled_directives_any(path, kinds))
        blocks = numbered_blocks(path, kinds)
        if not blocks:
            continue
        lines += [f"## {chapter_numbers()[path.stem]}. {title(path)}", ""]
        entry = [(f"{kind.title()} {number}", titles.get(label, ""), label) for kind, number, label in blocks]
        if role == "prf:ref":
            lines += [f"- {{prf:ref}}`{name} <{label}>`" + (f": {text}" if text else "") for name, text, label in entry]
        else:
            lines += ["```{only} html"]
            lines += [f"- {{ref}}`{name} <{label}>`" + (f": {text}" if text else "") for name, text, label in entry]
            lines += ["```", "", "```{only} latex"]
            lines += [f"- {name}" + (f": {text}" if text else "") for name, text, label in entry]
            lines += ["```"]
        lines.append("")
    return "\n".join(lines)


def titled_directives_any(path: Path, kinds: tuple[str, ...]) -> list[tuple[str, str]]:
    """(label, title) of the directives of any of the given kinds (prf: or not) of a page."""
    return [pair for kind in kinds for name in (kind, "prf:" + kind) for pair in titled_directives(path, name)]


def exercises_index_markdown() -> str:
    """The text of book/exercises.md: every exercise of every chapter, numbered and titled."""
    return _index_page("Exercises", [
        "Every exercise in the book, chapter by chapter, with the number it carries in its chapter",
        "and in the PDF, for instructors choosing problem sets. Each exercise has its solution in a",
        "dropdown just below it; `make problems` builds a PDF of the exercises without solutions.",
        "This page is generated from the chapters (`make exercises-index`); a test checks it is current.",
    ], ("exercise",), role="ref")


def results_index_markdown() -> str:
    """The text of book/results.md: every theorem, lemma, proposition, corollary, definition and algorithm."""
    return _index_page("Theorems and definitions", [
        "Every theorem, lemma, proposition, corollary, definition and algorithm of the book, chapter",
        "by chapter, with its number and title. Each has a test that checks it numerically.",
        "This page is generated from the chapters (`make exercises-index`); a test checks it is current.",
    ], RESULT_KINDS, role="prf:ref")


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--write-exercises-index"]:
        (ROOT / "book" / "exercises.md").write_text(exercises_index_markdown())
        (ROOT / "book" / "results.md").write_text(results_index_markdown())
    else:
        sys.exit("usage: python book/_ext/book_sources.py --write-exercises-index")
