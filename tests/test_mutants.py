"""Every plausible wrong implementation in tests/mutants/ loses points; the solution loses none."""
import nbformat
import pytest

from tests.conftest import ASSIGNMENTS, cell_scores, max_points, nbgrader_cells, solution_path
from tests.mutants import catalogue, not_graded_here

CATALOGUE = catalogue()
MINIMUM_PER_COMPONENT = 6
ALL = [(a, name) for a in sorted(CATALOGUE) if a in ASSIGNMENTS for name in sorted(CATALOGUE[a])]


def solution_cells(assignment):
    notebook = nbformat.read(solution_path(assignment), as_version=4)
    return {g: c for g, c in nbgrader_cells(notebook).items() if c.metadata["nbgrader"].get("solution")}


@pytest.mark.quick
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_graded_component_has_a_catalogue_of_mutants(assignment):
    exempt = not_graded_here().get(assignment, set())
    counts = {cell: 0 for cell in solution_cells(assignment) if cell not in exempt}
    for mutant in CATALOGUE.get(assignment, {}).values():
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


@pytest.mark.quick
@pytest.mark.parametrize("assignment,name", ALL)
def test_mutant_loses_points(graded_class, assignment, name):
    student = next(s for s, (a, n, _) in graded_class["mutants"].items() if (a, n) == (assignment, name))
    mutant = CATALOGUE[assignment][name]
    scores = cell_scores(graded_class, student, assignment)
    total, best = sum(s for s, _ in scores.values()), sum(m for _, m in scores.values())
    assert best == sum(max_points(assignment).values())
    assert total < best, f"the mutant '{name}' ({mutant.why}) gets full marks"
    full = [cell for cell in mutant.fails if scores[cell][0] >= scores[cell][1]]
    assert not full, f"the mutant '{name}' ({mutant.why}) gets full points on {full}"
