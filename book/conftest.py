"""nbval checks the prose too: the value of every ``{eval}`...``` role equals the stored one.

nbval compares the outputs of code cells. The numbers of the prose live in markdown cells, as
``{eval}`name``` roles whose values ``make execute`` stores in the cell's ``user_expressions``
metadata (book/_ext/inline_values.py). This plugin adds one test item per such markdown cell,
placed right after the code cell that precedes it, so that it runs in nbval's kernel at the
same point of the chapter: it evaluates the roles afresh and compares them with the stored
values, in the ordinary nbval run and under another numerical environment alike.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "_ext"))
from inline_values import expressions, request, results, stored_values  # noqa: E402


class ProseValues(pytest.Item):
    """The {eval} roles of one markdown cell, evaluated in the notebook's running nbval kernel."""

    def __init__(self, *, cell, index, **kwargs):
        super().__init__(**kwargs)
        self.cell, self.index = cell, index

    def runtest(self):
        exprs = expressions(self.cell.source)
        stored = stored_values(self.cell)
        missing = [e for e in exprs if e not in stored]
        if missing:
            raise AssertionError(f"markdown cell {self.index}: no stored value for {missing}; run `make execute`")
        kernel = self.parent.kernel
        msg_id = kernel.kc.execute(**request(exprs))
        reply = kernel.kc.get_shell_msg(timeout=120)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = kernel.kc.get_shell_msg(timeout=120)
        kernel.await_idle(msg_id, timeout=120)
        fresh = {r["expression"]: r["result"]["data"].get("text/plain", "") for r in results(exprs, reply["content"])}
        changed = {e: (stored[e], fresh[e]) for e in exprs if stored[e] != fresh[e]}
        if changed:
            raise AssertionError("prose values differ from the stored ones (stored, now): "
                                 + "; ".join(f"{e}: {a} -> {b}" for e, (a, b) in changed.items()))

    def repr_failure(self, excinfo):
        return str(excinfo.value)

    def reportinfo(self):
        return self.path, None, f"{self.parent.name}::Markdown {self.index}"


def pytest_collection_modifyitems(session, config, items):
    """After each nbval cell item, the prose items of the markdown cells that follow that cell."""
    out = []
    for item in items:
        out.append(item)
        if type(item).__name__ != "IPyNbCell":
            continue
        cells = item.parent.nb.cells
        position = next(i for i, c in enumerate(cells) if c is item.cell)
        for index in range(position + 1, len(cells)):
            cell = cells[index]
            if cell.cell_type == "code":
                break
            if cell.cell_type == "markdown" and expressions(cell.source):
                out.append(ProseValues.from_parent(item.parent, name=f"Markdown {index}", cell=cell, index=index))
    items[:] = out
