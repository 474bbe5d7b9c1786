"""Issue 21's inputs, without grading: links are refused and never followed (autograder/collect.py), the
litter of archivers and editors is ignored, hidden student folders are not lost; notebooks saved by other
editors are read and their nbgrader metadata restored from the release (autograder/repair.py, and what
`make check-submission` says of it); a student's message is text on the feedback page. The whole path,
with grading, is in tests/test_hostile.py (links, litter) and tests/test_grader.py (editors)."""
import copy
import html
import json
import os
import re
import shutil
import threading
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest

from autograder import feedback
from autograder.collect import Cause, collect, find_notebook, parse_notebook, read_file, read_notebook
from autograder.model import FileId
from autograder.repair import repair, restore_metadata
from tests import editors
from tests.conftest import ALL_ASSIGNMENTS, ASSIGNMENTS, filled_notebook, release_path, solution_path, \
    zh_release_path
from tests.hostile import ASSIGNMENT
from tests.hostile.inputs import PLANTED, plant_all

pytestmark = pytest.mark.quick
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


# --- inputs are files, not links ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """collect() over every planted tree of tests/hostile/inputs.py, beside an honest student."""
    root = tmp_path_factory.mktemp("planted")
    submissions = root / "submitted"
    (submissions / "honest" / ASSIGNMENT).mkdir(parents=True)
    shutil.copy(solution_path(ASSIGNMENT), submissions / "honest" / ASSIGNMENT)
    plant_all(submissions, root / "outside")
    result = {}
    thread = threading.Thread(target=lambda: result.update(zip(("found", "problems"), collect(submissions, ALL_ASSIGNMENTS))))
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "collect hung (on the named pipe?)"
    return {"found": {s.student_id: s for s in result["found"]},
            "problems": {p.student_id: p for p in result["problems"]}, "root": root}


CAUSES = {"symlink-to-solutions": Cause.LINK, "symlink-absolute": Cause.LINK, "symlink-dangling": Cause.LINK,
          "symlinked-assignment-folder": Cause.LINK, "symlinked-student-folder": Cause.LINK,
          "hard-link-to-outside": Cause.LINK, "named-pipe": Cause.NOT_A_FILE, ".hidden-and-empty": Cause.NOT_A_STUDENT}


@pytest.mark.parametrize("name", sorted(PLANTED))
def test_every_planted_folder_is_a_submission_or_a_problem(planted, name):
    expected = PLANTED[name]
    if expected.error is None:
        assert name in planted["found"] and name not in planted["problems"]
        assert planted["found"][name].flags == (), "litter was taken for another notebook"
    else:
        problem = planted["problems"][name]
        assert problem.cause is CAUSES[name] and expected.error in problem.reason
        assert problem.assignment == ("" if expected.score is None else ASSIGNMENT)


def test_litter_is_neither_a_student_nor_an_assignment(planted):
    names = set(planted["found"]) | set(planted["problems"])
    assert not [n for n in names if n.startswith(("__MACOSX", "._", ".ipynb_checkpoints"))], names
    assert [p for p in planted["problems"].values() if p.cause is Cause.UNKNOWN_ASSIGNMENT] == []


def test_a_submission_knows_the_file_that_was_checked(planted):
    submission = planted["found"]["hard-link-inside"]
    info = os.stat(submission.notebook, follow_symlinks=False)
    assert submission.file_id == FileId(info.st_dev, info.st_ino)
    assert read_notebook(submission.notebook, submission.file_id)[0] is not None


def test_reading_never_follows_a_link_and_reads_only_the_file_that_was_checked(tmp_path):
    real = tmp_path / "real.ipynb"
    shutil.copy(solution_path(ASSIGNMENT), real)
    (tmp_path / "link.ipynb").symlink_to(real)
    assert "symbolic link" in read_notebook(tmp_path / "link.ipynb")[1]
    checked = FileId(real.stat().st_dev, real.stat().st_ino)
    real.rename(tmp_path / "moved.ipynb")
    shutil.copy(release_path(ASSIGNMENT), real)   # another file under the checked name
    data, why = read_file(real, checked)
    assert data is None and "changed" in why
    os.mkfifo(tmp_path / "pipe.ipynb")
    assert "not a regular file" in read_file(tmp_path / "pipe.ipynb")[1]


