"""Every mutant of an assignment whose tests run in the grader's process, graded in-process through the same
proxies, agent and wire (tests/fastpath.py), on its own component's test cells only: it loses points, on the
cells its catalogue entry names, and its copy fixed as the feedback advises keeps every point.

That a mistake costs points only on its own component is proven once per component, not once per mutant:
the component replaced by one that raises, and by one that pollutes (changes its inputs in place, the default
dtype, the global random generator and grad mode after every call), leaves every other component's cells
with full marks. Together they say what grading each mutant on the whole notebook said, in a fraction of
the time; tests/test_mutants.py sends a fixed sample through the whole grader and checks that its scores
are the fast path's.
"""
import ast
import functools

import nbformat
import pytest

from autograder import feedback, verdicts
from autograder.editions import Edition
from tests.conftest import ASSIGNMENTS, FEEDBACK_CASES, solution_path, with_cell_replaced
from tests.fastpath import grade_in_process
from tests.mutants import catalogue, not_graded_here
from tests.test_mutants import component_cells

CATALOGUE = catalogue()
PORTED = [a for a in ASSIGNMENTS if verdicts.in_grader(nbformat.read(solution_path(a), as_version=4))]
ALL = [(a, name) for a in PORTED for name in sorted(CATALOGUE.get(a, {}))]
COMPONENTS = [(a, cell) for a in PORTED for cell, own in component_cells(a).items()
              if own and cell not in not_graded_here().get(a, set())]

# Appended to a solution cell: every function it defines, and every class's __init__ and forward, pollute the
# caller's world after each call (the test's inputs changed in place, and torch's global state).
POLLUTE = '''
import functools as _functools, torch as _torch

def _polluting(function):
    @_functools.wraps(function)
    def polluted(*args, **kwargs):
        out = function(*args, **kwargs)
        for value in list(args) + list(kwargs.values()):
            if isinstance(value, _torch.Tensor) and value.is_floating_point() and not value.requires_grad:
                value.mul_(-1.5).add_(0.25)
        _torch.set_default_dtype(_torch.float64)
        _torch.manual_seed(999)
        _torch.set_grad_enabled(False)
        return out
    return polluted

for _name in {names!r}:
    _value = globals()[_name]
    if isinstance(_value, type):
        _value.__init__ = _polluting(_value.__init__)
        if hasattr(_value, "forward"):
            _value.forward = _polluting(_value.forward)
    elif callable(_value):
        globals()[_name] = _polluting(_value)
'''


def raising(source):
    """The cell with every function and class it defines raising NotImplementedError when called or built."""
    classes = {node.name for node in ast.parse(source).body if isinstance(node, ast.ClassDef)}
    return source + "\n" + "\n".join(
        f"class {n}:\n    def __init__(self, *args, **kwargs):\n        raise NotImplementedError\n" if n in classes
        else f"def {n}(*args, **kwargs):\n    raise NotImplementedError\n" for n in verdicts.defined_names(source))


def verdicts_of(assignment, notebook, only=None):
    """{grade_id: Verdict} of the grader's tests of `notebook` (every test cell, or those of `only`, each of which runs)."""
    source = nbformat.read(solution_path(assignment), as_version=4)
    found = grade_in_process(notebook, source, timeout=60, only=only)
    if only is not None:
        assert set(found) == set(only), "a test cell of the component did not run"
    return found


def failed_cells(assignment, notebook, only=None):
    return {g for g, v in verdicts_of(assignment, notebook, only).items() if not v.passed}


@functools.lru_cache(maxsize=None)
def verdicts_with(assignment, cell, source, only=None):
    """verdicts_of the solution with one cell's source replaced, `only` a frozenset of test cells (or None). Grading
    is a function of the notebook and the course's secret: the same edit graded again gives the same verdicts, and
    many mutants share one (their fixes: 227 of the 354 fixed copies are the same source as another's)."""
    return verdicts_of(assignment, with_cell_replaced(assignment, cell, source), only)


def failed_with(assignment, cell, source, only=None):
    return frozenset(g for g, v in verdicts_with(assignment, cell, source, only).items() if not v.passed)


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


@pytest.mark.parametrize("assignment,cell", COMPONENTS)
def test_a_broken_component_costs_points_on_its_own_cells_only(assignment, cell):
    """A component that raises, or that pollutes its caller's world, costs every other component nothing."""
    solution = nbformat.read(solution_path(assignment), as_version=4)
    original = next(c.source for c in solution.cells if c.metadata.get("nbgrader", {}).get("grade_id") == cell)
    own = set(component_cells(assignment)[cell])
    names = verdicts.defined_names(original)
    for how, source in (("raises", raising(original)), ("pollutes", original + POLLUTE.format(names=names))):
        failed = failed_cells(assignment, with_cell_replaced(assignment, cell, source))
        assert failed <= own, f"{cell} that {how} also costs {sorted(failed - own)}: their tests must swap in a reference"
        if how == "raises":
            assert failed == own, f"{cell} that raises still passes {sorted(own - failed)}"


