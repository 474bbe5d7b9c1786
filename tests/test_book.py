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
pytestmark = pytest.mark.usefixtures("built_book")   # built once per run, beside the other tests (tests/conftest.py)
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
    assert (HTML / "index.html").is_file(), "the book is not built: run `make book`"
    return [HTML / f"{name}.html" for name in toc_files()]


def test_the_built_book_leaks_no_solution_or_hidden_test():
    from tests.test_notebooks import leaks
    pages = sorted(HTML.rglob("*.html"))
    assert pages and leaks(pages) == []


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


# --- a book that reads like a course: numbered chapters, working links, the glossary, the assignment boxes ---

def numbered_chapters():
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    return [c["file"] for part in toc.get("parts", []) if part.get("numbered") for c in part["chapters"]]


@pytest.fixture(scope="module")
def rendered(server, browser):
    """What each page of the table of contents shows in the browser: its section numbers, its links
    (in the page's text and in the navigation), its element ids, its images' alt text, its assignment box."""
    found = {}
    page = browser.new_page()
    for name in toc_files():
        response = page.goto(f"{server}/{name}.html", wait_until="load")
        assert response.status == 200, name
        found[name] = page.evaluate("""() => ({
            h1: [...document.querySelectorAll('article h1 .section-number')].map(e => e.textContent.trim()),
            h2: [...document.querySelectorAll('article h2 .section-number')].map(e => e.textContent.trim()),
            nav: [...document.querySelectorAll('.bd-sidebar-primary nav a.reference.internal')]
                 .map(a => a.textContent.trim()),
            article_links: [...document.querySelectorAll('article a[href]')].map(a => a.href),
            links: [...document.querySelectorAll('a[href]')].map(a => a.href),
            ids: [...document.querySelectorAll('[id]')].map(e => e.id),
            images: [...document.querySelectorAll('article img')].map(i => i.getAttribute('alt') || ''),
            boxes: [...document.querySelectorAll('.assignment-box')].map(e => e.innerText),
            rows: [...document.querySelectorAll('article table tr')].map(r => [...r.cells].map(c => c.innerText.trim())),
        })""")
    page.close()
    return found


def test_chapters_and_their_sections_are_numbered(rendered):
    chapters = numbered_chapters()
    assert chapters, "_toc.yml has no numbered part of chapters"
    for number, name in enumerate(chapters, start=1):
        shown = rendered[name]
        assert shown["h1"] == [f"{number}."], f"{name}: the chapter title is numbered {shown['h1']}, not {number}."
        assert shown["h2"] == [f"{number}.{i}." for i in range(1, len(shown["h2"]) + 1)], \
            f"{name}: its sections are numbered {shown['h2']}"
        assert len(shown["h2"]) >= 3, f"{name}: sections are not numbered"
    for name in set(toc_files()) - set(chapters):
        assert rendered[name]["h1"] == [], f"{name} is numbered like a chapter"
    nav = rendered[toc_files()[0]]["nav"]
    for number, name in enumerate(chapters, start=1):
        assert any(entry.startswith(f"{number}. ") for entry in nav), f"the sidebar does not number chapter {number}"


def test_every_link_of_the_book_leads_somewhere(server, browser, rendered):
    wanted = {}  # page url -> fragments linked to
    for name, shown in rendered.items():
        for link in shown["links"]:
            if link.startswith(server):
                url, _, fragment = link.partition("#")
                wanted.setdefault(url, set()).add(fragment)
    broken, page = [], browser.new_page()
    for url, fragments in sorted(wanted.items()):
        response = page.goto(url, wait_until="load")
        if response is None or response.status != 200:
            broken.append(f"{url}: HTTP {response and response.status}")
            continue
        ids = set(page.evaluate("() => [...document.querySelectorAll('[id]')].map(e => e.id)"))
        broken += [f"{url}#{f}: no such anchor" for f in sorted(fragments - {""}) if f not in ids]
    page.close()
    assert broken == []
    assert len(wanted) >= len(toc_files()), "the link check found too few pages: is the sidebar there?"


def test_every_chapter_links_to_the_notation_page(rendered):
    assert "book/notation" in toc_files(), "the notation and glossary page is not in _toc.yml"
    for name in numbered_chapters() + [toc_files()[0]]:
        assert any(link.split("#")[0].endswith("/book/notation.html") for link in rendered[name]["article_links"]), \
            f"{name} does not link to the notation page"


def test_every_chapter_ends_with_its_assignment_box(rendered):
    from tools import points
    for name in numbered_chapters():
        assignment = Path(name).name
        if not points.solution_path(assignment).is_file():
            continue
        expected = points.assignment(assignment)
        boxes = rendered[name]["boxes"]
        assert len(boxes) == 1, f"{name}: {len(boxes)} assignment boxes"
        assert f"Assignment {assignment}: {expected.points:g} points" in boxes[0], boxes[0][:200]
        for component in expected.components:
            assert f"{component.name} ({component.points:g} point" in boxes[0], (name, component)
        assert "make lab" in boxes[0] and f"make check-submission NB=work/{assignment}/{assignment}.ipynb" in boxes[0]


def test_the_introduction_plans_the_course(rendered):
    from tools import points
    rows = {row[0]: row for row in rendered[toc_files()[0]]["rows"] if row}
    for chapter in points.chapters():
        row = rows.get(f"{chapter.number}. {chapter.title}")
        assert row, f"the course plan has no row for chapter {chapter.number}"
        assert row[1] == points.duration(chapter.reading_minutes), row
        if chapter.assignment:
            assert row[2:] == [chapter.assignment.id, f"{chapter.assignment.points:g}",
                               points.duration(chapter.assignment.minutes)], row