def test_a_hard_link_is_graded_only_when_every_name_is_inside(tmp_path):
    submissions, outside = tmp_path / "submitted", tmp_path / "outside"
    folder = submissions / "ana" / ASSIGNMENT
    folder.mkdir(parents=True)
    outside.mkdir()
    shutil.copy(solution_path(ASSIGNMENT), folder / f"{ASSIGNMENT}.ipynb")
    os.link(folder / f"{ASSIGNMENT}.ipynb", folder / "copy.ipynb")          # two names, both inside
    found, problems = collect(submissions, ALL_ASSIGNMENTS)
    assert [s.student_id for s in found] == ["ana"] and problems == []
    os.link(folder / f"{ASSIGNMENT}.ipynb", outside / "third-name.ipynb")   # a third name, outside
    found, problems = collect(submissions, ALL_ASSIGNMENTS)
    assert found == [] and problems[0].cause is Cause.LINK and "3 names, 2 of them inside" in problems[0].reason


def test_the_output_folder_inside_submissions_is_not_a_student(tmp_path):
    submissions = tmp_path / "submitted"
    (submissions / "ana" / ASSIGNMENT).mkdir(parents=True)
    shutil.copy(solution_path(ASSIGNMENT), submissions / "ana" / ASSIGNMENT)
    (submissions / "out" / "feedback").mkdir(parents=True)
    found, problems = collect(submissions, ALL_ASSIGNMENTS, skip=[submissions / "out"])
    assert [s.student_id for s in found] == ["ana"] and problems == []


def test_jupyters_temporary_and_macos_files_are_not_candidate_notebooks(tmp_path):
    shutil.copy(release_path(ASSIGNMENT), tmp_path / f"{ASSIGNMENT}.ipynb")
    nbformat.write(filled_notebook(ASSIGNMENT), tmp_path / f".~{ASSIGNMENT}.ipynb")   # JupyterLab's atomic save
    (tmp_path / f"._{ASSIGNMENT}.ipynb").write_bytes(b"\x00\x05\x16\x07")
    choice = find_notebook(tmp_path, ASSIGNMENT)
    assert choice.notebook == tmp_path / f"{ASSIGNMENT}.ipynb" and choice.flags == ()


# --- honest editors are graded -----------------------------------------------------------------------------
def _grade_ids(notebook):
    return [c.metadata.get("nbgrader", {}).get("grade_id") for c in notebook.cells]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
@pytest.mark.parametrize("editor", editors.EDITORS)
def test_a_notebook_saved_by_another_editor_is_read_and_matched_to_the_release(assignment, editor):
    filled, release = filled_notebook(assignment), nbformat.read(release_path(assignment), 4)
    notebook, why = parse_notebook(editors.saved(editor, filled).encode("utf-8"))
    assert why is None, why
    repaired = repair(notebook, release)
    assert _grade_ids(repaired.notebook) == _grade_ids(filled) and repaired.unmatched == ()
    assert [c.source for c in repaired.notebook.cells] == [c.source for c in filled.cells]
    assert repaired.notebook.metadata["kernelspec"] == release.metadata["kernelspec"]


def test_fields_that_nbformat_requires_are_filled_in():
    content = json.loads(editors.metadata_stripped(filled_notebook(ASSIGNMENT)))
    assert "execution_count" not in content["cells"][1] and "outputs" not in content["cells"][1]
    del content["metadata"]
    content["cells"][0]["id"] = "an-id"   # an id in a 4.4 file: invalid unless it becomes 4.5
    notebook, why = parse_notebook(json.dumps(content).encode())
    assert why is None, why
    code = next(c for c in notebook.cells if c.cell_type == "code")
    assert code.outputs == [] and code.execution_count is None and notebook.nbformat_minor == 5
    assert len({c.id for c in notebook.cells}) == len(notebook.cells) and isinstance(code.source, str)