def graded_cells_of(assignment, mutant):
    """The test cells a mutant is graded on here: those its catalogue entry names, or its whole component's."""
    own = set(component_cells(assignment)[mutant.cell])
    return frozenset(set(mutant.fails) & own or own)


@pytest.mark.parametrize("assignment,name", ALL)
def test_a_mutant_loses_points_on_its_own_cells(assignment, name):
    """The mutant fails the test cells its catalogue entry names (all of them are its own component's: checked
    below), and its copy fixed as the feedback advises passes every cell of the component. Its score on the
    whole component is the kernel sample's to check (tests/test_mutants.py)."""
    mutant = CATALOGUE[assignment][name]
    own = set(component_cells(assignment)[mutant.cell])
    if not own:   # graded in another assignment: every test here uses a reference of it
        failed = failed_cells(assignment, with_cell_replaced(assignment, mutant.cell, mutant.source))
        assert failed == set(), f"'{name}' is graded elsewhere but costs {sorted(failed)} here"
        return
    # the cells its entry names must fail (none named: some cell of its component must): either way it loses points
    failed = failed_with(assignment, mutant.cell, mutant.source, graded_cells_of(assignment, mutant))
    assert failed, f"'{name}' ({mutant.why}) gets full marks"
    assert set(mutant.fails) <= failed, f"'{name}' ({mutant.why}) passes {sorted(set(mutant.fails) - failed)}"
    if mutant.fixed_source is not None:
        fixed = failed_with(assignment, mutant.cell, mutant.fixed_source, frozenset(own))
        assert fixed == set(), f"'{name}' fixed as its feedback advises still fails {sorted(fixed)}"


def test_a_name_its_cell_never_defined_is_called_not_defined():
    """A solution cell that stops before its definition (an error, or its time limit: tests/hostile's infinite-loop)
    leaves the name undefined: its tests say so, not "'NoneType' object is not callable"."""
    assignment = ASSIGNMENTS[0]
    solution = nbformat.read(solution_path(assignment), as_version=4)
    cell = next(c for c in solution.cells if c.metadata.get("nbgrader", {}).get("solution")
                and verdicts.defined_names(c.source))
    grade_id, name = cell.metadata["nbgrader"]["grade_id"], verdicts.defined_names(cell.source)[0]
    own = set(component_cells(assignment)[grade_id])
    stopped = with_cell_replaced(assignment, grade_id, "raise RuntimeError('stopped')\n" + cell.source)
    found = grade_in_process(stopped, solution)
    assert {g for g, v in found.items() if not v.passed} == own, "the name left undefined costs its own cells only"
    for verdict in (found[g] for g in own):
        assert verdict.message.startswith(f"your code raised NameError: name {name!r} is not defined: its cell stopped "
                                          f"before defining it"), verdict.message
    # what the grader says of it (not the test's own words) is in the submission's edition
    for verdict in grade_in_process(stopped, solution, only=own, edition=Edition.ZH).values():
        assert verdict.message.startswith(f"你的代码抛出了 NameError: name {name!r} is not defined"), verdict.message


@pytest.mark.parametrize("assignment,name,message", [case for case in FEEDBACK_CASES if case[0] in PORTED])
def test_the_feedback_of_a_named_mistake_says_what_it_must(assignment, name, message):
    """The message a failed test cell shows on the feedback page (feedback.messages: an AssertionError's message
    when the test's author wrote it, and it quotes no hidden line) says what the mistake is. The graded class
    checks the pages of those of these mutants that go through the whole grader (tests/test_grader.py)."""
    mutant = CATALOGUE[assignment][name]
    solution = nbformat.read(solution_path(assignment), as_version=4)
    authored = {c.metadata["nbgrader"]["grade_id"]: feedback.authored_texts(c.source) for c in solution.cells
                if c.metadata.get("nbgrader", {}).get("grade")}
    hidden = feedback.secret_lines(solution, [("BEGIN HIDDEN TESTS", "END HIDDEN TESTS")])
    shown = [v.message for g, v in verdicts_with(assignment, mutant.cell, mutant.source, graded_cells_of(assignment, mutant)).items()
             if not v.passed and v.error_type == "AssertionError" and len(v.message) <= feedback.MESSAGE_LIMIT
             and feedback.is_authored(v.message, authored[g])
             and not any(line in feedback.normalise(f"AssertionError: {v.message}") for line in hidden)]
    assert any(message in m for m in shown), f"{name}: no failed cell's page says {message!r}: {shown}"
