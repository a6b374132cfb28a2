"""The first cell of every chapter: install emlib where a reader opens the notebook outside the book.

On Colab, on Binder before its postBuild ran, or in a notebook downloaded from the built site,
``import emlib`` fails. The cell below installs the distribution ``emlib-book`` (the name
``emlib`` on the package index belongs to another project) with the chapters' extras (``chapters``,
and ``distributed`` for the chapter on EM on a Dask cluster), from the
repository named in ``_config.yml``. Inside the project's environment it imports and does
nothing. The book hides it (tag ``remove-cell``).

``python book/_ext/launch_cell.py --write`` (``make launch-cells``) inserts or refreshes the cell
in every chapter; ``tests/test_book_sources.py`` checks that each chapter carries the current one.
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[2]
TAG = "remove-cell"
MARKER = "# emlib-book launch cell"


def repository() -> tuple[str, str]:
    """The repository URL and branch of ``_config.yml``, the one place that names them."""
    repo = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    return repo["url"].rstrip("/"), repo.get("branch", "main")


def source() -> str:
    url, branch = repository()
    return "\n".join([
        f"{MARKER}. Outside the book's environment (Colab, a downloaded",
        "# notebook) install emlib and the chapters' extras; inside it, do nothing.",
        "try:",
        "    import emlib, matplotlib, sklearn, dask, distributed",
        "except ImportError:",
        f'    REPOSITORY = "git+{url}@{branch}"',
        '    %pip install --quiet "emlib-book[chapters,distributed] @ {REPOSITORY}"',
    ])


def is_launch_cell(c: dict) -> bool:
    return c["cell_type"] == "code" and "".join(c["source"]).startswith(MARKER)


def write(path: Path) -> bool:
    """Insert or refresh the launch cell as the first code cell of ``path``; True if it changed."""
    nb = nbformat.read(path, as_version=4)
    cells = nb.cells
    first_code = next(i for i, c in enumerate(cells) if c["cell_type"] == "code")
    if is_launch_cell(cells[first_code]):
        if "".join(cells[first_code]["source"]) == source():
            return False
        cells[first_code]["source"] = source()
    else:
        cells.insert(first_code, nbformat.v4.new_code_cell(source(), metadata={"tags": [TAG]}))
    nbformat.write(nb, path)
    return True


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python book/_ext/launch_cell.py --write")
    sys.path.insert(0, str(Path(__file__).parent))
    from book_sources import chapters

    for chapter in chapters():
        if write(chapter):
            print(f"{chapter.relative_to(ROOT)}: launch cell written (re-execute it: make execute)")
