"""The chapters teach without handing over the graded code.

Where a chapter shows an implementation of a graded component, it must be visibly different in form
from the assignment's solution (a loop over heads, torch's own module, ...). test_notebooks.py finds
solution lines copied verbatim into the built book; this test finds near-copies, with the names
changed and the code reformatted.

How code is compared. The code of a chapter is every `{code-cell}` of book/*.md and every helper
module book/*.py. The code of a solution is each region between `### BEGIN SOLUTION` and
`### END SOLUTION` of every solution notebook (every assignment, present and future). Both are turned
into tokens with Python's tokenizer; comments, line breaks and indentation are dropped, every string
becomes STR, and every name becomes ID except keywords, attributes (`x.transpose`), builtins, the
modules `torch`, `nn`, `F`, `math`, `self`, and the names of the assignment's graded cells (its API,
such as `masked_softmax`). What is left is the shape of the code: which operations, in which order.
A solution's *shingles* are its runs of SHINGLE consecutive tokens.

The threshold. A chapter cell is too close to a solution region when it contains at least THRESHOLD
(half) of the solution's shingles. Solutions with fewer than MIN_SHINGLES shingles (a line or so,
such as a one-line mask) are not compared: that much code is the formula the chapter teaches.
"""
import builtins
import io
import keyword
import re
import textwrap
import tokenize
from pathlib import Path

import nbformat
import pytest

from tests.conftest import ALL_ASSIGNMENTS, REPO, solution_path

SHINGLE = 5
THRESHOLD = 0.5
MIN_SHINGLES = 12
KEPT_NAMES = set(dir(builtins)) | {"torch", "nn", "F", "math", "self"}


def chapter_code():
    """[(where, code)] for every code cell of the chapters and every helper module of the book."""
    found = []
    for path in sorted((REPO / "book").glob("*.md")):
        cells = re.findall(r"^```\{code-cell\}[^\n]*\n(.*?)^```", path.read_text(encoding="utf-8"), re.S | re.M)
        found += [(f"{path.name}, code cell {i + 1}", re.sub(r"^:[\w-]+:.*$", "", code, flags=re.M))
                  for i, code in enumerate(cells)]
    found += [(path.name, path.read_text(encoding="utf-8")) for path in sorted((REPO / "book").glob("*.py"))]
    return found


def solution_regions(assignment):
    """[(grade_id, code between BEGIN SOLUTION and END SOLUTION)] of one assignment, and its API names."""
    notebook = nbformat.read(solution_path(assignment), as_version=4)
    api = {c.metadata["nbgrader"]["grade_id"] for c in notebook.cells if "nbgrader" in c.metadata}
    regions = []
    for cell in notebook.cells:
        if not cell.metadata.get("nbgrader", {}).get("solution"):
            continue
        inside, lines = False, []
        for line in cell.source.splitlines():
            if "BEGIN SOLUTION" in line:
                inside = True
            elif "END SOLUTION" in line:
                inside = False
                regions.append((cell.metadata["nbgrader"]["grade_id"], "\n".join(lines)))
                lines = []
            elif inside:
                lines.append(line)
    return regions, api


def normalised_tokens(code, api=frozenset()):
    """The tokens of `code` with comments, layout and strings dropped and local names replaced by ID."""
    tokens, previous = [], None
    try:
        for token in tokenize.generate_tokens(io.StringIO(textwrap.dedent(code)).readline):
            if token.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                              tokenize.DEDENT, tokenize.ENDMARKER):
                continue
            text = token.string
            if token.type == tokenize.STRING:
                text = "STR"
            elif token.type == tokenize.NAME and not (keyword.iskeyword(text) or previous == "."
                                                      or text in KEPT_NAMES or text in api):
                text = "ID"
            tokens.append(text)
            previous = token.string
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass  # a fragment that does not tokenize to the end: compare what came before
    return tokens


def shingles(tokens):
    return {tuple(tokens[i:i + SHINGLE]) for i in range(len(tokens) - SHINGLE + 1)}


def closeness(solution, code, api):
    """The share of the solution's shingles that `code` contains."""
    theirs = shingles(normalised_tokens(solution, api))
    return len(theirs & shingles(normalised_tokens(code, api))) / len(theirs)


def compared_regions():
    """[(assignment, grade_id, code, api)] of the solution regions long enough to compare."""
    found = []
    for assignment in ALL_ASSIGNMENTS:
        regions, api = solution_regions(assignment)
        found += [(assignment, gid, code, api) for gid, code in regions
                  if len(shingles(normalised_tokens(code, api))) >= MIN_SHINGLES]
    return found


REGIONS = compared_regions()


def test_there_are_solutions_to_compare():
    assert len({a for a, *_ in REGIONS}) == len(ALL_ASSIGNMENTS), "an assignment has no solution long enough to compare"


@pytest.mark.parametrize("assignment,grade_id,code,api", REGIONS, ids=[f"{a}:{g}" for a, g, *_ in REGIONS])
def test_no_chapter_code_is_close_to_a_solution(assignment, grade_id, code, api):
    close = [(round(closeness(code, cell, api), 2), where) for where, cell in chapter_code()
             if closeness(code, cell, api) >= THRESHOLD]
    assert not close, (f"the chapter code {close} contains at least {THRESHOLD:.0%} of the solution of "
                       f"{assignment}:{grade_id} (names normalised): show it in a visibly different form")


@pytest.mark.parametrize("assignment,grade_id,code,api", REGIONS, ids=[f"{a}:{g}" for a, g, *_ in REGIONS])
def test_the_check_finds_a_solution_planted_with_other_names(assignment, grade_id, code, api):
    """A solution with every local name changed and re-indented, amid other code, is found."""
    local = {t for t in re.findall(r"\b[A-Za-z_]\w*\b", code)
             if not (keyword.iskeyword(t) or t in KEPT_NAMES or t in api)}
    renamed = re.sub(r"(?<!\.)\b(" + "|".join(map(re.escape, sorted(local, key=len, reverse=True))) + r")\b",
                     lambda m: "my_" + m.group(1) + "_2", code) if local else code
    planted = "import torch\nx = torch.randn(3, 4)\n\ndef helper(a, b):\n" + textwrap.indent(
        textwrap.dedent(renamed), "        ") + "\nprint(x.shape)\n"
    assert closeness(code, planted, api) >= THRESHOLD
    assert closeness(code, "import torch\nprint(torch.randn(3, 4).sum())\n", api) < THRESHOLD
