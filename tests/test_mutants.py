"""Every plausible wrong implementation in tests/mutants/ loses points, and only on the test cells of
the component it gets wrong; the solution loses none.

Every mutant is graded by the grader's own tests in-process (tests/test_fastpath.py, seconds); here a fixed
sample of each catalogue (tests/conftest.py `kernel_sample`) goes through the whole grader, sandboxed kernels
included, and must get the scores that the fast path gives it, cell by cell.

A component's test cells are the graded cells that follow its solution cell in the notebook, up to the
next solution cell (the convention of every assignment: a solution cell, then its visible and hidden
tests). A solution cell followed by no graded cell (the helpers pasted from an earlier assignment) is
graded elsewhere: a mutant of it must cost nothing here, since every test cell that uses it swaps in a
reference implementation.
"""
import nbformat
import pytest

from tests.conftest import (ASSIGNMENTS, cell_scores, kernel_sample, max_points, nbgrader_cells, read_csv,
                            solution_path, with_cell_replaced)
from tests.mutants import catalogue, not_graded_here

CATALOGUE = catalogue()
MINIMUM_PER_COMPONENT = 6
ALL = [(a, name) for a in sorted(CATALOGUE) if a in ASSIGNMENTS for name in sorted(CATALOGUE[a])]
SAMPLE = kernel_sample()


def solution_cells(assignment):
    notebook = nbformat.read(solution_path(assignment), as_version=4)
    return {g: c for g, c in nbgrader_cells(notebook).items() if c.metadata["nbgrader"].get("solution")}


def component_cells(assignment):
    """{grade_id of a solution cell: grade_ids of the graded cells that follow it, up to the next solution cell}."""
    notebook = nbformat.read(solution_path(assignment), as_version=4)
    components, current = {}, None
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            current = meta["grade_id"]
            components[current] = []
        elif meta.get("grade"):
            assert current is not None, f"{assignment}: the graded cell {meta['grade_id']!r} comes before any solution cell"
            components[current].append(meta["grade_id"])
    return components


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_graded_cell_belongs_to_one_component(assignment):
    owned = [g for cells in component_cells(assignment).values() for g in cells]
    assert sorted(owned) == sorted(max_points(assignment)), "a graded cell is not after the solution cell it tests"
    exempt = not_graded_here().get(assignment, set())
    for cell, tests in component_cells(assignment).items():
        if cell in exempt:
            assert not tests, f"{cell} is listed as graded elsewhere (GRADED_ELSEWHERE or ELSEWHERE of its mistakes.py) but test cells follow it"
        else:
            assert tests, f"the solution cell {cell} is followed by no test cell: list it in GRADED_ELSEWHERE of its mistakes.py"


@pytest.mark.quick
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_graded_component_has_a_catalogue_of_mutants(assignment):
    exempt = not_graded_here().get(assignment, set())
    counts = {cell: 0 for cell in solution_cells(assignment) if cell not in exempt}
    for mutant in CATALOGUE.get(assignment, {}).values():
        if mutant.cell not in exempt:
            counts[mutant.cell] = counts.get(mutant.cell, 0) + 1
    thin = {cell: n for cell, n in counts.items() if n < MINIMUM_PER_COMPONENT}
    assert not thin, f"components with fewer than {MINIMUM_PER_COMPONENT} mutants: {thin}"


@pytest.mark.quick
@pytest.mark.parametrize("assignment,name", ALL)
def test_mutant_is_well_formed(assignment, name):
    mutant = CATALOGUE[assignment][name]
    cells = solution_cells(assignment)
    assert mutant.cell in cells, f"{name} replaces {mutant.cell!r}, which is not a solution cell"
    assert mutant.source.strip() != cells[mutant.cell].source.strip()
    compile(mutant.source, name, "exec")
    points = max_points(assignment)
    assert set(mutant.fails) <= set(points), f"{name} names unknown test cells"
    own = component_cells(assignment)[mutant.cell]
    assert set(mutant.fails) <= set(own), f"{name} names test cells of another component: {set(mutant.fails) - set(own)}"


def _scores(graded_class, assignment, name):
    student = next(s for s, (a, n, _) in graded_class["mutants"].items() if (a, n) == (assignment, name))
    scores = cell_scores(graded_class, student, assignment)
    assert sum(m for _, m in scores.values()) == sum(max_points(assignment).values())
    return scores


