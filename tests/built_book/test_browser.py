"""Every page of the built book, opened in headless Chromium (Debian's, driven by Playwright),
as a reader on a desktop (1366 px), a tablet (820 px) and a phone (390 px) sees it.

For each page at each width: no console errors; every math element typeset by MathJax with no
error; no TeX left as text outside typeset maths; every image loaded; no element wider than
the viewport except inside a box that scrolls; every internal link and anchor resolves; no
request leaves localhost; on chapter pages, the launch, download, repository and issue
buttons. At 1366 and 820 px every display equation also fits its column. At 390 and 820 px
the visible navigation toggles open the table of contents and the in-page contents.
Screenshots go to _build/screenshots/. A deliberately broken copy of a page shows that each
check can fail.
"""
from __future__ import annotations

import functools
import http.server
import shutil
import threading
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlparse

import pytest

from .conftest import BUILD, require_tool

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed: pip install -e '.[test]'")

CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]

# Console messages that are known noise of the theme, not defects of the book. Keep it short.
CONSOLE_ALLOWLIST = (
    # Chromium asks for /favicon.ico on every page; the book has no favicon.
    "favicon.ico",
    # pydata-sphinx-theme logs this on a browser profile that has never stored a light/dark
    # choice (every fresh headless profile); it then falls back to "auto" as intended.
    "Got invalid theme mode",
)

# Runs in the page once MathJax has finished: the problems it finds in the math.
MATH_AUDIT_JS = """
() => {
  const problems = [];
  document.querySelectorAll('mjx-merror, merror').forEach(e =>
      problems.push('MathJax error: ' + (e.getAttribute('data-mjx-error') || e.textContent).slice(0, 120)));
  document.querySelectorAll('mjx-mtext').forEach(e => {
      const colour = (e.getAttribute('style') || '') + ' ' + getComputedStyle(e).color;
      if (/red|rgb\\(255, 0, 0\\)/.test(colour)) problems.push('undefined control sequence: ' + e.textContent.slice(0, 80));
  });
  document.querySelectorAll('.math').forEach(e => {
      if (!e.querySelector('mjx-container')) problems.push('math not typeset: ' + e.textContent.trim().slice(0, 80));
      else if (/\\\\\\(|\\\\\\[|\\$\\$/.test(e.textContent)) problems.push('raw TeX left: ' + e.textContent.trim().slice(0, 80));
  });
  return problems;
}
"""

IMAGE_AUDIT_JS = """
() => Array.from(document.images)
  .filter(img => !(img.complete && img.naturalWidth > 0 && img.naturalHeight > 0))
  .map(img => 'image not loaded: ' + img.getAttribute('src'))
"""

# TeX that escaped typesetting: delimiters or control sequences in any text node outside maths
# and code (a wrapped line inside $...$ that starts with "- " becomes a list item, and its TeX
# is then shown raw).
RAW_TEX_JS = r"""
() => {
  const skip = 'mjx-container, .math, pre, code, script, style, textarea, .highlight, kbd, samp';
  const tex = /\\[a-zA-Z]{2,}|\\[()\[\]{}]|\$\$|\$[^$\s][^$]{0,60}\$/;
  const root = document.querySelector('main') || document.body;
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  const bad = [];
  while (walker.nextNode()) {
    const node = walker.currentNode, parent = node.parentElement;
    if (!parent || parent.closest(skip)) continue;
    const m = node.textContent.match(tex);
    if (m) bad.push('TeX outside maths: ' + node.textContent.trim().slice(0, 100));
  }
  return bad;
}
"""

