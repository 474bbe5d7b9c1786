r"""Feedback for one graded submission: a short message per failed test cell, and an HTML page.

The page shows, per graded cell, the points and the message of the assertion that failed (which
names the likely mistake), the student's own code and outputs, and the test cells as released (the
hidden tests removed). Every message is shown as text: the summary at the top is HTML the grader writes
with every text escaped (not Markdown, which nbconvert would render: a message holding `[x](url)` would
become a link), and the messages under the test cells are stream outputs, escaped text in <pre>. No output that contains a line of a hidden test reaches the page, whatever
printed it (a spy hook, or the student's code reading IPython's input history), and neither do
tracebacks, which quote hidden-test source.

Every text the grader writes here is in the edition of the course that graded the submission (course.edition:
a Chinese submission is graded by the Chinese course): editions.say looks it up in zh/grader.yml.

The page is one file that a student can open anywhere, offline: it holds no script and loads nothing (its
Content-Security-Policy allows only its inline styles and data: images and fonts), and its math is MathML, which
browsers draw themselves (Chromium and Edge since 109, Firefox, Safari). The TeX of the Markdown cells ($...$,
$$...$$, \(...\), \[...\], \begin{env}...\end{env}) and of text/latex outputs becomes MathML in Python, as the
page is rendered, by docutils' converter (docutils.utils.math.latex2mathml: docutils is pinned already, as
Sphinx's dependency), after a few rewrites of commands it lacks (TEX_REWRITES); a formula it cannot read stays
its TeX, as code, and so do the formulas past MATHML_LIMIT characters of MathML on one page. MathJax inlined
instead would add a megabyte of script (and its fonts) to every page, and a script to a page that otherwise
needs none; a sibling folder of MathJax is lost when a page is sent alone. The Markdown sanitiser (_clean_html)
allows the presentation MathML elements and attributes that docutils writes (MATHML_TAGS, MATHML_ATTRIBUTES):
none of them runs script or links anywhere (no maction, semantics, annotation-xml, href or event handler).

The instructor's word (an override of a cell's points, an extension, a late penalty: autograder/policy.py) is known
only once the whole class is graded, and it changes with the instructor's files while the page, like the result, is
kept from run to run. So the worker writes the page with the tests' score in a block of its own, between two
markers that name the page's edition (`score_block`), and every run of the grader writes that block again from the
result and the instructor's files (`show_adjustment`, called by report.py): the final score, what the tests gave,
and each change with its reason. Nothing else of the page changes, the block is rebuilt from scratch each time
(an override removed from the file leaves the page exactly as the worker wrote it), and no page is graded again
for it.
"""
from __future__ import annotations

import ast
import functools
import html
import os
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nbformat
from jinja2 import DictLoader, pass_context
from jinja2.runtime import Context
from nbconvert import HTMLExporter
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath
from nbformat import NotebookNode

from autograder import course
from autograder.editions import Edition, say
from autograder.mistakes import Misconception
from autograder.policy import Adjustment

if TYPE_CHECKING:   # autograder.diagnose is imported where it is used: it imports torch, which report.py never needs
    from autograder.diagnose import Facts

SECRET_REGIONS = [("BEGIN SOLUTION", "END SOLUTION"), ("BEGIN HIDDEN TESTS", "END HIDDEN TESTS")]
MIN_SECRET_LINE = 24  # shorter lines ("return weights", "else:") are too generic to identify anything
SIGNATURE = re.compile(r"\s*(def|class) \w+")  # signatures are the public API, given in every stub
MESSAGE_LIMIT = 600
REMOVED = "[output removed by the grader: it contained grading code]"
ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{6,16}\b")  # `<object at 0x7f3a...>`: differs at every run


def _steady(value: object) -> object:
    """Text of an output with memory addresses masked, so that the same notebook gives the same page."""
    if isinstance(value, list):
        return [_steady(v) for v in value]
    return ADDRESS.sub("0x…", value) if isinstance(value, str) else value


def _steady_output(output: Mapping[str, Any]) -> NotebookNode:
    node: NotebookNode = nbformat.from_dict(output)
    if "text" in node:
        node["text"] = _steady(node["text"])
    for mime, value in node.get("data", {}).items():
        if mime.startswith("text/"):
            node["data"][mime] = _steady(value)
    return node


def normalise(text: str) -> str:
    return " ".join(text.split())


