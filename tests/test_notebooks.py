"""The notebooks pipeline: notebooks/ is what nbgrader generates from solutions/, carries no outputs,
leaks no solution or hidden test (nor does the built book), and the solutions run fast and clean."""
import html
import json
import re
import time

import nbformat
import pytest
from nbclient import NotebookClient

from autograder import editions, feedback
from autograder.course import assignments as course_assignments, build_course
from autograder.editions import Edition
from tests.conftest import ASSIGNMENTS, NOTEBOOKS, REPO, SOLUTIONS, release_path, solution_path

ZH_NOTEBOOKS = REPO / "zh" / "notebooks"


def secret_lines(assignment):
    """Lines of solutions and hidden tests long enough to identify them (the grader's own definition), in both
    editions (the Chinese one translates their comments and messages)."""
    english = nbformat.read(solution_path(assignment), as_version=4)
    lines = feedback.secret_lines(english)
    if editions.has_translation(assignment):
        lines |= feedback.secret_lines(editions.translated_notebook(english, assignment))
    return lines


def normalised_text(path):
    """The text a reader sees in a notebook or an HTML page, whitespace-normalised."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".html":
        text = html.unescape(re.sub(r"<[^>]+>", "", text))
    elif path.suffix == ".ipynb":
        text = "\n".join(c.source for c in nbformat.reads(text, as_version=4).cells)
    return " ".join(text.split())


def leaks(paths):
    secrets = {line for a in ASSIGNMENTS for line in secret_lines(a)}
    return sorted((p.name, line) for p in paths
                  for text in [normalised_text(p)] for line in secrets if line in text)


@pytest.mark.quick
def test_the_assignments_have_solutions_and_hidden_tests():
    for assignment in ASSIGNMENTS:
        assert len(secret_lines(assignment)) >= 10, f"{assignment}: few solution or hidden-test lines found"


@pytest.mark.parametrize("edition", list(Edition))
def test_committed_notebooks_are_what_nbgrader_generates(tmp_path, edition):
    committed_folder = NOTEBOOKS if edition is Edition.EN else ZH_NOTEBOOKS
    only = None if edition is Edition.EN else [a for a in course_assignments() if editions.has_translation(a)]
    course = build_course(tmp_path / "course", only=only, edition=edition)
    generated = {p.relative_to(course / "release") for p in (course / "release").rglob("*") if p.is_file()}
    committed = {p.relative_to(committed_folder) for p in committed_folder.rglob("*") if p.is_file()}
    shown = committed_folder.relative_to(REPO)
    assert generated == committed, f"{shown}/ is out of date with solutions/: run `make notebooks`"
    for path in sorted(generated):
        ours = json.loads((committed_folder / path).read_text())
        theirs = json.loads((course / "release" / path).read_text())
        assert ours == theirs, f"{shown}/{path} is out of date with solutions/ and zh/: run `make notebooks`"


@pytest.mark.parametrize("path", sorted(list(SOLUTIONS.rglob("*.ipynb")) + list(NOTEBOOKS.rglob("*.ipynb"))
                                         + list(ZH_NOTEBOOKS.rglob("*.ipynb"))),
                         ids=lambda p: str(p.relative_to(REPO)))
@pytest.mark.quick
def test_committed_notebooks_carry_no_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, \
                f"{path.relative_to(REPO)} has outputs: clear them before committing"


@pytest.mark.quick
def test_released_notebooks_leak_no_solution_or_hidden_test():
    """Every file of both releases, not only the notebooks: nbgrader releases whatever lies beside a source notebook
    and is not in nbgrader_config.py's ignore list."""
    released = sorted(p for folder in (NOTEBOOKS, ZH_NOTEBOOKS) for p in folder.rglob("*") if p.is_file())
    assert leaks(released) == []