def test_every_figure_has_alt_text(rendered):
    missing = {name: shown["images"].count("") for name, shown in rendered.items() if "" in shown["images"]}
    assert missing == {}, "figures without alt text (add :mystnb: {image: {alt: \"...\"}} to the code cell)"


def test_heatmaps_use_colour_blind_safe_colour_maps():
    safe = {"viridis", "cividis", "plasma", "inferno", "magma", "gray", "Greys", "gray_r", "Greys_r"}
    used = {(path.name, m) for path in (REPO / "book").glob("*.md")
            for m in re.findall(r"cmap=[\"'](\w+)[\"']", path.read_text(encoding="utf-8"))}
    assert {(name, cmap) for name, cmap in used if cmap not in safe} == set()


def test_chapters_draw_lines_in_a_colour_blind_safe_palette():
    """book/matplotlibrc (read by matplotlib in the folder where the chapters run) sets the Okabe-Ito cycle."""
    import subprocess
    import sys
    colours = subprocess.run([sys.executable, "-c", "import matplotlib; print(' '.join("
                              "matplotlib.rcParams['axes.prop_cycle'].by_key()['color']))"],
                             cwd=REPO / "book", capture_output=True, text=True, check=True).stdout.split()
    assert colours[:3] == ["#0072B2", "#E69F00", "#009E73"], colours


def _anchor_exists(url):
    """Whether a file:// link of the report points to a built page that has the anchor."""
    from urllib.parse import unquote, urlparse
    parsed = urlparse(url)
    page = Path(unquote(parsed.path))
    return parsed.scheme == "file" and page.is_file() and f'id="{parsed.fragment}"' in page.read_text(encoding="utf-8")


def test_every_misconception_links_to_a_section_of_the_built_book():
    """Every misconception of every assignment's diagnostics names a label that the built book has."""
    from autograder import diagnose, report
    from tests.conftest import ALL_ASSIGNMENTS, SOLUTIONS
    labels = report.book_labels()
    for assignment in ALL_ASSIGNMENTS:
        for key, known in diagnose.misconceptions(SOLUTIONS / assignment, assignment).items():
            link = report.book_link(known.label, labels=labels)
            assert link and _anchor_exists(link), f"{assignment}: {key} links to {known.label!r}, which the book lacks"


# --- the 简体中文 edition (tools/zh_book.py), built by `make book` into _build/html/zh/ -------------------------------
CJK = re.compile(r"[\u3400-\u9fff]")


def twin(page):
    """The same page in the other edition."""
    relative = page.relative_to(HTML)
    return HTML / relative.relative_to("zh") if relative.parts[0] == "zh" else HTML / "zh" / relative


def edition_switch(page):
    from bs4 import BeautifulSoup
    link = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser").select_one("p.edition-switch a")
    return (page.parent / link["href"]).resolve() if link else None


def article_prose(page):
    """The words of a page's article that are prose: code, outputs, math and the references (titles of papers)
    set aside."""
    from bs4 import BeautifulSoup
    article = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser").find("article")
    for selector in ("div.highlight", "pre", "div.cell_output", "div.output", ".math", "script", "style", "code",
                     "p.edition-switch", ".citation-list", ".citation"):
        for element in article.select(selector):
            element.decompose()
    return article


def test_every_page_has_a_twin_in_the_other_edition_and_links_to_it():
    english = pages()
    assert all(twin(p).is_file() for p in english), "a page of the English book has no Chinese twin"
    for page in english + [twin(p) for p in english]:
        assert edition_switch(page) == twin(page).resolve(), f"{page.relative_to(HTML)} does not link to its twin"


def test_every_chinese_page_is_mostly_chinese_prose():
    for page in [twin(p) for p in pages()]:
        article = article_prose(page)
        text = article.get_text(" ")
        assert len(CJK.findall(text)) >= 4 * len(re.findall(r"[A-Za-z]{2,}", text)), page.name
        english = [p.get_text(" ")[:80] for p in article.find_all(["p", "li", "h1", "h2", "h3", "td"])
                   if len(re.findall(r"[A-Za-z]{2,}", p.get_text(" "))) >= 8 and not CJK.search(p.get_text(" "))]
        assert english == [], f"{page.relative_to(HTML)}: paragraphs left in English"


def test_the_chinese_edition_speaks_chinese_around_its_pages():
    intro = (HTML / "zh" / "book" / "intro.html").read_text(encoding="utf-8")
    assert '<html lang="zh-CN"' in intro or "<html lang='zh-CN'" in intro or 'lang="zh_CN"' in intro
    for english in ("Show code cell", ">Chapters<", ">Reference<", "Search this book"):
        assert english not in intro, english


def test_the_chinese_search_index_holds_chinese_words():
    import json
    text = (HTML / "zh" / "searchindex.js").read_text(encoding="utf-8")
    terms = json.loads(text[text.index("(") + 1:text.rindex(")")])["terms"]
    for word in ("注意力", "掩码", "查询", "多头", "词元", "梯度"):   # words as jieba cuts them
        assert word in terms, word


def test_the_chinese_figures_are_drawn_again_with_chinese_labels():
    """Each figure of a Chinese page is the English page's figure, drawn again from the same execution with its
    labels translated: as many images, and each one different from its English twin."""
    from bs4 import BeautifulSoup
    for page in pages():
        images = {}
        for edition in (page, twin(page)):
            found = BeautifulSoup(edition.read_text(encoding="utf-8"), "html.parser").select("article img")
            images[edition] = [(edition.parent / i["src"]).read_bytes() for i in found]
        english, chinese = images[page], images[twin(page)]
        assert len(english) == len(chinese), page.name
        assert all(e != c for e, c in zip(english, chinese)), f"{page.name}: a figure is not drawn again in Chinese"
