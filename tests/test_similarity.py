"""The copied-work detector (autograder/similarity.py): calibrated on independent solutions and planted
copies (tests/similarity/corpus.py), blind to stubs, pasted helpers and book code, never raising on
hostile notebooks, and wired into the grader's outputs (similarity.csv, report.html)."""
import json
import os
import shutil
import subprocess
import sys
from itertools import combinations

import nbformat
import pytest

from autograder import similarity
from autograder.collect import Submission
from autograder.report import write_csv as write_rows
from autograder.report import SIMILARITY_HEADER as CSV_HEADER
from autograder.report import similarity_rows as csv_rows
from autograder.report import similarity_section as html_section
from autograder.model import Pair
from autograder.similarity import THRESHOLD, find_pairs, pasted_helpers
from tests.conftest import REPO, read_csv, release_path, run_grader, solution_path
from tests.similarity import corpus

CORPUS_ASSIGNMENTS = sorted(corpus.STYLES)


@pytest.fixture
def course_dir(tmp_path):
    """A stand-in for the grader's scratch course: release/ and source/ copied from the repository."""
    course = tmp_path / "course"
    for assignment in corpus.STYLES.keys() | {"04_transformer"}:
        for kind, path in (("release", release_path(assignment)), ("source", solution_path(assignment))):
            (course / kind / assignment).mkdir(parents=True)
            shutil.copy(path, course / kind / assignment / f"{assignment}.ipynb")
    return course


def submit(root, student, assignment, notebook):
    path = root / "submitted" / student / assignment / f"{assignment}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    # json.dumps escapes what UTF-8 cannot hold (a lone surrogate reads back as one)
    path.write_text(notebook if isinstance(notebook, str) else json.dumps(notebook), encoding="utf-8")
    return Submission(student, assignment, path)


def calibration_class(root, assignment):
    """(submissions, origin): the independent solutions and the planted copies; origin[student] is the
    style the student's code comes from."""
    submissions, origin = [], {}
    for style, notebook in corpus.independent(assignment).items():
        submissions.append(submit(root, style, assignment, notebook))
        origin[style] = style
    for name, (style, notebook) in corpus.copies(assignment).items():
        submissions.append(submit(root, name, assignment, notebook))
        origin[name] = style
    return submissions, origin


def scores(pairs):
    return {(p.student_a, p.student_b): p.score for p in pairs}


# ------------------------------------------------------------------------------------------- calibration

@pytest.mark.quick
@pytest.mark.parametrize("assignment", CORPUS_ASSIGNMENTS)
def test_copies_are_found_and_independent_solutions_are_not(tmp_path, course_dir, assignment):
    submissions, origin = calibration_class(tmp_path, assignment)
    found = scores(find_pairs(submissions, course_dir, threshold=0.0))
    students = sorted(origin)
    copied = {pair: found.get(pair, 0.0) for pair in combinations(students, 2) if origin[pair[0]] == origin[pair[1]]}
    independent = {pair: found.get(pair, 0.0) for pair in combinations(students, 2)
                   if origin[pair[0]] != origin[pair[1]]}
    worst_independent = max(independent, key=independent.get)
    weakest_copy = min(copied, key=copied.get)
    margins = (f"{assignment}: THRESHOLD {THRESHOLD}, highest independent pair {independent[worst_independent]:.3f} "
               f"{worst_independent}, lowest copy pair {copied[weakest_copy]:.3f} {weakest_copy}")
    print(margins)
    assert len(copied) >= 4 and len(independent) >= 20
    assert independent[worst_independent] < THRESHOLD, margins
    assert copied[weakest_copy] >= THRESHOLD, margins
    assert copied[weakest_copy] > independent[worst_independent], margins
    reported = find_pairs(submissions, course_dir)
    assert {(p.student_a, p.student_b) for p in reported} == set(copied), margins
    assert [p.score for p in reported] == sorted((p.score for p in reported), reverse=True)


@pytest.mark.quick
@pytest.mark.parametrize("assignment", CORPUS_ASSIGNMENTS)
def test_a_pair_shows_the_students_own_matching_code(tmp_path, course_dir, assignment):
    submissions, origin = calibration_class(tmp_path, assignment)
    for pair in find_pairs(submissions, course_dir):
        assert 0.0 <= pair.score <= 1.0 and pair.score == min(pair.share_a, pair.share_b)
        assert pair.student_a < pair.student_b
        assert 1 <= len(pair.regions) <= similarity.MAX_REGIONS
        for code_a, code_b in pair.regions:
            assert code_a.strip() and code_b.strip()
            for code in (code_a, code_b):
                assert len(code) <= similarity.MAX_REGION_CHARS + 10
                assert len(code.splitlines()) <= similarity.MAX_REGION_LINES + 1


