"""Every chapter runs where a reader opens it: downloaded from the built site, executed in a fresh
virtual environment that holds only the wheel of this repository (``pip wheel .``) and the
chapters' dependencies (the ``chapters`` and ``distributed`` extras, at the versions of
requirements-lock.txt) -- not
the project's checkout. The run happens in an empty temporary folder, so nothing of the
repository is importable except what the wheel installed.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from book_sources import chapters
from .conftest import ROOT

RUNNER = """
import sys, nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
NotebookClient(nb, timeout=1200, kernel_name="python3", allow_errors=False,
               resources={"metadata": {"path": sys.argv[2]}}).execute()
print("ok")
"""


@pytest.fixture(scope="session")
def reader_python(tmp_path_factory) -> Path:
    """The Python of a fresh virtual environment with only the wheel and the chapters' extras."""
    tmp = tmp_path_factory.mktemp("reader")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", tmp / "dist",
                    ROOT], check=True)
    wheel = next((tmp / "dist").glob("emlib_book-*.whl"))
    venv.create(tmp / "venv", with_pip=True)
    python = tmp / "venv" / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--constraint", ROOT / "requirements-lock.txt",
                    f"emlib-book[chapters,distributed] @ {wheel.as_uri()}", "nbclient"], check=True, cwd=tmp)
    where = subprocess.run([python, "-c", "import emlib; print(emlib.__file__)"], check=True, cwd=tmp,
                           capture_output=True, text=True).stdout.strip()
    assert Path(where).is_relative_to(tmp / "venv"), f"emlib imported from {where}, not from the wheel"
    return python


def downloaded(html_dir: Path, stem: str) -> Path:
    """The .ipynb that the chapter page's download button links to."""
    page = (html_dir / "book" / f"{stem}.html").read_text()
    links = re.findall(r'href="(\.\./_sources/[^"]*\.ipynb)"', page)
    assert links, f"the page of {stem} has no download link to its notebook"
    return (html_dir / "book" / links[0]).resolve()


@pytest.mark.parametrize("chapter", [p.stem for p in chapters()])
def test_a_downloaded_chapter_runs_in_a_fresh_environment(chapter, html_dir, reader_python, tmp_path):
    notebook = downloaded(html_dir, chapter)
    assert notebook.exists(), f"the download link of {chapter} points to a missing file"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "JUPYTER", "VIRTUAL_ENV"))}
    env.update(MPLBACKEND="Agg", JUPYTER_DATA_DIR=str(tmp_path / "jupyter"), IPYTHONDIR=str(tmp_path / "ipython"),
               PATH=f"{reader_python.parent}{os.pathsep}{env.get('PATH', '')}")
    run = subprocess.run([reader_python, "-c", RUNNER, notebook, tmp_path], cwd=tmp_path, env=env,
                         capture_output=True, text=True)
    assert run.returncode == 0, f"{chapter} failed as a reader runs it:\n{run.stderr[-3000:]}"
