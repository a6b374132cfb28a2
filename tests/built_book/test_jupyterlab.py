"""A chapter opened locally in JupyterLab reads as it does in the book: its MyST renders
(jupyterlab-myst), its maths is typeset, and the numbers of its prose appear once the notebook
has run, equal to the values stored with it (the ones the built book shows).

The test starts a JupyterLab server on localhost in a temporary folder holding a copy of one
chapter, opens it in headless Chromium, runs all cells, and reads the rendered markdown.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from ast import literal_eval

import pytest

from book_sources import ROOT
from .conftest import require_tool
from .test_browser import CHROMIUM_FLAGS, playwright_api

CHAPTER = "em_algorithm"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """URL of a JupyterLab server whose root holds a copy of the chapter."""
    root = tmp_path_factory.mktemp("lab")
    shutil.copy(ROOT / "book" / f"{CHAPTER}.ipynb", root)
    port = free_port()
    # Every cell in the page, not only those scrolled into view (JupyterLab 4 windows long notebooks).
    settings = root / ".jupyterlab-settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(root / ".jupyter"), "IPYTHONDIR": str(root / ".ipython"),
           "JUPYTERLAB_SETTINGS_DIR": str(root / ".jupyterlab-settings")}
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", f"--port={port}",
         "--IdentityProvider.token=", "--ServerApp.password=", "--LabApp.expose_app_in_browser=True",
         "--ServerApp.disable_check_xsrf=True", f"--ServerApp.root_dir={root}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(url + "/api/status", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not start within two minutes")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def stored_prose_values() -> dict[int, list[str]]:
    """{markdown cell index: the stored values of its {eval} roles, as text}."""
    cells = json.loads((ROOT / "book" / f"{CHAPTER}.ipynb").read_text())["cells"]
    out = {}
    for i, cell in enumerate(c for c in cells if c["cell_type"] == "markdown"):
        values = [e["result"]["data"]["text/plain"] for e in cell.get("metadata", {}).get("user_expressions", [])]
        if values:
            out[i] = [str(literal_eval(v)) if v.startswith("'") else v for v in values]
    return out


def test_a_chapter_in_jupyterlab_shows_its_numbers_and_maths(lab):
    chromium = require_tool("chromium")
    expected = stored_prose_values()
    cells = json.loads((ROOT / "book" / f"{CHAPTER}.ipynb").read_text())["cells"]
    n_markdown = sum(c["cell_type"] == "markdown" for c in cells)
    assert expected, f"{CHAPTER} has no {{eval}} roles with stored values"
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        page.set_default_timeout(180_000)
        page.goto(f"{lab}/lab/tree/{CHAPTER}.ipynb")
        page.wait_for_function("() => window.jupyterapp && window.jupyterapp.commands"
                               ".hasCommand('notebook:run-all-cells')")
        page.wait_for_selector(".jp-Notebook .jp-MarkdownCell")
        page.wait_for_function("() => document.querySelector('.jp-Notebook') && "
                               "window.jupyterapp.shell.currentWidget && "
                               "window.jupyterapp.shell.currentWidget.sessionContext.session")
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        # done when no cell is queued or running ("[*]") and the last code cell has a count
        page.wait_for_function("""() => {
            const prompts = Array.from(document.querySelectorAll('.jp-CodeCell .jp-InputPrompt'));
            return prompts.length > 0 && prompts.every(p => !p.textContent.includes('*')) &&
                   /\\d/.test(prompts[prompts.length - 1].textContent);
        }""", timeout=600_000)
        page.wait_for_timeout(2000)
        # open every dropdown (exercise solutions) as a reader would, then read what is shown
        page.evaluate("() => document.querySelectorAll('.jp-MarkdownCell details').forEach(d => { d.open = true; })")
        page.wait_for_timeout(2000)
        texts = page.evaluate("() => Array.from(document.querySelectorAll('.jp-MarkdownCell'))"
                              ".map(c => c.innerText)")
        n_katex = page.evaluate("() => document.querySelectorAll('.jp-MarkdownCell .katex').length")
        browser.close()
    assert len(texts) == n_markdown, f"{len(texts)} markdown cells in the page, {n_markdown} in the chapter"
    missing = [(i, v) for i, values in expected.items() for v in values if v not in texts[i]]
    assert not missing, (f"numbers of the prose that JupyterLab does not show: {missing[:5]}; "
                         f"markdown cell {missing[0][0] if missing else ''} reads: "
                         f"{texts[missing[0][0]][:600] if missing else ''}")
    raw = [t[max(0, t.index("{eval}") - 200):t.index("{eval}") + 100] for t in texts if "{eval}" in t]
    assert not raw, f"a raw {{eval}} role is shown: {raw[:2]}"
    assert n_katex > 20, f"only {n_katex} typeset formulas: jupyterlab-myst did not render the maths"