# Elements that stick out of the viewport, unless a box that scrolls (and itself fits) holds them.
OVERFLOW_JS = """
(width) => {
  const bad = [], reported = new Set();
  for (const e of document.querySelectorAll('main *')) {
    if (e.closest('mjx-assistive-mml')) continue;
    const r = e.getBoundingClientRect();
    if (r.width === 0 || r.height === 0 || (r.right <= width + 1 && r.left >= -1)) continue;
    // a closed drawer (the contents at 390 and 820 px) waits off-screen, hidden
    let hidden = false;
    for (let a = e; a && a !== document.body; a = a.parentElement) {
      if (getComputedStyle(a).visibility === 'hidden') { hidden = true; break; }
    }
    if (hidden) continue;
    let a = e.parentElement, held = false;
    while (a && a !== document.body) {
      if (reported.has(a)) { held = true; break; }
      if (/(auto|scroll)/.test(getComputedStyle(a).overflowX)) {  // 'hidden' clips: not held
        const ar = a.getBoundingClientRect();
        if (ar.right <= width + 1 && ar.left >= -1) { held = true; break; }
      }
      a = a.parentElement;
    }
    if (held) continue;
    reported.add(e);
    bad.push(`wider than the ${width} px viewport (right edge at ${Math.round(r.right)} px): ` +
             `<${e.tagName.toLowerCase()} class="${e.className}"> ${e.textContent.trim().slice(0, 60)}`);
  }
  return bad;
}
"""

# Display equations wider than their column (they would need a horizontal scroll).
EQUATION_WIDTH_JS = """
() => Array.from(document.querySelectorAll('mjx-container[display="true"]')).flatMap(c => {
  const w = c.querySelector('mjx-math').getBoundingClientRect().width;
  return w > c.clientWidth + 1 ? [`display equation ${Math.round(w)} px wide in a ${c.clientWidth} px ` +
      `column: ${(c.querySelector('mjx-assistive-mml') || c).textContent.trim().slice(0, 60)}`] : [];
})
"""

# The buttons every chapter page carries: launch on Binder and Colab, download the notebook,
# the repository and its issues (from _config.yml's repository and launch_buttons).
BUTTONS_JS = """
(repo) => {
  const has = sel => document.querySelector(sel) !== null;
  const missing = [];
  if (!has('a[href*="mybinder.org/v2/gh/"]')) missing.push('Binder launch button');
  if (!has('a[href*="colab.research.google.com/github/"]')) missing.push('Colab launch button');
  if (!has('a[href*="_sources/"][href$=".ipynb"]')) missing.push('download .ipynb button');
  if (!has(`a[href="${repo}"]`)) missing.push('repository button');
  if (!has(`a[href^="${repo}/issues/new"]`)) missing.push('issue button');
  return missing.map(m => 'no ' + m);
}
"""

LINKS_JS = "() => Array.from(document.querySelectorAll('a[href]')).map(a => a.href)"
IDS_JS = "() => Array.from(document.querySelectorAll('[id], a[name]')).map(e => e.id || e.getAttribute('name'))"


def book_pages(html_dir: Path) -> list[str]:
    """Every HTML page of the book, relative to the build root."""
    skip = {"_static", "_sources", "_images", "_sphinx_design_static"}
    return sorted(str(p.relative_to(html_dir)) for p in html_dir.rglob("*.html")
                  if not skip & set(p.relative_to(html_dir).parts))


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def serve():
    """serve(root) -> base URL of a localhost HTTP server for that folder (one per folder)."""
    servers = {}

    def start(root: Path) -> str:
        if root not in servers:
            handler = functools.partial(_QuietHandler, directory=str(root))
            server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            servers[root] = server
        return f"http://127.0.0.1:{servers[root].server_address[1]}/"

    yield start
    for server in servers.values():
        server.shutdown()


@pytest.fixture(scope="module")
def browser():
    chromium = require_tool("chromium")
    with playwright_api.sync_playwright() as p:
        instance = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)
        yield instance
        instance.close()


def chapter_pages() -> set[str]:
    """The built HTML paths of the chapters (the notebooks of the table of contents)."""
    from book_sources import ROOT, chapters

    return {str(p.relative_to(ROOT).with_suffix(".html")) for p in chapters()}


def repository_url() -> str:
    import yaml
    from book_sources import ROOT

    return yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"].rstrip("/")


WIDTHS = {"desktop": 1366, "tablet": 820, "phone": 390}


def settle(page) -> None:
    """Wait until the page, its images and its web fonts have loaded. (Playwright's
    "networkidle" never came on some long pages in this Chromium with --disable-gpu, although
    no request was pending.)"""
    page.wait_for_function("() => document.readyState === 'complete' && "
                           "Array.from(document.images).every(i => i.complete)")
    page.evaluate("() => document.fonts.ready.then(() => true)")


