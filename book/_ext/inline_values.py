"""Numbers in the prose: ``{eval}`name``` roles, evaluated in the chapter's kernel.

A chapter computes a number in a code cell (through ``emlib.reporting``, which checks its digits)
and names it; the prose shows it with ``{eval}`name```. Three readers see the same value:

- the built book: this module, as a Sphinx extension, replaces each role by its stored value
  before myst-nb parses the chapter (so the execution cache still applies);
- JupyterLab with jupyterlab-myst: it evaluates the role in the live kernel when the markdown cell
  is run, and shows the value stored in the cell's ``user_expressions`` metadata before that;
- the tests: the stored value of every role is compared with a fresh evaluation, in the ordinary
  nbval run and in the one under another numerical environment (``book/conftest.py``).

``python book/_ext/inline_values.py book/x.ipynb ...`` (``make execute``) executes chapters top to
bottom in a fresh kernel, as nbconvert does, and also evaluates every markdown cell's roles at its
place in the chapter, storing them in the format jupyterlab-myst reads and writes.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

EVAL_ROLE = re.compile(r"\{eval\}`([^`]+)`")


def expressions(markdown: str) -> list[str]:
    """The expressions of the ``{eval}`...``` roles of a markdown cell, in order."""
    return EVAL_ROLE.findall(markdown)


def stored_values(cell) -> dict[str, str]:
    """{expression: text/plain} stored in a markdown cell's ``user_expressions`` metadata."""
    return {e["expression"]: e["result"].get("data", {}).get("text/plain", "")
            for e in cell.get("metadata", {}).get("user_expressions", [])
            if e.get("result", {}).get("status") == "ok"}


def request(exprs: list[str]) -> dict:
    """The keyword arguments of a silent execute request that evaluates ``exprs``."""
    return {"code": "", "silent": True, "store_history": False,
            "user_expressions": {str(i): e for i, e in enumerate(exprs)}}


def results(exprs: list[str], reply_content: dict) -> list[dict]:
    """jupyterlab-myst's ``user_expressions`` metadata from an execute reply; raises on an error."""
    out = []
    for i, expr in enumerate(exprs):
        result = reply_content["user_expressions"][str(i)]
        if result.get("status") != "ok":
            raise RuntimeError(f"{{eval}}`{expr}` failed: {result.get('ename')}: {result.get('evalue')}")
        out.append({"expression": expr, "result": result})
    return out


def substitute(notebook_json: str, docname: str) -> str:
    """The notebook with each {eval} role of its markdown replaced by the value stored for it.

    Raises ``ValueError`` for a role without a stored value: the chapter needs ``make execute``.
    """
    import json
    from ast import literal_eval

    nb = json.loads(notebook_json)
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "markdown":
            continue
        source = "".join(cell["source"])
        if not EVAL_ROLE.search(source):
            continue
        stored = stored_values(cell)

        def text(match):
            expr = match.group(1)
            if expr not in stored:
                raise ValueError(f"{docname}: {{eval}}`{expr}` has no stored value; run `make execute`")
            try:
                value = literal_eval(stored[expr])
            except (ValueError, SyntaxError):
                value = stored[expr]
            return str(value)

        cell["source"] = EVAL_ROLE.sub(text, source)
    return json.dumps(nb)


def _source_read(app, docname, source) -> None:
    if source and source[0].lstrip().startswith("{") and "{eval}`" in source[0]:
        source[0] = substitute(source[0], docname)


def setup(app):
    """As a Sphinx extension: the build shows the values that ``make execute`` stored and nbval
    checked, so the chapters need not be executed inline (the execution cache still applies)."""
    app.connect("source-read", _source_read)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


def execute(path: Path, timeout: int = 1200, cwd: Path | None = None) -> None:
    """Execute a chapter in place, storing code outputs and the values of its prose roles.

    The kernel runs in ``cwd`` (default: the chapter's folder), as the book's build runs it.
    """
    import nbformat
    from nbclient import NotebookClient

    class ProseClient(NotebookClient):
        async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
            if cell.cell_type != "markdown":
                return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
            exprs = expressions(cell.source)
            cell.metadata.pop("user_expressions", None)
            if exprs:
                msg_id = self.kc.execute(**request(exprs))
                reply = await self.async_wait_for_reply(msg_id, cell)
                cell.metadata["user_expressions"] = results(exprs, reply["content"])
            return cell

    nb = nbformat.read(path, as_version=4)
    ProseClient(nb, timeout=timeout, kernel_name="python3", allow_errors=False,
                resources={"metadata": {"path": str(cwd or path.parent)}}).execute()
    nbformat.write(nb, path)


if __name__ == "__main__":
    if not sys.argv[1:]:
        sys.exit("usage: python book/_ext/inline_values.py book/x.ipynb [...]")
    for arg in sys.argv[1:]:
        print(f"executing {arg}", flush=True)
        execute(Path(arg).resolve())
