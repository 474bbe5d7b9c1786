"""The maintainer's path, in a temporary copy of the repository (git's tracked files, no _build/):
`make notebooks` works on a fresh clone and changes nothing when nbgrader fails, and the README's
steps for adding an exercise, followed one by one with three files written by hand (the notebook, its
mistakes, the chapter), give an exercise that the grader grades and diagnoses (a solution gets every point
and no diagnosis, a stub none, a mutant loses points on the new cells only and its feedback names its
mistake), and that the project's own checks of mutants and diagnostics pass on."""
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tests.conftest import REPO, max_points, read_csv

ASSIGNMENT = "01_attention"
COMPONENT = "attention_entropy"

INTRO = "## 5. Attention entropy (3 points)\n\nThe entropy of each row of attention weights, in nats."
SOLUTION = '''def attention_entropy(weights):
    """Entropy of each row of weights (..., T_k) -> (...), with 0 log 0 = 0."""
    ### BEGIN SOLUTION
    logs = torch.where(weights > 0, weights.log(), torch.zeros_like(weights))
    return -(weights * logs).sum(dim=-1)
    ### END SOLUTION
'''
VISIBLE = '''# [1 point] Visible tests: a uniform row and a one-hot row.
entropy = attention_entropy(torch.tensor([[0.25, 0.25, 0.25, 0.25], [0.0, 1.0, 0.0, 0.0]]))
assert entropy.shape == (2,), f"one entropy per row: expected shape (2,), got {tuple(entropy.shape)}"
assert torch.allclose(entropy, torch.tensor([math.log(4.0), 0.0])), "a uniform row of 4 has entropy ln 4"
print("visible tests passed")
'''
HIDDEN = '''# [2 points] Hidden tests: random rows of several shapes, against torch.distributions.
### BEGIN HIDDEN TESTS
for _seed in (11, 12, 13):
    _gen = torch.Generator().manual_seed(_seed)
    _w = torch.softmax(torch.randn(2, 3, 5, generator=_gen, dtype=torch.float64), dim=-1)
    _reference = torch.distributions.Categorical(probs=_w).entropy()
    assert torch.allclose(attention_entropy(_w), _reference), "entropy = -sum_j w_j log w_j over each row"
### END HIDDEN TESTS
'''
MISTAKES = '''

def _entropy_mistake(id, believed, fix, name, edit, fixed):
    return Mistake(id, "attention_entropy", believed=believed, fix=fix, section="ch01-attention-entropy",
                   wrong=[Wrong(f"attention_entropy/{name}", edit=edit, fixed=fixed, fails=("attention_entropy_values",))])


MISTAKES += [
    _entropy_mistake("ent.no-minus", "the minus sign is missing, so the entropy is negative",
                     "negate the sum: -(weights * logs).sum(dim=-1)", "no_minus",
                     ("return -(weights * logs)", "return (weights * logs)"), ("return (weights", "return -(weights")),
    _entropy_mistake("ent.log2", "the logarithm is in base 2 (bits), not natural (nats)", "use weights.log(), not log2",
                     "log2", ("weights.log()", "weights.log2()"), ("log2()", "log()")),
    _entropy_mistake("ent.wrong-axis", "the sum runs over the first dimension, not over the keys",
                     "sum over the last dimension: .sum(dim=-1)", "first_axis", ("sum(dim=-1)", "sum(dim=0)"),
                     ("sum(dim=0)", "sum(dim=-1)")),
    _entropy_mistake("ent.not-weighted", "the logs are summed without their weights", "weight each log by its "
                     "probability: -(weights * logs).sum(dim=-1)", "no_weighting", ("-(weights * logs)", "-logs"),
                     ("-logs", "-(weights * logs)")),
    _entropy_mistake("ent.mean", "the weighted logs are averaged instead of summed", "sum over the keys, not mean",
                     "mean", ("sum(dim=-1)", "mean(dim=-1)"), ("mean(dim=-1)", "sum(dim=-1)")),
    _entropy_mistake("ent.gini", "the Gini impurity 1 - sum w^2 is computed instead of the entropy",
                     "compute -(weights * logs).sum(dim=-1), with logs = log(weights) where weights > 0", "gini",
                     ("return -(weights * logs).sum(dim=-1)", "return 1 - (weights ** 2).sum(dim=-1)"),
                     ("return 1 - (weights ** 2).sum(dim=-1)", "return -(weights * logs).sum(dim=-1)")),
]

from autograder.probes import calls   # noqa: E402
import torch   # noqa: E402

PROBES = {"attention_entropy": [
    calls("attention_entropy", torch.softmax(torch.randn(2, 3, 5, generator=torch.Generator().manual_seed(0)), dim=-1)),
    calls("attention_entropy", torch.tensor([[0.25, 0.25, 0.25, 0.25], [0.0, 1.0, 0.0, 0.0]]))]}
'''