@pytest.mark.quick
@pytest.mark.parametrize("assignment,name", SAMPLE)
def test_mutant_loses_points(graded_class, assignment, name):
    mutant = CATALOGUE[assignment][name]
    scores = _scores(graded_class, assignment, name)
    total, best = sum(s for s, _ in scores.values()), sum(m for _, m in scores.values())
    if not component_cells(assignment)[mutant.cell]:
        assert total == best, (f"the mutant '{name}' ({mutant.why}) of {mutant.cell}, which is graded in another "
                               f"assignment, costs {best - total} points here: a test uses it without a reference")
        return
    assert total < best, f"the mutant '{name}' ({mutant.why}) gets full marks"
    full = [cell for cell in mutant.fails if scores[cell][0] >= scores[cell][1]]
    assert not full, f"the mutant '{name}' ({mutant.why}) gets full points on {full}"


@pytest.mark.parametrize("assignment,name", SAMPLE)
def test_mutant_loses_points_only_on_its_own_component(graded_class, assignment, name):
    mutant = CATALOGUE[assignment][name]
    scores = _scores(graded_class, assignment, name)
    own = set(component_cells(assignment)[mutant.cell])
    elsewhere = sorted(cell for cell, (score, top) in scores.items() if score < top and cell not in own)
    assert not elsewhere, (f"the mutant '{name}' of {mutant.cell} ({mutant.why}) also loses points on {elsewhere}: "
                           f"their tests must swap in a reference {mutant.cell}")


def _misconception_rows(graded_class, student, assignment):
    return [r for r in read_csv(graded_class["out"] / "misconceptions.csv")
            if r["student_id"] == student and r["assignment"] == assignment]


@pytest.mark.parametrize("assignment,name", SAMPLE)
def test_mutant_feedback_names_its_misconception(graded_class, assignment, name):
    """Through the kernel, the diagnostics name the mutant's misconception on its own component's failed cells
    (OUT/misconceptions.csv, written from the results), and no other."""
    mutant = CATALOGUE[assignment][name]
    own = component_cells(assignment)[mutant.cell]
    if not own:
        return  # graded in another assignment: it costs nothing here, so no feedback names it
    student = next(s for s, (a, n, _) in graded_class["mutants"].items() if (a, n) == (assignment, name))
    rows = _misconception_rows(graded_class, student, assignment)
    assert [r["misconception"] for r in rows] == [mutant.misconception], \
        f"the feedback of '{name}' ({mutant.why}) names {[r['misconception'] for r in rows]}, not {mutant.misconception!r}"
    assert set(rows[0]["grade_ids"].split()) <= set(own)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_the_solution_gets_no_misconception(graded_class, assignment):
    assert not _misconception_rows(graded_class, "solution", assignment)


def test_mutants_fixed_as_advised_get_full_marks(graded_class):
    """A sample of the mutants, edited as their feedback's advice says (FIXES), gets full marks."""
    assert graded_class["fixed"] or not SAMPLE
    for student, (assignment, name, mutant) in graded_class["fixed"].items():
        scores = cell_scores(graded_class, student, assignment)
        lost = {cell: score for cell, score in scores.items() if score[0] < score[1]}
        assert not lost, f"'{name}' fixed as advised still loses points on {sorted(lost)}"


@pytest.mark.parametrize("assignment,name", SAMPLE)
def test_the_kernel_gives_the_fast_paths_scores(graded_class, assignment, name):
    """The whole grader and the fast path agree, cell by cell, on the sample: what the fast path proves of every
    mutant holds of the grader."""
    from tests.fastpath import grade_in_process
    mutant = CATALOGUE[assignment][name]
    source = nbformat.read(solution_path(assignment), as_version=4)
    fast = {g for g, v in grade_in_process(with_cell_replaced(assignment, mutant.cell, mutant.source), source).items()
            if not v.passed}
    kernel = {cell for cell, (score, top) in _scores(graded_class, assignment, name).items() if score < top}
    assert kernel == fast, (f"'{name}': the grader fails {sorted(kernel)}, the fast path {sorted(fast)}")