@pytest.mark.quick
def test_two_processes_with_different_string_hashes_find_the_same_pairs_byte_for_byte(tmp_path, course_dir):
    """Python salts the hash() of a string per process (PYTHONHASHSEED): nothing the detector outputs may depend on
    it. Every pair of a class (threshold 0: all scores, shares and matching regions) from two processes with two
    different seeds, compared byte for byte."""
    assignment = "01_attention"
    submissions, _ = calibration_class(tmp_path, assignment)
    script = ("import dataclasses, json, sys\n"
              "from pathlib import Path\n"
              "from autograder.collect import Submission\n"
              "from autograder.similarity import find_pairs\n"
              "course, *notebooks = sys.argv[1:]\n"
              "found = [Submission(Path(n).parent.parent.name, Path(n).parent.name, Path(n)) for n in notebooks]\n"
              "print(json.dumps([dataclasses.asdict(p) for p in find_pairs(found, course, threshold=0.0)]))\n")
    outputs = []
    for seed in ("1", "2"):
        process = subprocess.run([sys.executable, "-c", script, str(course_dir), *(str(s.notebook) for s in submissions)],
                                 cwd=REPO, env=dict(os.environ, PYTHONHASHSEED=seed), capture_output=True, check=True)
        outputs.append(process.stdout)
    assert len(json.loads(outputs[0])) >= 10, "the class should give pairs at threshold 0"
    assert outputs[0] == outputs[1], "the pairs differ between two processes"


# -------------------------------------------------------------------------------------------- boilerplate

def stub_only(assignment, fill_helpers=False):
    """The release notebook; with fill_helpers, its pasted helper cells filled in as the solution has them."""
    source = nbformat.read(solution_path(assignment), as_version=4)
    helpers = pasted_helpers(source)
    cells = {g: s for g, s in corpus.reference_cells(assignment).items() if g in helpers} if fill_helpers else {}
    return corpus.notebook(assignment, cells), helpers


@pytest.mark.unit
def test_the_pasted_helpers_are_the_solution_cells_without_a_graded_test():
    helpers = {a: pasted_helpers(nbformat.read(solution_path(a), as_version=4))
               for a in ["01_attention", "03_multi_head_attention", "04_transformer"]}
    assert helpers["01_attention"] == set()
    assert helpers["03_multi_head_attention"] == {"attention_helpers"}
    assert "attention_helpers" in helpers["04_transformer"] and "PositionWiseFFN" not in helpers["04_transformer"]


@pytest.mark.quick
@pytest.mark.parametrize("assignment", CORPUS_ASSIGNMENTS + ["04_transformer"])
def test_stubs_and_pasted_helpers_alone_make_no_pair(tmp_path, course_dir, assignment):
    stub, _ = stub_only(assignment)
    pasted, helpers = stub_only(assignment, fill_helpers=True)
    submissions = [submit(tmp_path, "did-nothing-1", assignment, stub), submit(tmp_path, "did-nothing-2", assignment, stub),
                   submit(tmp_path, "pasted-1", assignment, pasted), submit(tmp_path, "pasted-2", assignment, pasted)]
    assert find_pairs(submissions, course_dir, threshold=0.0) == [], helpers


@pytest.mark.quick
def test_book_code_pasted_by_two_students_makes_no_pair(tmp_path, course_dir):
    assignment = "03_multi_head_attention"
    book = [code for code in similarity.book_code() if "class HeadByHeadAttention" in code or "labelled" in code]
    assert book, "the book's code cells were not found"
    stub, _ = stub_only(assignment)
    stub.cells.extend(nbformat.v4.new_code_cell(code) for code in book)
    own = corpus.independent(assignment)
    for style in ("reshape", "permute"):
        own[style].cells.extend(nbformat.v4.new_code_cell(code) for code in book)
    submissions = [submit(tmp_path, "book-1", assignment, stub), submit(tmp_path, "book-2", assignment, stub),
                   submit(tmp_path, "reshape", assignment, own["reshape"]),
                   submit(tmp_path, "permute", assignment, own["permute"])]
    found = scores(find_pairs(submissions, course_dir, threshold=0.0))
    assert ("book-1", "book-2") not in found, found
    assert found.get(("permute", "reshape"), 0.0) < THRESHOLD, found


# ---------------------------------------------------------------------------------------------- hostile