def secret_lines(notebook: NotebookNode, regions: Sequence[tuple[str, str]] = SECRET_REGIONS) -> set[str]:
    """Lines of the given regions (solutions, hidden tests), whitespace-normalised, long enough to identify them."""
    found = set()
    for cell in notebook.cells:
        inside = False
        for line in cell.source.splitlines():
            if any(begin in line for begin, _ in regions):
                inside = True
            elif any(end in line for _, end in regions):
                inside = False
            elif inside and len(normalise(line)) >= MIN_SECRET_LINE and not SIGNATURE.match(line):
                found.add(normalise(line))
    return found


def _hidden_lines(course_dir: str | os.PathLike[str], assignment: str) -> set[str]:
    return secret_lines(course.read_source(str(course_dir), assignment), [("BEGIN HIDDEN TESTS", "END HIDDEN TESTS")])


def _output_text(output: Mapping[str, Any]) -> str:
    parts = [output.get("text", ""), output.get("ename", ""), output.get("evalue", "")]
    parts += ["\n".join(output.get("traceback", []))]
    for value in output.get("data", {}).values():
        parts.append(value if isinstance(value, str) else "\n".join(value) if isinstance(value, list) else "")
    return normalise("\n".join(str(p) for p in parts))


def _leaks(output: Mapping[str, Any], hidden: Iterable[str]) -> bool:
    text = _output_text(output)
    return any(line in text for line in hidden)


# A test's message is shown when it is made of the texts that the test's author wrote (string literals and
# the literal parts of f-strings of that cell) and, between them, formatted fields of at most FIELD_MAX
# characters on one line (numbers, shapes, dtypes, names, torch's own error text).
FIELD_MAX = 120
DROPPED_MIMES = ("application/javascript", "text/javascript", "application/vnd.jupyter.widget-view+json",
                 "application/vnd.jupyter.widget-state+json", "image/svg+xml")
OUTPUT_LIMIT = 20_000        # characters of one output kept on the page
PAGE_LIMIT = 1_000_000       # characters of outputs on one page
SUPPRESSED = ("[outputs after the hidden tests started are not shown: this notebook reads or alters the grading "
              "environment (see the flags of your grade)]")


def authored_texts(source: str) -> frozenset[str]:
    """The texts a test cell's author wrote: its string literals and the literal parts of its f-strings."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError):
        return frozenset()
    return frozenset(node.value for node in ast.walk(tree)
                     if isinstance(node, ast.Constant) and isinstance(node.value, str) and len(node.value) >= 2)


def is_authored(message: str, texts: Collection[str]) -> bool:
    """Whether `message` is made of `texts` with short one-line fields between them (never two fields in a
    row), holding at least one text of 8 characters or more."""
    if not any(len(t) >= 8 and t in message for t in texts):
        return False
    n = len(message)
    seen: set[tuple[int, bool]] = set()
    frontier = [(0, False)]
    while frontier:
        i, after_field = frontier.pop()
        if (i, after_field) in seen:
            continue
        seen.add((i, after_field))
        if i == n:
            return True
        frontier.extend((i + len(t), False) for t in texts if message.startswith(t, i))
        if not after_field:
            for j in range(i + 1, min(n, i + FIELD_MAX) + 1):
                if message[j - 1] == "\n":
                    break
                frontier.append((j, True))
    return False


@functools.lru_cache(maxsize=16)
def _authored(course_dir: str, assignment: str) -> dict[str, frozenset[str]]:
    """{grade_id: the texts its author wrote} of the assignment's graded cells, from its source notebook."""
    source = course.read_source(str(course_dir), assignment)
    return {c.metadata["nbgrader"]["grade_id"]: authored_texts(c.source) for c in source.cells
            if c.metadata.get("nbgrader", {}).get("grade")}


def messages(graded: NotebookNode, course_dir: str | os.PathLike[str], assignment: str,
             introspects: bool = False) -> dict[str, str]:
    """{grade_id: message} for the graded cells that raised.

    An AssertionError shows its message only when it is made of texts that the test's author wrote (with
    short fields between them: numbers, shapes, dtypes, names); an error raised in the student's own code shows its type and
    a capped message (only its type if the notebook reads or alters the grading environment). Nothing that
    quotes a hidden test line is shown.
    """
    hidden = _hidden_lines(course_dir, assignment)
    authored = _authored(str(course_dir), assignment)
    edition = course.edition(course_dir)
    found: dict[str, str] = {}
    for grade_id, error in _first_errors(graded).items():
        ename, evalue = str(error.get("ename", "Error"))[:60], str(error.get("evalue", ""))
        if ename == "AssertionError":
            if len(evalue) <= MESSAGE_LIMIT and is_authored(evalue, authored.get(grade_id, frozenset())):
                message = f"AssertionError: {evalue}"
            else:
                message = say(edition, "AssertionError (a message that is not the test's own is not shown)")
        elif introspects:
            message = say(edition, "{name} raised in your code", name=ename)
        else:
            message = f"{ename}: {evalue}".strip().rstrip(":")
        if any(line in normalise(message) for line in hidden):
            message = say(edition, "{name} (its message quoted grading code and was removed)", name=ename)
        found[grade_id] = message[:MESSAGE_LIMIT]
    return found