def _stripped(notebook):
    notebook = copy.deepcopy(notebook)
    for cell in notebook.cells:
        cell.metadata = {}
        cell.pop("id", None)
    return notebook


def _index(notebook, grade_id):
    return _grade_ids(notebook).index(grade_id)


def test_edited_test_cells_and_added_cells_are_told_apart():
    release = nbformat.read(release_path(ASSIGNMENT), 4)
    filled = filled_notebook(ASSIGNMENT)
    notebook = _stripped(filled)
    notebook.cells[_index(filled, "nadaraya_watson_visible")].source += "\nprint('checking my work')\n"
    at = _index(filled, "masked_softmax")
    notebook.cells.insert(at, nbformat.v4.new_code_cell("def helper(x):\n    return x + 1"))     # before the solution
    notebook.cells.insert(at + 2, nbformat.v4.new_code_cell("def masked_softmax(scores, mask=None):\n    return scores"))
    repaired = restore_metadata(notebook, release)
    ids = _grade_ids(repaired.notebook)
    assert ids[_index(filled, "nadaraya_watson_visible")] == "nadaraya_watson_visible"   # 60% alike
    assert ids[at] is None and ids[at + 1] is None and ids[at + 2] == "masked_softmax"   # the last definition
    assert repaired.unmatched == ()


def test_long_cells_without_metadata_hold_up_no_worker():
    """The repair runs before any time limit: a notebook whose cells lost their metadata and each grew 80 kB (a
    pasted table, a long comment) is matched in well under a second (compared character by character, it took
    173 s), and an edited test cell among them is still found."""
    import time
    release = nbformat.read(release_path(ASSIGNMENT), 4)
    filled = filled_notebook(ASSIGNMENT)
    notebook = _stripped(filled)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.source += "\n# " + "x y z w " * 10_000
    visible = notebook.cells[_index(filled, "nadaraya_watson_visible")]
    visible.source = filled.cells[_index(filled, "nadaraya_watson_visible")].source + "\nprint('checking my work')\n"
    start = time.perf_counter()
    repaired = restore_metadata(notebook, release)
    assert time.perf_counter() - start < 5
    assert _grade_ids(repaired.notebook)[_index(filled, "nadaraya_watson_visible")] == "nadaraya_watson_visible"
    assert repaired.unmatched == ()


def test_a_cell_that_matches_nothing_stays_the_students_own_and_is_reported():
    release = nbformat.read(release_path(ASSIGNMENT), 4)
    filled = filled_notebook(ASSIGNMENT)
    notebook = _stripped(filled)
    at = _index(filled, "AdditiveAttention")
    notebook.cells[at].source = notebook.cells[at].source.replace("class AdditiveAttention", "class MyAttention")
    notebook.cells.insert(at, nbformat.v4.new_code_cell("import torch"))   # two cells where one was: ambiguous
    repaired = repair(notebook, release)
    assert repaired.unmatched == ("AdditiveAttention",)
    assert _grade_ids(repaired.notebook)[at:at + 2] == [None, None]
    assert _grade_ids(repaired.notebook)[at + 2] == "additive_visible"


def test_a_stub_without_a_name_is_matched_by_its_place():
    assignment = "02_self_attention"   # `attention_helpers`: the pasted code of 01, its stub defines nothing
    release = nbformat.read(release_path(assignment), 4)
    filled = filled_notebook(assignment)
    notebook = _stripped(filled)
    notebook.cells[_index(filled, "attention_helpers")].source = "def masked_softmax(s, m=None):\n    return s"
    repaired = repair(notebook, release)
    assert _grade_ids(repaired.notebook) == _grade_ids(filled) and repaired.unmatched == ()