@pytest.mark.quick
def test_a_chinese_scratch_course_releases_only_the_notebook(tmp_path):
    """The English source kept beside a Chinese course's notebook (course.ENGLISH_SOURCE: solutions and hidden tests)
    is never released."""
    course_dir = build_course(tmp_path / "course", only=[ASSIGNMENTS[0]], edition=Edition.ZH)
    released = sorted(p.name for p in (course_dir / "release").rglob("*") if p.is_file())
    assert released == [f"{ASSIGNMENTS[0]}.ipynb"]
    assert (course_dir / "source" / ASSIGNMENTS[0] / f"{ASSIGNMENTS[0]}.english.json").is_file()


@pytest.mark.quick
def test_the_leak_check_finds_a_planted_leak(tmp_path):
    line = sorted(secret_lines(ASSIGNMENTS[0]))[0]
    page = tmp_path / "page.html"
    page.write_text(f"<p>Here is the answer:</p><pre><span>{html.escape(line[:10])}</span>"
                    f"{html.escape(line[10:])}</pre>")
    assert leaks([page]) == [("page.html", line)]


def execute(path):
    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(notebook, timeout=120, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    errors = [(c.metadata.get("nbgrader", {}).get("grade_id"), o.ename) for c in notebook.cells
              if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    return errors, time.perf_counter() - start


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_the_solution_notebook_runs_clean_in_under_20_seconds(assignment, tmp_path):
    """Where the tests run in the grader's process, the student's run is the notebook with its hidden parts
    stripped (in a kernel); that the grader's tests of it pass is tests/test_fastpath.py's
    test_the_solution_passes_every_cell_in_process."""
    from autograder import verdicts
    source = nbformat.read(solution_path(assignment), as_version=4)
    path = solution_path(assignment)
    if verdicts.in_grader(source):
        for cell in source.cells:
            if cell.metadata.get("nbgrader", {}).get("grade"):
                cell.source = verdicts.strip_hidden(cell.source)
        path = tmp_path / f"{assignment}.ipynb"
        nbformat.write(source, path)
    errors, seconds = execute(path)
    assert errors == [], f"the solution notebook raises: {errors}"
    assert seconds < 20, f"the solution notebook took {seconds:.1f} s (limit: 20 s on 2 cores)"


def run_in_process(path):
    """[(grade_id, exception's name)] of a trusted notebook's code cells run top to bottom in a namespace of this
    process, each cell's exception recorded and the next cell run, as a kernel does with allow_errors (what the
    cells do to torch's global state is put back)."""
    import matplotlib.pyplot as plt
    from autograder import verdicts
    from autograder.course import without_magics
    namespace, errors = {"__name__": "__main__"}, []
    with verdicts.grader_state():
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type != "code":
                continue
            try:
                exec(compile(without_magics(cell.source), "<notebook cell>", "exec"), namespace)
            except Exception as error:
                errors.append((cell.metadata.get("nbgrader", {}).get("grade_id"), type(error).__name__))
    plt.close("all")
    return errors


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_the_released_stubs_raise_not_implemented_error(assignment):
    """Run in this process (the release's code is the course's own; each solution runs in a kernel above, and the
    graded class grades each release through the whole grader to 0)."""
    errors = run_in_process(release_path(assignment))
    assert errors, "the released notebook runs without error: are the solutions really removed?"
    assert {ename for _, ename in errors} == {"NotImplementedError"}, errors


@pytest.mark.quick
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_the_points_the_notebook_announces_are_the_points_it_grades(assignment):
    notebook = nbformat.read(solution_path(assignment), as_version=4)
    points = {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]["points"]
              for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade")}
    for cell in notebook.cells:  # each test cell's first line says "[N point(s)]"
        if cell.metadata.get("nbgrader", {}).get("grade"):
            announced = re.match(r"# \[(\d+) points?\]", cell.source)
            assert announced and int(announced.group(1)) == cell.metadata["nbgrader"]["points"], cell.source[:80]
    text = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    total = re.search(r"\((\d+) points in all\)", text)
    assert total and int(total.group(1)) == sum(points.values()), "the introduction's total is wrong"
    sections = re.findall(r"^## \d+\. .*\((\d+) points\)", text, re.M)
    assert sum(map(int, sections)) == sum(points.values()), "the sections' points do not add up to the total"