def _first_errors(graded: NotebookNode) -> dict[str, Any]:
    """{grade_id: the first error output} of the graded code cells that raised."""
    found: dict[str, Any] = {}
    for cell in graded.cells:
        meta = cell.metadata.get("nbgrader", {})
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if meta.get("grade") and cell.cell_type == "code" and errors:
            found[meta["grade_id"]] = errors[0]
    return found


def error_names(graded: NotebookNode) -> dict[str, str]:
    """{grade_id: the name of the error it ended with} of the graded cells that raised (model.OUTCOME_OF_ERROR)."""
    return {grade_id: str(error.get("ename", "Error"))[:60] for grade_id, error in _first_errors(graded).items()}


def _hidden_test_ids(course_dir: str | os.PathLike[str], assignment: str) -> set[str]:
    source = course.read_source(str(course_dir), assignment)
    return {c.metadata["nbgrader"]["grade_id"] for c in source.cells
            if "BEGIN HIDDEN TESTS" in c.source and c.metadata.get("nbgrader", {}).get("grade")}


def _page_output(output: Mapping[str, Any], budget: int) -> NotebookNode | None:
    """The output as it may appear on the page (scripts, widgets and SVG dropped, sizes capped), or None."""
    output = _steady_output(output)
    if "data" in output:
        output["data"] = {mime: value for mime, value in output["data"].items() if mime not in DROPPED_MIMES}
        if not output["data"]:
            return None
        for mime, value in list(output["data"].items()):
            text = value if isinstance(value, str) else "".join(value) if isinstance(value, list) else str(value)
            if len(text) > OUTPUT_LIMIT:
                if mime.startswith("text/"):
                    output["data"][mime] = text[:OUTPUT_LIMIT] + TRUNCATED
                else:
                    del output["data"][mime]
        if not output["data"]:
            output["data"] = {"text/plain": "[a large output was dropped by the grader]"}
        output.pop("metadata", None)
        output["metadata"] = {}
    if "text" in output and len(output["text"]) > OUTPUT_LIMIT:
        output["text"] = output["text"][:OUTPUT_LIMIT] + TRUNCATED
    size = len(str(output))
    return output if size <= budget else None


TRUNCATED = "\n[... output truncated by the grader ...]\n"


HEATMAPS = "Heatmaps of your weights, the expected weights and their difference, on the small example"
NO_ALT = "No description has been provided for this image"   # what nbconvert gives an image without a description


def _diagnosis_outputs(facts: Facts, known: Mapping[str, Misconception], first: bool,
                       edition: Edition = Edition.EN) -> list[NotebookNode]:
    """The outputs under a failed test cell: what the diagnostics found (on the component's first failed
    cell: every fact and the picture; on the others: the misconception only)."""
    from autograder import diagnose
    lines = diagnose.explain(facts, known, edition)
    if not first:
        lines = lines[:1] if facts.misconceptions else []
    outputs = [nbformat.v4.new_output("stream", name="stdout", text="".join(f"  • {line}\n" for line in lines))] \
        if lines else []
    image = diagnose.picture(facts, edition) if first else None
    if image is not None:
        outputs.append(nbformat.v4.new_output("display_data", data={
            "image/png": diagnose.png_base64(image),
            "text/plain": say(edition, HEATMAPS)}))
    return outputs


def results(course_dir: str | os.PathLike[str], assignment: str, scores: Mapping[str, tuple[float, float]],
            messages: Mapping[str, str], diagnoses: Mapping[str, Facts] | None = None) -> dict[str, str]:
    """{grade_id: the result shown in the summary}: "passed", or the message and the likely mistake."""
    from autograder import diagnose
    diagnoses = diagnoses or {}
    edition = course.edition(course_dir)
    known = diagnose.misconceptions(course.source_folder(course_dir, assignment), assignment, edition) \
        if diagnoses else {}
    owners = course.assignment_components(course_dir, assignment)
    texts = {}
    for gid, (score, top) in scores.items():
        facts = diagnoses.get(owners[gid]) if gid in owners else None
        text = messages.get(gid, say(edition, "passed") if score >= top else "")
        if score < top and facts is not None and facts.misconception in known:
            text += say(edition, " (likely mistake: {mistake} [{id}])", mistake=known[facts.misconception].mistake,
                        id=facts.misconception)
        texts[gid] = text
    return texts