def test_check_submission_says_that_metadata_is_missing_and_how_it_is_matched(tmp_path, monkeypatch):
    from tools import check_submission
    monkeypatch.setattr(check_submission, "run_checks", lambda notebook, release: [])   # no kernel here
    path = tmp_path / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    path.parent.mkdir()
    path.write_text(editors.colab(filled_notebook(ASSIGNMENT)), encoding="utf-8")
    _, checks = check_submission.check(path)
    assert all(c.ok for c in checks), [c.what for c in checks if not c.ok]
    said = next(c for c in checks if "nbgrader metadata missing" in c.what)
    assert "by its text" in said.detail and "by the function or class" in said.detail
    assert any("every graded cell of the release is there, once" in c.what for c in checks)
    (path.parent / "link.ipynb").symlink_to(path)
    _, checks = check_submission.check(path.parent / "link.ipynb")
    assert not checks[0].ok and "symbolic link" in checks[0].what


# --- feedback text is text -------------------------------------------------------------------------------------
PAYLOAD = ('ValueError: see [the answer](http://evil.example/x) <script>alert(1)</script> <b>b</b> '
           '<img src=x onerror="alert(2)"> **strong** $$x^2$$ `code` | a pipe\nline two')


def test_a_message_is_literal_text_in_the_summary_and_under_its_test():
    cell = nbformat.v4.new_code_cell("")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"✘ 0 / 2 points. {PAYLOAD}\n")]
    notebook = nbformat.v4.new_notebook(cells=[cell], metadata={"language_info": {"name": "python"}})
    page = feedback.render(notebook, feedback.summary_html(ASSIGNMENT, {"t": (0.0, 2.0)}, {"t": PAYLOAD}))
    assert not re.search(r"<a\b[^>]*evil", page), "a link was made of the message"
    for tag in ("<script>alert", "<b>b</b>", "<img src=x"):
        assert tag not in page
    summary = page.split(f'<section class="{feedback.SUMMARY_CLASS}">', 1)[1].split("</section>", 1)[0]
    assert feedback.literal(PAYLOAD) in summary and "<br>" in summary
    assert PAYLOAD in html.unescape(page.split("</section>", 1)[1])
    assert "<math" not in page, "the TeX of a message became math"


@pytest.mark.unit
def test_a_markdown_cell_renders_as_html_with_its_math_and_nothing_unsafe():
    """The assignment's instructions render as headings and paragraphs (nbconvert's own sanitiser escapes them to
    text), with their math as MathML; a cell's script, event handler or javascript: link does not, and the page holds
    no script at all and says so to the browser (its Content-Security-Policy)."""
    cell = nbformat.v4.new_markdown_cell("# Assignment 01\n\nThe weights $\\alpha$ [ok](https://example.org) "
                                         "[bad](javascript:alert(1)) <img src=x onerror=\"alert(2)\"> "
                                         "<script>alert(3)</script>\n\n* one\n* two\n\n$$\\frac{a}{\\sqrt{d}}$$")
    notebook = nbformat.v4.new_notebook(cells=[cell], metadata={"language_info": {"name": "python"}})
    page = feedback.render(notebook, feedback.summary_html(ASSIGNMENT, {}, {}))
    assert re.search(r"<h1[^>]*>Assignment 01", page) and "&lt;h1" not in page and "&lt;p&gt;" not in page
    assert "<li>one</li>" in page and 'href="https://example.org"' in page
    assert "javascript:" not in page and "onerror" not in page and "<script>alert(3)" not in page
    assert re.search(r"<math>\s*<mi>α</mi>\s*</math>", page) and re.search(r'<math display="block">\s*<mfrac>', page)
    assert "$" not in page and "<script" not in page and "mathjax" not in page.lower()
    assert "Content-Security-Policy" in page and "default-src 'none'" in page


