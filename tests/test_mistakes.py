"""autograder/mistakes.py on its own: how outcomes compare, how a wrong written as an edit resolves, what the
declarations' check finds, and the detector on a tiny assignment of its own (no kernel: plain functions stand
for the student's)."""
import math

import nbformat
import pytest
import torch

from autograder import mistakes
from autograder.probes import calls

pytestmark = pytest.mark.unit

SOLUTION = "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION\n"


def test_outcomes_agree_only_when_alike():
    x = torch.tensor([1.0, float("nan"), float("inf")])
    assert mistakes.agrees(x, x.clone())
    assert not mistakes.agrees(x, torch.tensor([1.0, 0.0, float("inf")]))          # NaN is not a number
    assert not mistakes.agrees(x, torch.tensor([1.0, float("nan"), -float("inf")]))  # nor +inf -inf
    assert not mistakes.agrees(x, x.double())                                       # dtypes differ
    assert not mistakes.agrees(x, x[None])                                          # shapes differ
    assert mistakes.agrees((x, [1, 2.0]), (x, [1, 2.0])) and not mistakes.agrees((x, [1, 2.0]), (x, [1.0, 2.0]))
    assert mistakes.agrees({"a": math.nan}, {"a": math.nan}) and not mistakes.agrees({"a": 1}, {"b": 1})
    assert mistakes.agrees(mistakes.Raised("ValueError"), mistakes.Raised("ValueError"))
    assert not mistakes.agrees(mistakes.Raised("ValueError"), mistakes.Raised("TypeError"))
    assert not mistakes.agrees(True, 1) and not mistakes.agrees(object(), object())


def _assignment(folder, declarations):
    """A one-component assignment: the notebook (a set-up cell and `double`) and its mistakes.py."""
    folder.mkdir()
    notebook = nbformat.v4.new_notebook()
    setup, cell = nbformat.v4.new_code_cell("import torch"), nbformat.v4.new_code_cell(SOLUTION)
    cell.metadata["nbgrader"] = {"grade_id": "double", "solution": True, "grade": False}
    notebook.cells = [setup, cell]
    nbformat.write(notebook, folder / f"{folder.name}.ipynb")
    (folder / "mistakes.py").write_text("from autograder.mistakes import Mistake, Wrong\n" + declarations)
    return folder


DECLARED = '''
MISTAKES = [
    Mistake("dbl.triples", "double", believed="triples", fix="multiply by 2", section="s",
            wrong=[Wrong("double/triples", edit=("2 * x", "3 * x"), fixed=("3 *", "2 *"), fails=("t",))]),
    Mistake("dbl.squares", "double", believed="squares", fix="multiply by 2", section="s",
            wrong=[Wrong("double/squares", source="def double(x):\\n    return x * x\\n", fixed=("x * x", "2 * x"))]),
    Mistake("dbl.in-place", "double", believed="in place", fix="return a new tensor", section="s",
            wrong=[Wrong("double/in_place", edit=("return 2 * x", "return x.mul_(2)"), fixed=("x.mul_(2)", "2 * x"))]),
]
'''


def test_a_wrong_written_as_an_edit_is_the_solution_cell_with_it(tmp_path):
    found = mistakes.declarations(_assignment(tmp_path / "toy", DECLARED))
    triples = found.mistakes[0].wrong[0]
    assert triples.source == SOLUTION.replace("2 * x", "3 * x").rstrip() and triples.fixed_source == SOLUTION.rstrip()
    assert mistakes.problems(found, {"double"}, {"double": {"t"}}) == []
    assert mistakes.misconceptions(tmp_path / "toy", "toy")["dbl.squares"].mistake == "squares"


def test_the_declarations_check_finds_what_is_wrong(tmp_path):
    bad = DECLARED.replace('"dbl.squares"', '"dbl.triples"').replace('fails=("t",)', 'fails=("nope",)')
    found = mistakes.declarations(_assignment(tmp_path / "toy", bad))
    said = "\n".join(mistakes.problems(found, {"double"}, {"double": {"t"}}))
    assert "declared twice" in said and "no test cell ['nope']" in said
    with pytest.raises(ValueError, match="found once"):
        mistakes.declarations(_assignment(tmp_path / "toy2", DECLARED.replace('("2 * x", "3 * x")', '("4 * x", "3 * x")')))


def test_the_detector_names_the_mistake_whose_own_code_gives_what_the_students_gives(tmp_path):
    folder = _assignment(tmp_path / "toy", DECLARED)
    probes = [calls("double", torch.tensor([1.0, -2.0, 3.0])), calls("double", torch.tensor([0.5]))]

    def named(function):
        return mistakes.recognise(folder, "double", {"double": function}, probes, ["double"])
    assert named(lambda x: 2 * x) == [] and named(lambda x: x + x) == []
    assert named(lambda x: x * 3) == ["dbl.triples"]              # another way to write it
    assert named(lambda x: x ** 2) == ["dbl.squares"]
    assert named(lambda x: x.add_(x)) == ["dbl.in-place"]         # the caller's tensor changed, the result right
    assert named(lambda x: 5 * x) == []                           # a mistake nobody declared
    for mistake in mistakes.declarations(folder).mistakes:
        assert mistakes.shows(folder, mistake, probes, ["double"])
    assert not mistakes.shows(folder, mistakes.declarations(folder).mistakes[1], probes[1:][:0], ["double"])