SUMMARY_COLUMNS = ("test cell", "points", "result")
SUMMARY_CLASS = "autograder-summary"


def literal(text: str) -> str:
    """Text to be shown as it is in HTML: escaped (no tag, no entity, no Markdown is ever interpreted),
    line breaks kept."""
    return html.escape(text).replace("\n", "<br>\n")


SCORE_BLOCK = re.compile(r"<!-- autograder:score (\w+) -->\n.*?<!-- /autograder:score -->\n", flags=re.S)


def score_block(edition: Edition, tests: float, best: float, adjustment: Adjustment | None = None) -> str:
    """The page's score, between markers that name the page's edition: what the tests gave (the worker's page),
    or, when the instructor changed something, the final score, what the tests gave and each change with its
    reason. Every text escaped."""
    if adjustment is None or not adjustment.changed or adjustment.final_score is None:
        inner = f"<p><strong>{literal(say(edition, 'Score: {total} / {best}', total=f'{tests:g}', best=f'{best:g}'))}</strong></p>\n"
    else:
        changes = "".join(f"<li>{literal(line)}</li>\n" for line in adjustment.changes(edition))
        inner = (f"<p><strong>{literal(say(edition, 'Score: {total} / {best}', total=f'{adjustment.final_score:g}', best=f'{best:g}'))}"
                 f"</strong></p>\n<p>{literal(say(edition, 'The tests gave {tests} / {best}. Your instructor changed:', tests=f'{tests:g}', best=f'{best:g}'))}</p>\n"
                 f'<ul class="autograder-changes">\n{changes}</ul>\n')
    return f"<!-- autograder:score {edition.value} -->\n{inner}<!-- /autograder:score -->\n"


def show_adjustment(page: str | os.PathLike[str], adjustment: Adjustment) -> bool:
    """Write the score block of a feedback page again for `adjustment` (the page is rewritten only when the block
    changes); False when the page has no score block to write."""
    path = Path(page)
    text = path.read_text(encoding="utf-8")
    found = SCORE_BLOCK.search(text)
    if found is None or adjustment.tests_score is None:
        return False
    try:
        edition = Edition(found.group(1))
    except ValueError:
        return False
    block = score_block(edition, adjustment.tests_score, adjustment.max_score, adjustment)
    if block != found.group(0):
        path.write_text(text[:found.start()] + block + text[found.end():], encoding="utf-8")
    return True


def summary_html(assignment: str, scores: Mapping[str, tuple[float, float]], texts: Mapping[str, str],
                 edition: Edition = Edition.EN) -> str:
    """The head of the page: the score and one row per graded cell. It is HTML that the grader writes, every
    text escaped: never Markdown, which nbconvert would render (a message's [link](...) would become a link)."""
    total, best = sum(s for s, _ in scores.values()), sum(m for _, m in scores.values())
    rows = "".join(f"<tr><td><code>{literal(gid)}</code></td><td>{s:g} / {m:g}</td><td>{literal(texts.get(gid, ''))}</td></tr>\n"
                   for gid, (s, m) in scores.items())
    header = "".join(f"<th>{literal(say(edition, name))}</th>" for name in SUMMARY_COLUMNS)
    return (f'<section class="{SUMMARY_CLASS}">\n<h1>{literal(say(edition, "Feedback: {assignment}", assignment=assignment))}</h1>\n'
            f"{score_block(edition, total, best)}"
            f"<table>\n<thead><tr>{header}</tr></thead>\n<tbody>\n"
            f"{rows}</tbody>\n</table>\n"
            f"<p>{literal(say(edition, 'Each failed test says what looks wrong. Hidden tests are not shown.'))}</p>\n</section>\n")