def release_formulas():
    """{(TeX, displayed)} of the Markdown cells of every release, English and Chinese (found here by their
    delimiters, independently of nbconvert's Markdown)."""
    delimited = re.compile(r"\$\$(.+?)\$\$|\\\[(.+?)\\\]|\$(.+?)\$|\\\((.+?)\\\)", re.S)
    found = set()
    for path in [release_path(a) for a in ALL_ASSIGNMENTS] + [zh_release_path(a) for a in ALL_ASSIGNMENTS]:
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "markdown":
                for match in delimited.finditer(cell.source):
                    display = match[1] is not None or match[2] is not None
                    found.add((next(g for g in match.groups() if g is not None), display))
    return found


class _Tags(HTMLParser):
    """[(tag, its attributes' names)] of an HTML text, in order."""

    def __init__(self, text):
        super().__init__()
        self.tags = []
        self.feed(text)

    def handle_starttag(self, tag, attributes):
        self.tags.append((tag, tuple(sorted(name for name, _ in attributes))))


@pytest.mark.unit
def test_every_formula_of_every_release_is_mathml_that_the_sanitiser_keeps():
    """docutils (with feedback.TEX_REWRITES) reads every formula of the course's notebooks, and the Markdown
    sanitiser keeps every element and attribute of its MathML; so does it for the rest of what docutils writes."""
    formulas = release_formulas()
    assert len(formulas) > 200
    more = [r"\boxed{x} \phantom{y} \dfrac{a}{b} \tbinom{n}{k} \overset{!}{=} \underbrace{a+b}_{c} \hat{x} \vec{v}",
            r"\sqrt[3]{x} \bmod 2 \pmod{n} f\colon A \to B \mathbb{R} \mathcal{L} {\displaystyle\sum_{i=1}^n x_i}",
            r"\begin{pmatrix} a & b \\ c & d \end{pmatrix} \begin{aligned} x &= 1 \\ y &= 2 \end{aligned}",
            r"\left\{ \frac{1}{2} \right. \shortmid \quad \, \; \! \lim_{x \to 0} \max_j \operatorname{diag}(v)"]
    for tex, display in sorted(formulas) + [(tex, True) for tex in more]:
        mathml = feedback.tex_mathml(tex, display)
        assert mathml.startswith("<math"), f"not read by docutils: {tex!r} gives {mathml!r}"
        assert _Tags(feedback._clean_html(mathml)).tags == _Tags(mathml).tags, f"the sanitiser changed {tex!r}"


@pytest.mark.unit
def test_mathml_that_could_run_script_or_link_is_removed_and_tex_it_cannot_read_stays_text():
    """The sanitiser allows presentation MathML only: no maction, semantics or annotation-xml (HTML inside MathML),
    no href, event handler or style. A TeX command docutils does not know shows the formula as its TeX, escaped."""
    hostile = ('<math><maction actiontype="statusline"><mi href="javascript:alert(1)" onclick="alert(2)" '
               'style="position:fixed">x</mi></maction><semantics><annotation-xml encoding="text/html">'
               '<img src=x onerror="alert(3)"></annotation-xml></semantics><mtext><style>*{}</style><script>alert(4)'
               '</script></mtext><mglyph src="https://evil.example/x.png"/><mo xlink:href="https://evil.example">+'
               '</mo></math>')
    cleaned = feedback._clean_html(hostile)
    for left in ("maction", "semantics", "annotation", "href", "onclick", "onerror", "style", "<script", "mglyph",
                 "evil.example"):
        assert left not in cleaned, f"{left} survived: {cleaned}"
    assert "<math>" in cleaned and "<mi>x</mi>" in cleaned
    assert "&lt;script&gt;" in feedback.tex_mathml(r"\text{<script>alert(5)</script>}", False)
    unknown = feedback.tex_mathml(r"\unknowncommand{<b>x</b>} & y", False)
    assert unknown == '<code class="tex">$\\unknowncommand{&lt;b&gt;x&lt;/b&gt;} &amp; y$</code>'


