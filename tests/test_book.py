"""The built book (_build/html, made by `make book`): every page of the table of contents is there,
and the pages work with no internet: no CDN script or stylesheet, math rendered by the bundled
MathJax without error, every image loaded, no script error (checked in headless Chromium)."""
import functools
import http.server
import re
import shutil
import threading
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

HTML = REPO / "_build" / "html"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def toc_files():
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    files = [toc["root"]]
    stack = list(toc.get("chapters", [])) + [c for p in toc.get("parts", []) for c in p.get("chapters", [])]
    while stack:
        entry = stack.pop(0)
        files.append(entry["file"])
        stack.extend(entry.get("sections", []))
    return files


def pages():
    assert (HTML / "index.html").is_file(), "the book is not built: run `make book` (make test does it first)"
    return [HTML / f"{name}.html" for name in toc_files()]


def test_every_chapter_of_the_toc_is_built():
    missing = [str(p.relative_to(HTML)) for p in pages() if not p.is_file()]
    assert missing == []


def test_no_page_loads_anything_from_the_internet():
    remote = re.compile(r"""<(script|link|img|iframe)\b[^>]*\b(src|href)\s*=\s*["'](https?:)?//""", re.I)
    offenders = {str(p.relative_to(HTML)): m.group(0) for p in HTML.rglob("*.html")
                 for m in [remote.search(p.read_text(encoding="utf-8"))] if m}
    assert offenders == {}


def test_mathjax_is_bundled():
    assert (HTML / "_static" / "mathjax" / "tex-chtml.js").is_file()
    for page in pages():
        assert 'src="../_static/mathjax/tex-chtml.js' in page.read_text(encoding="utf-8") or \
               'src="_static/mathjax/tex-chtml.js' in page.read_text(encoding="utf-8"), page.name


@pytest.fixture(scope="module")
def server():
    """The built book over HTTP on 127.0.0.1 (an ephemeral port), for the browser."""
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("SKIPPED LOUDLY: Debian's chromium is not installed and `make test` could not install it "
                    "(apt-get install chromium); the book's pages were NOT checked in a browser")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield browser
        browser.close()


def test_pages_render_offline_in_a_browser(server, browser):
    problems = []
    for page_file in pages():
        url = f"{server}/{page_file.relative_to(HTML).as_posix()}"
        page = browser.new_page()
        blocked, errors = [], []
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(server)
                   else (blocked.append(route.request.url), route.abort()))
        page.on("pageerror", lambda error: errors.append(f"script error: {error}"))
        page.on("console", lambda message: message.type == "error" and errors.append(f"console: {message.text}"))
        page.goto(url, wait_until="load")
        source_math = page.locator("div.math, span.math").count()
        if source_math:
            page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise")
            page.evaluate("() => MathJax.startup.promise")
            rendered = page.locator("mjx-container").count()
            if rendered < source_math:
                errors.append(f"{source_math} math blocks but {rendered} rendered by MathJax")
            math_errors = page.locator("mjx-merror, [data-mjx-error]").count()
            if math_errors:
                errors.append(f"{math_errors} MathJax errors")
        broken_images = page.evaluate(
            "() => Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)")
        errors += [f"image did not load: {src}" for src in broken_images]
        errors += [f"request to the internet (blocked): {u}" for u in blocked]
        problems += [f"{page_file.relative_to(HTML)}: {e}" for e in errors]
        page.close()
    assert problems == []


def test_the_intro_page_shows_its_figure_and_its_math(server, browser):
    page = browser.new_page()
    page.goto(f"{server}/book/intro.html", wait_until="load")
    page.evaluate("() => MathJax.startup.promise")
    assert page.locator("img[src$='.png']").count() >= 1, "the intro's matplotlib figure is missing"
    assert page.locator("mjx-container").count() >= 10
    page.close()