def hostile_notebooks(assignment):
    """{student: notebook or raw text} of notebooks a detector must survive."""
    cells = corpus.filled_cells(assignment, "einsum")
    html_cell = 'print("</pre><script>alert(1)</script>")  # <b>bold</b> & "quotes"\n' * 3
    broken = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("def f(:\n    return ))(\n" * 50)])
    odd = corpus.notebook(assignment, cells, added=["x = '\udc80\udcff\x00\x1b[31m'\n" * 20])
    return {
        "huge": corpus.notebook(assignment, cells, added=["x = 1 + 2  # " + "y" * 80 + "\n" * 1 + "z = [1, 2]\n" * 90_000]),
        "syntax-error": broken,
        "odd-characters": odd,
        "html-1": corpus.notebook(assignment, cells, added=[html_cell]),
        "html-2": corpus.notebook(assignment, corpus.rename({"diff": "d"})(cells), added=[html_cell]),
        "bad-json": '{"cells": [ oops',
        "empty": "",
        "no-cells-source": json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {},
                                       "cells": [{"cell_type": "code", "metadata": {"nbgrader": "odd"},
                                                  "source": ["a = 1\n", "b = 2"], "outputs": [],
                                                  "execution_count": None}]}),
    }


@pytest.mark.quick
def test_hostile_notebooks_never_raise_and_html_is_escaped(tmp_path, course_dir):
    assignment = "01_attention"
    submissions = [submit(tmp_path, student, assignment, nb) for student, nb in hostile_notebooks(assignment).items()]
    submissions.append(Submission("missing-file", assignment, tmp_path / "nowhere.ipynb"))
    submissions.append(Submission("unknown-assignment", "99_nothing", submissions[0].notebook))
    pairs = find_pairs(submissions, course_dir)
    assert ("html-1", "html-2") in scores(pairs)
    section = html_section(pairs)
    assert "<script" not in section and "</pre><script>" not in section
    assert "&lt;/pre&gt;&lt;script&gt;" in section or "d = queries" in section
    write_csv(pairs, tmp_path / "similarity.csv")
    (tmp_path / "report.html").write_text(section, encoding="utf-8")


def write_csv(pairs, path):
    write_rows(path, CSV_HEADER, csv_rows(pairs))


@pytest.mark.unit
def test_html_of_regions_is_escaped():
    pair = Pair("01_attention", "<b>a</b>", "=b", 0.9, 0.9, 0.95,
                           (('s = "</pre><script>alert(1)</script>"', "x < y & z"),))
    section = html_section([pair])
    assert "<script" not in section and "<b>a</b>" not in section
    assert "&lt;/pre&gt;&lt;script&gt;" in section and "x &lt; y &amp; z" in section
    assert section.count("<pre>") == 2 and "never a proof" in section


@pytest.mark.unit
def test_the_csv_is_always_written_and_safe(tmp_path):
    write_csv([], tmp_path / "none.csv")
    assert (tmp_path / "none.csv").read_text(encoding="utf-8").splitlines() == [
        "assignment,student_a,student_b,score,share_a,share_b"]
    write_csv([Pair("01_attention", "=cmd()", "@x\udc80", 0.75, 0.8, 0.75)], tmp_path / "one.csv")
    rows = read_csv(tmp_path / "one.csv")
    assert rows == [{"assignment": "01_attention", "student_a": "'=cmd()", "student_b": "'@x?",
                     "score": "0.750", "share_a": "0.800", "share_b": "0.750"}]
    assert "None." in html_section([]) and "never a proof" in html_section([])


# ------------------------------------------------------------------------------- the corpus is correct

def _namespace(assignment, cells):
    """Run the corpus's own code (never a student's): the release's setup cell, then the cells."""
    namespace = {}
    release = nbformat.read(release_path(assignment), as_version=4)
    setup = next(c.source for c in release.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "setup")
    exec(setup, namespace)  # noqa: S102
    for source in cells.values():
        exec(source, namespace)  # noqa: S102
    return namespace


