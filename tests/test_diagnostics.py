"""The diagnostics of every assignment (solutions/<id>/diagnostics.py), in this process, fast.

For every mutant of the catalogues (tests/mutants/), the diagnostics of its component name the
misconception that the mutant declares, first; on the solution they name none, and report no error.
They run as the grader runs them (autograder/diagnose.py): the checks here, the mutant's code answering
through the agent and the wire (tests/fastpath.py, no kernel); tests/test_mutants.py checks on a graded
class that the same ids reach the feedback through a sandboxed kernel. The facts each check reports fit
the grader's strict schema.
"""
import functools
import json

import nbformat
import pytest

from autograder import course, diagnose, mistakes, probes, verdicts
from tests.conftest import ASSIGNMENTS, SOLUTIONS, solution_path, with_cell_replaced
from tests.fastpath import diagnose_in_process
from tests.mutants import catalogue, not_graded_here

CATALOGUE = catalogue()
WITH_DIAGNOSTICS = [a for a in ASSIGNMENTS if diagnose.checks(SOLUTIONS / a)]
MUTANTS = [(a, name) for a in WITH_DIAGNOSTICS for name in sorted(CATALOGUE.get(a, {}))
           if CATALOGUE[a][name].cell not in not_graded_here().get(a, set())]


def notebook(assignment, replace=None):
    """The solution notebook, with one cell's source replaced ((grade_id, source))."""
    if replace is None:
        return nbformat.read(solution_path(assignment), as_version=4)
    return with_cell_replaced(assignment, *replace)


def facts_of(assignment, cell, submitted):
    """The Facts of one component on a notebook, as the grader finds them: the checks in this process, the
    notebook's code answering through the agent and the wire (tests/fastpath.py)."""
    source = nbformat.read(solution_path(assignment), as_version=4)
    found = diagnose_in_process(submitted, source, SOLUTIONS / assignment, only=cell)
    assert cell in found, f"the checks of {cell} reported nothing (they failed, ran out of time, or broke the schema)"
    return found[cell]


@functools.lru_cache(maxsize=None)
def facts_with(assignment, cell, source):
    """facts_of the component `cell` on the solution with that cell's source replaced. The diagnostics are a
    function of the notebook: an edit that several mutants share (most of their fixes) is diagnosed once per process."""
    return facts_of(assignment, cell, notebook(assignment, (cell, source)))


@pytest.mark.quick
@pytest.mark.parametrize("assignment", WITH_DIAGNOSTICS)
def test_declarations(assignment):
    source = nbformat.read(solution_path(assignment), as_version=4)
    graded = set(course.components(source).values())
    assert set(diagnose.checks(SOLUTIONS / assignment)) == graded, \
        "every graded component has a check of the diagnostics or PROBES (in its mistakes.py), and only those"
    tests = {}
    for grade_id, cell in course.components(source).items():
        tests.setdefault(cell, set()).add(grade_id)
    found = mistakes.declarations(SOLUTIONS / assignment)
    assert not mistakes.problems(found, graded, tests)
    assert set(diagnose.component_probes_of(SOLUTIONS / assignment)) <= graded, \
        "PROBES of a cell that is not a graded component"


@pytest.mark.quick
@pytest.mark.parametrize("assignment", WITH_DIAGNOSTICS)
def test_every_detectable_mistake_shows_on_its_probes(assignment):
    """A mistake that the derived detector should recognise differs from the solution on one of its component's
    PROBES at least (else the detector can never name it: declare a probe that shows it, or detect=False with a
    check of the diagnostics' own)."""
    every_probe = diagnose.component_probes_of(SOLUTIONS / assignment)
    source = nbformat.read(solution_path(assignment), as_version=4)
    names = verdicts.solution_cells(source)
    unseen = [m.id for m in mistakes.declarations(SOLUTIONS / assignment).mistakes
              if m.detect and m.component in every_probe
              and not mistakes.shows(SOLUTIONS / assignment, m, every_probe[m.component], sorted(names[m.component]))]
    assert not unseen, f"mistakes that no probe of their component shows: {unseen}"


@pytest.mark.quick
@pytest.mark.parametrize("assignment", WITH_DIAGNOSTICS)
def test_the_solution_shows_no_mistake(assignment):
    for cell in diagnose.checks(SOLUTIONS / assignment):
        facts = facts_of(assignment, cell, notebook(assignment))
        assert not facts.misconceptions, f"{cell}: the solution is taken for {facts.misconceptions}"
        known = diagnose.misconceptions(SOLUTIONS / assignment, assignment)
        assert diagnose.explain(facts, known) == [], f"{cell}: the solution gets feedback"