def feedback_notebook(graded: NotebookNode, course_dir: str | os.PathLike[str], assignment: str,
                      scores: Mapping[str, tuple[float, float]], messages: Mapping[str, str], introspects: bool = False,
                      diagnoses: Mapping[str, Facts] | None = None) -> NotebookNode:
    """The notebook the student sees: released test cells, results instead of test outputs, filtered outputs.

    Under a failed test cell, what the diagnostics found about its component (`diagnoses`: {solution cell:
    Facts}). If the notebook reads or alters the grading environment (`introspects`), its own cells show no
    output from the moment the first hidden test started."""
    from autograder import diagnose
    diagnoses = diagnoses or {}
    edition = course.edition(course_dir)
    known = diagnose.misconceptions(course.source_folder(course_dir, assignment), assignment, edition) \
        if diagnoses else {}
    owners = course.assignment_components(course_dir, assignment)
    explained: set[str] = set()
    hidden = _hidden_lines(course_dir, assignment)
    hidden_ids = _hidden_test_ids(course_dir, assignment)
    release = nbformat.read(course.release_notebook(course_dir, assignment), as_version=4)
    released = {c.metadata["nbgrader"]["grade_id"]: c.source for c in release.cells if "nbgrader" in c.metadata}
    cells: list[NotebookNode] = []
    budget, hidden_started = PAGE_LIMIT, False
    for cell in graded.cells:
        cell = nbformat.from_dict(cell)
        meta = cell.metadata.get("nbgrader", {})
        gid = meta.get("grade_id")
        cell.metadata = {}
        if cell.cell_type == "code" and meta.get("grade"):
            hidden_started = hidden_started or gid in hidden_ids
            cell.source = released.get(gid, "")
            score, top = scores.get(gid, (0.0, float(meta.get("points", 0))))
            verdict = say(edition, "✔ passed: {score} / {top} points", score=f"{score:g}", top=f"{top:g}") \
                if score >= top else \
                say(edition, "✘ {score} / {top} points. {message}", score=f"{score:g}", top=f"{top:g}",
                    message=messages.get(gid, say(edition, "This test failed.")))
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=verdict + "\n")]
            facts = diagnoses.get(owners[gid]) if gid in owners else None
            if score < top and facts is not None:
                cell.outputs += _diagnosis_outputs(facts, known, owners[gid] not in explained, edition)
                explained.add(owners[gid])
        elif cell.cell_type == "code":
            kept: list[NotebookNode] = []
            if introspects and hidden_started:
                kept.append(nbformat.v4.new_output("stream", name="stdout", text=say(edition, SUPPRESSED) + "\n"))
                cell.outputs = []
            for output in cell.outputs:
                if _leaks(output, hidden):
                    kept.append(nbformat.v4.new_output("stream", name="stdout", text=say(edition, REMOVED) + "\n"))
                elif output.get("output_type") == "error":
                    kept.append(nbformat.v4.new_output("stream", name="stderr",
                                                       text=f"{output.get('ename')}: {output.get('evalue')}\n"[:1000]))
                else:
                    shown = _page_output(output, budget)
                    if shown is None:
                        kept.append(nbformat.v4.new_output("stream", name="stdout",
                                                           text=say(edition, PAGE_FULL) + "\n"))
                        budget = 0
                    else:
                        kept.append(shown)
                        budget -= len(str(shown))
            cell.outputs = kept
        cells.append(cell)
    for i, cell in enumerate(cells):
        cell.id = f"cell-{i}"  # not random ids: the same submission gives the same page
    notebook: NotebookNode = nbformat.v4.new_notebook(cells=cells, metadata={"language_info": {"name": "python"}})
    return notebook


PAGE_FULL = "[an output was dropped: the page is full]"


# ---------------------------------------------------------------- math, as MathML

# Commands of the course's notebooks (and common in students' Markdown) that docutils 0.21 does not know, as what it
# knows, which renders the same: \big) is \bigr), the other \big are \bigl (a delimiter of the size of \big).
TEX_REWRITES = ((re.compile(r"\\dots(?![A-Za-z])"), r"\\ldots"),
                (re.compile(r"\\(big|Big|bigg|Bigg)(?=\s*(\)|\]|\\\}|\\r[a-zA-Z]+))"), r"\\\1r"),
                (re.compile(r"\\(big|Big|bigg|Bigg)(?![A-Za-z])"), r"\\\1l"),
                (re.compile(r"\\iff(?![A-Za-z])"), r"\\;\\Longleftrightarrow\\;"),
                (re.compile(r"\\text(tt|bf|it|sf)(?![A-Za-z])"), r"\\math\1"),
                (re.compile(r"\\bm(?![A-Za-z])"), r"\\boldsymbol"),
                (re.compile(r"\\(label\{[^{}]*\}|nonumber|notag)(?![A-Za-z])"), ""))
# Environments that only number or align their formulas: the formula is shown as a displayed formula (docutils
# aligns its rows on & and \\ as amsmath's align does).
DISPLAY_ENVIRONMENT = re.compile(r"\s*\\begin\{(equation|align|gather|multline|split|gathered)(\*?)\}(.*)"
                                 r"\\end\{\1\2\}\s*", re.S)