def _check_01(mine, ref, torch):
    close = lambda a, b: torch.allclose(a, b, atol=1e-9, rtol=1e-7)  # noqa: E731
    q, k, v = torch.randn(7, dtype=torch.float64), torch.randn(9, dtype=torch.float64), torch.randn(9, dtype=torch.float64)
    q[0] = 1e4
    assert all(close(a, b) for a, b in zip(mine["nadaraya_watson"](q, k, v, 0.7), ref["nadaraya_watson"](q, k, v, 0.7)))
    scores = torch.randn(2, 3, 4, 5, dtype=torch.float64) * 1e3
    mask = torch.rand(2, 1, 4, 5) > 0.4
    mask[0, 0, 1] = False
    for m in (None, mask):
        assert close(mine["masked_softmax"](scores, m), ref["masked_softmax"](scores, m))
    x = scores.clone().requires_grad_()
    mine["masked_softmax"](x, mask).sum().backward()
    assert torch.isfinite(x.grad).all()
    query, key, value = (torch.randn(2, 3, n, d, dtype=torch.float64) for n, d in ((4, 6), (5, 6), (5, 7)))
    for m in (None, mask[:, :, :, :]):
        assert all(close(a, b) for a, b in zip(mine["scaled_dot_product_attention"](query, key, value, m),
                                              ref["scaled_dot_product_attention"](query, key, value, m)))
    theirs, ours = ref["AdditiveAttention"](6, 5, 8).double(), mine["AdditiveAttention"](6, 5, 8).double()
    ours.load_state_dict(theirs.state_dict())
    qa, ka, va = torch.randn(2, 4, 6, dtype=torch.float64), torch.randn(2, 3, 5, dtype=torch.float64), torch.randn(2, 3, 7, dtype=torch.float64)
    am = torch.rand(2, 4, 3) > 0.3
    assert all(close(a, b) for a, b in zip(ours(qa, ka, va, am), theirs(qa, ka, va, am)))
    xt, xv = torch.rand(60, dtype=torch.float64) * 5, torch.rand(50, dtype=torch.float64) * 5
    yt, yv = torch.sin(2 * xt) + 0.3 * torch.randn(60, dtype=torch.float64), torch.sin(2 * xv)
    grid = [0.01, 0.03, 0.1, 0.3, 1, 3, 10]
    best, errors = mine["choose_bandwidth"](xt, yt, xv, yv, grid)
    ref_best, ref_errors = ref["choose_bandwidth"](xt, yt, xv, yv, grid)
    assert best == ref_best and close(errors.double(), ref_errors)


def _check_03(mine, ref, torch):
    close = lambda a, b: torch.allclose(a, b, atol=1e-9, rtol=1e-7)  # noqa: E731
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    assert torch.equal(mine["split_heads"](x, 4), ref["split_heads"](x, 4))
    with pytest.raises(ValueError):
        mine["split_heads"](torch.randn(2, 5, 7), 2)
    heads = ref["split_heads"](x, 2)
    assert torch.equal(mine["merge_heads"](heads), x)
    with pytest.raises(ValueError):
        mine["MultiHeadAttention"](10, 3)
    theirs, ours = ref["MultiHeadAttention"](8, 2).double(), mine["MultiHeadAttention"](8, 2).double()
    ours.load_state_dict(theirs.state_dict())
    q, kv = torch.randn(2, 4, 8, dtype=torch.float64), torch.randn(2, 3, 8, dtype=torch.float64)
    mask = torch.rand(2, 1, 4, 3) > 0.3
    assert all(close(a, b) for a, b in zip(ours(q, kv, kv, mask), theirs(q, kv, kv, mask)))
    assert close(mine["head_score_matrices"](theirs), ref["head_score_matrices"](theirs))


@pytest.mark.parametrize("assignment,style", [(a, s) for a in CORPUS_ASSIGNMENTS for s in corpus.STYLES[a]])
def test_every_independent_solution_of_the_corpus_is_correct(assignment, style):
    import torch
    torch.manual_seed(0)
    mine = _namespace(assignment, corpus.filled_cells(assignment, style))
    ref = _namespace(assignment, corpus.reference_cells(assignment))
    {"01_attention": _check_01, "03_multi_head_attention": _check_03}[assignment](mine, ref, torch)


# ------------------------------------------------------------------------------------- a graded class

def test_a_graded_class_reports_its_copied_pair(tmp_path):
    """Four students of 01_attention graded by the real grader: two planted copies, two independent."""
    assignment = "01_attention"
    copies = corpus.copies(assignment)
    notebooks = {"alice": corpus.independent(assignment)["einsum"], "bob": copies["copy-einsum-renamed"][1],
                 "carol": corpus.independent(assignment)["matmul"], "dave": corpus.independent(assignment)["helpers"]}
    for student, notebook in notebooks.items():
        submit(tmp_path, student, assignment, notebook)
    out = tmp_path / "out"
    process = run_grader(tmp_path / "submitted", out, 1)
    assert process.returncode == 0, process.stderr
    rows = read_csv(out / "similarity.csv")
    assert [(r["assignment"], r["student_a"], r["student_b"]) for r in rows] == [(assignment, "alice", "bob")], rows
    assert float(rows[0]["score"]) >= THRESHOLD
    report = (out / "report.html").read_text(encoding="utf-8")
    section = report[report.index("<h2>Possibly copied work</h2>"):report.index("<h2>Errors and submissions not graded")]
    assert "never a proof" in section and "alice" in section and "bob" in section and "carol" not in section
    assert section.count("<pre>") >= 2 and "<script" not in section
    assert "torch.einsum(&quot;qk,k-&gt;q&quot;, alpha, values)" in section   # bob's own text, escaped
    assert "torch.einsum(&quot;qk,k-&gt;q&quot;, w, values)" in section       # alice's
    assert all(float(r["score"]) > 0 for r in read_csv(out / "grades.csv"))