@pytest.mark.quick
@pytest.mark.parametrize("assignment,name", MUTANTS)
def test_the_mutant_is_named(assignment, name):
    mutant = CATALOGUE[assignment][name]
    assert mutant.misconception in diagnose.misconceptions(SOLUTIONS / assignment, assignment)
    facts = facts_with(assignment, mutant.cell, mutant.source)
    assert facts.misconception == mutant.misconception, \
        f"{name} ({mutant.why}): diagnosed as {facts.misconceptions or 'nothing'}, not {mutant.misconception}"


@pytest.mark.quick
@pytest.mark.parametrize("assignment,name", MUTANTS)
def test_following_the_advice_fixes_the_cell(assignment, name):
    """The mutant's source, edited as its mistake's fix says (`fixed` of its Wrong), shows no mistake:
    the diagnostics name none and report nothing wrong (tests/test_mutants.py grades a sample of them)."""
    mutant = CATALOGUE[assignment][name]
    known = diagnose.misconceptions(SOLUTIONS / assignment, assignment)
    assert mutant.fix, f"{name}: declare `fixed`, the edit that follows the advice: {known[mutant.misconception].fix}"
    fixed = mutant.fixed_source
    assert fixed is not None and fixed != mutant.source, f"{name}: the fix's old text is not in the mutant's source"
    facts = facts_with(assignment, mutant.cell, fixed)
    assert not facts.misconceptions and diagnose.explain(facts, known) == [], \
        f"{name} fixed as advised ({known[mutant.misconception].fix}) still shows: {diagnose.explain(facts, known)}"


@pytest.mark.unit
def test_parse_is_strict():
    known, cells = {"a.b"}, {"cell"}
    good = {"misconceptions": ["a.b"], "shape": [2, 3], "max_error": 0.123456, "weights": [[0.5, 0.5]],
            "expected_weights": [[1.0, 0.0]], "subject": "weights", "raised": "ValueError"}
    facts = diagnose.parse(json.dumps({"cell": good}), known, cells)["cell"]
    assert facts.max_error == 0.123 and facts.shape == (2, 3) and facts.misconception == "a.b"
    for bad in [{"misconceptions": ["free text here"]}, {"shape": ["2"]}, {"shape": list(range(20))},
                {"max_error": "1"}, {"max_error": True}, {"weights": [[0.1] * 9]}, {"weights": [[1.0], [1.0, 2.0]]},
                {"raised": "MyOwnMessage"}, {"subject": "secret"}, {"comment": 1}, {"weights": [["a"]]},
                {"dtype": "float32 leaked"}, {"nonfinite": -1}, {"max_error": 1e300}]:
        assert diagnose.parse(json.dumps({"cell": bad}), known, cells) == {}, bad
    assert diagnose.parse(json.dumps({"other": good}), known, cells) == {}
    assert diagnose.parse('{"cell": {"max_error": NaN}}', known, cells) == {}
    assert diagnose.parse("x" * (diagnose.MAX_BYTES + 1), known, cells) == {}
    assert diagnose.parse("[" * 100_000, known, cells) == {}


@pytest.mark.quick
def test_picture_is_drawn_from_numbers():
    facts = diagnose.Facts(weights=((0.5, 0.5), (1.0, 0.0)), expected_weights=((1.0, 0.0), (1.0, 0.0)))
    data = diagnose.picture(facts)
    assert data.startswith(b"\x89PNG")
    assert diagnose.picture(diagnose.Facts()) is None


@pytest.mark.quick
@pytest.mark.parametrize("assignment", WITH_DIAGNOSTICS)
def test_every_label_is_in_the_book(assignment):
    from autograder.report import book_labels
    labels = book_labels()
    missing = {key: m.label for key, m in diagnose.misconceptions(SOLUTIONS / assignment, assignment).items()
               if m.label not in labels}
    assert not missing, f"labels that no chapter defines with (label)=: {missing}"


@pytest.mark.unit
def test_the_picture_is_of_the_matrix_that_differs_most():
    import torch
    expected = torch.softmax(torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(0)), dim=-1)
    theirs = expected.clone()
    theirs[1, 2, 0] = torch.tensor([1.0, 0, 0, 0, 0])
    found = probes.pictures(theirs, expected)
    assert torch.allclose(torch.tensor(found["weights"], dtype=expected.dtype), theirs[1, 2])
    assert torch.allclose(torch.tensor(found["expected_weights"], dtype=expected.dtype), expected[1, 2])
    assert probes.pictures(theirs.argmax(-1), expected) == {}
