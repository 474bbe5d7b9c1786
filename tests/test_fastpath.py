"""Every mutant of an assignment whose tests run in the grader's process, graded in-process through the same
proxies, agent and wire (tests/fastpath.py): it loses points, on the cells its catalogue entry names, and only
on its own component's cells; every fixed copy and the solution keep every point. Seconds per assignment,
where the graded class of tests/test_mutants.py pays a kernel per mutant."""
import nbformat
import pytest

from autograder import verdicts
from tests.conftest import ASSIGNMENTS, solution_path, with_cell_replaced
from tests.fastpath import grade_in_process
from tests.mutants import catalogue
from tests.test_mutants import component_cells

CATALOGUE = catalogue()
PORTED = [a for a in ASSIGNMENTS if verdicts.in_grader(nbformat.read(solution_path(a), as_version=4))]
ALL = [(a, name) for a in PORTED for name in sorted(CATALOGUE.get(a, {}))]


def failed_cells(assignment, notebook):
    source = nbformat.read(solution_path(assignment), as_version=4)
    return {g for g, v in grade_in_process(notebook, source, timeout=60).items() if not v.passed}


@pytest.mark.parametrize("assignment", PORTED)
def test_the_solution_passes_every_cell_in_process(assignment):
    assert failed_cells(assignment, nbformat.read(solution_path(assignment), as_version=4)) == set()


@pytest.mark.parametrize("assignment", PORTED)
def test_the_solution_passes_whatever_the_courses_secret(assignment):
    """Every seed of the tests is mixed with the course's secret: no test may hold only for the repository's seeds."""
    notebook = nbformat.read(solution_path(assignment), as_version=4)
    for secret in ("another course", "a third course"):
        failed = {g for g, v in grade_in_process(notebook, notebook, secret=secret).items() if not v.passed}
        assert failed == set(), f"with the secret {secret!r} the solution fails {sorted(failed)}"


@pytest.mark.parametrize("assignment,name", ALL)
def test_a_mutant_loses_points_on_its_own_cells_only(assignment, name):
    mutant = CATALOGUE[assignment][name]
    failed = failed_cells(assignment, with_cell_replaced(assignment, mutant.cell, mutant.source))
    own = set(component_cells(assignment)[mutant.cell])
    if not own:
        assert failed == set(), f"'{name}' is graded elsewhere but costs {sorted(failed)} here"
        return
    assert set(mutant.fails) <= failed, f"'{name}' ({mutant.why}) passes {sorted(set(mutant.fails) - failed)}"
    assert failed <= own, f"'{name}' ({mutant.why}) also fails {sorted(failed - own)}"
    if mutant.fixed_source is not None:
        fixed = failed_cells(assignment, with_cell_replaced(assignment, mutant.cell, mutant.fixed_source))
        assert fixed == set(), f"'{name}' fixed as its feedback advises still fails {sorted(fixed)}"
