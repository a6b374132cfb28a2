"""Fixtures for the tests of the built book (HTML in a real browser, and the PDF).

These tests need system tools (Chromium, pdftotext), installed by `make system-deps`. Where a
tool is missing they are skipped with a one-line reason, except under CI=true, where a missing
tool is a failure: CI must never pass by skipping them.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "_build"


def require(condition: bool, reason: str) -> None:
    """Skip (on a reader's machine) or fail (under CI=true) when ``condition`` is false."""
    if condition:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: these checks may not be skipped)")
    pytest.skip(reason)


def require_tool(name: str) -> str:
    path = shutil.which(name)
    require(path is not None, f"{name} not found: run `make system-deps` to enable these tests")
    return path


@pytest.fixture(scope="session")
def html_dir() -> Path:
    html = Path(os.environ.get("EMBOOK_HTML_DIR", BUILD / "html"))
    require((html / "index.html").exists(), f"no built book at {html}: run `make book` first")
    return html