SECTION = """(ch01-attention-entropy)=
## How spread out are the weights?

The entropy of a row of weights $\\alpha_1, \\dots, \\alpha_{T_k}$ is $H = -\\sum_j \\alpha_j \\ln \\alpha_j$ (with
$0 \\ln 0 = 0$): $\\ln T_k$ for uniform weights, 0 for a one-hot row.

"""


def tracked_copy(destination):
    """The files git tracks (as they are in the working tree), with the virtual environment linked in."""
    names = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in filter(None, names.decode().split("\0")):
        if (REPO / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, destination / name)
    (destination / ".venv").symlink_to((REPO / ".venv").resolve())
    return destination


def make(repo, *targets):
    """`make` as a maintainer runs it (the environment taken as installed: never reinstalled here)."""
    env = {k: v for k, v in os.environ.items() if k != "TEST_ASSIGNMENTS"}
    return subprocess.run(["make", "-s", "-o", ".venv/.installed", *targets], cwd=repo, env=env,
                          capture_output=True, text=True)


def digest(folder):
    """The files under `folder` and what they hold; Python's bytecode caches aside (a machine without
    PYTHONDONTWRITEBYTECODE writes them wherever a module is imported)."""
    h = hashlib.sha256()
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file() and ".venv" not in path.parts and "__pycache__" not in path.parts:
            h.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def new_cell(kind, source, grade_id, grade=False, solution=False, points=None):
    cell = nbformat.v4.new_markdown_cell(source) if kind == "markdown" else nbformat.v4.new_code_cell(source)
    cell.metadata["nbgrader"] = {"grade": grade, "grade_id": grade_id, "locked": not solution, "schema_version": 3,
                                 "solution": solution, "task": False}
    if points is not None:
        cell.metadata["nbgrader"]["points"] = points
    return cell


BEFORE = sum(max_points("01_attention").values())   # the assignment's points today
AFTER = BEFORE + 3                                   # with the exercise's 1 + 2 points


def add_the_exercise(repo):
    """Step 1 of the README: the exercise's cells in the solution notebook, and the announced total."""
    path = repo / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    notebook = nbformat.read(path, as_version=4)
    done = next(i for i, c in enumerate(notebook.cells) if c.metadata["nbgrader"]["grade_id"] == "done")
    notebook.cells[done:done] = [
        new_cell("markdown", INTRO, f"{COMPONENT}_intro"),
        new_cell("code", SOLUTION, COMPONENT, solution=True),
        new_cell("code", VISIBLE, f"{COMPONENT}_visible", grade=True, points=1),
        new_cell("code", HIDDEN, f"{COMPONENT}_values", grade=True, points=2),
    ]
    intro = notebook.cells[0]
    assert f"({BEFORE:g} points in all)" in intro.source
    intro.source = intro.source.replace(f"({BEFORE:g} points in all)", f"({AFTER:g} points in all)")
    nbformat.write(notebook, path)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return tracked_copy(tmp_path_factory.mktemp("clone"))


def test_make_notebooks_works_on_a_fresh_clone_and_changes_nothing_when_it_fails(repo):
    assert not (repo / "_build").exists()
    before = digest(repo)
    process = make(repo, "notebooks")
    assert process.returncode == 0, process.stdout + process.stderr
    assert digest(repo / "notebooks") == digest(REPO / "notebooks"), "make notebooks changed the release"

    path = repo / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    good = path.read_bytes()
    notebook = nbformat.read(path, as_version=4)
    notebook.cells[3].metadata["nbgrader"]["grade_id"] = notebook.cells[1].metadata["nbgrader"]["grade_id"]
    nbformat.write(notebook, path)                              # two cells with one grade_id: nbgrader fails
    broken = digest(repo)
    process = make(repo, "notebooks")
    assert process.returncode != 0, "make notebooks succeeded on a broken solution notebook"
    assert "notebooks/ is unchanged" in process.stderr
    assert digest(repo) == broken, "a failed make notebooks changed files"
    path.write_bytes(good)
    assert digest(repo) == before