TEX_LIMIT = 20_000   # characters of one formula; a longer one is shown as its TeX
# characters of MathML on one page (a release's math is about 20,000): the sanitiser reads MathML at about 60 kB a
# second, so that a student's Markdown of thousands of formulas would cost minutes; past it, formulas stay TeX
MATHML_LIMIT = 200_000


def tex_code(tex: str, display: bool) -> str:
    """A formula shown as its TeX, with its delimiters, as text."""
    delimiter = "$$" if display else "$"
    return f'<code class="tex">{html.escape(delimiter + tex + delimiter)}</code>'


@functools.lru_cache(maxsize=4096)
def tex_mathml(tex: str, display: bool) -> str:
    """The MathML of a TeX formula (docutils' converter), remembered: the assignment's own formulas are on every
    page. A formula docutils cannot read (a command it does not know, a brace missing) is shown as its TeX."""
    from docutils.utils.math import latex2mathml
    source = tex
    for pattern, replacement in TEX_REWRITES:
        source = pattern.sub(replacement, source)
    environment = DISPLAY_ENVIRONMENT.fullmatch(source)
    if environment:
        source, display = environment[3], True
    if len(source) <= TEX_LIMIT:
        try:
            mathml: str = latex2mathml.tex2mathml(source, as_block=display)
            return mathml.replace(' xmlns="http://www.w3.org/1998/Math/MathML"', "", 1)   # HTML knows <math>
        except Exception:  # docutils' MathError, or whatever its parser meets in a student's TeX  # noqa: BLE001
            pass
    return tex_code(tex, display)


# The formulas of a text/latex output (display(Math(...)), sympy), by the delimiters nbconvert's Markdown knows
MATH_IN_TEXT = re.compile(r"\$\$(?P<block>.+?)\$\$|\\\[(?P<bracket>.+?)\\\]|\$(?P<inline>.+?)\$|\\\((?P<paren>.+?)\\\)"
                          r"|(?P<environment>\\begin\{(?P<name>[A-Za-z]+\*?)\}.*?\\end\{(?P=name)\})", re.S)
Math = Callable[[str, bool], str]   # (TeX, displayed) -> HTML


class MathMLRenderer(IPythonRenderer):
    """nbconvert's Markdown renderer with the math drawn by `math` (nbconvert's own leaves the TeX for MathJax)."""

    def __init__(self, math: Math, **options: Any) -> None:
        super().__init__(**options)
        self.math = math

    def inline_math(self, body: str) -> str:
        return self.math(body, False)

    def block_math(self, body: str) -> str:
        return self.math(body, True)

    def latex_environment(self, name: str, body: str) -> str:
        return self.math(f"\\begin{{{name}}}{body}\\end{{{name}}}", True)


class FeedbackExporter(HTMLExporter):
    """nbconvert's HTML exporter with the math of Markdown (cells and outputs) and of text/latex outputs as MathML,
    at most MATHML_LIMIT characters of it a page (`mathml_left`: render() sets it), then as TeX."""
    mathml_left = MATHML_LIMIT

    def math(self, tex: str, display: bool) -> str:
        mathml = tex_mathml(tex, display)
        self.mathml_left -= len(mathml)
        return mathml if self.mathml_left >= 0 else tex_code(tex, display)

    @pass_context
    def markdown2html(self, context: Context, source: str) -> str:
        cell = context.get("cell", {})
        renderer = MathMLRenderer(self.math, escape=False, attachments=cell.get("attachments", {}),
                                  embed_images=self.embed_images,
                                  path=context.get("resources", {}).get("metadata", {}).get("path", ""),
                                  anchor_link_text=self.anchor_link_text,
                                  exclude_anchor_links=self.exclude_anchor_links, **self.lexer_options)
        page: str = MarkdownWithMath(renderer=renderer).render(source)
        return page

    def latex2html(self, text: str) -> str:
        """A text/latex output: its formulas as MathML, the text between them escaped."""
        parts, end = [], 0
        for match in MATH_IN_TEXT.finditer(text):
            parts.append(html.escape(text[end:match.start()]))
            if match["inline"] is not None or match["paren"] is not None:
                parts.append(self.math(match["inline"] if match["inline"] is not None else match["paren"], False))
            else:
                parts.append(self.math(next(g for g in (match["block"], match["bracket"], match["environment"]) if g),
                                       True))
            end = match.end()
        return "".join(parts) + html.escape(text[end:])

    def default_filters(self) -> Iterator[tuple[str, Callable[..., Any]]]:
        yield from super().default_filters()  # type: ignore[no-untyped-call]
        yield ("latex2html", self.latex2html)

    def from_notebook_node(self, nb: NotebookNode, resources: dict[str, Any] | None = None,  # type: ignore[override]
                           **kw: Any) -> tuple[str, dict[str, Any]]:   # a page, as HTMLExporter's (typed as Exporter's)
        """HTMLExporter's page without its last pass, which parses the whole page with BeautifulSoup and writes it
        again (two thirds of a page's time) to give each image without a description nbconvert's words and each
        cell's input and output tabindex="0": render() does both on the template's own markup (`accessible`)."""
        from nbconvert.exporters.templateexporter import TemplateExporter
        from nbconvert.filters.highlight import Highlight2HTML
        from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter
        language = nb.metadata.get("language_info", {})
        lexer = language.get("pygments_lexer", language.get("name", None))
        self.register_filter("highlight_code",   # type: ignore[no-untyped-call]  # traitlets' nbconvert is untyped
                             self.filters.get("highlight_code", Highlight2HTML(pygments_lexer=lexer, parent=self)))
        resources = self._init_resources(resources)  # type: ignore[no-untyped-call]
        self.register_filter("filter_data_type", WidgetsDataTypeFilter(  # type: ignore[no-untyped-call]
            notebook_metadata=self._nb_metadata, parent=self, resources=resources))
        page: str
        page, resources = TemplateExporter.from_notebook_node(self, nb, resources, **kw)
        return page, resources