@pytest.mark.unit
def test_a_latex_output_shows_its_math_as_mathml():
    """display(Math(...)) in a student's cell: a text/latex output, drawn as MathML (sanitised like a Markdown
    cell), the text around its formulas escaped."""
    cell = nbformat.v4.new_code_cell("display(Math(...))")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/latex": "$\\displaystyle \\frac{a}{b}$ <b>bold</b>",
                                                                 "text/plain": "<IPython.core.display.Math object>"})]
    notebook = nbformat.v4.new_notebook(cells=[cell], metadata={"language_info": {"name": "python"}})
    page = feedback.render(notebook, "")
    shown = page.split('data-mime-type="text/latex"', 1)[1].split("</div>", 1)[0]
    assert re.search(r"<math[^>]*>\s*<mfrac>\s*<mi>a</mi>\s*<mi>b</mi>\s*</mfrac>\s*</math>", shown), shown
    assert "&lt;b&gt;bold&lt;/b&gt;" in shown and "$" not in shown


@pytest.mark.unit
def test_past_the_pages_budget_of_mathml_formulas_stay_tex(monkeypatch):
    """A Markdown cell of thousands of formulas would take the sanitiser minutes: past MATHML_LIMIT characters of
    MathML on a page, the formulas are shown as their TeX; the next page has its whole budget again."""
    monkeypatch.setattr(feedback, "MATHML_LIMIT", 2_000)
    source = " and ".join(f"$x_{{{i}}}$" for i in range(100))
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(source)],
                                        metadata={"language_info": {"name": "python"}})
    for _ in range(2):
        page = feedback.render(notebook, "")
        drawn, kept = page.count("<math"), page.count('<code class="tex">')
        assert 5 < drawn < 100 and drawn + kept == 100, (drawn, kept)
        assert f"$x_{{{drawn}}}$" in page and f"$x_{{{drawn - 1}}}$" not in page


def test_a_feedback_page_alone_in_a_folder_shows_its_math_in_a_browser_and_loads_nothing(tmp_path):
    """A page sent to a student alone: copied into an empty folder and opened in headless Chromium, it makes no
    request but for itself, logs no error (a blocked load would: its Content-Security-Policy), and draws every
    formula of the release as MathML (laid out by the browser, none left as TeX)."""
    if not Path(CHROMIUM).exists():
        pytest.skip("SKIPPED LOUDLY: Debian's chromium is not installed and `make test` could not install it "
                    "(apt-get install chromium); the feedback page was NOT checked in a browser")
    assignment = "02_self_attention"   # cases, fractions, \big: docutils' rewrites
    release = nbformat.read(release_path(assignment), as_version=4)
    formulas = sum(len(re.findall(r"\$\$.+?\$\$|\$.+?\$", c.source, re.S)) for c in release.cells
                   if c.cell_type == "markdown")
    written = tmp_path / "written"
    written.mkdir()
    (written / "page.html").write_text(feedback.render(release, feedback.summary_html(assignment, {"t": (1.0, 2.0)},
                                                                                      {"t": "$x$ stays text"})),
                                       encoding="utf-8")
    alone = tmp_path / "sent" / f"{assignment}.html"
    alone.parent.mkdir()
    shutil.copy(written / "page.html", alone)
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page()
            requests, errors = [], []
            page.on("request", lambda request: requests.append(request.url))
            page.on("console", lambda message: message.type == "error" and errors.append(message.text))
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(alone.as_uri(), wait_until="load")
            drawn = page.evaluate("""() => Array.from(document.querySelectorAll('math')).map(m => [
                m.namespaceURI, getComputedStyle(m).display, m.getBoundingClientRect().width > 0])""")
            text = page.inner_text("main")
        finally:
            browser.close()
    assert requests == [alone.as_uri()] and errors == []
    assert len(drawn) == formulas > 40
    assert all(namespace == "http://www.w3.org/1998/Math/MathML" and display in ("math", "block math", "inline math")
               and wide for namespace, display, wide in drawn), drawn
    assert "\\frac" not in text and "$x$ stays text" in text and text.count("$") == 2