def audit(browser, base: str, page_path: str, screenshot: Path | None = None,
          width: int = WIDTHS["desktop"]) -> tuple[list[str], list[str], set]:
    """Open one page at ``width`` px; return (problems, links found, ids on the page)."""
    problems: list[str] = []
    host = urlparse(base).netloc
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.set_default_timeout(120_000)   # a loaded CI machine typesets slowly

    def on_request(route):
        url = route.request.url
        if urlparse(url).scheme in ("http", "https", "ws", "wss") and urlparse(url).netloc != host:
            problems.append(f"request left localhost: {url}")
            route.abort()
        else:
            route.continue_()

    page.route("**/*", on_request)
    page.on("console", lambda m: m.type == "error" and not any(a in m.text for a in CONSOLE_ALLOWLIST)
            and problems.append(f"console error: {m.text[:200]}"))
    page.on("pageerror", lambda e: not any(a in str(e) for a in CONSOLE_ALLOWLIST)
            and problems.append(f"page error: {e}"))
    try:
        response = page.goto(base + page_path, wait_until="load")
        if response is None or response.status != 200:
            problems.append(f"HTTP {response.status if response else 'no response'} for {page_path}")
        settle(page)
        has_math = page.evaluate("() => document.querySelector('.math') !== null")
        if has_math:
            try:
                page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise",
                                       timeout=120_000)
                page.evaluate("() => MathJax.startup.promise")
            except playwright_api.Error as exc:
                problems.append(f"MathJax did not load: {str(exc)[:120]}")
        problems += page.evaluate(MATH_AUDIT_JS) if has_math else []
        problems += page.evaluate(RAW_TEX_JS)
        problems += page.evaluate(OVERFLOW_JS, width)
        if width >= WIDTHS["tablet"]:
            problems += page.evaluate(EQUATION_WIDTH_JS)
        problems += page.evaluate(IMAGE_AUDIT_JS)
        if page_path in chapter_pages():
            problems += page.evaluate(BUTTONS_JS, repository_url())
        links = page.evaluate(LINKS_JS)
        ids = set(page.evaluate(IDS_JS))
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
    finally:
        page.close()
    return problems, links, ids


def broken_links(links: list[str], base: str, root: Path, ids_of) -> list[str]:
    """Internal links whose file or anchor does not exist. ``ids_of(path)`` gives a page's ids."""
    problems = []
    for link in links:
        url, fragment = urldefrag(link)
        if not url.startswith(base):
            continue  # external links (repository, licenses) are not followed
        target = unquote(url[len(base):]) or "index.html"
        if target.endswith("/"):
            target += "index.html"
        path = root / target
        if not path.is_file():
            problems.append(f"broken link: {link}")
        elif fragment and path.suffix == ".html" and fragment not in ids_of(target):
            problems.append(f"broken anchor: {link}")
    return problems


@pytest.mark.parametrize("device", WIDTHS)
def test_every_page(device, browser, serve, html_dir):
    """All pages at one width in one browser session; every problem of every page is reported together."""
    width = WIDTHS[device]
    base = serve(html_dir)
    pages = book_pages(html_dir)
    assert "index.html" in pages and len(pages) > 3
    assert chapter_pages() <= set(pages), "a chapter of the table of contents was not built"
    found, links, ids = {}, {}, {}
    for page_path in pages:
        shot = BUILD / "screenshots" / device / (page_path.replace("/", "__").removesuffix(".html") + ".png")
        found[page_path], links[page_path], ids[page_path] = audit(browser, base, page_path, shot, width)

    def ids_of(target):
        if target not in ids:  # a page not in the list (should not happen): open it
            ids[target] = audit(browser, base, target, width=width)[2]
        return ids[target]

    report = []
    for page_path in pages:
        problems = found[page_path] + broken_links(links[page_path], base, html_dir, ids_of)
        report += [f"{page_path}: {p}" for p in problems]
    assert not report, f"problems in the built book at {width} px:\n" + "\n".join(report)


# The navigation a reader opens on a phone or tablet: (toggle button, what must become visible).
NAVIGATION = {"table of contents": (".primary-toggle", "nav.bd-docs-nav"),
              "in-page contents": (".secondary-toggle", "nav.page-toc, .bd-toc-nav")}