IMAGE_TAG = re.compile(r"<img\b(?P<attributes>[^>]*)>")
HAS_ALT = re.compile(r"\salt\s*=", re.I)
SOURCE = re.compile(r'\ssrc="(?P<src>[^"]*)"')
FOCUSABLE = re.compile(r'<div class="(?P<classes>[^"]*\b(?:jp-Cell-inputWrapper|jp-OutputArea-output)\b[^"]*)"')


def accessible(page: str, descriptions: Mapping[str, str] | None = None) -> str:
    """`page` with a description (alt) on every image without one: `descriptions` ({src: words}) for the grader's
    pictures, nbconvert's NO_ALT for any other; and each cell's input and output reachable by the keyboard."""
    def described(match: re.Match[str]) -> str:
        attributes = match["attributes"]
        if HAS_ALT.search(attributes):
            return match[0]
        source = SOURCE.search(attributes)
        words = (descriptions or {}).get(source["src"], NO_ALT) if source else NO_ALT
        return f'<img alt="{html.escape(words)}"{attributes}>'
    return FOCUSABLE.sub(r'<div class="\g<classes>" tabindex="0"', IMAGE_TAG.sub(described, page))


# What the page may load and run: nothing but its own inline styles, and images and fonts held in it (data:).
CONTENT_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:"
# docutils' tables of cases and aligned rows (its minimal.css): MathML Core has no columnalign
MATH_CSS = """mtable.cases > mtr > mtd { text-align: left; }
mtable.ams-align > mtr > mtd { padding-left: 0; padding-right: 0; }
mtable.ams-align > mtr > mtd:nth-child(2n) { text-align: left; }
mtable.ams-align > mtr > mtd:nth-child(2n+1) { text-align: right; }
mtable.ams-align > mtr > mtd:nth-child(2n+3) { padding-left: 2em; }
code.tex { white-space: pre-wrap; }"""
# nbconvert's lab template without any script: no require.js, no MathJax, no mermaid.js (which a Markdown cell's
# ```mermaid block would load from a CDN)
TEMPLATE = ("{%- extends 'index.html.j2' -%}\n"
            "{%- block html_head_js -%}{%- endblock html_head_js -%}\n"
            "{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}\n"
            "{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}\n"
            "{% block data_latex scoped %}\n"   # nbconvert's own shows the TeX, escaped, for MathJax
            '<div class="jp-RenderedLatex jp-OutputArea-output {{ extra_class }}" data-mime-type="text/latex">\n'
            "{{ output.data['text/latex'] | latex2html | clean_html }}\n</div>\n"
            "{%- endblock data_latex %}\n"
            "{% block extra_css %}\n"
            f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_POLICY}">\n'
            f"<style>\n{MATH_CSS}\n</style>\n"
            "{% endblock extra_css %}\n")


@functools.cache
def _exporter() -> FeedbackExporter:
    """nbconvert's lab template (loading it takes a second: once per worker), with every HTML output and
    Markdown cell sanitised (no script, no event handler, no javascript: URL), the math as MathML and no script."""
    exporter: FeedbackExporter = FeedbackExporter(  # type: ignore[no-untyped-call]  # traitlets' __init__ is untyped
        template_name="lab", template_file="feedback.html.j2", extra_loaders=[DictLoader({"feedback.html.j2": TEMPLATE})],
        sanitize_html=True, filters={"clean_html": _clean_html})
    return exporter