def test_the_readmes_steps_for_adding_an_exercise(repo, tmp_path):
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for step in ["`## N. Title (P points)`", "`# [N points]`", "`<component>_visible`", "(T points in all)",
                 "`solutions/<id>/mistakes.py`", "at least 6 per graded component", "`edit=(old, new)`", "`fixed`",
                 "`PROBES`", "GRADED_ELSEWHERE", "**`make notebooks`**", "**`make readme`**", "`(chNN-...)=`"]:
        assert step in readme, f"the README's steps no longer say {step}"

    add_the_exercise(repo)                                                                  # step 1
    with open(repo / "solutions" / ASSIGNMENT / "mistakes.py", "a") as f:                  # step 2
        f.write(MISTAKES)
    chapter = repo / "book" / f"{ASSIGNMENT}.md"                                           # step 3 (6 in the README)
    text = chapter.read_text(encoding="utf-8")
    chapter.write_text(text.replace("(ch01-sdpa-formula)=\n", SECTION + "(ch01-sdpa-formula)=\n", 1), encoding="utf-8")
    for target in ("notebooks", "readme"):                                                 # steps 4, 5
        process = make(repo, target)
        assert process.returncode == 0, process.stdout + process.stderr
    release = nbformat.read(repo / "notebooks" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    stub = next(c for c in release.cells if c.metadata["nbgrader"]["grade_id"] == COMPONENT)
    assert "raise NotImplementedError()" in stub.source and "clamp" not in stub.source
    assert f"| `01_attention` | {AFTER:g} |" in (repo / "README.md").read_text(encoding="utf-8")

    # Step 7: the Chinese edition names what it does not translate yet (the new cells, mistakes and paragraphs).
    process = make(repo, "translations")
    assert process.returncode != 0, "make translations finds nothing to translate in a new exercise"
    assert f"no translation: cell {COMPONENT}" in process.stdout and "solutions/01_attention/mistakes.py" in \
        process.stdout and "book/01_attention.md" in process.stdout, process.stdout[-2000:]

    # The project's own checks of an assignment pass on it (step 8's make test, for these checks).
    checks = ["tests/test_notebooks.py::test_the_points_the_notebook_announces_are_the_points_it_grades",
              "tests/test_notebooks.py::test_committed_notebooks_are_what_nbgrader_generates",
              "tests/test_notebooks.py::test_released_notebooks_leak_no_solution_or_hidden_test",
              "tests/test_mutants.py::test_every_graded_component_has_a_catalogue_of_mutants",
              "tests/test_tools.py::test_the_readme_table_is_generated_and_up_to_date",
              "tests/test_diagnostics.py", "tests/test_fastpath.py"]
    select = f"not (test_diagnostics or test_fastpath) or {COMPONENT} or declarations or detectable or label " \
             f"or solution_shows_no_mistake"
    process = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *checks, "-k", select],
                             cwd=repo, env=dict(os.environ, TEST_ASSIGNMENTS=ASSIGNMENT),
                             capture_output=True, text=True)
    assert process.returncode == 0, process.stdout[-3000:]
    ran = process.stdout.splitlines()[-1]
    assert " passed" in ran and "skipped" not in ran and "deselected" in ran, ran

    # A solution, a stub (the release) and one mutant, graded: the mutant's feedback names its mistake.
    submissions = tmp_path / "submitted"
    solution = repo / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    mutant_notebook = nbformat.read(solution, as_version=4)
    cell = next(c for c in mutant_notebook.cells if c.metadata["nbgrader"]["grade_id"] == COMPONENT)
    cell.source = SOLUTION.replace("weights.log()", "torch.log2(weights)")   # log2, as a student writes it
    for student in ("solution", "stub", "mutant"):
        (submissions / student / ASSIGNMENT).mkdir(parents=True)
    shutil.copy(solution, submissions / "solution" / ASSIGNMENT)
    shutil.copy(repo / "notebooks" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", submissions / "stub" / ASSIGNMENT)
    nbformat.write(mutant_notebook, submissions / "mutant" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    extra = [] if shutil.which("bwrap") else ["--unsafe-no-sandbox"]
    process = subprocess.run([sys.executable, "-m", "autograder", "grade", str(submissions), "--out",
                              str(tmp_path / "out"), "--workers", "1", "--quiet", *extra],
                             cwd=repo, capture_output=True, text=True)
    assert process.returncode == 0, process.stderr
    grades = {r["student_id"]: (float(r["score"]), float(r["max_score"]))
              for r in read_csv(tmp_path / "out" / "grades.csv")}
    assert grades["solution"] == (AFTER, AFTER) and grades["stub"] == (0, AFTER), grades
    cells = {(r["student_id"], r["grade_id"]): float(r["score"]) for r in read_csv(tmp_path / "out" / "tests.csv")}
    assert cells[("mutant", f"{COMPONENT}_values")] == 0, "the mutant (log2) kept the hidden test's points"
    assert cells[("mutant", f"{COMPONENT}_visible")] == 0, "the visible test misses log2"
    lost = {g for (s, g), score in cells.items() if s == "mutant" and score < cells[("solution", g)]}
    assert lost == {f"{COMPONENT}_visible", f"{COMPONENT}_values"}, f"the mutant lost points elsewhere: {lost}"
    named = {(r["student_id"], r["misconception"]) for r in read_csv(tmp_path / "out" / "misconceptions.csv")}
    assert ("mutant", "ent.log2") in named, f"the diagnostics did not name the mistake: {named}"
    assert not any(student == "solution" for student, _ in named), named