IN_VIEW_JS = """
(selector) => Array.from(document.querySelectorAll(selector)).some(e => {
  const r = e.getBoundingClientRect(), s = getComputedStyle(e);
  return s.visibility === 'visible' && s.display !== 'none' && r.width > 50 && r.height > 50 &&
         r.left >= -1 && r.right <= window.innerWidth + 1;
})
"""


@pytest.mark.parametrize("device", ["tablet", "phone"])
@pytest.mark.parametrize("target", NAVIGATION)
def test_navigation_opens_on_phones_and_tablets(device, target, browser, serve, html_dir):
    """Click the visible toggle; the navigation it promises must come into view."""
    toggle, shown = NAVIGATION[target]
    page = browser.new_page(viewport={"width": WIDTHS[device], "height": 800})
    page.set_default_timeout(120_000)
    try:
        page.goto(serve(html_dir) + sorted(chapter_pages())[0], wait_until="load")
        settle(page)
        assert not page.evaluate(IN_VIEW_JS, shown), f"the {target} is already open at {WIDTHS[device]} px"
        buttons = page.locator(toggle)
        visible = [buttons.nth(i) for i in range(buttons.count()) if buttons.nth(i).is_visible()]
        assert visible, f"no visible button opens the {target} at {WIDTHS[device]} px"
        visible[0].click()
        page.wait_for_timeout(800)
        assert page.evaluate(IN_VIEW_JS, shown), \
            f"clicking the visible {toggle} button does not open the {target} at {WIDTHS[device]} px"
    finally:
        page.close()


def test_a_broken_page_is_caught(browser, serve, html_dir, tmp_path):
    """Break a copy of a page in each way the audit checks; the audit must report each one."""
    copy = tmp_path / "html"
    shutil.copytree(html_dir, copy)
    page = next(p for p in book_pages(copy) if p.endswith("notation.html"))
    html = (copy / page).read_text()
    sabotage = (
        '<p><span class="math notranslate nohighlight">\\(\\undefinedmacro x\\)</span></p>'
        '<div class="math notranslate nohighlight">\\[\\frac{1}{2}}\\]</div>'
        '<img src="no-such-image.png" alt="missing">'
        '<a href="no-such-page.html">broken</a><a href="intro.html#no-such-anchor">broken anchor</a>'
        '<img src="https://example.org/tracker.png" alt="external">'
        '<script>console.error("deliberate error")</script>'
        '<p>A list item that swallowed maths: - \\frac{1}{2} \\theta</p>'
        '<div style="width: 3000px">a box wider than any screen</div>'
    )
    (copy / page).write_text(html.replace("</main>", sabotage + "</main>", 1))
    base = serve(copy)
    problems, links, _ = audit(browser, base, page)
    problems += broken_links(links, base, copy, lambda target: audit(browser, base, target)[2])
    text = "\n".join(problems)
    for expected in ("undefined control sequence", "MathJax error", "image not loaded",
                     "broken link", "broken anchor", "request left localhost", "console error",
                     "TeX outside maths", "wider than the 1366 px viewport"):
        assert expected in text, f"the audit missed a deliberate '{expected}':\n{text}"


def test_a_chapter_without_its_buttons_or_with_a_wide_equation_is_caught(browser, serve, html_dir, tmp_path):
    copy = tmp_path / "html"
    shutil.copytree(html_dir, copy)
    chapter = sorted(chapter_pages())[0]
    html = (copy / chapter).read_text()
    html = html.replace("mybinder.org/v2/gh/", "example.invalid/")
    wide = r"\[" + " + ".join(f"x_{{{i}}}" for i in range(200)) + r"\]"
    html = html.replace("</main>", f'<div class="math notranslate nohighlight">{wide}</div></main>', 1)
    # an inline formula in a box that clips it (the theme's span.math did, before book.css)
    long = r"\(" + " + ".join(f"y_{{{i}}}" for i in range(60)) + r"\)"
    html = html.replace("</main>", f'<p><span class="math" style="overflow: hidden !important">{long}</span></p></main>', 1)
    (copy / chapter).write_text(html)
    problems = "\n".join(audit(browser, serve(copy), chapter, width=WIDTHS["phone"])[0] +
                          audit(browser, serve(copy), chapter)[0])
    assert "no Binder launch button" in problems, problems
    assert "display equation" in problems, problems
    assert "wider than the 390 px viewport" in problems and "y0+y1+y2" in problems, problems