# What a Markdown cell may render to: nbconvert's own sanitiser (clean_html) allows bleach's few inline tags only,
# and shows a heading or a paragraph as escaped text ("<h1 id=...>Assignment 01</h1>" on the page).
SAFE_TAGS = frozenset({"a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "div", "dl", "dt", "em", "h1", "h2",
                       "h3", "h4", "h5", "h6", "hr", "i", "img", "kbd", "li", "ol", "p", "pre", "s", "span", "strong",
                       "sub", "sup", "table", "tbody", "td", "th", "thead", "tr", "ul"})
# The presentation MathML that docutils' converter writes, and the attributes it sets (class is allowed everywhere)
MATHML_TAGS = frozenset({"math", "mi", "mn", "mo", "mtext", "mspace", "mrow", "mfrac", "msqrt", "mroot", "mstyle",
                         "merror", "menclose", "mpadded", "mphantom", "msub", "msup", "msubsup", "munder", "mover",
                         "munderover", "mtable", "mtr", "mtd"})
MATHML_OWN_ATTRIBUTES = {"math": ["display"], "mi": ["mathvariant"], "mfrac": ["linethickness"],
                         "mo": ["form", "stretchy", "symmetric", "maxsize", "minsize", "movablelimits", "lspace",
                                "rspace", "accent", "mathsize"],
                         "mspace": ["width", "height", "depth"], "mpadded": ["width", "height", "depth", "lspace", "voffset"],
                         "mover": ["accent"], "munder": ["accentunder"], "munderover": ["accent", "accentunder"],
                         "menclose": ["notation"], "mtable": ["columnalign", "rowspacing", "columnspacing"],
                         "mtd": ["columnalign"]}
MATHML_ATTRIBUTES = {tag: ["displaystyle", "scriptlevel", *MATHML_OWN_ATTRIBUTES.get(tag, [])]   # those two: global
                     for tag in MATHML_TAGS}
SAFE_ATTRIBUTES = {"*": ["class", "id"], "a": ["href", "title"], "img": ["src", "alt", "title"],
                   "td": ["align"], "th": ["align"]} | MATHML_ATTRIBUTES


@functools.lru_cache(maxsize=4096)
def _clean_html(element: str) -> str:
    """Markdown cells' HTML sanitised (no script, no style, no event handler, no javascript: URL; links and images
    by http, https or mailto only), remembered: the assignment's own Markdown cells are the same on every page."""
    import bleach
    cleaned: str = bleach.clean(element.decode() if isinstance(element, bytes) else str(element),
                                tags=SAFE_TAGS | MATHML_TAGS, attributes=SAFE_ATTRIBUTES,
                                protocols=["http", "https", "mailto"], strip=True)
    return cleaned


def render(notebook: NotebookNode, summary: str, descriptions: Mapping[str, str] | None = None) -> str:
    """The page: nbconvert's HTML of `notebook` (its outputs are text in <pre>, escaped), with the grader's
    `summary` at the top of <main>; `descriptions`: the alt text of the grader's pictures, by their src."""
    exporter = _exporter()
    exporter.mathml_left = MATHML_LIMIT
    body, _ = exporter.from_notebook_node(notebook)
    body = accessible(body, descriptions)
    if "<main>" not in body:
        raise RuntimeError("nbconvert's lab template has no <main> element: the feedback summary has no place")
    return body.replace("<main>", "<main>\n" + summary, 1)


def write_html(graded: NotebookNode, course_dir: str | os.PathLike[str], assignment: str,
               scores: Mapping[str, tuple[float, float]], messages: Mapping[str, str], path: str | os.PathLike[str],
               introspects: bool = False, diagnoses: Mapping[str, Facts] | None = None) -> None:
    edition = course.edition(course_dir)
    notebook = feedback_notebook(graded, course_dir, assignment, scores, messages, introspects, diagnoses)
    summary = summary_html(assignment, scores, results(course_dir, assignment, scores, messages, diagnoses), edition)
    heatmaps = say(edition, HEATMAPS)
    body = render(notebook, summary, {f'data:image/png;base64,{output["data"]["image/png"]}': heatmaps   # their alt text
                                      for cell in notebook.cells for output in cell.get("outputs", [])
                                      if output.get("data", {}).get("text/plain") == heatmaps})
    if edition is Edition.ZH:
        body = re.sub(r"<html lang=\"?en\"?", '<html lang="zh-CN"', body, count=1)
    Path(path).write_text(body, encoding="utf-8")
