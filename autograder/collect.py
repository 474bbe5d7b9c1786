"""Find the submissions under SUBMISSIONS/<student_id>/<assignment_id>/ and sort out broken ones.

Returns the submissions to grade and, for every one that cannot be graded, a reason a person
understands (it goes to errors.csv and scores 0). Nothing here runs student code, and nothing a
file holds can raise out of here: reading, decoding, parsing and validating are all bounded.
"""
import codecs
import json
from dataclasses import dataclass
from pathlib import Path

import nbformat

IGNORED_DIRS = {".ipynb_checkpoints", "__pycache__"}
MAX_NOTEBOOK_BYTES = 50 * 2**20   # a notebook with its outputs; more is not a submission
BOMS = [(codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")]


@dataclass(frozen=True)
class Submission:
    student_id: str
    assignment: str
    notebook: Path         # the .ipynb to grade
    flags: tuple = ()      # e.g. which of several notebooks was picked, and why


@dataclass(frozen=True)
class Problem:
    student_id: str
    assignment: str
    reason: str


def _visible_dirs(folder, skip=()):
    return sorted(p for p in folder.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and p.name not in IGNORED_DIRS
                  and p.resolve() not in skip)


def read_notebook(path):
    """(NotebookNode, None) for a readable Jupyter notebook, else (None, why not)."""
    try:
        if path.stat().st_size > MAX_NOTEBOOK_BYTES:
            return None, f"the notebook is larger than {MAX_NOTEBOOK_BYTES // 2**20} MB"
        data = path.read_bytes()
    except OSError as error:
        return None, f"the file cannot be read ({error.strerror})"
    encoding = next((name for bom, name in BOMS if data.startswith(bom)), "utf-8")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        return None, "not a notebook: the file is not UTF-8 text"
    if not text.strip():
        return None, "the notebook file is empty"
    try:
        content = json.loads(text)
    except json.JSONDecodeError as error:
        return None, f"not a valid notebook: broken JSON at line {error.lineno}, column {error.colno}"
    except RecursionError:
        return None, "not a valid notebook: the JSON is nested too deeply"
    if not isinstance(content, dict) or not isinstance(content.get("cells"), list):
        return None, "not a valid notebook: the JSON has no list of cells"
    if not content["cells"]:
        return None, "not a valid notebook: it has no cells"
    if content.get("nbformat") != 4:
        return None, f"not a valid notebook: nbformat {content.get('nbformat')!r}, this course uses 4"
    try:
        notebook = nbformat.from_dict(content)
        nbformat.validate(notebook)
    except RecursionError:
        return None, "not a valid notebook: the JSON is nested too deeply"
    except Exception as error:  # nbformat's validation errors have many types
        first_line = (str(error).strip().splitlines() or [""])[0][:200]
        return None, f"not a valid notebook: {type(error).__name__}: {first_line}"
    return notebook, None


def check_notebook(path):
    """None if `path` is a readable Jupyter notebook, else why not."""
    return read_notebook(path)[1]


def _work_in(notebook):
    """How much of the assignment a notebook holds: (stubs filled in, characters of code)."""
    code = [c.source for c in notebook.cells if c.cell_type == "code"]
    return (-sum("raise NotImplementedError" in source for source in code), sum(len(source) for source in code))


def find_notebook(folder, assignment):
    """(notebook, flags, None) for the notebook to grade in a student's folder, or (None, (), reason).

    One notebook is graded whatever its name ("01_attention (1).ipynb", renamed by a browser). Of
    several, the one with the most work in it (fewest stubs left, then most code; then the expected
    name, then the newest) is graded, and a flag says which.
    """
    candidates = sorted(p for p in folder.glob("*.ipynb") if p.is_file())
    if not candidates:
        return None, (), f"no notebook: expected {assignment}.ipynb in the submission folder"
    if len(candidates) == 1:
        return candidates[0], (), None
    readable = {p: nb for p in candidates for nb, _ in [read_notebook(p)] if nb is not None}
    if not readable:
        expected = folder / f"{assignment}.ipynb"
        return (expected if expected in candidates else candidates[0]), (), None  # its reason is reported
    chosen = max(readable, key=lambda p: (_work_in(readable[p]), p.name == f"{assignment}.ipynb",
                                          p.stat().st_mtime, p.name))
    names = ", ".join(p.name for p in candidates)
    return chosen, (f"several notebooks ({names}): graded {chosen.name}, the one with the most work in it",), None


def collect(submissions, known_assignments, skip=()):
    """(submissions to grade, problems) for every student folder under `submissions`.

    An assignment is graded for every student as soon as one student submitted it; a student
    without that folder gets a "no submission" problem (and a score of 0). Folders in `skip` (the
    grader's own output folder, when it lies inside `submissions`) are not students.
    """
    submissions = Path(submissions)
    skip = {Path(p).resolve() for p in skip}
    students = _visible_dirs(submissions, skip)
    submitted = {a.name for s in students for a in _visible_dirs(s, skip)}
    assignments = sorted(submitted & set(known_assignments))
    found, problems = [], []
    for student in students:
        for folder in _visible_dirs(student, skip):
            if folder.name not in known_assignments:
                known = ", ".join(sorted(known_assignments))
                problems.append(Problem(student.name, folder.name,
                                        f"unknown assignment (this course has: {known})"))
        for assignment in assignments:
            folder = student / assignment
            if not folder.is_dir():
                problems.append(Problem(student.name, assignment, "no submission"))
                continue
            notebook, flags, reason = find_notebook(folder, assignment)
            reason = reason or check_notebook(notebook)
            if reason:
                problems.append(Problem(student.name, assignment, reason))
            else:
                found.append(Submission(student.name, assignment, notebook, flags))
    return found, problems
